package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/accounting/summary"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/ui"
)

// registerUI mounts the fleet page, each caller seeing the sites and series
// of its own tenant; sites are read at each request (the sites in force).
func registerUI(srv *web.Server, log *slog.Logger, store ingest.Store, engine *promql.Engine, sites func() []config.Site, authOn bool) {
	ui.Register(srv.Echo(), ui.Deps{
		Summaries: func(ctx context.Context, tenant string) ([]summary.SiteSummary, error) {
			var mine []config.Site
			for _, s := range sites() {
				if !authOn || s.SiteTenant() == tenant {
					mine = append(mine, s)
				}
			}
			return summary.Compute(ctx, ingest.TenantQueryable(store, tenant), engine, mine, time.Now())
		},
		Logger: log,
	})
}
