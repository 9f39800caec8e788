package config

import (
	"errors"
	"io/fs"
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
