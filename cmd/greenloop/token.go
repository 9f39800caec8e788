package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"sync"
	"text/tabwriter"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/tokenstore"
)

const tokenUsage = `Usage:
  greenloop token add    --config FILE --tenant T --role R --name N
                         make a token, print it once (stdout), store its SHA-256
  greenloop token list   --config FILE [--revoked]
                         the stored tokens (first 8 hex digits of each hash only)
  greenloop token revoke --config FILE (--name N [--tenant T] | --hash-prefix P) [--all]
                         revoke live tokens; a selector matching several needs --all
  greenloop token import --config FILE TOKENS_FILE
                         copy a tokens file into ClickHouse (idempotent)

The tokens live in the table auth_tokens of storage.clickhouse's database
(the first shard's on a cluster); servers with auth.store clickhouse read them
every auth.refresh_interval. Roles: admin, operator, officer, scheduler, agent.

`

// runToken runs `greenloop token SUB`.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cfgPath, by, err := registryCommand("token", tokenUsage, "add, list, revoke or import", args, stderr)
	if err != nil {
		return err
	}
	var (
		tenant, role, name, prefix string
		revoked, all               bool
	)
	switch sub {
	case "add":
		fs.StringVar(&tenant, "tenant", "", "tenant of the token")
		fs.StringVar(&role, "role", "", "role: admin, operator, officer, scheduler or agent")
		fs.StringVar(&name, "name", "", "name of the token (unique among the tenant's live tokens)")
	case "list":
		fs.BoolVar(&revoked, "revoked", false, "list revoked tokens too")
	case "revoke":
		fs.StringVar(&name, "name", "", "revoke the live token of this name")
		fs.StringVar(&tenant, "tenant", "", "only the token of this tenant (with --name)")
		fs.StringVar(&prefix, "hash-prefix", "", fmt.Sprintf("revoke the live token whose hash starts with this (at least %d hex digits)", tokenstore.MinPrefix))
		fs.BoolVar(&all, "all", false, "revoke every match, not only a single one")
	case "import":
	default:
		fmt.Fprint(stderr, tokenUsage)
		return fmt.Errorf("unknown subcommand %q (want add, list, revoke or import)", sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	wantArgs := 0
	if sub == "import" {
		wantArgs = 1
	}
	if fs.NArg() != wantArgs {
		if sub == "import" {
			return errors.New("want one tokens file to import")
		}
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *cfgPath == "" {
		return errors.New("--config is required")
	}
	cfg, err := registryConfig(*cfgPath, "tokens")
	if err != nil {
		return err
	}
	if cfg.Auth.Store != config.AuthStoreClickHouse && sub != "list" {
		fmt.Fprintf(stderr, "note: auth.store is %q in %s: servers on it read auth.tokens_file, not the tokens in ClickHouse, until it is clickhouse\n", cfg.Auth.Store, *cfgPath)
	}
	log := newLogger(config.Log{Level: "warn"}, stderr)
	st, closeStore, err := openTokenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	switch sub {
	case "add":
		return tokenAdd(ctx, st, web.Identity{Tenant: tenant, Role: web.Role(role), Name: name}, *by, stdout, stderr)
	case "list":
		return tokenList(ctx, st, revoked, stdout)
	case "revoke":
		hit, err := st.Revoke(ctx, tokenstore.Selector{Name: name, Tenant: tenant, HashPrefix: prefix, All: all}, *by)
		if err != nil {
			return err
		}
		for _, e := range hit {
			fmt.Fprintf(stdout, "revoked %s… tenant %s role %s name %q\n", e.Prefix(), e.Tenant, e.Role, e.Name)
		}
		return nil
	default: // import
		toks, err := web.LoadTokens(fs.Arg(0))
		if err != nil {
			return err
		}
		res, err := st.Import(ctx, toks, *by)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %s: %d tokens: %d added, %d unchanged, %d updated, %d revoked before (kept revoked)\n",
			fs.Arg(0), len(toks), res.Added, res.Unchanged, res.Updated, res.StillRevoked)
		return nil
	}
}

func tokenAdd(ctx context.Context, st *tokenstore.Store, id web.Identity, by string, stdout, stderr io.Writer) error {
	if err := tokenstore.CheckIdentity(id); err != nil {
		return fmt.Errorf("--tenant, --role, --name: %w", err)
	}
	secret, hash := tokenstore.NewToken()
	if err := st.Add(ctx, web.Token{Hash: hash, Identity: id}, by); err != nil {
		return err
	}
	// The token on stdout alone, so that scripts can take it; the rest on stderr.
	fmt.Fprintln(stdout, secret)
	fmt.Fprintf(stderr, "token %x… added for tenant %s, role %s, name %q; it is not stored and is shown only this once\n",
		hash[:4], id.Tenant, id.Role, id.Name)
	return nil
}

func tokenList(ctx context.Context, st *tokenstore.Store, revoked bool, stdout io.Writer) error {
	entries, err := st.Entries(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tTENANT\tROLE\tNAME\tCREATED\tBY\tSTATUS")
	for _, e := range entries {
		if e.Revoked && !revoked {
			continue
		}
		status := "live"
		if e.Revoked {
			status = fmt.Sprintf("revoked %s by %s", e.RevokedAt.Format(time.RFC3339), e.RevokedBy)
		} else if _, err := e.Token(); err != nil {
			status = "bad row: " + err.Error()
		}
		fmt.Fprintf(tw, "%s…\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Prefix(), e.Tenant, e.Role, e.Name, e.CreatedAt.Format(time.RFC3339), e.CreatedBy, status)
	}
	return tw.Flush()
}

// defaultActor names whoever runs the command, for the audit columns.
func defaultActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

// tokenConn connects to where the token table lives: the configured
// servers (one server or a fail-over group); on a cluster, the first shard
// only, as for the report tables (reportConn), so that a read sees every
// write that returned whichever greenloop server made it.
func tokenConn(cfg config.Server) (driver.Conn, error) {
	addrs := cfg.Storage.ClickHouse.Addrs
	if cfg.Storage.ClickHouse.Cluster != "" {
		addrs = addrs[:1]
	}
	return openSideConn(cfg, addrs, "token store")
}

// openSideConn opens a connection of its own to addrs (a fail-over group)
// with storage.clickhouse's credentials, for the small tables kept beside
// the series (tokens, report inputs and snapshots); what names them in errors.
func openSideConn(cfg config.Server, addrs []string, what string) (driver.Conn, error) {
	c := cfg.Storage.ClickHouse
	password, err := secret(c.PasswordFile, c.PasswordEnv, "storage.clickhouse.password")
	if err != nil {
		return nil, err
	}
	user := c.Username
	if user == "" {
		user = "default"
	}
	conn, err := ch.Open(&ch.Options{
		Addr: addrs, Protocol: ch.Native,
		Auth:        ch.Auth{Username: user, Password: password, Database: "default"},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %v: %w", what, addrs, err)
	}
	return conn, nil
}

// openTokenStore opens the token table in storage.clickhouse's database.
func openTokenStore(ctx context.Context, cfg config.Server, log *slog.Logger) (*tokenstore.Store, func(), error) {
	conn, err := tokenConn(cfg)
	if err != nil {
		return nil, nil, err
	}
	db := cfg.Storage.ClickHouse.Database
	if db == "" {
		db = "greenloop" // the backend's default
	}
	st, err := tokenstore.New(ctx, conn, db, log, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return st, func() { conn.Close() }, nil
}

// startTokens puts the configured tokens in force on srv and keeps them
// there. With auth.store file, web.New has read the file and reload re-reads
// it. With auth.store clickhouse, it reads the tokens from ClickHouse now
// (an error fails the start), then every auth.refresh_interval until stop;
// reload reads them at once (SIGHUP); and it mounts the admin token API
// (/api/v1/admin/tokens, role admin, confined to its tenant).
func startTokens(ctx context.Context, cfg config.Server, srv *web.Server, reg prometheus.Registerer, log *slog.Logger) (reload func() error, stop func(), err error) {
	if cfg.Auth.Store != config.AuthStoreClickHouse {
		return srv.ReloadTokens, func() {}, nil
	}
	start := time.Now()
	st, closeStore, err := openTokenStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, fmt.Errorf("auth.store clickhouse: %w", err)
	}
	syncer, err := tokenstore.NewSyncer(st, srv.SetTokens, tokenstore.SyncOptions{
		Interval: cfg.Auth.Refresh(), Registerer: reg, Logger: log,
	})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	if err := syncer.Refresh(ctx); err != nil {
		closeStore()
		return nil, nil, fmt.Errorf("auth.store clickhouse: %w", err)
	}
	tokenstore.RegisterAPI(srv.Echo(), tokenstore.APIDeps{Store: st, Logger: log, Applied: func(r *http.Request) {
		// This server applies a change at once; the others on their next refresh.
		if err := syncer.Refresh(r.Context()); err != nil {
			log.Warn("applying a token change at once failed; the next refresh will", "err", err)
		}
	}})
	if err := srv.AddOpenAPI(tokenstore.OpenAPI); err != nil {
		closeStore()
		return nil, nil, err
	}
	if syncer.InForce() == 0 {
		log.Warn("no live tokens in ClickHouse: every request that needs a token gets 401; add one with `greenloop token add` or `greenloop token import`")
	}
	log.Info("tokens from ClickHouse in force", "refresh_interval", cfg.Auth.Refresh(), "took", time.Since(start).Round(time.Millisecond))
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { syncer.Run(rctx) })
	return func() error { return syncer.Refresh(rctx) }, func() {
		cancel()
		wg.Wait()
		closeStore()
	}, nil
}

// registryCommand starts `greenloop NAME SUB ...` of a registry kept in
// ClickHouse (tokens, sites): usage on no subcommand or a help flag, and a
// flag set for SUB with --config and --by, which the caller adds to and
// parses.
func registryCommand(name, usage, subs string, args []string, stderr io.Writer) (sub string, fs *flag.FlagSet, cfgPath, by *string, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return "", nil, nil, nil, fmt.Errorf("missing subcommand (%s)", subs)
		}
		return "", nil, nil, nil, flag.ErrHelp
	}
	sub = args[0]
	fs = flag.NewFlagSet(name+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	cfgPath = fs.String("config", "", "server configuration `file` (YAML, as for greenloop serve; storage.backend clickhouse)")
	by = fs.String("by", defaultActor(), "who makes the change, for the audit columns")
	return sub, fs, cfgPath, by, nil
}

// registryConfig loads and checks the configuration a registry command
// works on: what (tokens, sites) lives in ClickHouse, so the backend must be.
func registryConfig(path, what string) (config.Server, error) {
	cfg, err := config.LoadFile(path)
	if err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.Storage.Backend != "clickhouse" {
		return cfg, fmt.Errorf("%s: the %s live in ClickHouse: needs storage.backend clickhouse, got %q", path, what, cfg.Storage.Backend)
	}
	return cfg, nil
}
