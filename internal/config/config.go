// Package config holds the server's configuration: defaults, a YAML file, then
// flags and environment on top, validated once with every problem reported
// together under the field's path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Server is the configuration of `greenloop serve`.
type Server struct {
	// Listen is the HTTP address, host:port.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded store.
	DataDir string  `yaml:"data_dir"`
	Storage Storage `yaml:"storage"`
	Auth    Auth    `yaml:"auth"`
	TLS     TLS     `yaml:"tls"`
	Ingest  Ingest  `yaml:"ingest"`
	Query   Query   `yaml:"query"`
	Log     Log     `yaml:"log"`
	Demo    Demo    `yaml:"demo"`
	Sites   []Site  `yaml:"sites"`
	// SitesStore is where sites besides Sites live: "file" (default: Sites
	// only) or "clickhouse" (Sites plus those of a table in
	// storage.clickhouse's database, shared by every server on it and
	// managed with `greenloop site` and /api/v1/admin/sites; needs
	// storage.backend clickhouse).
	SitesStore string `yaml:"sites_store"`
	// SitesRefreshInterval is how often a server re-reads the sites from
	// ClickHouse (sites_store clickhouse), so that a site added or removed
	// on one server applies on all within it; default (and zero) 10s.
	SitesRefreshInterval Duration `yaml:"sites_refresh_interval"`
	Carbon               Carbon   `yaml:"carbon"`
	// Accounting tunes the accounting's background work.
	Accounting Accounting `yaml:"accounting"`
}

// Accounting tunes the accounting's background work.
type Accounting struct {
	Rollup AccountingRollup `yaml:"rollup"`
}

// AccountingRollup is the job that keeps hourly energy roll-ups and group
// sums (package accounting/rollup), on which long reports are fast.
type AccountingRollup struct {
	// Enabled runs the job on this server (default true). With ClickHouse,
	// servers sharing the database may all run it (its writes are
	// idempotent) or only some; with the embedded store it must run.
	Enabled bool `yaml:"enabled"`
}

var chIdentRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Storage selects and tunes the series store.
type Storage struct {
	// Backend is "tsdb" (embedded, default) or "clickhouse".
	Backend    string     `yaml:"backend"`
	TSDB       TSDB       `yaml:"tsdb"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
}

// ClickHouse is the ClickHouse backend (native protocol). Several greenloop
// servers may share one database.
type ClickHouse struct {
	// Addrs are host:port of the native protocol (9000); with a cluster,
	// one address per server of the cluster (every replica of every shard),
	// shard by shard in the order of the cluster's definition.
	Addrs []string `yaml:"addrs"`
	// Database is created when missing; default "greenloop".
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	// PasswordFile or PasswordEnv supply the password; none means an empty one.
	PasswordFile string        `yaml:"password_file"`
	PasswordEnv  string        `yaml:"password_env"`
	Password     LiteralSecret `yaml:"password"`
	// Cluster names a cluster of the servers' remote_servers: local tables on
	// every shard and Distributed tables over them. Empty = one server.
	Cluster string `yaml:"cluster"`
	// Replication is auto (default), on or off: whether the cluster's local
	// tables are Replicated tables (kept in step through ZooKeeper). auto
	// replicates where a shard of the cluster has more than one replica.
	Replication string `yaml:"replication"`
	// ZooKeeperPath is the ZooKeeper path template of a replicated table:
	// greenloop fills {database} and {table}, the servers' <macros> every
	// other {name}. Default /clickhouse/tables/{shard}/{database}/{table}.
	ZooKeeperPath string `yaml:"zookeeper_path"`
	// Retention of raw samples, and of the 1-minute and 1-hour rollups;
	// zero keeps raw samples 15 days, minutes 90 days and hours 5 years.
	Retention       Duration `yaml:"retention"`
	MinuteRetention Duration `yaml:"minute_retention"`
	HourRetention   Duration `yaml:"hour_retention"`
	// BatchSize and FlushInterval bound a write batch; zero takes the backend's defaults.
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	// WriteTimeout bounds one insert; past it the write answers 503 and the agent retries.
	WriteTimeout Duration `yaml:"write_timeout"`
	// AsyncInsert is auto (default), on or off: sample inserts ask the server
	// to gather them with other clients' (async_insert, waiting until written,
	// so an acknowledgement still means stored). auto uses it on ClickHouse
	// 23.10 and later unless buffer is enabled; on fails before 21.11.
	AsyncInsert string `yaml:"async_insert"`
	// Compression is auto (default), lz4 or none: whether blocks travel
	// LZ4-compressed between greenloop and ClickHouse, reads and INSERTs.
	// auto: none when every address is a loopback one (compressing costs
	// both ends more CPU than copying the bytes), lz4 otherwise.
	Compression string `yaml:"compression"`
	// Buffer puts a ClickHouse Buffer table in front of the samples table.
	Buffer ClickHouseBuffer `yaml:"buffer"`
}

// ClickHouseBuffer is the opt-in Buffer table in front of the samples table:
// faster ingest on servers without async_insert, but ClickHouse acknowledges
// rows held in memory, lost if the server crashes before it flushes them.
// Zero thresholds take the backend's defaults (4 layers, 5s/30s,
// 100000/1000000 rows, 1MiB/100MiB).
type ClickHouseBuffer struct {
	Enabled bool `yaml:"enabled"`
	// Layers is the number of independent buffers (num_layers).
	Layers int `yaml:"layers"`
	// A layer is flushed when all min_* or any max_* threshold is reached.
	MinTime  Duration `yaml:"min_time"`
	MaxTime  Duration `yaml:"max_time"`
	MinRows  int64    `yaml:"min_rows"`
	MaxRows  int64    `yaml:"max_rows"`
	MinBytes ByteSize `yaml:"min_bytes"`
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// chMacroRe finds the {macro} placeholders of a ZooKeeper path template.
var chMacroRe = regexp.MustCompile(`\{([A-Za-z0-9_]*)\}`)

// validateCHReplication checks replication and zookeeper_path (the rules
// of ingest/clickhouse's checkReplicationOptions).
func validateCHReplication(ch ClickHouse, add func(key, format string, args ...any)) {
	const k = "storage.clickhouse."
	switch ch.Replication {
	case "", "auto", "off":
	case "on":
		if ch.Cluster == "" {
			add(k+"replication", "on needs a cluster: the replicas are those of the cluster's shards")
		}
	default:
		add(k+"replication", "want auto, on or off, got %q", ch.Replication)
	}
	p := ch.ZooKeeperPath
	if p == "" {
		return
	}
	switch {
	case !strings.HasPrefix(p, "/"):
		add(k+"zookeeper_path", "must start with /, got %q", p)
	case strings.ContainsAny(p, "'\\` \t\n"):
		add(k+"zookeeper_path", "must not hold quotes, backslashes or spaces, got %q", p)
	case !strings.Contains(p, "{table}"):
		add(k+"zookeeper_path", "must name {table}, or every table would share one path, got %q", p)
	}
	for _, m := range chMacroRe.FindAllStringSubmatch(p, -1) {
		if m[1] == "" || m[1] == "replica" {
			add(k+"zookeeper_path", "%s is not allowed: the path is the table's, shared by its replicas", m[0])
		}
	}
}

