// Package web is greenloop's HTTP server: the Prometheus-compatible ingest and
// query API, greenloop's own REST resources, bearer-token auth with tenants and
// roles, and the operational endpoints (health, readiness, metrics).
package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/csvimport"
	"github.com/greenloop/greenloop/ingest/ndjson"
	"github.com/greenloop/greenloop/ingest/textimport"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

var _ Writer = (*ingest.Writer)(nil)

// Writer stores decoded series. *ingest.Writer implements it.
//
// A non-nil error means a storage failure: nothing from the call is
// acknowledged. Refused samples are reported in the Result while the valid
// ones are stored.
type Writer interface {
	// WriteSeries validates, stamps the tenant, appends and commits.
	WriteSeries(ctx context.Context, o ingest.WriteOptions, series []sample.Series) (ingest.Result, error)
	// WriteRemote does the same for a snappy-decoded remote_write 1.0 protobuf
	// WriteRequest; an error wrapping ingest.ErrMalformed means pb did not decode.
	// pb is not retained after the call returns.
	WriteRemote(ctx context.Context, o ingest.WriteOptions, pb []byte) (ingest.Result, error)
}

// ParseFunc parses a request body of a line-oriented import format into
// series, using defaultTs (ms) for samples without a timestamp.
type ParseFunc func(data []byte, defaultTs int64) ([]sample.Series, []sample.Rejection)

// Deps are the server's collaborators. Store, Writer and Engine are required.
type Deps struct {
	// Store is read through ingest.TenantQueryable, one tenant per request.
	Store ingest.Store
	// Writer stores every ingested sample.
	Writer Writer
	// Engine evaluates PromQL.
	Engine *promql.Engine
	// Parser parses match[] selectors; nil means the default PromQL parser.
	Parser parser.Parser
	// Sites are served by /api/v1/sites, each to its own tenant.
	Sites []config.Site
	// SiteSource, when set, is read at every request instead of Sites: the
	// sites in force now (sitestore.Registry.Sites, with sites_store
	// clickhouse). The slice it returns is not modified.
	SiteSource func() []config.Site
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics; nil means a
	// private registry.
	Registry *prometheus.Registry
	// Clock is the time of an instant query without "time" and of imported
	// samples without a timestamp; nil means time.Now.
	Clock func() time.Time
	// Ready reports whether the server can serve (store open, demo history
	// loaded); nil means ready.
	Ready func() error
	// ParseText parses /api/v1/import/prometheus bodies (Prometheus text
	// exposition, timestamps optional); nil means textimport.Parse.
	ParseText ParseFunc
	// ParseNDJSON parses /api/v1/import/ndjson bodies (one reading per line, as
	// `greenloop collect --format json` prints); nil means ndjson.Parse.
	ParseNDJSON ParseFunc
	// Backfill stores history older than the out-of-order window (whole
	// blocks); nil answers /api/v1/import/backfill with 501.
	Backfill Writer
	// ParseCSV parses backfill bodies with format=csv; nil means csvimport.Parse.
	ParseCSV ParseFunc
	// LateWrites tracks samples written into settled time; with it (and
	// Options.Query.ResultsCache.MaxBytes > 0) range queries use the results
	// cache. Store must record into it (ingest.TrackLate).
	LateWrites *ingest.LateWrites
	// Overlay holds series kept in memory, not in Store (the carbon-intensity
	// forecasts, whose points lie ahead of the clock): the Prometheus query
	// API (query, query_range, series, labels) reads it merged with Store,
	// confined to the caller's tenant as Store is, and range queries that
	// read it are never cached. nil means none.
	Overlay storage.Queryable
}

