package config

import (
	"errors"
	"io/fs"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Storage.TSDB.OutOfOrderWindow.D() < 72*time.Hour {
		t.Fatalf("default out-of-order window %s, want >= 72h", c.Storage.TSDB.OutOfOrderWindow)
	}
}

// The documented example must load and validate, so docs and code cannot drift apart.
func TestDeployExample(t *testing.T) {
	c, err := LoadFile("../../deploy/config/server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Storage.TSDB.Retention.D() != 15*24*time.Hour || c.Ingest.MaxBodyBytes != 32<<20 || len(c.Sites) != 1 || c.Sites[0].ITCapacityKW != 800 {
		t.Fatalf("unexpected values: %+v", c)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	yaml := `
listen: nonsense
storage: {backend: mysql, tsdb: {retention: 30m}}
tls: {client_ca_file: ca.pem}
log: {level: loud}
sites:
  - {id: Fra 1, zone: "", location: {lat: 91, lon: 0}, it_capacity_kw: -1}
  - {id: ok, zone: DE}
  - {id: ok, zone: FR}
carbon:
  providers: [{type: magic, zone: DE}]
`
	c, err := Load(strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"listen: want host:port",
		"storage.backend: unknown backend \"mysql\"",
		"storage.tsdb.retention: must be at least 1h",
		"tls.client_ca_file: needs tls.cert_file",
		"log.level: want debug",
		"sites[0].id:",
		"sites[0].zone: must be set",
		"sites[0].location.lat: must be within",
		"sites[0].it_capacity_kw: must not be negative",
		"sites[2].id: duplicate of sites[1].id",
		"carbon.providers[0].type: unknown provider",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen: 127.0.0.1:1\nlisten_addr: x\n", "field listen_addr not found"},
		{"storage: {tsdb: {retention: 3 weeks}}\n", `invalid duration "3 weeks"`},
		{"ingest: {max_body_bytes: lots}\n", `invalid size "lots"`},
	} {
		_, err := Load(strings.NewReader(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "90s": 90 * time.Second} {
		d, err := ParseDuration(in)
		if err != nil || d.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for in, want := range map[string]ByteSize{"1GiB": 1 << 30, "512 MiB": 512 << 20, "64KB": 64000, "100": 100} {
		b, err := ParseByteSize(in)
		if err != nil || b != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, b, err, want)
		}
	}
	if _, err := ParseByteSize("-1MiB"); err == nil {
		t.Error("negative size accepted")
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile("does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}

func TestValidateClickHouse(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000', '127.0.0.1:9100'], cluster: gl_2shards, password_env: CH_PASSWORD}}\n", nil},
		{"storage: {backend: clickhouse}\n", []string{"storage.clickhouse.addrs: must list at least one host:port"}},
		{"storage: {backend: clickhouse, clickhouse: {addrs: [localhost], database: 'green-loop', password: x, retention: -1h, batch_size: -2}}\n", []string{
			`storage.clickhouse.addrs[0]: want host:port, got "localhost"`, `storage.clickhouse.database: want letters`,
			"storage.clickhouse.password: literal passwords are not allowed", "storage.clickhouse.retention: must not be negative",
			"storage.clickhouse.batch_size: must not be negative"}},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], async_insert: 'off', buffer: {enabled: true, layers: 2, min_time: 10s, max_time: 1m, min_rows: 50000, max_rows: 500000, min_bytes: 1MiB, max_bytes: 64MiB}}}\n", nil},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], async_insert: 'on'}}\n", nil},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], async_insert: 'yes'}}\n", []string{`storage.clickhouse.async_insert: want auto, on or off, got "yes"`}},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], compression: lz4}}\n", nil},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], compression: zstd}}\n", []string{`storage.clickhouse.compression: want auto, lz4 or none, got "zstd"`}},
		// Thresholds of a disabled buffer are not checked.
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], buffer: {min_time: 1500ms}}}\n", nil},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], async_insert: 'on', buffer: {enabled: true, layers: -1, min_time: 1500ms, max_time: -1s, min_rows: 10, max_rows: 5, min_bytes: 2MiB, max_bytes: 1MiB}}}\n", []string{
			"storage.clickhouse.async_insert: on and buffer.enabled: choose one", "storage.clickhouse.buffer.layers: must not be negative",
			"storage.clickhouse.buffer.min_time: want a positive number of whole seconds, got 1.5s", "storage.clickhouse.buffer.max_time: want a positive number of whole seconds, got -1s",
			"storage.clickhouse.buffer.min_rows: 10 exceeds max_rows 5", "storage.clickhouse.buffer.min_bytes: 2097152 exceeds max_bytes 1048576",
			"storage.clickhouse.buffer.max_rows: 5 is below batch_size 100000"}},
		{"storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000'], batch_size: 2000000, buffer: {enabled: true, min_time: 40s, max_time: 30s}}}\n", []string{
			"storage.clickhouse.buffer.min_time: 40s exceeds max_time 30s", "storage.clickhouse.buffer.max_rows: 1000000 is below batch_size 2000000"}},
	} {
		c, err := Load(strings.NewReader("listen: 127.0.0.1:8080\n" + tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.yaml, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: missing %q in %v", tc.yaml, w, err)
			}
		}
	}
}