// validateCHBuffer checks the Buffer thresholds that are set (zero takes the default).
func validateCHBuffer(b ClickHouseBuffer, batchSize int, add func(key, format string, args ...any)) {
	const k = "storage.clickhouse.buffer."
	if b.Layers < 0 {
		add(k+"layers", "must not be negative, got %d", b.Layers)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"min_time", b.MinTime}, {"max_time", b.MaxTime}} {
		if d.v < 0 || d.v.D()%time.Second != 0 {
			add(k+d.name, "want a positive number of whole seconds, got %s", d.v)
		}
	}
	if b.MinTime > 0 && b.MaxTime > 0 && b.MinTime > b.MaxTime {
		add(k+"min_time", "%s exceeds max_time %s", b.MinTime, b.MaxTime)
	}
	if b.MinRows < 0 || b.MaxRows < 0 || b.MinBytes < 0 || b.MaxBytes < 0 {
		add(k+"min_rows", "row and byte thresholds must not be negative")
	}
	if b.MinRows > 0 && b.MaxRows > 0 && b.MinRows > b.MaxRows {
		add(k+"min_rows", "%d exceeds max_rows %d", b.MinRows, b.MaxRows)
	}
	if b.MinBytes > 0 && b.MaxBytes > 0 && b.MinBytes > b.MaxBytes {
		add(k+"min_bytes", "%d exceeds max_bytes %d", b.MinBytes, b.MaxBytes)
	}
	// The backend's defaults: batch_size 100000, max_rows 1000000.
	bs, maxRows := int64(batchSize), b.MaxRows
	if bs == 0 {
		bs = 100_000
	}
	if maxRows == 0 {
		maxRows = 1_000_000
	}
	if bs > maxRows {
		add(k+"max_rows", "%d is below batch_size %d: every insert would bypass the buffer", maxRows, bs)
	}
}

// TSDB tunes the embedded Prometheus TSDB.
type TSDB struct {
	// Retention is how long samples are kept; zero keeps them 15 days.
	Retention Duration `yaml:"retention"`
	// OutOfOrderWindow is how far behind the newest sample of a series a late
	// sample may still be stored (an agent's backlog after an outage). At least 72h by default.
	OutOfOrderWindow Duration `yaml:"out_of_order_window"`
	// WALCompression compresses the write-ahead log.
	WALCompression bool `yaml:"wal_compression"`
}

// Auth configures bearer tokens.
type Auth struct {
	// Store is where the tokens live: "file" (default: TokensFile) or
	// "clickhouse" (a table in storage.clickhouse's database, shared by every
	// server on it; needs storage.backend clickhouse).
	Store string `yaml:"store"`
	// TokensFile has lines "<sha256 hex of token> <tenant> <role> <name>". Empty = no auth, loopback only.
	// Only with store file.
	TokensFile string `yaml:"tokens_file"`
	// RefreshInterval is how often a server re-reads the tokens from
	// ClickHouse (store clickhouse), so that a token added or revoked on one
	// server applies on all within it; default (and zero) 10s.
	RefreshInterval Duration `yaml:"refresh_interval"`
}

// The values of Auth.Store.
const (
	AuthStoreFile       = "file"
	AuthStoreClickHouse = "clickhouse"
)