// BuildInfo is served at /api/v1/status/buildinfo, in Prometheus' shape.
type BuildInfo struct {
	// Version is the Prometheus version whose API and PromQL this server
	// implements, so clients (Grafana) enable the right features; empty means
	// the version of the linked Prometheus library.
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// Options are the server's settings, usually taken from config.Server by OptionsFrom.
type Options struct {
	// Listen is the address the server is configured for; New refuses a
	// non-loopback one without auth. Empty skips that check (Serve still checks
	// the real listener).
	Listen string
	Auth   config.Auth
	TLS    config.TLS
	// Ingest bounds request bodies; zero sizes take config.Default's.
	Ingest config.Ingest
	// Query.Timeout caps a query's "timeout" parameter; zero leaves only the
	// engine's own. MaxSamples and LookbackDelta are the engine's: set them in
	// promql.EngineOpts.
	Query     config.Query
	BuildInfo BuildInfo
	// PublicPaths are route patterns, registered by other packages on Echo(),
	// served without a token (e.g. the dashboards' static assets).
	PublicPaths []string
	// ShutdownTimeout bounds the graceful shutdown in Serve; zero means 15s.
	ShutdownTimeout time.Duration
}

// OptionsFrom takes the server's options from its configuration.
func OptionsFrom(c config.Server) Options {
	return Options{Listen: c.Listen, Auth: c.Auth, TLS: c.TLS, Ingest: c.Ingest, Query: c.Query}
}

// Server is greenloop's HTTP server. Create it with New.
type Server struct {
	deps    Deps
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	now     func() time.Time
	parser  parser.Parser
	e       *echo.Echo
	tls     *tls.Config
	tokens  atomic.Pointer[tokenTable]
	metrics *httpMetrics
	// routes is what this package registered, keyed by route pattern; written
	// only in New, so it is safe for concurrent reads.
	routes map[string]routeInfo
	public map[string]bool
	bufs   bufPool
	// rejectLog throttles the warnings about refused samples.
	rejectLog logThrottle
	// cache keeps range-query answers over settled time; nil when off.
	cache *resultsCache
	// balance sizes the reading goroutine's shard of one-pass queries.
	balance *shareBalance
	// fastQueries counts range queries by evaluation path (package fastrate).
	fastQueries *prometheus.CounterVec
	// openAPIDoc is the served OpenAPI document once other packages added
	// theirs (AddOpenAPI); nil serves this package's own.
	openAPIDoc atomic.Pointer[[]byte]
	openAPIMu  sync.Mutex
}

type perm uint8

const (
	permRead     perm = iota // admin, operator, officer, scheduler
	permWrite                // admin, operator, agent
	permOps                  // admin, operator: data spanning every tenant
	permPublic               // anyone, no token
	permBackfill             // admin, operator, officer: history imports
)

type routeInfo struct {
	perm perm
	// prom marks the Prometheus-compatible routes, whose errors use Prometheus' JSON shape.
	prom bool
}

// New builds the server: it checks the dependencies, refuses a non-loopback
// listen address without auth, loads the tokens file and the TLS material,
// and registers every route.
func New(deps Deps, opts Options) (*Server, error) {
	var errs []error
	if deps.Store == nil {
		errs = append(errs, errors.New("web: Deps.Store is required"))
	}
	if w, typedNil := deps.Writer.(*ingest.Writer); deps.Writer == nil || (typedNil && w == nil) {
		errs = append(errs, errors.New("web: Deps.Writer is required"))
	}
	if deps.Engine == nil {
		errs = append(errs, errors.New("web: Deps.Engine is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Listen != "" && !opts.Auth.Enabled() && !isLoopbackAddr(opts.Listen) {
		return nil, noAuthError(opts.Listen)
	}
	def := config.Default()
	if opts.Ingest.MaxBodyBytes <= 0 {
		opts.Ingest.MaxBodyBytes = def.Ingest.MaxBodyBytes
	}
	if opts.Ingest.MaxDecodedBytes <= 0 {
		opts.Ingest.MaxDecodedBytes = def.Ingest.MaxDecodedBytes
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	if opts.BuildInfo.Version == "" {
		opts.BuildInfo.Version = prometheusVersion()
	}
	if opts.BuildInfo.GoVersion == "" {
		opts.BuildInfo.GoVersion = goVersion()
	}
	s := &Server{deps: deps, opts: opts, log: deps.Logger, reg: deps.Registry, now: deps.Clock, parser: deps.Parser, balance: &shareBalance{r: initialShare},
		routes: map[string]routeInfo{}, public: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.parser == nil {
		s.parser = parser.NewParser(parser.Options{})
	}
	if s.deps.ParseText == nil {
		s.deps.ParseText = textimport.Parse
	}
	if s.deps.ParseNDJSON == nil {
		s.deps.ParseNDJSON = ndjson.Parse
	}
	if s.deps.ParseCSV == nil {
		s.deps.ParseCSV = csvimport.Parse
	}
	for _, p := range opts.PublicPaths {
		s.public[p] = true
	}
	if deps.LateWrites != nil && opts.Query.ResultsCache.MaxBytes > 0 {
		s.cache = newResultsCache(int64(opts.Query.ResultsCache.MaxBytes), deps.LateWrites, s.now, s.reg)
	}
	s.tokens.Store(&tokenTable{})
	if opts.Auth.TokensFile != "" {
		if err := s.ReloadTokens(); err != nil {
			return nil, err
		}
	}
	if opts.TLS.Enabled() {
		cfg, err := loadTLS(opts.TLS)
		if err != nil {
			return nil, err
		}
		s.tls = cfg
	}
	m, err := newHTTPMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	s.fastQueries, err = registerOrGet(s.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "greenloop_query_fast_rate_total",
		Help: "Range queries of the sum(rate(counter[range])) shape, by how they were evaluated: fast (one pass per series) or engine_fallback (the data held what the fast path leaves to the engine).",
	}, []string{"path"}))
	if err != nil {
		return nil, err
	}
	s.metrics = m

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe, s.guardForeign)
	s.e = e
	s.register()
	return s, nil
}

// Handler returns the server as an http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.e }

// Echo returns the echo instance, for other packages to register routes on.
// Their routes need a token with a reading role unless listed in
// Options.PublicPaths; handlers find the caller under ContextKeyTenant and ContextKeyRole.
func (s *Server) Echo() *echo.Echo { return s.e }

// ListenAndServe listens on Options.Listen and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP (HTTPS when TLS is configured) on ln until ctx ends, then
// shuts down gracefully: it stops accepting, lets requests in flight finish
// (at most Options.ShutdownTimeout) and returns nil. It refuses a listener on
// a non-loopback address when auth is off. ln is closed on return.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.authEnabled() && !isLoopbackNetAddr(ln.Addr()) {
		ln.Close()
		return noAuthError(ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// Requests in flight outlive ctx: a shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			srv.TLSConfig = s.tls
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	s.log.Info("serving HTTP", "addr", ln.Addr().String(), "tls", s.tls != nil,
		"mtls", s.tls != nil && s.tls.ClientAuth == tls.RequireAndVerifyClientCert, "auth", s.authEnabled())
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		srv.Close()
		return fmt.Errorf("graceful shutdown after %s: %w", s.opts.ShutdownTimeout, err)
	}
	s.log.Info("HTTP server stopped", "took", time.Since(start))
	return nil
}

func noAuthError(addr string) error {
	return fmt.Errorf("refusing to listen on %s without authentication: set auth.tokens_file, or listen on a loopback address (127.0.0.1, ::1, localhost)", addr)
}

// isLoopbackAddr reports whether a host:port listen address binds only loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return isLoopbackHost(host)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func isLoopbackNetAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true // reachable only from this machine
	}
	return isLoopbackAddr(a.String())
}