func TestValidateAccountingAndCarbon(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"valid", `
sites:
  - id: fra1
    zone: DE
    it_meter_point: pdu
    wue_category: 1
    pue: {value: 1.35, basis: measured annual PUE 2025}
    fallback_factor: {g_per_kwh: 380, source: EEA 2023, year: 2023}
    residual_mix: [{zone: DE, g_per_kwh: 698, source: AIB 2024, year: 2024}]
    instruments:
      - {id: go1, type: GO, cert_ids: [A-1, A-2], from: 2025-01-01, to: 2026-01-01, energy_mwh: 1000}
      - {id: mix, type: supplier_mix, from: 2025-01-01T00:00:00Z, to: 2026-01-01T00:00:00Z, energy_mwh: 10, factor_g_per_kwh: 120}
carbon:
  history: 3d
  providers:
    - {type: csv, path: ./de.csv}
    - {type: electricitymaps, token_file: /etc/em.token, zones: [DE, FR]}
    - {type: entsoe, token_env: ENTSOE_TOKEN, zone: DE-LU, emission_factors: {B06: 650}}
    - {type: watttime, username: me, password_file: /etc/wt.pass, zone: CAISO_NORTH, signal: marginal}
    - {type: ukgrid}
    - {type: static, factors: [{zone: SE, year: 2022, g_per_kwh: 30, source: own}]}
`, nil},
		{"invalid", `
sites:
  - id: fra1
    zone: DE
    it_meter_point: rack
    wue_category: 3
    pue: {value: 0.9}
    fallback_factor: {g_per_kwh: -1, source: x}
    residual_mix: [{zone: DE, g_per_kwh: 698, year: 2024}, {zone: DE, g_per_kwh: 600, source: y, year: 2024}]
    instruments:
      - {id: go1, type: REC, cert_ids: [A-1], energy_mwh: 0}
      - {id: go1, type: GO, cert_ids: [A-1], from: 2025-01-01, to: 2024-01-01, energy_mwh: 5}
      - {id: ppa, type: PPA_virtual, from: 2025-01-01, to: 2026-01-01, energy_mwh: 5, factor_g_per_kwh: -3}
carbon:
  history: 30d
  interval: 10s
  providers:
    - {type: csv}
    - {type: electricitymaps, token: abc, emission_factor_type: both}
    - {type: entsoe, token_file: a, token_env: B, emission_factors: {B06: 5000}}
    - {type: watttime, signal: loud, forecast_horizon: 100h}
    - {type: ukgrid, zone: DE}
    - {type: static, path: x.csv, factors: [{g_per_kwh: 3}]}
    - {type: magic, timeout: -1s, rate_limit: -2}
`, []string{
			`sites[0].it_meter_point: want one of ups, pdu, it_input, custom, got "rack"`,
			"sites[0].wue_category: want 1",
			"sites[0].pue.value: want a PUE within [1, 5], got 0.9",
			"sites[0].pue.basis: must say",
			"sites[0].fallback_factor.g_per_kwh: want gCO2e/kWh within [0, 2000], got -1",
			"sites[0].residual_mix[0].source: must name",
			"sites[0].residual_mix[1]: duplicate of sites[0].residual_mix[0]",
			`sites[0].instruments[0].type: want one of GO, PPA_physical, PPA_virtual, green_tariff, supplier_mix, got "REC"`,
			"sites[0].instruments[0].from: must be set",
			"sites[0].instruments[0].to: must be set",
			"sites[0].instruments[0].energy_mwh: must be positive",
			`sites[0].instruments[1].id: duplicate of sites[0].instruments[0].id "go1"`,
			"sites[0].instruments[1].to: must be after from",
			`sites[0].instruments[1].cert_ids[0]: certificate "A-1" is already claimed by sites[0].instruments[0]`,
			"sites[0].instruments[2].cert_ids: must list the cancelled certificates of a PPA_virtual",
			"sites[0].instruments[2].factor_g_per_kwh: must not be negative",
			"carbon.history: 720h0m0s is longer than the retention 360h0m0s",
			"carbon.interval: must be at least 1m",
			"carbon.providers[0].path: must be set for a csv provider",
			"carbon.providers[1].token: literal secrets are not allowed",
			"carbon.providers[1].emission_factor_type: want lifecycle or direct",
			"carbon.providers[2].token_env: set only one of token_file and token_env",
			"carbon.providers[2].emission_factors.B06: want gCO2e/kWh within [0, 2000]",
			"carbon.providers[3].username: must be set",
			"carbon.providers[3].password_file: must be set (or password_env) for a watttime provider",
			"carbon.providers[3].forecast_horizon: want 0 to 72h",
			`carbon.providers[3].signal: want average or marginal, got "loud"`,
			`carbon.providers[4].zone: the GB Carbon Intensity API has only zone GB, got "DE"`,
			"carbon.providers[5].path: only a csv provider reads a file",
			"carbon.providers[5].factors[0].source: must name",
			"carbon.providers[5].factors[0].zone: must be set",
			"carbon.providers[5].factors[0].year: must be set",
			`carbon.providers[6].type: unknown provider "magic"`,
			"carbon.providers[6].timeout: must not be negative",
			"carbon.providers[6].rate_limit: must not be negative",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				in := c.Sites[0].Instruments[0]
				if !in.From.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) || in.EnergyMWh != 1000 || len(in.CertIDs) != 2 {
					t.Errorf("instrument %+v", in)
				}
				if c.Sites[0].PUE.Value != 1.35 || c.Sites[0].ResidualMix[0].GPerKWh != 698 || c.Carbon.Interval.D() != 15*time.Minute {
					t.Errorf("site %+v carbon %+v", c.Sites[0], c.Carbon)
				}
				if zs := c.Carbon.Providers[1].ProviderZones(); len(zs) != 2 || zs[0] != "DE" || zs[1] != "FR" {
					t.Errorf("zones %v", zs)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q", w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n < len(tc.want) {
				t.Errorf("%d problems reported, want at least %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

// The ClickHouse cluster example of deploy/ loads and validates.
func TestDeployClickHouseCluster(t *testing.T) {
	c, err := LoadFile("../../deploy/clickhouse-cluster/greenloop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ch := c.Storage.ClickHouse
	if c.Storage.Backend != "clickhouse" || len(ch.Addrs) != 4 || ch.Cluster != "greenloop_cluster" || ch.PasswordFile == "" ||
		ch.Replication != "auto" || ch.ZooKeeperPath != "/clickhouse/tables/{shard}/{database}/{table}" {
		t.Fatalf("unexpected storage: %+v", c.Storage)
	}
}

func TestValidateAuthStore(t *testing.T) {
	const ch = "storage: {backend: clickhouse, clickhouse: {addrs: [127.0.0.1:9000]}}\n"
	for _, tc := range []struct {
		name, yaml string
		// want are the messages expected, each with its field path; none = valid.
		want        []string
		enabled     bool
		refreshWant time.Duration
	}{
		{name: "default", yaml: "", enabled: false, refreshWant: 10 * time.Second},
		{name: "file", yaml: "auth: {tokens_file: /etc/greenloop/tokens}\n", enabled: true, refreshWant: 10 * time.Second},
		{name: "clickhouse", yaml: ch + "auth: {store: clickhouse, refresh_interval: 30s}\n", enabled: true, refreshWant: 30 * time.Second},
		{name: "zero interval takes the default", yaml: ch + "auth: {store: clickhouse, refresh_interval: 0s}\n", enabled: true, refreshWant: 10 * time.Second},
		{name: "clickhouse store on tsdb", yaml: "auth: {store: clickhouse}\n", enabled: true,
			want: []string{`auth.store: clickhouse needs storage.backend clickhouse`}},
		{name: "both sources", yaml: ch + "auth: {store: clickhouse, tokens_file: /etc/greenloop/tokens}\n", enabled: true,
			want: []string{"auth.tokens_file: not read with auth.store clickhouse"}},
		{name: "unknown store", yaml: "auth: {store: ldap}\n",
			want: []string{`auth.store: want file or clickhouse, got "ldap"`}},
		{name: "interval too short", yaml: ch + "auth: {store: clickhouse, refresh_interval: 100ms}\n", enabled: true,
			want: []string{"auth.refresh_interval: must be at least 1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Auth.Enabled(); got != tc.enabled {
				t.Errorf("Enabled() = %v, want %v", got, tc.enabled)
			}
			err = c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got := c.Auth.Refresh(); got != tc.refreshWant {
					t.Errorf("Refresh() = %s, want %s", got, tc.refreshWant)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems reported, want %d: %v", n, len(tc.want), err)
			}
		})
	}
}

// Site.Validate names fields under its path (bare with ""), and
// sites_store clickhouse needs the ClickHouse backend.
func TestSiteValidateAndSitesStore(t *testing.T) {
	s := Site{ID: "Bad", Location: Location{Lat: math.NaN()}, PUE: &SitePUE{Value: 1.2}}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"", []string{"id: want lower-case", "zone: must be set", "location.lat: must be within", "pue.basis: must say"}},
		{"sites[4]", []string{"sites[4].id: want", "sites[4].zone: must be set", "sites[4].location.lat", "sites[4].pue.basis"}},
	} {
		err := s.Validate(tc.path)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%q): %v lacks %q", tc.path, err, w)
			}
		}
	}
	if err := (Site{ID: "ok", Zone: "DE"}).Validate(""); err != nil {
		t.Errorf("a valid site: %v", err)
	}
	for _, tc := range []struct {
		store, backend string
		refresh        Duration
		want           string
	}{
		{"clickhouse", "tsdb", 0, "sites_store: clickhouse needs storage.backend clickhouse"},
		{"sql", "tsdb", 0, `sites_store: want file or clickhouse, got "sql"`},
		{"file", "tsdb", Duration(time.Millisecond), "sites_refresh_interval: must be at least 1s"},
	} {
		c := Default()
		c.SitesStore, c.Storage.Backend, c.SitesRefreshInterval = tc.store, tc.backend, tc.refresh
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
	if c := Default(); c.SitesStore != SitesStoreFile || c.SitesRefresh() != 10*time.Second {
		t.Errorf("defaults: %q %v", c.SitesStore, c.SitesRefresh())
	}
}