// Enabled reports whether requests need a bearer token: with a tokens file,
// or with the tokens in ClickHouse (even while that table is empty). Without
// auth the server serves one tenant and listens only on loopback.
func (a Auth) Enabled() bool { return a.TokensFile != "" || a.Store == AuthStoreClickHouse }

// Refresh returns RefreshInterval, or its default 10s when zero.
func (a Auth) Refresh() time.Duration {
	if a.RefreshInterval <= 0 {
		return 10 * time.Second
	}
	return a.RefreshInterval.D()
}

// TLS configures HTTPS and optional client-certificate verification.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, makes the server require client certificates signed by this CA (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the server serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Ingest bounds what a write may carry.
type Ingest struct {
	// MaxBodyBytes bounds a request body as sent (compressed); default 32 MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// MaxDecodedBytes bounds a body after decompression; default 256 MiB.
	MaxDecodedBytes ByteSize `yaml:"max_decoded_bytes"`
	// MaxFutureSkew is how far ahead of the server's clock a sample may be; default 10m.
	MaxFutureSkew Duration `yaml:"max_future_skew"`
	// MaxLabels bounds the labels of one series; default 64.
	MaxLabels int `yaml:"max_labels"`
	// Mapping turns exporters' well-known metrics into canonical series; default on.
	Mapping *bool `yaml:"mapping"`
}

// MappingEnabled reports whether exporter mapping is on (default true).
func (i Ingest) MappingEnabled() bool { return i.Mapping == nil || *i.Mapping }

// Query tunes the PromQL engine.
type Query struct {
	Timeout       Duration `yaml:"timeout"`
	MaxSamples    int      `yaml:"max_samples"`
	LookbackDelta Duration `yaml:"lookback_delta"`
	// ResultsCache keeps range-query answers over settled time (see docs/operator.md).
	ResultsCache ResultsCache `yaml:"results_cache"`
	// FastRate evaluates sum(rate|increase(counter[range])) range queries in
	// one pass per series instead of step by step, with the engine's exact
	// arithmetic; default on. Off sends every query to the PromQL engine.
	FastRate *bool `yaml:"fast_rate"`
}

// FastRateEnabled reports whether the one-pass rate evaluation is on (default true).
func (q Query) FastRateEnabled() bool { return q.FastRate == nil || *q.FastRate }

// ResultsCache bounds the range-query results cache.
type ResultsCache struct {
	// MaxBytes is the cache's size; 0 turns the cache off. Default 256MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Settle is the age after which data counts as settled: only answers
	// over older data are cached, and samples written older than that are
	// tracked as late writes that invalidate the answers over their range.
	// Default 5m.
	Settle Duration `yaml:"settle"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Demo configures the simulated fleet of `serve --demo`.
type Demo struct {
	Enabled bool `yaml:"enabled"`
	// History is how much past data is generated at start; default 7 days.
	History Duration `yaml:"history"`
	// Tenant receives the demo data when auth is on; default "default".
	Tenant string `yaml:"tenant"`
}

// Location is a site's position.
type Location struct {
	Lat float64 `yaml:"lat" json:"lat"`
	Lon float64 `yaml:"lon" json:"lon"`
}

// Site is one data centre or edge site.
type Site struct {
	ID           string   `yaml:"id" json:"id"`
	Name         string   `yaml:"name" json:"name"`
	Tenant       string   `yaml:"tenant" json:"-"`
	Zone         string   `yaml:"zone" json:"zone"`
	Location     Location `yaml:"location" json:"location"`
	ITCapacityKW float64  `yaml:"it_capacity_kw" json:"it_capacity_kw"`
	// Meters maps a KPI input (facility_energy, it_energy, water, heat_reused, ...) to a PromQL selector.
	Meters map[string]string `yaml:"meters" json:"meters,omitempty"`

	// ITMeterPoint is where the IT energy meter sits: ups (PUE category 1,
	// the default), pdu (category 2), it_input (category 3) or custom (none).
	ITMeterPoint string `yaml:"it_meter_point" json:"-"`
	// WUECategory is the category of the water meter: 1 (potable water only)
	// or 2 (all water input, the default).
	WUECategory int `yaml:"wue_category" json:"-"`
	// PUE scales IT energy to facility energy for a site without a facility
	// meter; without it, such a site has no emissions figure.
	PUE *SitePUE `yaml:"pue" json:"-"`
	// FallbackFactor prices the hours without an hourly grid intensity in
	// location-based emissions (each such hour is listed and flagged);
	// without it those hours are left out and lower the completeness.
	FallbackFactor *EmissionFactor `yaml:"fallback_factor" json:"-"`
	// ResidualMix is the residual mix of the site's zone, one per year, for
	// the market-based consumption no instrument covers.
	ResidualMix []EmissionFactor `yaml:"residual_mix" json:"-"`
	// Instruments are the site's contractual instruments (guarantees of
	// origin, PPAs, green tariffs, supplier mix) for market-based emissions.
	Instruments []Instrument `yaml:"instruments" json:"-"`
}

// SitePUE is an operator-given PUE with the basis it rests on.
type SitePUE struct {
	Value float64 `yaml:"value"`
	// Basis says where it comes from, e.g. "measured annual PUE 2025 (category 1)".
	Basis string `yaml:"basis"`
}

// EmissionFactor is an emission factor with its source, e.g. a national
// annual mean (EEA) or a residual mix (AIB).
type EmissionFactor struct {
	// Zone is the grid zone it applies to; empty means the site's zone.
	Zone    string  `yaml:"zone"`
	GPerKWh float64 `yaml:"g_per_kwh"`
	Source  string  `yaml:"source"`
	Year    int     `yaml:"year"`
}

// Instrument types of Instrument.Type, in the GHG Protocol's hierarchy order.
var InstrumentTypes = []string{"GO", "PPA_physical", "PPA_virtual", "green_tariff", "supplier_mix"}

// ITMeterPoints are the values of Site.ITMeterPoint.
var ITMeterPoints = []string{"ups", "pdu", "it_input", "custom"}

// Instrument is one contractual instrument of a site: a lot of certificates,
// a PPA's attributes, a green tariff or a supplier-specific mix.
type Instrument struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"`
	// Registry is where the certificates are tracked and cancelled.
	Registry string `yaml:"registry"`
	// CertIDs are the certificates (or ranges) it conveys.
	CertIDs []string `yaml:"cert_ids"`
	// Zone is the market the energy was produced in; empty means the site's zone.
	Zone       string `yaml:"zone"`
	Technology string `yaml:"technology"`
	// From and To bound the production period it covers, [From, To).
	From time.Time `yaml:"from"`
	To   time.Time `yaml:"to"`
	// EnergyMWh is the volume it covers.
	EnergyMWh float64 `yaml:"energy_mwh"`
	// FactorGPerKWh is its emission factor: 0 for renewable attributes.
	FactorGPerKWh float64   `yaml:"factor_g_per_kwh"`
	CancelledAt   time.Time `yaml:"cancelled_at"`
}

