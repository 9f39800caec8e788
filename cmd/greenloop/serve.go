package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/demo"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/ndjson"
	"github.com/greenloop/greenloop/ingest/textimport"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/ui"
)

// serveFlags are the command-line settings of `greenloop serve`; each also
// reads an environment variable, and both override the configuration file.
type serveFlags struct {
	config, listen, dataDir, tokensFile, logLevel string
	demo                                          bool
	demoSeed                                      int64
	// tempDataDir is set when the demo runs in a temporary data directory.
	tempDataDir bool
}

// envVars maps flags to the environment variables that set them.
var envVars = map[string]string{
	"config":      "GREENLOOP_CONFIG",
	"listen":      "GREENLOOP_LISTEN",
	"data-dir":    "GREENLOOP_DATA_DIR",
	"tokens-file": "GREENLOOP_TOKENS_FILE",
	"log-level":   "GREENLOOP_LOG_LEVEL",
	"demo":        "GREENLOOP_DEMO",
}

// loadServeConfig applies defaults, then the file, then environment, then flags, and validates.
func loadServeConfig(args []string, stderr io.Writer) (config.Server, serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML configuration file (env GREENLOOP_CONFIG)")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address host:port (env GREENLOOP_LISTEN; default 127.0.0.1:8080)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the embedded store (env GREENLOOP_DATA_DIR; default ./data, a temporary one with --demo)")
	fs.StringVar(&f.tokensFile, "tokens-file", "", "bearer tokens file (env GREENLOOP_TOKENS_FILE); without one the server only listens on loopback")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (env GREENLOOP_LOG_LEVEL)")
	fs.BoolVar(&f.demo, "demo", false, "fill the store with a simulated fleet: 7 days of history, then live data (env GREENLOOP_DEMO=1)")
	fs.Int64Var(&f.demoSeed, "demo-seed", 1, "seed of the simulated fleet")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: greenloop serve [flags]\n\nFlags override the environment, which overrides the --config file.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config.Server{}, f, err
	}
	if fs.NArg() > 0 {
		return config.Server{}, f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	// The environment fills what the command line left unset.
	for name, env := range envVars {
		if v, ok := os.LookupEnv(env); ok && !set[name] {
			if err := fs.Set(name, v); err != nil {
				return config.Server{}, f, fmt.Errorf("%s=%q: %w", env, v, err)
			}
			set[name] = true
		}
	}
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.LoadFile(f.config); err != nil {
			return cfg, f, err
		}
	}
	if set["listen"] {
		cfg.Listen = f.listen
	}
	if set["data-dir"] {
		cfg.DataDir = f.dataDir
	}
	if set["tokens-file"] {
		cfg.Auth.TokensFile = f.tokensFile
	}
	if set["log-level"] {
		cfg.Log.Level = f.logLevel
	}
	if set["demo"] {
		cfg.Demo.Enabled = f.demo
	}
	// A demo without a data directory of its own gets a temporary one (made in runServe).
	f.tempDataDir = cfg.Demo.Enabled && !set["data-dir"] && f.config == ""
	if err := cfg.Validate(); err != nil {
		return cfg, f, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, f, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, flags, err := loadServeConfig(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if _, set := os.LookupEnv("GOGC"); !set {
		// The write path allocates little per sample and the live heap is mostly
		// the TSDB head; collecting at 200 % growth instead of 100 % halves the
		// GC's share of ingest CPU. GOGC in the environment overrides it.
		debug.SetGCPercent(200)
	}
	if flags.tempDataDir {
		dir, err := os.MkdirTemp("", "greenloop-demo-")
		if err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		log.Info("demo store in a temporary directory, removed at exit", "data_dir", dir)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	start := time.Now()
	opened, err := openStore(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	log.Info("store open", "store", opened.desc, "took", time.Since(start).Round(time.Millisecond))
	defer func() {
		t := time.Now()
		if err := opened.Close(); err != nil {
			log.Error("closing store", "err", err)
			return
		}
		log.Info("store flushed and closed", "took", time.Since(t).Round(time.Millisecond))
	}()

	// Every write goes through the late-write tracker, so that the results
	// cache can tell when samples arrive in time it has answered for.
	var store ingest.Store = opened.Store
	backfillStore := opened.backfill
	var late *ingest.LateWrites
	if rc := cfg.Query.ResultsCache; rc.MaxBytes > 0 {
		late = ingest.NewLateWrites(rc.Settle.D(), time.Hour, nil)
		store = ingest.TrackLate(store, late)
		backfillStore = ingest.TrackLate(backfillStore, late)
	}
	writer, err := ingest.NewWriter(store, ingest.WriterOptions{
		MaxFutureSkew: cfg.Ingest.MaxFutureSkew.D(),
		MaxAge:        opened.maxAge,
		MaxLabels:     cfg.Ingest.MaxLabels,
		Mapping:       cfg.Ingest.MappingEnabled(),
		Registerer:    reg,
		Logger:        log.With("component", "ingest"),
	})
	if err != nil {
		return err
	}
	backfill, err := ingest.NewWriter(backfillStore, ingest.WriterOptions{
		MaxFutureSkew: cfg.Ingest.MaxFutureSkew.D(),
		MaxAge:        opened.backfillMaxAge,
		MaxLabels:     cfg.Ingest.MaxLabels,
		Mapping:       cfg.Ingest.MappingEnabled(),
		Logger:        log.With("component", "backfill"),
	})
	if err != nil {
		return err
	}
	stopRollups, err := startRollups(ctx, log.With("component", "rollup"), cfg, opened, store, backfillStore, late)
	if err != nil {
		return err
	}
	defer stopRollups()
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               log.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           cfg.Query.MaxSamples,
		Timeout:              cfg.Query.Timeout.D(),
		LookbackDelta:        cfg.Query.LookbackDelta.D(),
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})

	var ready atomic.Bool
	ready.Store(!cfg.Demo.Enabled)
	sites := cfg.Sites
	var fleet *demo.Fleet
	if cfg.Demo.Enabled {
		fleet = demo.New(flags.demoSeed)
		for _, s := range fleet.Sites() {
			if cfg.Auth.Enabled() {
				s.Tenant = cfg.Demo.Tenant
			}
			sites = append(sites, s)
		}
	}

	siteRT, err := startSites(ctx, cfg, store, sites, reg, log.With("component", "sites"))
	if err != nil {
		return err
	}
	defer siteRT.stop()

	forecasts := newForecastOverlay(cfg, reg, log.With("component", "carbon"))
	srv, err := web.New(web.Deps{
		Store:       store,
		Writer:      writer,
		Engine:      engine,
		SiteSource:  siteRT.Sites,
		Logger:      log.With("component", "web"),
		Registry:    reg,
		Ready:       func() error { return readyErr(ready.Load()) },
		ParseText:   textimport.Parse,
		ParseNDJSON: ndjson.Parse,
		LateWrites:  late,
		Backfill:    backfill,
		Overlay:     forecasts,
	}, webOptions(cfg))
	if err != nil {
		return err
	}
	registerUI(srv, log.With("component", "ui"), store, engine, siteRT.Sites, cfg.Auth.Enabled())
	if err := siteRT.register(srv); err != nil {
		return err
	}
	reloadTokens, stopTokens, err := startTokens(ctx, cfg, srv, reg, log.With("component", "auth"))
	if err != nil {
		return err
	}
	defer stopTokens()
	// The accounting reads through the raw store (writes go through writer,
	// which tracks late writes); the EU report keeps its tables in ClickHouse.
	stopAccounting, err := startAccounting(ctx, srv, log, cfg, opened.Store, writer, backfill, siteRT.Sites, forecasts)
	if err != nil {
		return err
	}
	defer stopAccounting()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/", scheme, ln.Addr().String())
	log.Info("listening", "addr", ln.Addr().String(), "url", url)
	fmt.Fprintf(stdout, "greenloop is serving on %s\n", url)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-sctx.Done():
				return
			case <-hup:
				if err := reloadTokens(); err != nil {
					log.Error("reloading tokens", "err", err)
				}
			}
		}
	})
	if fleet != nil {
		tenant := ""
		if cfg.Auth.Enabled() {
			tenant = cfg.Demo.Tenant
		}
		wg.Go(func() {
			if err := runDemo(sctx, log, store, fleet, cfg.Demo.History.D(), tenant, &ready); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("demo stopped", "err", err)
			}
		})
	}
	err = srv.Serve(sctx, ln)
	cancel()
	wg.Wait()
	return err
}

