package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
)

const reportUsage = `Usage:
  greenloop report emissions --config FILE --site ID --from RFC3339 --to RFC3339 [--method location|market] [--step 1h] [-o FILE]
  greenloop report kpis      --config FILE --site ID --from RFC3339 --to RFC3339 [-o FILE]
  greenloop report eu        --config FILE --site ID --year YYYY --format json|csv|xlsx|pdf [-o FILE]

Reads the configured store directly (the embedded TSDB in data_dir, opened
read-only, so a running server may keep it; or the ClickHouse database the
servers share), and computes what the server's /api/v1/emissions,
/api/v1/kpis and /api/v1/reports/eu answer.

`

// reportFlags are the flags every report subcommand shares.
type reportFlags struct {
	config, dataDir, site, out string
}

func (f *reportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "server configuration `file` (YAML, as for greenloop serve)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory; overrides data_dir of the configuration")
	fs.StringVar(&f.site, "site", "", "site `id`")
	fs.StringVar(&f.out, "o", "", "output `file`; default standard output")
}

// runReport is `greenloop report`.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, reportUsage)
		if len(args) == 0 {
			return errors.New("missing subcommand: emissions, kpis or eu")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	var rf reportFlags
	fs := flag.NewFlagSet("report "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reportUsage); fs.PrintDefaults() }
	rf.register(fs)
	var fromS, toS, method, stepS, format string
	var year int
	switch sub {
	case "emissions", "kpis":
		fs.StringVar(&fromS, "from", "", "start of the period, RFC 3339 (e.g. 2025-01-01T00:00:00Z)")
		fs.StringVar(&toS, "to", "", "end of the period (exclusive), RFC 3339")
		if sub == "emissions" {
			fs.StringVar(&method, "method", "location", "location or market")
			fs.StringVar(&stepS, "step", "", "include the series in buckets of this many hours (1h, 24h)")
		}
	case "eu":
		fs.IntVar(&year, "year", 0, "calendar year the report covers")
		fs.StringVar(&format, "format", "json", "json, csv, xlsx or pdf")
	default:
		fmt.Fprint(stderr, reportUsage)
		return fmt.Errorf("unknown report %q (want emissions, kpis or eu)", sub)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if rf.config == "" {
		return errors.New("--config FILE is required (the server configuration)")
	}
	if rf.site == "" {
		return errors.New("--site ID is required")
	}
	cfg, err := config.LoadFile(rf.config)
	if err != nil {
		return err
	}
	if rf.dataDir != "" {
		cfg.DataDir = rf.dataDir
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	var site *config.Site
	for i := range cfg.Sites {
		if cfg.Sites[i].ID == rf.site {
			site = &cfg.Sites[i]
		}
	}
	if site == nil {
		return fmt.Errorf("site %q is not in %s", rf.site, rf.config)
	}
	log := newLogger(config.Log{Level: "warn", Format: "text"}, stderr)
	var from, to time.Time
	if sub != "eu" {
		if from, err = parseTimeFlag("from", fromS); err != nil {
			return err
		}
		if to, err = parseTimeFlag("to", toS); err != nil {
			return err
		}
	}
	var step time.Duration
	if stepS != "" {
		d, err := config.ParseDuration(stepS)
		if err != nil {
			return fmt.Errorf("--step: %w", err)
		}
		step = d.D()
	}
	var f report.Format
	if sub == "eu" {
		if year == 0 {
			return errors.New("--year YYYY is required")
		}
		if f, err = report.ParseFormat(format); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
	}

	var q storage.Queryable
	var st ingest.Store // the ClickHouse store, for the EU report's tables
	if cfg.Storage.Backend == "clickhouse" {
		opened, err := openStore(ctx, cfg, prometheus.NewRegistry(), log)
		if err != nil {
			return err
		}
		defer opened.Close()
		q, st = opened.Store, opened.Store
	} else {
		db, closeStore, err := openReadOnly(cfg.DataDir, log)
		if err != nil {
			return err
		}
		defer closeStore()
		q = db
	}
	acct := newAccountant(cfg, q, cfg.Sites, log)
	// One command is one piece of work: each meter is read once.
	ctx, _ = service.WithEnergyMemo(ctx)
	tenant := ""
	if cfg.Auth.Enabled() {
		tenant = site.SiteTenant()
	}

	var out io.Writer = stdout
	var file *os.File
	if rf.out != "" {
		if file, err = os.Create(rf.out); err != nil {
			return err
		}
		out = file
	}
	err = func() error {
		switch sub {
		case "emissions":
			res, err := acct.Emissions(ctx, tenant, service.Request{Site: site.ID, From: from, To: to, Method: emissions.Method(method), Step: step})
			if err != nil {
				return err
			}
			return writeJSON(out, res)
		case "kpis":
			// The CUE adds the Scope 1 entered for the EU report.
			svc, closeReports, err := newReportService(ctx, cfg, st, log)
			if err != nil {
				return err
			}
			defer closeReports()
			acct.UseReports(svc)
			res, err := acct.KPIs(ctx, tenant, site.ID, from, to)
			if err != nil {
				return err
			}
			return writeJSON(out, res)
		default:
			svc, closeReports, err := newReportService(ctx, cfg, st, log)
			if err != nil {
				return err
			}
			defer closeReports()
			_, err = acct.EUReport(ctx, svc, tenant, site.ID, year, f, out)
			return err
		}
	}()
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(rf.out)
		}
	}
	return err
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("--%s is required (RFC 3339, e.g. 2025-01-01T00:00:00Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: want RFC 3339 such as 2025-01-01T00:00:00Z, got %q", name, v)
	}
	return t.UTC(), nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openReadOnly opens the embedded TSDB in dir read-only (a server may hold
// it at the same time) and returns it as a Queryable. Prometheus' read-only
// DB supports one querier only, so one querier over all time serves every
// read; promsource and the accountant keep to their own time ranges.
func openReadOnly(dir string, log *slog.Logger) (storage.Queryable, func(), error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("data_dir: %w", err)
	}
	db, err := promtsdb.OpenDBReadOnly(dir, "", log)
	if err != nil {
		return nil, nil, fmt.Errorf("open store %s read-only: %w", dir, err)
	}
	qr, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("read store %s: %w", dir, err)
	}
	return sharedQueryable{qr}, func() { qr.Close(); db.Close() }, nil
}

// sharedQueryable hands out one querier, whose Close does nothing.
type sharedQueryable struct{ q storage.Querier }

func (s sharedQueryable) Querier(int64, int64) (storage.Querier, error) { return noClose{s.q}, nil }

type noClose struct{ storage.Querier }

func (noClose) Close() error { return nil }