// Carbon configures grid carbon intensity: its providers and how often
// the server fetches from them.
type Carbon struct {
	Providers []CarbonProvider `yaml:"providers"`
	// History is how far back the server fetches at start (and after a gap);
	// default 7d, at most the store's retention.
	History Duration `yaml:"history"`
	// Interval is how often the latest values and forecasts are fetched; default 15m.
	Interval Duration `yaml:"interval"`
	// ForecastHorizon is how far ahead forecasts are asked for; default 24h.
	ForecastHorizon Duration `yaml:"forecast_horizon"`
}

// CarbonProviderTypes are the values of CarbonProvider.Type.
var CarbonProviderTypes = []string{"csv", "electricitymaps", "watttime", "entsoe", "ukgrid", "static"}

// CarbonProvider is one source of grid carbon intensity. Secrets come from a
// file or an environment variable, never from the configuration itself.
type CarbonProvider struct {
	// Type is csv, electricitymaps, watttime, entsoe, ukgrid or static.
	Type string `yaml:"type"`
	// Path is the CSV file (csv): an Electricity Maps dataset export or
	// zone,timestamp,g_per_kwh lines.
	Path string `yaml:"path"`
	// Direct uses an Electricity Maps export's direct instead of life-cycle column (csv).
	Direct bool `yaml:"direct"`
	// Zone or Zones are the grid zones fetched; empty means the zones of the
	// configured sites (csv: the zones in the file).
	Zone  string   `yaml:"zone"`
	Zones []string `yaml:"zones"`

	// HTTP providers.
	BaseURL     string   `yaml:"base_url"`
	RateLimit   float64  `yaml:"rate_limit"` // requests per second
	Burst       int      `yaml:"burst"`
	Timeout     Duration `yaml:"timeout"`
	LatestTTL   Duration `yaml:"latest_ttl"`
	ForecastTTL Duration `yaml:"forecast_ttl"`
	RecentTTL   Duration `yaml:"recent_ttl"`
	HistoryTTL  Duration `yaml:"history_ttl"`
	MaxRange    Duration `yaml:"max_range"`

	// TokenFile or TokenEnv supply the API token (electricitymaps, entsoe).
	TokenFile string        `yaml:"token_file"`
	TokenEnv  string        `yaml:"token_env"`
	Token     LiteralSecret `yaml:"token"`
	// EmissionFactorType is lifecycle (default) or direct (electricitymaps).
	EmissionFactorType string `yaml:"emission_factor_type"`

	// WattTime account; the password from PasswordFile or PasswordEnv.
	Username        string        `yaml:"username"`
	PasswordFile    string        `yaml:"password_file"`
	PasswordEnv     string        `yaml:"password_env"`
	Password        LiteralSecret `yaml:"password"`
	LoginURL        string        `yaml:"login_url"`
	Signal          string        `yaml:"signal"` // marginal or average
	ForecastHorizon Duration      `yaml:"forecast_horizon"`

	// EmissionFactors override ENTSO-E's per production type (psrType → g/kWh).
	EmissionFactors map[string]float64 `yaml:"emission_factors"`
	// Factors add annual factors to the static provider's built-in table.
	Factors []EmissionFactor `yaml:"factors"`
}

// ProviderZones returns the zones a provider is asked for: Zone and Zones.
func (p CarbonProvider) ProviderZones() []string {
	var zs []string
	if p.Zone != "" {
		zs = append(zs, p.Zone)
	}
	for _, z := range p.Zones {
		if z != "" && !slices.Contains(zs, z) {
			zs = append(zs, z)
		}
	}
	return zs
}

