package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// DESIGN.md's full agent example (copied verbatim into testdata) loads and validates.
func TestAgentDesignExample(t *testing.T) {
	c, err := LoadAgentFile("testdata/design-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Site != "fra1" || c.Interval.D() != 10*time.Second || c.Server.QueueMaxBytes != 1<<30 ||
		c.Server.URL != "https://greenloop.example:8080" || c.Listen != "127.0.0.1:9101" || len(c.Targets) != 8 {
		t.Fatalf("unexpected values: %+v", c)
	}
	byName := map[string]Target{}
	for _, tg := range c.Targets {
		byName[tg.Name] = tg
	}
	if tg := byName["host"]; tg.Type != "rapl" || tg.Sysfs != "/sys" || tg.Node() != "host" {
		t.Errorf("host: %+v", tg)
	}
	if tg := byName["bmc-12"]; tg.Endpoint != "https://10.0.0.12" || tg.PasswordFile == "" || tg.TLS.CAFile == "" || tg.Password {
		t.Errorf("bmc-12: %+v", tg)
	}
	if tg := byName["bmc-13"]; tg.Host != "10.0.0.13" || tg.Port != 623 {
		t.Errorf("bmc-13: %+v", tg)
	}
	if tg := byName["pdu-a"]; tg.Address != "10.0.0.20:161" || tg.Version != "2c" || tg.CommunityFile == "" || tg.Profile != "auto" {
		t.Errorf("pdu-a: %+v", tg)
	}
	if tg := byName["plugs"]; tg.Broker != "tcp://10.0.0.30:1883" || tg.Topic != "tele/+/SENSOR" || tg.Format != "tasmota" {
		t.Errorf("plugs: %+v", tg)
	}
	tg := byName["edge-board"]
	if tg.Bus == nil || *tg.Bus != 1 || len(tg.Devices) != 2 ||
		tg.Devices[0] != (I2CDevice{Chip: "ina3221", Address: 0x40, ShuntOhms: 0.1}) || tg.Devices[1].Address != 0x76 {
		t.Errorf("edge-board: %+v", tg)
	}
}

// The annotated example in deploy/ loads and validates too.
func TestAgentDeployExample(t *testing.T) {
	c, err := LoadAgentFile("../../deploy/config/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) < 8 {
		t.Fatalf("want every target type in the example, got %d targets", len(c.Targets))
	}
	types := map[string]bool{}
	for _, tg := range c.Targets {
		types[tg.Type] = true
	}
	for _, typ := range TargetTypes {
		if !types[typ] {
			t.Errorf("no %s target in the example", typ)
		}
	}
}

func TestAgentDefaults(t *testing.T) {
	c, err := LoadAgent(strings.NewReader("site: lab\ntargets: [{name: host, type: rapl}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Interval.D() != DefaultAgentInterval || c.Listen != DefaultAgentListen || c.Server.QueueMaxBytes != DefaultQueueMaxBytes || c.Server.Pushes() {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if got := c.TargetInterval(c.Targets[0]); got != DefaultAgentInterval {
		t.Errorf("target interval %s", got)
	}
	c.Targets[0].Interval = Duration(time.Second)
	if got := c.TargetInterval(c.Targets[0]); got != time.Second {
		t.Errorf("target interval %s", got)
	}
	if d := DefaultAgent(); d.Validate() == nil {
		t.Error("DefaultAgent has no site, want a validation error")
	}
}

func TestLoadAgentErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top-level key", "site: a\nintervall: 5s\n", "intervall"},
		{"unknown target key", "site: a\ntargets: [{name: x, type: rapl, sysfs_root: /sys}]\n", "sysfs_root"},
		{"bad duration", "site: a\ninterval: soon\n", "invalid duration"},
		{"bad size", "site: a\nserver: {queue_max_bytes: lots}\n", "invalid size"},
		{"not a list", "site: a\ntargets: {name: x}\n", "parse config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadAgent(strings.NewReader(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	_, err := LoadAgentFile("testdata/does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// Each case is a configuration and the field errors it must produce (all of
// them, at once); an empty list means it must validate.
func TestAgentValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"minimal", "site: fra1\n", nil},
		{"pull-only with other keys", "site: fra1\nlisten: ''\ntargets: [{name: h, type: hwmon, sysfs: /host/sys, interval: 1s, labels: {node: rack4-u12, component: chassis}}]\n", nil},
		{"site, interval, listen", "site: Fra 1\ninterval: 0s\nlisten: nowhere\n", []string{
			`site: want lower-case letters`, `interval: must be positive`, `listen: want host:port, got "nowhere"`}},
		{"server", "site: a\nserver: {url: greenloop.example:8080, token_file: t, token_env: T, queue_max_bytes: 0}\n", []string{
			`server.url: want an absolute http or https URL`, `server.queue_dir: must be set`,
			`server.queue_max_bytes: must be positive`, `server.token_env: set only one of token_file and token_env`}},
		{"server ftp", "site: a\nserver: {url: 'ftp://x', queue_dir: q}\n", []string{`server.url: want an absolute http or https URL, got "ftp://x"`}},
		{"literal token", "site: a\nserver: {url: 'https://x', queue_dir: q, token: hunter2}\n", []string{
			`server.token: literal secrets are not allowed in the configuration; use token_file or token_env`}},
		{"bad token env", "site: a\nserver: {token_env: 'A-B'}\n", []string{`server.token_env: want an environment variable name`}},
		{"names and types", `site: a
targets:
  - {name: x, type: rapl}
  - {name: x, type: hwmon}
  - {type: rapl}
  - {name: y, type: toaster}
  - {name: z}
  - {name: "bad name", type: nvml}
`, []string{
			`targets[1].name: duplicate of targets[0].name "x"`, `targets[2].name: must be set`,
			`targets[3].type: unknown target type "toaster" (want one of rapl, hwmon, nvml, redfish, ipmi, snmp, mqtt, i2c)`,
			`targets[4].type: must be set`, `targets[5].name: want letters, digits`}},
		{"interval and labels", "site: a\ntargets: [{name: x, type: rapl, interval: -1s, labels: {site: b, __x: y, 9a: b, empty: ''}}]\n", []string{
			`targets[0].interval: must not be negative`, `targets[0].labels.site: site is set by the agent's site`,
			`targets[0].labels.__x: invalid label name`, `targets[0].labels.9a: invalid label name`, `targets[0].labels.empty: empty value`}},
		{"keys of another type", "site: a\ntargets: [{name: x, type: rapl, endpoint: 'https://b', bus: 1}, {name: g, type: nvml, sysfs: /sys}]\n", []string{
			`targets[0].endpoint: not used by type rapl`, `targets[0].bus: not used by type rapl`, `targets[1].sysfs: not used by type nvml`}},
		{"literal password", "site: a\ntargets: [{name: b, type: redfish, endpoint: 'https://10.0.0.1', username: u, password: secret}]\n", []string{
			`targets[0].password: literal passwords are not allowed in the configuration; use password_file or password_env`}},
		{"redfish requirements", "site: a\ntargets: [{name: b, type: redfish}, {name: c, type: redfish, endpoint: '10.0.0.1', username: u, password_file: f, password_env: P}]\n", []string{
			`targets[0].endpoint: must be set for a redfish target`, `targets[0].username: must be set`, `targets[0].password_file: must be set (or password_env)`,
			`targets[1].endpoint: want an absolute http or https URL`, `targets[1].password_env: set only one of password_file and password_env`}},
		{"redfish with env password and insecure tls", "site: a\ntargets: [{name: b, type: redfish, endpoint: 'https://10.0.0.1', username: u, password_env: BMC_PASS, tls: {insecure_skip_verify: true}}]\n", nil},
		{"ipmi requirements", "site: a\ntargets: [{name: b, type: ipmi, port: 70000}]\n", []string{
			`targets[0].host: must be set`, `targets[0].port: must be within [1, 65535]`, `targets[0].username: must be set`, `targets[0].password_file: must be set`}},
		{"snmp requirements", "site: a\ntargets: [{name: p, type: snmp}, {name: q, type: snmp, address: 'h:x', version: 4}, {name: r, type: snmp, address: h, version: 3}, {name: s, type: snmp, address: h, community: public}]\n", []string{
			`targets[0].address: must be set for an snmp target`, `targets[0].community_file: must be set (or community_env)`,
			`targets[1].address: invalid port in "h:x"`, `targets[1].version: want 1, 2c or 3, got "4"`,
			`targets[2].username: must be set for snmp version 3`,
			`targets[3].community: literal communities are not allowed in the configuration; use community_file or community_env`}},
		{"snmp v3 protocols", "site: a\ntargets: [{name: p, type: snmp, address: h, version: 3, username: u, auth_protocol: SHA1, priv_protocol: AES}, {name: q, type: snmp, address: h, version: 3, username: u, auth_protocol: SHA, priv_protocol: AES128}, {name: r, type: snmp, address: h, version: 3, username: u, priv_protocol: AES, priv_password_env: P}, {name: s, type: snmp, address: h, community_env: C, context: x, retries: 11}]\n", []string{
			`targets[0].auth_protocol: want MD5, SHA, SHA224, SHA256, SHA384 or SHA512, got "SHA1"`,
			`targets[0].priv_password_file: must be set (or priv_password_env)`,
			`targets[1].auth_password_file: must be set (or auth_password_env)`,
			`targets[1].priv_protocol: want DES, AES, AES192, AES256, AES192C or AES256C, got "AES128"`,
			`targets[2].auth_protocol: must be set when priv_protocol is`,
			`targets[3].context: only used with version 3`, `targets[3].retries: want within [0, 10], got 11`}},
		{"snmp v3 authPriv", "site: a\ntargets: [{name: p, type: snmp, address: 'h:1161', version: 3, username: u, auth_protocol: sha, auth_password_file: /a, priv_protocol: aes, priv_password_env: P, context: apc}]\n", nil},
		{"redfish and ipmi options", "site: a\ntargets: [{name: p, type: redfish, endpoint: 'https://b', username: u, password_env: P, auth: digest, timeout: -1s, min_interval: -1s, max_in_flight: 100}, {name: q, type: ipmi, host: h, username: u, password_env: P, cipher_suite: 18}, {name: r, type: ipmi, host: h, username: u, password_env: P, cipher_suite: 3, timeout: 2s}, {name: m, type: mqtt, broker: 'tcp://b:1883', topic: t, format: json}]\n", []string{
			`targets[0].auth: want session or basic, got "digest"`, `targets[0].timeout: must not be negative`,
			`targets[0].min_interval: must not be negative`, `targets[0].max_in_flight: want within [1, 64]`,
			`targets[1].cipher_suite: want an RMCP+ cipher suite id within [0, 17], got 18`,
			`targets[3].format: want tasmota or shelly, got "json"`}},
		{"snmp env community", "site: a\ntargets: [{name: p, type: snmp, address: 10.0.0.20, community_env: PDU_COMMUNITY}]\n", nil},
		{"mqtt requirements", "site: a\ntargets: [{name: m, type: mqtt}, {name: n, type: mqtt, broker: 'http://b:1', topic: t}]\n", []string{
			`targets[0].broker: must be set`, `targets[0].topic: must be set`, `targets[1].broker: want a broker URL such as tcp://host:1883`}},
		{"i2c requirements", "site: a\ntargets: [{name: e, type: i2c}, {name: f, type: i2c, bus: -1, devices: [{address: 0x40}, {chip: ina219, address: 0x40, shunt_ohms: -1}, {chip: x, address: 0x80}]}]\n", []string{
			`targets[0].bus: must be set`, `targets[0].devices: must list at least one device`,
			`targets[1].bus: must not be negative`, `targets[1].devices[0].chip: must be set`,
			`targets[1].devices[1].address: 0x40 is already used by devices[0]`, `targets[1].devices[1].shunt_ohms: must not be negative`,
			`targets[1].devices[2].address: want a 7-bit address within [0x03, 0x77], got 0x80`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadAgent(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("missing %q in:\n%v", want, err)
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("not a FieldError: %T", err)
			}
		})
	}
}

