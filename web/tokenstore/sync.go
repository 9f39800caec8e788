package tokenstore

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/chsync"
	"github.com/greenloop/greenloop/web"
)

// Source is where a Syncer reads the tokens: a *Store.
type Source interface {
	Load(ctx context.Context) (toks []web.Token, bad []error, err error)
}

// SyncOptions tune a Syncer (interval, timeout, metrics registerer, logger,
// clock). Zero values take the defaults.
type SyncOptions = chsync.Options

// Syncer keeps a web.Server's tokens in step with a Source: it reads them
// every Interval and hands each good read to apply (web.Server.SetTokens).
// A failed read keeps the last good set in force, counts in
// greenloop_auth_tokens_refresh_errors_total and is logged (at most once a
// minute while it lasts). Bad rows are skipped, logged once while they stay
// the same, and do not make Refresh fail. InForce is the number of tokens
// the last good refresh applied (-1 before one).
type Syncer = chsync.Syncer[web.Token]

// NewSyncer returns a Syncer from src to apply; it reads nothing yet.
func NewSyncer(src Source, apply func([]web.Token), o SyncOptions) (*Syncer, error) {
	tokens := prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_auth_tokens",
		Help: "Live tokens in force, from the last good refresh from ClickHouse."})
	return chsync.New(chsync.Spec[web.Token]{
		Noun: "tokens",
		Load: src.Load,
		Apply: func(toks []web.Token) (int, []error) {
			apply(toks)
			return len(toks), nil
		},
		BadRowMsg:    "bad token row skipped",
		BadRowLevel:  slog.LevelWarn,
		MetricPrefix: "greenloop_auth_tokens",
		BadRowsHelp:  "Live rows of the ClickHouse token table skipped at the last good refresh (unknown role, bad hash, ...).",
		InForce:      tokens,
	}, o)
}