// Default returns the configuration with every default filled in.
func Default() Server {
	return Server{
		Listen:  "127.0.0.1:8080",
		DataDir: "./data",
		Storage: Storage{Backend: "tsdb", TSDB: TSDB{
			Retention:        Duration(15 * 24 * time.Hour),
			OutOfOrderWindow: Duration(72 * time.Hour),
		}},
		Ingest: Ingest{
			MaxBodyBytes:    32 << 20,
			MaxDecodedBytes: 256 << 20,
			MaxFutureSkew:   Duration(10 * time.Minute),
			MaxLabels:       64,
		},
		Query: Query{Timeout: Duration(2 * time.Minute), MaxSamples: 50_000_000, LookbackDelta: Duration(5 * time.Minute),
			ResultsCache: ResultsCache{MaxBytes: 256 << 20, Settle: Duration(5 * time.Minute)}},
		Auth:       Auth{Store: AuthStoreFile, RefreshInterval: Duration(10 * time.Second)},
		Log:        Log{Level: "info", Format: "text"},
		Demo:       Demo{History: Duration(7 * 24 * time.Hour), Tenant: "default"},
		Carbon:     Carbon{History: Duration(7 * 24 * time.Hour), Interval: Duration(15 * time.Minute), ForecastHorizon: Duration(24 * time.Hour)},
		Accounting: Accounting{Rollup: AccountingRollup{Enabled: true}},
		SitesStore: SitesStoreFile, SitesRefreshInterval: Duration(10 * time.Second),
	}
}

// The values of Server.SitesStore.
const (
	SitesStoreFile       = "file"
	SitesStoreClickHouse = "clickhouse"
)

// SitesRefresh returns SitesRefreshInterval, or its default 10s when zero.
func (c Server) SitesRefresh() time.Duration {
	if c.SitesRefreshInterval <= 0 {
		return 10 * time.Second
	}
	return c.SitesRefreshInterval.D()
}

// Load reads YAML over the defaults. Unknown keys are errors, so typos surface.
func Load(r io.Reader) (Server, error) {
	c := Default()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("parse config: %w", err)
	}
	return c, nil
}