func webOptions(cfg config.Server) web.Options {
	o := web.OptionsFrom(cfg)
	o.PublicPaths = append(o.PublicPaths, ui.PublicPaths...)
	o.BuildInfo.Revision = version
	return o
}

func readyErr(ok bool) error {
	if ok {
		return nil
	}
	return errors.New("loading demo history")
}

// demoStep is the resolution of the demo's history; live data comes every demoLiveStep.
const (
	demoStep     = time.Minute
	demoLiveStep = 10 * time.Second
)

// runDemo writes the demo fleet's history, marks the server ready, then writes live data until ctx ends.
func runDemo(ctx context.Context, log *slog.Logger, store ingest.Store, fleet *demo.Fleet, history time.Duration, tenant string, ready *atomic.Bool) error {
	// The demo writes history older than the ingest age limit, so it has a writer of its own.
	w, err := ingest.NewWriter(store, ingest.WriterOptions{MaxAge: history + time.Hour, Logger: log})
	if err != nil {
		return err
	}
	o := ingest.WriteOptions{Tenant: tenant}
	now := time.Now()
	from := now.Add(-history).Truncate(demoStep)
	st, err := store.Stats(ctx)
	if err != nil {
		return err
	}
	if st.MaxTime > 0 && time.UnixMilli(st.MaxTime).After(from) {
		// A store that already has the demo's data (a given --data-dir) continues
		// where it stopped, its counters going on from their stored values.
		at := time.UnixMilli(st.MaxTime)
		if err := fleet.Resume(at, lastValue(ctx, ingest.TenantQueryable(store, tenant), at)); err != nil {
			return fmt.Errorf("resume demo: %w", err)
		}
		from = at.Add(demoStep).Truncate(demoStep)
	}
	t0 := time.Now()
	total := 0
	if from.After(now) {
		ready.Store(true) // stopped less than a step ago: straight on with live data
		return runLiveDemo(ctx, log, w, o, fleet)
	}
	err = fleet.Generate(from, now, demoStep, func(batch []sample.Series) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := writeParallel(ctx, w, o, batch)
		total += res.Accepted
		if err == nil && res.RejectedCount > 0 {
			err = fmt.Errorf("demo history: %d samples refused, first: %+v", res.RejectedCount, res.Rejected[0])
		}
		return err
	})
	if err != nil {
		return err
	}
	log.Info("demo history written", "sites", len(fleet.Sites()), "series", fleet.SeriesCount(),
		"samples", total, "from", from.UTC().Format(time.RFC3339), "took", time.Since(t0).Round(time.Millisecond))
	ready.Store(true)
	return runLiveDemo(ctx, log, w, o, fleet)
}