func loadTLS(c config.TLS) (*tls.Config, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: both tls.cert_file and tls.key_file must be set")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// identityHandler is a handler that gets the authenticated caller.
type identityHandler func(c echo.Context, id Identity) error

// handle registers a route of this package with what it needs.
func (s *Server) handle(methods []string, path string, ri routeInfo, h identityHandler) {
	s.routes[path] = ri
	wrapped := func(c echo.Context) error {
		id := anonymous
		if ri.perm != permPublic {
			var err error
			if id, err = s.authenticate(c); err != nil {
				return err
			}
			if err := authorize(id, ri.perm); err != nil {
				return err
			}
			if ri.perm != permWrite { // keep the ingest path free of per-request maps
				c.Set(ContextKeyTenant, id.Tenant)
				c.Set(ContextKeyRole, string(id.Role))
				c.Set(ContextKeyName, id.Name)
			}
		}
		return h(c, id)
	}
	s.e.Match(methods, path, wrapped)
}

// guardForeign authenticates requests to routes other packages registered
// (and to unknown paths): a token with a reading role, unless public.
func (s *Server) guardForeign(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Path()
		if _, own := s.routes[p]; own || s.public[p] {
			return next(c)
		}
		id, err := s.authenticate(c)
		if err != nil {
			return err
		}
		if err := authorize(id, permRead); err != nil {
			return err
		}
		c.Set(ContextKeyTenant, id.Tenant)
		c.Set(ContextKeyRole, string(id.Role))
		c.Set(ContextKeyName, id.Name)
		return next(c)
	}
}

var (
	getPost = []string{http.MethodGet, http.MethodPost}
	get     = []string{http.MethodGet}
	post    = []string{http.MethodPost}
)

func (s *Server) register() {
	prom := func(p perm) routeInfo { return routeInfo{perm: p, prom: true} }
	// Ingest.
	s.handle(post, "/api/v1/write", routeInfo{perm: permWrite}, s.remoteWrite)
	s.handle(post, "/api/v1/import/prometheus", routeInfo{perm: permWrite}, s.importText)
	s.handle(post, "/api/v1/import/ndjson", routeInfo{perm: permWrite}, s.importNDJSON)
	s.handle(post, "/api/v1/import/backfill", routeInfo{perm: permBackfill}, s.importBackfill)
	// Prometheus query API.
	s.handle(getPost, "/api/v1/query", prom(permRead), s.query)
	s.handle(getPost, "/api/v1/query_range", prom(permRead), s.queryRange)
	s.handle(getPost, "/api/v1/series", prom(permRead), s.series)
	s.handle(getPost, "/api/v1/labels", prom(permRead), s.labelNames)
	s.handle(get, "/api/v1/label/:name/values", prom(permRead), s.labelValues)
	s.handle(getPost, "/api/v1/query_exemplars", prom(permRead), s.queryExemplars)
	s.handle(get, "/api/v1/metadata", prom(permRead), s.metadata)
	s.handle(get, "/api/v1/status/buildinfo", prom(permRead), s.buildInfo)
	s.handle(get, "/api/v1/rules", prom(permRead), s.rules)
	s.handle(get, "/api/v1/alerts", prom(permRead), s.alerts)
	// greenloop's own resources.
	s.handle(get, "/api/v1/sites", routeInfo{perm: permRead}, s.sites)
	s.handle(get, "/api/v1/openapi.json", routeInfo{perm: permPublic}, s.openAPI)
	// Operations.
	s.handle(get, "/healthz", routeInfo{perm: permPublic}, s.healthz)
	s.handle(get, "/readyz", routeInfo{perm: permPublic}, s.readyz)
	s.handle(get, "/metrics", routeInfo{perm: permOps}, s.serveMetrics)
}
