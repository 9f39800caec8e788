package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Agent is the configuration of `greenloop agent` and `greenloop collect --once`
// (DESIGN.md, "Configuration").
type Agent struct {
	// Site is the id every reading carries as the "site" label.
	Site string `yaml:"site"`
	// Interval is the default poll interval; a target may set its own.
	Interval Duration `yaml:"interval"`
	// Server is where readings are pushed; without a URL the agent is pull-only (/metrics).
	Server AgentServer `yaml:"server"`
	// Listen is the address of /metrics and /healthz, host:port; empty serves neither.
	Listen  string   `yaml:"listen"`
	Targets []Target `yaml:"targets"`
}

// AgentServer says where and how the agent pushes its readings.
type AgentServer struct {
	// URL is the server's base URL, absolute http or https; empty = pull-only.
	URL string `yaml:"url"`
	// TokenFile holds the agent's bearer token; TokenEnv names an environment
	// variable holding it instead. At most one of them; neither = no auth.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Token is a literal token: refused by Validate (secrets come from files or the environment).
	Token LiteralSecret `yaml:"token"`
	// QueueDir is the disk queue for store-and-forward; required with URL.
	QueueDir string `yaml:"queue_dir"`
	// QueueMaxBytes bounds the disk queue; when full, the oldest data is dropped. Default 1GiB.
	QueueMaxBytes ByteSize `yaml:"queue_max_bytes"`
}

// Pushes reports whether the agent pushes to a server (a URL is set).
func (s AgentServer) Pushes() bool { return s.URL != "" }

// Target is one configured source of readings. Which keys apply depends on
// Type; keys of types whose collectors are not built yet are kept so a full
// configuration loads and validates today.
type Target struct {
	// Name is unique in the agent's configuration; it is the default "node" label.
	Name string `yaml:"name"`
	// Type is one of TargetTypes.
	Type string `yaml:"type"`
	// Interval overrides the agent's interval; zero uses it.
	Interval Duration `yaml:"interval"`
	// Labels are added to every reading of the target (node overrides the
	// default, the target's name). They may not set site.
	Labels map[string]string `yaml:"labels"`

	// Sysfs is the sysfs root of rapl and hwmon targets; empty means /sys.
	Sysfs string `yaml:"sysfs"`

	// Endpoint is a Redfish service's base URL (https://bmc).
	Endpoint string `yaml:"endpoint"`
	// Username for redfish, ipmi, snmp v3 and mqtt.
	Username string `yaml:"username"`
	// PasswordFile or PasswordEnv supply the password; at most one of them.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Password is a literal password: refused by Validate.
	Password LiteralSecret `yaml:"password"`
	TLS      TargetTLS     `yaml:"tls"`
	// Auth is how a Redfish target authenticates: "session" (default; one
	// session reused across polls, closed on shutdown) or "basic".
	Auth string `yaml:"auth"`
	// Timeout bounds one request to the device; zero = the collector's default.
	Timeout Duration `yaml:"timeout"`
	// MinInterval: a Redfish BMC is never read more often than this (its
	// sensors refresh slowly); zero means 10s.
	MinInterval Duration `yaml:"min_interval"`
	// MaxInFlight bounds the concurrent requests to one Redfish BMC; zero means 4.
	MaxInFlight int `yaml:"max_in_flight"`

	// Host and Port address an IPMI BMC (RMCP+, port 623 by default).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// CipherSuite is the IPMI RMCP+ cipher suite id (default 17; ipmi_sim speaks only 3).
	CipherSuite *int `yaml:"cipher_suite"`

	// Address is an SNMP agent's host:port (port 161 by default).
	Address string `yaml:"address"`
	// Version is the SNMP version: 1, 2c (default) or 3.
	Version string `yaml:"version"`
	// CommunityFile or CommunityEnv supply the SNMP v1/v2c community.
	CommunityFile string `yaml:"community_file"`
	CommunityEnv  string `yaml:"community_env"`
	// Community is a literal community string: refused by Validate.
	Community LiteralSecret `yaml:"community"`
	// Profile names the PDU vendor profile; "auto" (default) detects it.
	Profile string `yaml:"profile"`
	// AuthProtocol (MD5, SHA, SHA224, SHA256, SHA384, SHA512) and its
	// password, for SNMP v3; AuthPasswordFile/Env supply the passphrase.
	AuthProtocol     string `yaml:"auth_protocol"`
	AuthPasswordFile string `yaml:"auth_password_file"`
	AuthPasswordEnv  string `yaml:"auth_password_env"`
	// PrivProtocol (DES, AES, AES192, AES256, AES192C, AES256C) and its
	// password, for SNMP v3 authPriv.
	PrivProtocol     string `yaml:"priv_protocol"`
	PrivPasswordFile string `yaml:"priv_password_file"`
	PrivPasswordEnv  string `yaml:"priv_password_env"`
	// Context is the SNMP v3 context name.
	Context string `yaml:"context"`
	// Retries is the number of retries per SNMP request after a timeout (default 1).
	Retries *int `yaml:"retries"`

	// Broker is an MQTT broker URL (tcp://, ssl://, ws://, wss://, mqtt://, mqtts://).
	Broker string `yaml:"broker"`
	// Topic is the MQTT topic filter to subscribe to.
	Topic string `yaml:"topic"`
	// Format is the payload format of the MQTT messages (e.g. tasmota).
	Format string `yaml:"format"`

	// Bus is the I2C bus number (/dev/i2c-N); required for i2c targets.
	Bus *int `yaml:"bus"`
	// Devices are the I2C sensors on the bus.
	Devices []I2CDevice `yaml:"devices"`
}

