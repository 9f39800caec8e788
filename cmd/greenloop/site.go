package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/sitestore"
)

const siteUsage = `Usage:
  greenloop site add    --config FILE --file SITE.yaml
                        store one site (an entry of sites: in YAML, or JSON) in ClickHouse, or replace it
  greenloop site list   --config FILE
                        the sites of the configuration file and of ClickHouse, with their source
  greenloop site remove --config FILE --id ID [--tenant T]
                        remove a site of ClickHouse (tenant default "default")
  greenloop site import --config FILE SITES.yaml
                        store a YAML list of sites in ClickHouse (idempotent; all or none)

The sites live in the table sites of storage.clickhouse's database (the first
shard's on a cluster); servers with sites_store clickhouse read them every
sites_refresh_interval, beside those of their configuration file, which stay
read-only: a site of the same tenant and id is refused.

`

// runSite runs `greenloop site SUB`.
func runSite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cfgPath, by, err := registryCommand("site", siteUsage, "add, list, remove or import", args, stderr)
	if err != nil {
		return err
	}
	var file, id, tenant string
	switch sub {
	case "add":
		fs.StringVar(&file, "file", "", "the site: one entry of sites: as YAML (or JSON)")
	case "list":
	case "remove":
		fs.StringVar(&id, "id", "", "id of the site to remove")
		fs.StringVar(&tenant, "tenant", "default", "tenant of the site")
	case "import":
	default:
		fmt.Fprint(stderr, siteUsage)
		return fmt.Errorf("unknown subcommand %q (want add, list, remove or import)", sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch {
	case sub == "import" && fs.NArg() != 1:
		return errors.New("want one YAML file of sites to import")
	case sub != "import" && fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case sub == "add" && file == "":
		return errors.New("--file is required")
	case sub == "remove" && id == "":
		return errors.New("--id is required")
	case *cfgPath == "":
		return errors.New("--config is required")
	}
	cfg, err := registryConfig(*cfgPath, "sites")
	if err != nil {
		return err
	}
	if cfg.SitesStore != config.SitesStoreClickHouse && sub != "list" {
		fmt.Fprintf(stderr, "note: sites_store is %q in %s: servers on it serve the file's sites only, not those in ClickHouse, until it is clickhouse\n", cfg.SitesStore, *cfgPath)
	}
	var input []byte
	switch sub {
	case "add":
		input, err = readBounded(file, sitestore.MaxDoc)
	case "import":
		input, err = readBounded(fs.Arg(0), sitestore.MaxDoc*sitestore.MaxImport)
	}
	if err != nil {
		return err
	}
	log := newLogger(config.Log{Level: "warn"}, stderr)
	conn, err := sitesConn(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := sitestore.New(ctx, conn, chDatabase(cfg), cfg.Sites, log, nil)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		site, err := sitestore.ParseSite(input)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		created, err := st.Put(ctx, site, *by)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		what := "replaced"
		if created {
			what = "added"
		}
		fmt.Fprintf(stdout, "site %s of tenant %s %s\n", site.ID, site.SiteTenant(), what)
		return nil
	case "list":
		return siteList(ctx, st, stdout)
	case "remove":
		if err := st.Delete(ctx, tenant, id, *by); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "site %s of tenant %s removed\n", id, tenant)
		return nil
	default: // import
		sites, err := sitestore.ParseSites(input)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		res, err := st.Import(ctx, sites, *by)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		fmt.Fprintf(stdout, "imported %s: %d sites: %d added, %d unchanged, %d updated\n",
			fs.Arg(0), len(sites), res.Added, res.Unchanged, res.Updated)
		return nil
	}
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

func siteList(ctx context.Context, st *sitestore.Store, stdout io.Writer) error {
	entries, err := st.Entries(ctx, "")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tNAME\tZONE\tSOURCE\tSTATUS")
	for _, s := range st.FileSites() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.SiteTenant(), s.Name, s.Zone, sitestore.SourceFile, "read-only")
	}
	file := map[[2]string]bool{}
	for _, s := range st.FileSites() {
		file[[2]string{s.SiteTenant(), s.ID}] = true
	}
	for _, e := range entries {
		if e.Deleted {
			continue
		}
		status := fmt.Sprintf("updated %s by %s", e.UpdatedAt.Format(time.RFC3339), e.UpdatedBy)
		switch {
		case e.Problem != nil:
			status = "bad row: " + e.Problem.Error()
		case file[[2]string{e.Tenant, e.ID}]:
			status = "not in force: " + sitestore.ErrFileSite.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Tenant, e.Site.Name, e.Site.Zone, sitestore.SourceClickHouse, status)
	}
	return tw.Flush()
}