func runLiveDemo(ctx context.Context, log *slog.Logger, w *ingest.Writer, o ingest.WriteOptions, fleet *demo.Fleet) error {
	return fleet.Run(ctx, time.Now, demoLiveStep, func(ctx context.Context, batch []sample.Series) error {
		res, err := w.WriteSeries(ctx, o, batch)
		if err == nil && res.RejectedCount > 0 {
			log.Warn("demo: samples refused", "count", res.RejectedCount, "first", res.Rejected[0].Detail)
		}
		return err
	})
}

// lastValue returns the last stored value at or before at of the series with exactly the given labels.
func lastValue(ctx context.Context, q storage.Queryable, at time.Time) func([]sample.Label) (float64, bool) {
	return func(ls []sample.Label) (float64, bool) {
		qr, err := q.Querier(at.Add(-24*time.Hour).UnixMilli(), at.UnixMilli())
		if err != nil {
			return 0, false
		}
		defer qr.Close()
		ms := make([]*labels.Matcher, 0, len(ls))
		for _, l := range ls {
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
		}
		ss := qr.Select(ctx, false, nil, ms...)
		v, found := 0.0, false
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				_, v = it.At()
				found = true
			}
		}
		return v, found && ss.Err() == nil
	}
}

// writeParallel writes a batch as one part per CPU, each part a disjoint set
// of series, so the store appends on every core; each series' samples stay in
// order because a batch is finished before the next one starts.
func writeParallel(ctx context.Context, w *ingest.Writer, o ingest.WriteOptions, batch []sample.Series) (ingest.Result, error) {
	parts := min(runtime.GOMAXPROCS(0), len(batch))
	if parts <= 1 {
		return w.WriteSeries(ctx, o, batch)
	}
	results := make([]ingest.Result, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	per := (len(batch) + parts - 1) / parts
	for i := range parts {
		lo, hi := i*per, min((i+1)*per, len(batch))
		wg.Go(func() { results[i], errs[i] = w.WriteSeries(ctx, o, batch[lo:hi]) })
	}
	wg.Wait()
	var res ingest.Result
	for i := range parts {
		res.Merge(results[i])
	}
	return res, errors.Join(errs...)
}