// TargetTLS configures TLS towards a target.
type TargetTLS struct {
	// CAFile verifies the target's certificate against this CA bundle.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify turns certificate verification off; only when asked for.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// I2CDevice is one sensor on an I2C bus.
type I2CDevice struct {
	// Chip is the sensor model, e.g. ina219, ina3221, bme280.
	Chip string `yaml:"chip"`
	// Address is the 7-bit bus address, e.g. 0x40.
	Address int `yaml:"address"`
	// ShuntOhms is the shunt resistor of a current/power monitor.
	ShuntOhms float64 `yaml:"shunt_ohms"`
}

// LiteralSecret marks a secret written into the configuration itself. Its
// value is never kept: only that it was there, so Validate can refuse it.
type LiteralSecret bool

// UnmarshalYAML implements yaml.Unmarshaler; it discards the value.
func (s *LiteralSecret) UnmarshalYAML(*yaml.Node) error {
	*s = true
	return nil
}

// TargetTypes are the target types the configuration knows, whether or not
// this build has their collectors.
var TargetTypes = []string{"rapl", "hwmon", "nvml", "redfish", "ipmi", "snmp", "mqtt", "i2c"}

// Defaults applied by DefaultAgent and Target methods.
const (
	DefaultAgentInterval = 10 * time.Second
	DefaultAgentListen   = "127.0.0.1:9101"
	DefaultQueueMaxBytes = ByteSize(1 << 30)
	DefaultIPMIPort      = 623
	DefaultSNMPPort      = 161
)

// DefaultAgent returns the agent configuration with every default filled in.
// It has no site and no targets, so it does not validate on its own.
func DefaultAgent() Agent {
	return Agent{
		Interval: Duration(DefaultAgentInterval),
		Server:   AgentServer{QueueMaxBytes: DefaultQueueMaxBytes},
		Listen:   DefaultAgentListen,
	}
}

// LoadAgent reads YAML over the defaults. Unknown keys are errors, so typos surface.
func LoadAgent(r io.Reader) (Agent, error) {
	c := DefaultAgent()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	data, err = expandEnv(data, os.LookupEnv)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("parse config: %w", err)
	}
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} with the environment variable NAME, so one file
// serves every node of a DaemonSet (site: ${SITE}, labels: {node: ${NODE_NAME}}).
// Only the braced form is expanded; an unset variable is an error naming it.
// Secrets still come from *_file or *_env keys, never through expansion.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var missing []string
	out := envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
			return m
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return data, fmt.Errorf("config refers to unset environment variable(s): %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// LoadAgentFile is LoadAgent on a file.
func LoadAgentFile(path string) (Agent, error) {
	f, err := os.Open(path)
	if err != nil {
		return DefaultAgent(), fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	c, err := LoadAgent(f)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// TargetInterval returns the poll interval of t: its own, else the agent's.
func (c *Agent) TargetInterval(t Target) time.Duration {
	if t.Interval > 0 {
		return t.Interval.D()
	}
	return c.Interval.D()
}

// Node returns the target's "node" label: labels.node, else its name.
func (t Target) Node() string {
	if n := t.Labels["node"]; n != "" {
		return n
	}
	return t.Name
}

var (
	targetNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	labelNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// targetKeys are the type-specific keys each type accepts (name, type,
// interval and labels are accepted by all).
var targetKeys = map[string][]string{
	"rapl":    {"sysfs"},
	"hwmon":   {"sysfs"},
	"nvml":    {},
	"redfish": {"endpoint", "username", "password_file", "password_env", "tls", "auth", "timeout", "min_interval", "max_in_flight"},
	"ipmi":    {"host", "port", "username", "password_file", "password_env", "cipher_suite", "timeout"},
	"snmp": {"address", "version", "community_file", "community_env", "username", "profile", "timeout", "retries",
		"auth_protocol", "auth_password_file", "auth_password_env", "priv_protocol", "priv_password_file", "priv_password_env", "context"},
	"mqtt": {"broker", "topic", "format", "username", "password_file", "password_env", "tls"},
	"i2c":  {"bus", "devices"},
}

// setKeys lists the type-specific keys t has a value for, in declaration order.
func (t Target) setKeys() []string {
	var ks []string
	add := func(set bool, k string) {
		if set {
			ks = append(ks, k)
		}
	}
	add(t.Sysfs != "", "sysfs")
	add(t.Endpoint != "", "endpoint")
	add(t.Username != "", "username")
	add(t.PasswordFile != "", "password_file")
	add(t.PasswordEnv != "", "password_env")
	add(t.TLS != (TargetTLS{}), "tls")
	add(t.Auth != "", "auth")
	add(t.Timeout != 0, "timeout")
	add(t.MinInterval != 0, "min_interval")
	add(t.MaxInFlight != 0, "max_in_flight")
	add(t.CipherSuite != nil, "cipher_suite")
	add(t.AuthProtocol != "", "auth_protocol")
	add(t.AuthPasswordFile != "", "auth_password_file")
	add(t.AuthPasswordEnv != "", "auth_password_env")
	add(t.PrivProtocol != "", "priv_protocol")
	add(t.PrivPasswordFile != "", "priv_password_file")
	add(t.PrivPasswordEnv != "", "priv_password_env")
	add(t.Context != "", "context")
	add(t.Retries != nil, "retries")
	add(t.Host != "", "host")
	add(t.Port != 0, "port")
	add(t.Address != "", "address")
	add(t.Version != "", "version")
	add(t.CommunityFile != "", "community_file")
	add(t.CommunityEnv != "", "community_env")
	add(t.Profile != "", "profile")
	add(t.Broker != "", "broker")
	add(t.Topic != "", "topic")
	add(t.Format != "", "format")
	add(t.Bus != nil, "bus")
	add(len(t.Devices) > 0, "devices")
	return ks
}

// Validate reports every problem at once, each naming its field's path
// (site, server.url, targets[2].type, ...).
func (c *Agent) Validate() error {
	var errs []error
	add := func(path, format string, a ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	if !siteIDRe.MatchString(c.Site) {
		add("site", "want lower-case letters, digits, '-' or '_' (1-63), got %q", c.Site)
	}
	if c.Interval.D() <= 0 {
		add("interval", "must be positive, got %s", c.Interval)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen", "want host:port, got %q", c.Listen)
		}
	}
	s := c.Server
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("server.url", "want an absolute http or https URL, got %q", s.URL)
		}
		if s.QueueDir == "" {
			add("server.queue_dir", "must be set when server.url is (the disk queue for store-and-forward)")
		}
	}
	if s.QueueMaxBytes <= 0 {
		add("server.queue_max_bytes", "must be positive, got %d", s.QueueMaxBytes)
	}
	secretSource(add, "server", "token", s.Token, s.TokenFile, s.TokenEnv, false)

	seen := map[string]int{}
	for i, t := range c.Targets {
		p := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Name == "":
			add(p+".name", "must be set")
		case !targetNameRe.MatchString(t.Name):
			add(p+".name", "want letters, digits, '.', '-' or '_' (1-63), got %q", t.Name)
		default:
			if j, dup := seen[t.Name]; dup {
				add(p+".name", "duplicate of targets[%d].name %q", j, t.Name)
			} else {
				seen[t.Name] = i
			}
		}
		if t.Interval.D() < 0 {
			add(p+".interval", "must not be negative, got %s", t.Interval)
		}
		for _, k := range sortedKeys(t.Labels) {
			switch {
			case !labelNameRe.MatchString(k) || strings.HasPrefix(k, "__"):
				add(p+".labels."+k, "invalid label name %q", k)
			case k == "site":
				add(p+".labels.site", "site is set by the agent's site, not per target")
			case t.Labels[k] == "":
				add(p+".labels."+k, "empty value")
			}
		}
		allowed, known := targetKeys[t.Type]
		if !known {
			if t.Type == "" {
				add(p+".type", "must be set (one of %s)", strings.Join(TargetTypes, ", "))
			} else {
				add(p+".type", "unknown target type %q (want one of %s)", t.Type, strings.Join(TargetTypes, ", "))
			}
		} else {
			for _, k := range t.setKeys() {
				if !slices.Contains(allowed, k) {
					add(p+"."+k, "not used by type %s", t.Type)
				}
			}
		}
		// Literal secrets are refused whatever the type.
		if t.Password {
			add(p+".password", "literal passwords are not allowed in the configuration; use password_file or password_env")
		}
		if t.Community {
			add(p+".community", "literal communities are not allowed in the configuration; use community_file or community_env")
		}
		if !known {
			continue
		}
		c.validateTargetType(add, p, t)
	}
	return errors.Join(errs...)
}

type addFunc func(path, format string, a ...any)

// secretSource checks a secret given as <name>_file or <name>_env (never
// literally; at most one of the two; both absent is an error when required).
func secretSource(add addFunc, p, name string, literal LiteralSecret, file, env string, required bool) {
	if p != "" {
		p += "."
	}
	if literal {
		add(p+name, "literal secrets are not allowed in the configuration; use %s_file or %s_env", name, name)
	}
	if file != "" && env != "" {
		add(p+name+"_env", "set only one of %s_file and %s_env", name, name)
	}
	if env != "" && !envNameRe.MatchString(env) {
		add(p+name+"_env", "want an environment variable name, got %q", env)
	}
	if required && file == "" && env == "" && !bool(literal) {
		add(p+name+"_file", "must be set (or %s_env)", name)
	}
}

func (c *Agent) validateTargetType(add addFunc, p string, t Target) {
	noLiteral := LiteralSecret(false) // literal ones are reported once, above
	switch t.Type {
	case "redfish":
		if t.Endpoint == "" {
			add(p+".endpoint", "must be set for a redfish target (the BMC's base URL)")
		} else if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(p+".endpoint", "want an absolute http or https URL, got %q", t.Endpoint)
		}
		if t.Username == "" {
			add(p+".username", "must be set for a redfish target")
		}
		secretSource(add, p, "password", noLiteral, t.PasswordFile, t.PasswordEnv, !bool(t.Password))
		switch t.Auth {
		case "", "session", "basic":
		default:
			add(p+".auth", "want session or basic, got %q", t.Auth)
		}
		if t.Timeout < 0 {
			add(p+".timeout", "must not be negative, got %s", t.Timeout)
		}
		if t.MinInterval < 0 {
			add(p+".min_interval", "must not be negative, got %s", t.MinInterval)
		}
		if t.MaxInFlight < 0 || t.MaxInFlight > 64 {
			add(p+".max_in_flight", "want within [1, 64] (0 for the default), got %d", t.MaxInFlight)
		}
	case "ipmi":
		if t.Host == "" {
			add(p+".host", "must be set for an ipmi target")
		}
		if t.Port < 0 || t.Port > 65535 {
			add(p+".port", "must be within [1, 65535], got %d", t.Port)
		}
		if t.Username == "" {
			add(p+".username", "must be set for an ipmi target")
		}
		if t.CipherSuite != nil && (*t.CipherSuite < 0 || *t.CipherSuite > 17) {
			add(p+".cipher_suite", "want an RMCP+ cipher suite id within [0, 17], got %d", *t.CipherSuite)
		}
		if t.Timeout < 0 {
			add(p+".timeout", "must not be negative, got %s", t.Timeout)
		}
		secretSource(add, p, "password", noLiteral, t.PasswordFile, t.PasswordEnv, !bool(t.Password))
	case "snmp":
		if t.Address == "" {
			add(p+".address", "must be set for an snmp target (host or host:port)")
		} else if strings.Contains(t.Address, ":") {
			if _, port, err := net.SplitHostPort(t.Address); err != nil {
				add(p+".address", "want host or host:port, got %q", t.Address)
			} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				add(p+".address", "invalid port in %q", t.Address)
			}
		}
		switch t.Version {
		case "", "1", "2c":
			secretSource(add, p, "community", noLiteral, t.CommunityFile, t.CommunityEnv, !bool(t.Community))
		case "3":
			if t.Username == "" {
				add(p+".username", "must be set for snmp version 3")
			}
			switch strings.ToUpper(t.AuthProtocol) {
			case "":
				if t.PrivProtocol != "" {
					add(p+".auth_protocol", "must be set when priv_protocol is (authPriv needs authentication)")
				}
			case "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512":
				secretSource(add, p, "auth_password", noLiteral, t.AuthPasswordFile, t.AuthPasswordEnv, true)
			default:
				add(p+".auth_protocol", "want MD5, SHA, SHA224, SHA256, SHA384 or SHA512, got %q", t.AuthProtocol)
			}
			switch strings.ToUpper(t.PrivProtocol) {
			case "":
			case "DES", "AES", "AES192", "AES256", "AES192C", "AES256C":
				secretSource(add, p, "priv_password", noLiteral, t.PrivPasswordFile, t.PrivPasswordEnv, true)
			default:
				add(p+".priv_protocol", "want DES, AES, AES192, AES256, AES192C or AES256C, got %q", t.PrivProtocol)
			}
		default:
			add(p+".version", "want 1, 2c or 3, got %q", t.Version)
		}
		if t.Version != "3" {
			for _, k := range []struct {
				set  bool
				name string
			}{{t.AuthProtocol != "", "auth_protocol"}, {t.PrivProtocol != "", "priv_protocol"}, {t.Context != "", "context"},
				{t.AuthPasswordFile != "" || t.AuthPasswordEnv != "", "auth_password_file"},
				{t.PrivPasswordFile != "" || t.PrivPasswordEnv != "", "priv_password_file"}} {
				if k.set {
					add(p+"."+k.name, "only used with version 3")
				}
			}
		}
		if t.Retries != nil && (*t.Retries < 0 || *t.Retries > 10) {
			add(p+".retries", "want within [0, 10], got %d", *t.Retries)
		}
		if t.Timeout < 0 {
			add(p+".timeout", "must not be negative, got %s", t.Timeout)
		}
	case "mqtt":
		if t.Broker == "" {
			add(p+".broker", "must be set for an mqtt target (e.g. tcp://host:1883)")
		} else if u, err := url.Parse(t.Broker); err != nil || u.Host == "" ||
			!slices.Contains([]string{"tcp", "ssl", "tls", "ws", "wss", "mqtt", "mqtts"}, u.Scheme) {
			add(p+".broker", "want a broker URL such as tcp://host:1883, got %q", t.Broker)
		}
		if t.Topic == "" {
			add(p+".topic", "must be set for an mqtt target")
		}
		switch t.Format {
		case "", "tasmota", "shelly":
		default:
			add(p+".format", "want tasmota or shelly, got %q", t.Format)
		}
		secretSource(add, p, "password", noLiteral, t.PasswordFile, t.PasswordEnv, false)
	case "i2c":
		if t.Bus == nil {
			add(p+".bus", "must be set for an i2c target (the N of /dev/i2c-N)")
		} else if *t.Bus < 0 {
			add(p+".bus", "must not be negative, got %d", *t.Bus)
		}
		if len(t.Devices) == 0 {
			add(p+".devices", "must list at least one device")
		}
		addrs := map[int]int{}
		for j, d := range t.Devices {
			dp := fmt.Sprintf("%s.devices[%d]", p, j)
			if d.Chip == "" {
				add(dp+".chip", "must be set (e.g. ina3221, bme280)")
			}
			if d.Address < 0x03 || d.Address > 0x77 {
				add(dp+".address", "want a 7-bit address within [0x03, 0x77], got %#x", d.Address)
			} else if k, dup := addrs[d.Address]; dup {
				add(dp+".address", "%#x is already used by devices[%d]", d.Address, k)
			} else {
				addrs[d.Address] = j
			}
			if d.ShuntOhms < 0 {
				add(dp+".shunt_ohms", "must not be negative, got %v", d.ShuntOhms)
			}
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