// A literal secret's value is never kept, so it cannot leak through the struct.
func TestAgentLiteralSecretNotKept(t *testing.T) {
	c, err := LoadAgent(strings.NewReader("site: a\nserver: {token: hunter2}\ntargets: [{name: b, type: ipmi, host: h, username: u, password: hunter3}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v", c); strings.Contains(s, "hunter") {
		t.Fatalf("secret kept: %s", s)
	}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter") {
		t.Fatalf("err = %v", err)
	}
}

func TestAgentEnvExpansion(t *testing.T) {
	env := map[string]string{"SITE": "fra1", "NODE_NAME": "worker-7"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	out, err := expandEnv([]byte("site: ${SITE}\ntargets: [{name: host, type: rapl, labels: {node: ${NODE_NAME}}}]\nprice: $5\n"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := "site: fra1\ntargets: [{name: host, type: rapl, labels: {node: worker-7}}]\nprice: $5\n"; string(out) != want {
		t.Fatalf("got %q", out)
	}
	if _, err := expandEnv([]byte("site: ${NOPE}\nx: ${ALSO_NOPE}\n"), lookup); err == nil || !strings.Contains(err.Error(), "NOPE, ALSO_NOPE") {
		t.Fatalf("err %v", err)
	}
	t.Setenv("GL_TEST_SITE", "ams1")
	c, err := LoadAgent(strings.NewReader("site: ${GL_TEST_SITE}\n"))
	if err != nil || c.Site != "ams1" {
		t.Fatalf("LoadAgent: %v %q", err, c.Site)
	}
}