// LoadFile is Load on a file.
func LoadFile(path string) (Server, error) {
	f, err := os.Open(path)
	if err != nil {
		return Default(), fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	c, err := Load(f)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

var siteIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// FieldError is one problem with one field.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Validate reports every problem at once, each naming its field's path.
func (c *Server) Validate() error {
	var errs []error
	add := func(path, format string, a ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "want host:port, got %q", c.Listen)
	}
	if c.DataDir == "" && c.Storage.Backend == "tsdb" {
		add("data_dir", "must be set for the tsdb backend")
	}
	switch c.Storage.Backend {
	case "tsdb":
	case "clickhouse":
		ch := c.Storage.ClickHouse
		if len(ch.Addrs) == 0 {
			add("storage.clickhouse.addrs", "must list at least one host:port (native protocol, e.g. 127.0.0.1:9000)")
		}
		for i, a := range ch.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				add(fmt.Sprintf("storage.clickhouse.addrs[%d]", i), "want host:port, got %q", a)
			}
		}
		if ch.Password {
			add("storage.clickhouse.password", "literal passwords are not allowed in the configuration; use password_file or password_env")
		}
		if ch.PasswordFile != "" && ch.PasswordEnv != "" {
			add("storage.clickhouse.password_env", "set only one of password_file and password_env")
		}
		if ch.Database != "" && !chIdentRe.MatchString(ch.Database) {
			add("storage.clickhouse.database", "want letters, digits and '_' (a ClickHouse identifier), got %q", ch.Database)
		}
		if ch.Cluster != "" && !chIdentRe.MatchString(ch.Cluster) {
			add("storage.clickhouse.cluster", "want letters, digits and '_', got %q", ch.Cluster)
		}
		for _, d := range []struct {
			name string
			v    Duration
		}{{"retention", ch.Retention}, {"minute_retention", ch.MinuteRetention}, {"hour_retention", ch.HourRetention},
			{"flush_interval", ch.FlushInterval}, {"write_timeout", ch.WriteTimeout}} {
			if d.v < 0 {
				add("storage.clickhouse."+d.name, "must not be negative, got %s", d.v)
			}
		}
		if ch.BatchSize < 0 {
			add("storage.clickhouse.batch_size", "must not be negative, got %d", ch.BatchSize)
		}
		switch ch.AsyncInsert {
		case "", "auto", "on", "off":
		default:
			add("storage.clickhouse.async_insert", "want auto, on or off, got %q", ch.AsyncInsert)
		}
		switch ch.Compression {
		case "", "auto", "lz4", "none":
		default:
			add("storage.clickhouse.compression", "want auto, lz4 or none, got %q", ch.Compression)
		}
		validateCHReplication(ch, add)
		if b := ch.Buffer; b.Enabled {
			if ch.AsyncInsert == "on" {
				add("storage.clickhouse.async_insert", "on and buffer.enabled: choose one")
			}
			validateCHBuffer(b, ch.BatchSize, add)
		}
	default:
		add("storage.backend", "unknown backend %q (want tsdb or clickhouse)", c.Storage.Backend)
	}
	if c.Storage.TSDB.Retention.D() < time.Hour {
		add("storage.tsdb.retention", "must be at least 1h, got %s", c.Storage.TSDB.Retention)
	}
	if w := c.Storage.TSDB.OutOfOrderWindow.D(); w < 0 {
		add("storage.tsdb.out_of_order_window", "must not be negative")
	} else if w > c.Storage.TSDB.Retention.D() {
		add("storage.tsdb.out_of_order_window", "%s is longer than the retention %s", c.Storage.TSDB.OutOfOrderWindow, c.Storage.TSDB.Retention)
	}
	validateAuth(c.Auth, c.Storage.Backend, add)
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		add("tls.key_file", "must be set with tls.cert_file")
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		add("tls.cert_file", "must be set with tls.key_file")
	}
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		add("tls.client_ca_file", "needs tls.cert_file and tls.key_file")
	}
	if c.Ingest.MaxBodyBytes <= 0 {
		add("ingest.max_body_bytes", "must be positive")
	}
	if c.Ingest.MaxDecodedBytes < c.Ingest.MaxBodyBytes {
		add("ingest.max_decoded_bytes", "must be at least ingest.max_body_bytes")
	}
	if c.Ingest.MaxFutureSkew.D() < 0 {
		add("ingest.max_future_skew", "must not be negative")
	}
	if c.Ingest.MaxLabels < 1 {
		add("ingest.max_labels", "must be at least 1")
	}
	if c.Query.Timeout.D() <= 0 {
		add("query.timeout", "must be positive")
	}
	if c.Query.MaxSamples <= 0 {
		add("query.max_samples", "must be positive")
	}
	if c.Query.LookbackDelta.D() <= 0 {
		add("query.lookback_delta", "must be positive")
	}
	if c.Query.ResultsCache.MaxBytes < 0 {
		add("query.results_cache.max_bytes", "must not be negative (0 turns the cache off)")
	}
	if c.Query.ResultsCache.MaxBytes > 0 && c.Query.ResultsCache.Settle.D() < time.Minute {
		add("query.results_cache.settle", "must be at least 1m (samples younger than that are still arriving), got %s", c.Query.ResultsCache.Settle)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "want text or json, got %q", c.Log.Format)
	}
	if c.Demo.Enabled && c.Demo.History.D() < 0 {
		add("demo.history", "must not be negative")
	}
	seen := map[string]int{}
	for i, s := range c.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		if j, dup := seen[s.ID]; dup && siteIDRe.MatchString(s.ID) {
			add(p+".id", "duplicate of sites[%d].id %q", j, s.ID)
		} else if !dup {
			seen[s.ID] = i
		}
		validateSite(p, s, add)
	}
	validateSitesStore(c.SitesStore, c.SitesRefreshInterval, c.Storage.Backend, add)
	validateCarbon(c.Carbon, c.Storage.TSDB.Retention, add)
	if !c.Accounting.Rollup.Enabled && c.Storage.Backend != "clickhouse" {
		add("accounting.rollup.enabled", "false is only for storage.backend clickhouse (servers sharing one database); the embedded store has no other server to keep its roll-ups")
	}
	return errors.Join(errs...)
}

// validateAuth checks the auth section against the storage backend.
func validateAuth(a Auth, backend string, add func(path, format string, args ...any)) {
	switch a.Store {
	case "", AuthStoreFile:
	case AuthStoreClickHouse:
		if backend != "clickhouse" {
			add("auth.store", "clickhouse needs storage.backend clickhouse (the tokens live in its database), got backend %q", backend)
		}
		if a.TokensFile != "" {
			add("auth.tokens_file", "not read with auth.store clickhouse; copy it into ClickHouse with `greenloop token import` and remove it")
		}
	default:
		add("auth.store", "want file or clickhouse, got %q", a.Store)
	}
	if r := a.RefreshInterval.D(); r != 0 && r < time.Second {
		add("auth.refresh_interval", "must be at least 1s (0 takes the default 10s), got %s", a.RefreshInterval)
	}
}

// Validate checks one site on its own (not against other sites), as an
// entry of the configuration's sites at path (e.g. "sites[3]"; "" names
// the fields bare: "id", "pue.value"). Every problem is a *FieldError
// naming the field's path, all joined.
func (s Site) Validate(path string) error {
	var errs []error
	validateSite(path, s, func(p, format string, a ...any) {
		errs = append(errs, &FieldError{Path: p, Msg: fmt.Sprintf(format, a...)})
	})
	return errors.Join(errs...)
}