// chDatabase is storage.clickhouse's database, or the backend's default.
func chDatabase(cfg config.Server) string {
	if db := cfg.Storage.ClickHouse.Database; db != "" {
		return db
	}
	return "greenloop"
}

// sitesConn connects to where the site table lives: the configured servers
// (one server or a fail-over group); on a cluster, the first shard only, as
// for the token and report tables. Given the series store (serve), where
// the first shard has replicas the table is created on each (replicated
// beside the samples, sitestore.New decides) and the connection fails over
// between them; the CLI (chs nil) connects to the first address.
func sitesConn(ctx context.Context, cfg config.Server, chs *clickhouse.Store) (driver.Conn, error) {
	addrs := cfg.Storage.ClickHouse.Addrs
	if cfg.Storage.ClickHouse.Cluster == "" {
		return openSideConn(cfg, addrs, "site store")
	}
	if chs == nil {
		return openSideConn(cfg, addrs[:1], "site store")
	}
	shards, err := chs.ShardReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("site store: %w", err)
	}
	first := shards[0]
	if len(first) > 1 {
		for _, a := range first {
			one, err := openSideConn(cfg, []string{a}, "site store")
			if err != nil {
				return nil, err
			}
			_, err = sitestore.New(ctx, one, chs.Database(), nil, nil, nil)
			one.Close()
			if err != nil {
				return nil, fmt.Errorf("site store on replica %s: %w", a, err)
			}
		}
	}
	return openSideConn(cfg, first, "site store")
}

// siteRuntime is the sites a server serves: the registry every consumer
// reads at request time and, with sites_store clickhouse, what keeps it in
// step with ClickHouse.
type siteRuntime struct {
	reg    *sitestore.Registry
	st     *sitestore.Store
	syncer *sitestore.Syncer
	log    *slog.Logger
	stop   func()
}

// Sites returns the sites in force now.
func (r *siteRuntime) Sites() []config.Site { return r.reg.Sites() }

// startSites puts sites (the configuration file's, and the demo fleet's)
// in force. With sites_store clickhouse, it reads the sites of ClickHouse
// now (an error fails the start), then every sites_refresh_interval until
// stop.
func startSites(ctx context.Context, cfg config.Server, store ingest.Store, sites []config.Site, reg prometheus.Registerer, log *slog.Logger) (*siteRuntime, error) {
	rt := &siteRuntime{reg: sitestore.NewRegistry(sites), log: log, stop: func() {}}
	if cfg.SitesStore != config.SitesStoreClickHouse {
		return rt, nil
	}
	start := time.Now()
	chs, _ := store.(*clickhouse.Store)
	conn, err := sitesConn(ctx, cfg, chs)
	if err != nil {
		return nil, fmt.Errorf("sites_store clickhouse: %w", err)
	}
	st, err := sitestore.New(ctx, conn, chDatabase(cfg), sites, log, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sites_store clickhouse: %w", err)
	}
	syncer, err := sitestore.NewSyncer(st, rt.reg, sitestore.SyncOptions{Interval: cfg.SitesRefresh(), Registerer: reg, Logger: log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := syncer.Refresh(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sites_store clickhouse: %w", err)
	}
	log.Info("sites from ClickHouse in force", "clickhouse_sites", syncer.InForce(), "file_sites", len(sites),
		"refresh_interval", cfg.SitesRefresh(), "took", time.Since(start).Round(time.Millisecond))
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { syncer.Run(rctx) })
	rt.st, rt.syncer = st, syncer
	rt.stop = func() {
		cancel()
		wg.Wait()
		conn.Close()
	}
	return rt, nil
}

// register mounts the admin site API (/api/v1/admin/sites, role admin,
// confined to its tenant) on srv, with sites_store clickhouse.
func (r *siteRuntime) register(srv *web.Server) error {
	if r.st == nil {
		return nil
	}
	sitestore.RegisterAPI(srv.Echo(), sitestore.APIDeps{Store: r.st, Logger: r.log, Applied: func(req *http.Request) {
		// This server applies a change at once; the others on their next refresh.
		if err := r.syncer.Refresh(req.Context()); err != nil {
			r.log.Warn("applying a site change at once failed; the next refresh will", "err", err)
		}
	}})
	return srv.AddOpenAPI(sitestore.OpenAPI)
}
