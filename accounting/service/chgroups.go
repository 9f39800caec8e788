package service

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// ClickHouseGroups keeps package rollup's group sums in the ClickHouse
// backend's energy_group_1h table (clickhouse.EnergyGroups): it is the
// rollup.GroupStore of the GroupJob that computes them and, confined to a
// tenant, the rollup.GroupSource ClickHouseEnergy reads them through.
type ClickHouseGroups struct{ Groups *clickhouse.EnergyGroups }

var _ rollup.GroupStore = ClickHouseGroups{}

// Counts implements rollup.GroupStore.
func (c ClickHouseGroups) Counts(ctx context.Context, metrics []string, from, to int64) (map[int64]uint64, error) {
	return c.Groups.Counts(ctx, metrics, from, to)
}

// Computed implements rollup.GroupStore.
func (c ClickHouseGroups) Computed(ctx context.Context, from, to int64) (map[int64]uint64, error) {
	return c.Groups.Computed(ctx, from, to)
}

// WriteGroups implements rollup.GroupStore.
func (c ClickHouseGroups) WriteGroups(ctx context.Context, rows []rollup.GroupRow, members []rollup.GroupMember) error {
	rs := make([]clickhouse.EnergyGroupRow, len(rows))
	for i, r := range rows {
		rs[i] = clickhouse.EnergyGroupRow{Tenant: r.Tenant, SourceMetric: r.SourceMetric, Site: r.Site, Component: r.Component,
			Hour: r.Hour, Energy: r.Energy, Covered: r.Covered, Estimated: r.Estimated, Inputs: r.Inputs, Version: r.Version}
	}
	ms := make([]clickhouse.EnergyGroupMember, len(members))
	for i, m := range members {
		ms[i] = clickhouse.EnergyGroupMember{Tenant: m.Tenant, SourceMetric: m.SourceMetric, Site: m.Site, Component: m.Component,
			From: m.From, To: m.To, Series: m.Series}
	}
	return c.Groups.Write(ctx, rs, ms)
}

// tenantGroups reads one tenant's group sums ("" : the store is not split by tenant).
type tenantGroups struct {
	g      *clickhouse.EnergyGroups
	tenant string
}

// GroupSums implements rollup.GroupSource.
func (t tenantGroups) GroupSums(ctx context.Context, ms []*labels.Matcher, from, to int64) (map[int64]rollup.GroupHour, []uint64, error) {
	if t.tenant != "" {
		ms = append(ms[:len(ms):len(ms)], labels.MustNewMatcher(labels.MatchEqual, ingest.TenantLabel, t.tenant))
	}
	hours, members, err := t.g.Sums(ctx, ms, from, to)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[int64]rollup.GroupHour, len(hours))
	for h, v := range hours {
		out[h] = rollup.GroupHour{Energy: v.Energy, Covered: v.Covered, Estimated: v.Estimated}
	}
	return out, members, nil
}

// rawMargin keeps group-less hours this far inside the raw retention, for
// partitions dropped a little early (they go by whole days).
const rawMargin = 24 * time.Hour