// validateSite checks a site's own fields; p is its path, the fields'
// paths are p.field (or field alone when p is empty).
func validateSite(p string, s Site, add func(path, format string, a ...any)) {
	if p != "" {
		p += "."
	}
	if !siteIDRe.MatchString(s.ID) {
		add(p+"id", "want lower-case letters, digits, '-' or '_' (1-63), got %q", s.ID)
	}
	if s.Tenant != "" && (len(s.Tenant) > 200 || strings.IndexFunc(s.Tenant, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 ||
		!utf8.ValidString(s.Tenant)) {
		add(p+"tenant", "want 1-200 bytes of printable UTF-8 without spaces, got %q", s.Tenant)
	}
	if s.Zone == "" {
		add(p+"zone", "must be set (grid zone, e.g. DE)")
	}
	if !(s.Location.Lat >= -90 && s.Location.Lat <= 90) {
		add(p+"location.lat", "must be within [-90, 90], got %v", s.Location.Lat)
	}
	if !(s.Location.Lon >= -180 && s.Location.Lon <= 180) {
		add(p+"location.lon", "must be within [-180, 180], got %v", s.Location.Lon)
	}
	if s.ITCapacityKW < 0 {
		add(p+"it_capacity_kw", "must not be negative, got %v", s.ITCapacityKW)
	} else if math.IsNaN(s.ITCapacityKW) || math.IsInf(s.ITCapacityKW, 0) {
		add(p+"it_capacity_kw", "want a finite number, got %v", s.ITCapacityKW)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Meters)) {
		if strings.TrimSpace(s.Meters[k]) == "" {
			add(p+"meters."+k, "empty selector")
		}
	}
	validateSiteAccounting(p, s, add)
}

// validateSitesStore checks sites_store and its refresh interval against
// the storage backend.
func validateSitesStore(store string, refresh Duration, backend string, add func(path, format string, args ...any)) {
	switch store {
	case "", SitesStoreFile:
	case SitesStoreClickHouse:
		if backend != "clickhouse" {
			add("sites_store", "clickhouse needs storage.backend clickhouse (the sites live in its database), got backend %q", backend)
		}
	default:
		add("sites_store", "want file or clickhouse, got %q", store)
	}
	if r := refresh.D(); r != 0 && r < time.Second {
		add("sites_refresh_interval", "must be at least 1s (0 takes the default 10s), got %s", refresh)
	}
}

// validateSiteAccounting checks a site's accounting fields; p is the
// prefix of their paths: the site's path and a dot, or "".
func validateSiteAccounting(p string, s Site, add func(path, format string, a ...any)) {
	if s.ITMeterPoint != "" && !slices.Contains(ITMeterPoints, s.ITMeterPoint) {
		add(p+"it_meter_point", "want one of %s, got %q", strings.Join(ITMeterPoints, ", "), s.ITMeterPoint)
	}
	if s.WUECategory != 0 && s.WUECategory != 1 && s.WUECategory != 2 {
		add(p+"wue_category", "want 1 (potable water) or 2 (all water input), got %d", s.WUECategory)
	}
	if s.PUE != nil {
		if !(s.PUE.Value >= 1 && s.PUE.Value <= 5) {
			add(p+"pue.value", "want a PUE within [1, 5], got %v", s.PUE.Value)
		}
		if strings.TrimSpace(s.PUE.Basis) == "" {
			add(p+"pue.basis", "must say where the PUE comes from")
		}
	}
	if s.FallbackFactor != nil {
		validateFactor(p+"fallback_factor", *s.FallbackFactor, add)
	}
	seenYear := map[string]int{}
	for j, f := range s.ResidualMix {
		fp := fmt.Sprintf("%sresidual_mix[%d]", p, j)
		validateFactor(fp, f, add)
		key := fmt.Sprintf("%s/%d", f.Zone, f.Year)
		if k, dup := seenYear[key]; dup {
			add(fp, "duplicate of %sresidual_mix[%d] (same zone and year)", p, k)
		} else {
			seenYear[key] = j
		}
	}
	ids := map[string]int{}
	certs := map[string]string{}
	for j, in := range s.Instruments {
		ip := fmt.Sprintf("%sinstruments[%d]", p, j)
		if strings.TrimSpace(in.ID) == "" {
			add(ip+".id", "must be set")
		} else if k, dup := ids[in.ID]; dup {
			add(ip+".id", "duplicate of %sinstruments[%d].id %q", p, k, in.ID)
		} else {
			ids[in.ID] = j
		}
		if !slices.Contains(InstrumentTypes, in.Type) {
			add(ip+".type", "want one of %s, got %q", strings.Join(InstrumentTypes, ", "), in.Type)
		}
		if in.From.IsZero() {
			add(ip+".from", "must be set (start of the production period)")
		}
		if in.To.IsZero() {
			add(ip+".to", "must be set (end of the production period)")
		} else if !in.From.IsZero() && !in.To.After(in.From) {
			add(ip+".to", "must be after from")
		}
		if !(in.EnergyMWh > 0) || math.IsInf(in.EnergyMWh, 1) {
			add(ip+".energy_mwh", "must be positive, got %v", in.EnergyMWh)
		}
		if !(in.FactorGPerKWh >= 0) || math.IsInf(in.FactorGPerKWh, 1) {
			add(ip+".factor_g_per_kwh", "must not be negative, got %v", in.FactorGPerKWh)
		}
		if (in.Type == "GO" || in.Type == "PPA_physical" || in.Type == "PPA_virtual") && len(in.CertIDs) == 0 {
			add(ip+".cert_ids", "must list the cancelled certificates of a %s", in.Type)
		}
		for k, cid := range in.CertIDs {
			if strings.TrimSpace(cid) == "" {
				add(fmt.Sprintf("%s.cert_ids[%d]", ip, k), "empty certificate id")
			} else if other, dup := certs[cid]; dup {
				add(fmt.Sprintf("%s.cert_ids[%d]", ip, k), "certificate %q is already claimed by %s", cid, other)
			} else {
				certs[cid] = ip
			}
		}
	}
}

