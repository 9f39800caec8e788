// Package config holds the server's configuration: defaults, a YAML file, then
// flags and environment on top, validated once with every problem reported
// together under the field's path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

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
	Carbon  Carbon  `yaml:"carbon"`
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
	// one address per shard, in the order of the cluster's definition.
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
	// TokensFile has lines "<sha256 hex of token> <tenant> <role> <name>". Empty = no auth, loopback only.
	TokensFile string `yaml:"tokens_file"`
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
}

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
}

// Carbon lists carbon-intensity providers.
type Carbon struct {
	Providers []CarbonProvider `yaml:"providers"`
}

// CarbonProvider is one source of grid carbon intensity.
type CarbonProvider struct {
	Type string `yaml:"type"`
	Path string `yaml:"path"`
	Zone string `yaml:"zone"`
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
		Log:  Log{Level: "info", Format: "text"},
		Demo: Demo{History: Duration(7 * 24 * time.Hour), Tenant: "default"},
	}
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
		if !siteIDRe.MatchString(s.ID) {
			add(p+".id", "want lower-case letters, digits, '-' or '_' (1-63), got %q", s.ID)
		} else if j, dup := seen[s.ID]; dup {
			add(p+".id", "duplicate of sites[%d].id %q", j, s.ID)
		} else {
			seen[s.ID] = i
		}
		if s.Zone == "" {
			add(p+".zone", "must be set (grid zone, e.g. DE)")
		}
		if s.Location.Lat < -90 || s.Location.Lat > 90 {
			add(p+".location.lat", "must be within [-90, 90], got %v", s.Location.Lat)
		}
		if s.Location.Lon < -180 || s.Location.Lon > 180 {
			add(p+".location.lon", "must be within [-180, 180], got %v", s.Location.Lon)
		}
		if s.ITCapacityKW < 0 {
			add(p+".it_capacity_kw", "must not be negative, got %v", s.ITCapacityKW)
		}
		for k, v := range s.Meters {
			if strings.TrimSpace(v) == "" {
				add(p+".meters."+k, "empty selector")
			}
		}
	}
	for i, pr := range c.Carbon.Providers {
		p := fmt.Sprintf("carbon.providers[%d]", i)
		switch pr.Type {
		case "csv":
			if pr.Path == "" {
				add(p+".path", "must be set for a csv provider")
			}
		default:
			add(p+".type", "unknown provider %q (want csv)", pr.Type)
		}
		if pr.Zone == "" {
			add(p+".zone", "must be set")
		}
	}
	return errors.Join(errs...)
}

// SiteTenant returns the tenant a site belongs to ("default" when unset).
func (s Site) SiteTenant() string {
	if s.Tenant == "" {
		return "default"
	}
	return s.Tenant
}