func validateFactor(p string, f EmissionFactor, add func(path, format string, a ...any)) {
	if !(f.GPerKWh >= 0 && f.GPerKWh <= 2000) {
		add(p+".g_per_kwh", "want gCO2e/kWh within [0, 2000], got %v", f.GPerKWh)
	}
	if strings.TrimSpace(f.Source) == "" {
		add(p+".source", "must name the factor's source (e.g. \"AIB European Residual Mixes 2024\")")
	}
	if f.Year != 0 && (f.Year < 1990 || f.Year > 2100) {
		add(p+".year", "want a year, got %d", f.Year)
	}
}

// validateCarbon checks the carbon-intensity settings and providers.
func validateCarbon(c Carbon, retention Duration, add func(path, format string, a ...any)) {
	if c.History.D() < 0 {
		add("carbon.history", "must not be negative")
	} else if retention > 0 && c.History.D() > retention.D() {
		add("carbon.history", "%s is longer than the retention %s", c.History, retention)
	}
	if len(c.Providers) > 0 && c.Interval.D() < time.Minute {
		add("carbon.interval", "must be at least 1m, got %s", c.Interval)
	}
	if c.ForecastHorizon.D() < 0 || c.ForecastHorizon.D() > 72*time.Hour {
		add("carbon.forecast_horizon", "want 0 to 72h, got %s", c.ForecastHorizon)
	}
	for i, pr := range c.Providers {
		p := fmt.Sprintf("carbon.providers[%d]", i)
		secret := func(name string, file, env string, literal LiteralSecret, required bool) {
			if literal {
				add(p+"."+name, "literal secrets are not allowed in the configuration; use %s_file or %s_env", name, name)
			}
			if file != "" && env != "" {
				add(p+"."+name+"_env", "set only one of %s_file and %s_env", name, name)
			}
			if required && file == "" && env == "" && !bool(literal) {
				add(p+"."+name+"_file", "must be set (or %s_env) for a %s provider", name, pr.Type)
			}
		}
		switch pr.Type {
		case "csv":
			if pr.Path == "" {
				add(p+".path", "must be set for a csv provider")
			}
		case "electricitymaps":
			secret("token", pr.TokenFile, pr.TokenEnv, pr.Token, true)
			switch pr.EmissionFactorType {
			case "", "lifecycle", "direct":
			default:
				add(p+".emission_factor_type", "want lifecycle or direct, got %q", pr.EmissionFactorType)
			}
		case "entsoe":
			secret("token", pr.TokenFile, pr.TokenEnv, pr.Token, true)
			for k, v := range pr.EmissionFactors {
				if v < 0 || v > 2000 {
					add(p+".emission_factors."+k, "want gCO2e/kWh within [0, 2000], got %v", v)
				}
			}
		case "watttime":
			if pr.Username == "" {
				add(p+".username", "must be set for a watttime provider")
			}
			secret("password", pr.PasswordFile, pr.PasswordEnv, pr.Password, true)
			if pr.ForecastHorizon.D() < 0 || pr.ForecastHorizon.D() > 72*time.Hour {
				add(p+".forecast_horizon", "want 0 to 72h, got %s", pr.ForecastHorizon)
			}
		case "ukgrid":
			for _, z := range pr.ProviderZones() {
				if z != "GB" {
					add(p+".zone", "the GB Carbon Intensity API has only zone GB, got %q", z)
				}
			}
		case "static":
			for j, f := range pr.Factors {
				fp := fmt.Sprintf("%s.factors[%d]", p, j)
				validateFactor(fp, f, add)
				if f.Zone == "" {
					add(fp+".zone", "must be set")
				}
				if f.Year == 0 {
					add(fp+".year", "must be set")
				}
			}
		default:
			add(p+".type", "unknown provider %q (want one of %s)", pr.Type, strings.Join(CarbonProviderTypes, ", "))
		}
		if pr.Type != "csv" && (pr.Path != "" || pr.Direct) {
			add(p+".path", "only a csv provider reads a file")
		}
		switch pr.Signal {
		case "", "average", "marginal":
		default:
			add(p+".signal", "want average or marginal, got %q", pr.Signal)
		}
		if pr.RateLimit < 0 {
			add(p+".rate_limit", "must not be negative")
		}
		if pr.Burst < 0 {
			add(p+".burst", "must not be negative")
		}
		for _, d := range []struct {
			name string
			v    Duration
		}{{"timeout", pr.Timeout}, {"latest_ttl", pr.LatestTTL}, {"forecast_ttl", pr.ForecastTTL},
			{"recent_ttl", pr.RecentTTL}, {"history_ttl", pr.HistoryTTL}, {"max_range", pr.MaxRange}} {
			if d.v < 0 {
				add(p+"."+d.name, "must not be negative, got %s", d.v)
			}
		}
	}
}

// SiteTenant returns the tenant a site belongs to ("default" when unset).
func (s Site) SiteTenant() string {
	if s.Tenant == "" {
		return "default"
	}
	return s.Tenant
}
