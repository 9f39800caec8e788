// Package pdu reads rack PDUs and UPSes over SNMP (v1, v2c, v3 USM) and
// emits their power, energy, current, voltage, power factor, temperature and
// humidity as greenloop's canonical series.
//
// What to read on which device is data, not code: vendor profiles (embedded
// YAML under profiles/) name the table columns, their units as the vendor's
// MIB states them, the "not supported" markers, and the component and
// sensor labels. A profile is picked by the device's sysObjectID (profile
// "auto" or empty), or forced by name. Shipped profiles: apc-rpdu2 and
// apc-rpdu (APC PowerNet-MIB), raritan-pdu2 (PDU2-MIB, values scaled by the
// MIB's decimal-digits columns), servertech-sentry3, servertech-sentry4,
// eaton-epdu, vertiv-geist (GEIST-V5 and VERTIV-V5), liebert-gp
// (LIEBERT-GP environmental tables) and ups-mib (RFC 1628, the fallback for
// any device that answers upsIdent).
//
// Every reading carries source="snmp", component (inlet, phase, bank,
// branch for an over-current protector, outlet, ambient, ups_input,
// ups_output, ups_battery), sensor (the name the operator gave the outlet
// or inlet on the device, else its number) and index (the row's SNMP
// index, so that two outlets with the same name stay two series). Energy is emitted as a monotonic counter in
// joules: when a device's counter goes down (reset, reboot), the collector
// carries on from the last value it emitted.
package pdu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "snmp"

// Defaults for a zero Config field.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultRetries        = 1
	DefaultMaxRepetitions = 25
	DefaultPort           = 161
)

// LabelIndex is the label holding a table row's SNMP index.
const LabelIndex = "index"

// ErrUnknownDevice says no profile matches the device: its sysObjectID is
// not one a profile lists, and it does not answer the UPS-MIB.
var ErrUnknownDevice = errors.New("no profile matches the device")

// Config is one SNMP target.
type Config struct {
	// Address is the agent's host or host:port; the port defaults to 161.
	Address string
	// Version is "1", "2c" (the default when empty) or "3".
	Version string
	// Community is the SNMPv1/v2c community. It is a secret: never logged.
	Community string
	// SNMPv3 USM: Username; AuthProtocol (MD5, SHA, SHA224, SHA256,
	// SHA384, SHA512) with AuthPassword; PrivProtocol (DES, AES, AES192,
	// AES256, AES192C, AES256C) with PrivPassword; Context is the context
	// name. No auth protocol means noAuthNoPriv; auth without priv means
	// authNoPriv. The passwords are never logged.
	Username, AuthProtocol, AuthPassword, PrivProtocol, PrivPassword, Context string
	// Profile is "auto" (or empty) to pick the profile by sysObjectID, or
	// a profile's name.
	Profile string
	// Timeout bounds one whole collection; each request may take
	// Timeout/(Retries+1) per attempt. Zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a request is sent again after a timeout;
	// nil means DefaultRetries.
	Retries *int
	// MaxRepetitions is GetBulk's max-repetitions; zero means
	// DefaultMaxRepetitions.
	MaxRepetitions int
	// Profiles to choose from; nil means Builtin().
	Profiles *Profiles
}

// Collector reads one SNMP agent. Build it with New; Close it when done.
type Collector struct {
	addr     string // host:port
	host     string
	port     uint16
	cfg      Config
	timeout  time.Duration
	retries  int
	maxRep   int
	profiles *Profiles
	forced   *Profile
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	g        *gosnmp.GoSNMP // connected lazily, dropped after a failure
	chosen   *Profile       // profile picked by detection, kept while it works
	counters map[seriesKey]*counter
	// varbindLimit bounds the varbinds of one request; it starts at
	// maxVarbinds and is halved when the agent answers tooBig or genErr.
	varbindLimit int
}

// counter makes a device's energy reading monotonic across resets.
type counter struct {
	last   int64 // last raw reading, µJ
	offset int64 // sum of the readings lost to resets, µJ
}

// New checks cfg and returns a collector. It does not contact the device.
func New(cfg Config, deps collectors.Deps) (*Collector, error) {
	deps = deps.WithDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	host, port, err := splitAddress(cfg.Address)
	if err != nil {
		bad("address: %w", err)
	}
	switch cfg.Version {
	case "":
		cfg.Version = "2c"
	case "1", "2c", "3":
	default:
		bad("version %q: want 1, 2c or 3", cfg.Version)
	}
	if (cfg.Version == "1" || cfg.Version == "2c") && cfg.Community == "" {
		bad("version %s needs a community", cfg.Version)
	}
	if cfg.Version == "3" {
		if cfg.Username == "" {
			bad("version 3 needs a username")
		}
		if _, ok := authProtocols[strings.ToUpper(cfg.AuthProtocol)]; !ok {
			bad("auth protocol %q: want MD5, SHA, SHA224, SHA256, SHA384 or SHA512", cfg.AuthProtocol)
		}
		if _, ok := privProtocols[strings.ToUpper(cfg.PrivProtocol)]; !ok {
			bad("priv protocol %q: want DES, AES, AES192, AES256, AES192C or AES256C", cfg.PrivProtocol)
		}
		if (cfg.AuthProtocol == "") != (cfg.AuthPassword == "") {
			bad("auth protocol and auth password go together")
		}
		if (cfg.PrivProtocol == "") != (cfg.PrivPassword == "") {
			bad("priv protocol and priv password go together")
		}
		if cfg.PrivProtocol != "" && cfg.AuthProtocol == "" {
			bad("privacy needs authentication (authPriv)")
		}
		if cfg.AuthPassword != "" && len(cfg.AuthPassword) < 8 {
			bad("auth password shorter than 8 characters (RFC 3414)")
		}
		if cfg.PrivPassword != "" && len(cfg.PrivPassword) < 8 {
			bad("priv password shorter than 8 characters (RFC 3414)")
		}
	}
	retries := DefaultRetries
	if cfg.Retries != nil {
		retries = *cfg.Retries
		if retries < 0 || retries > 10 {
			bad("retries %d: want 0 to 10", retries)
		}
	}
	timeout := cfg.Timeout
	if timeout < 0 {
		bad("timeout %s is negative", timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	maxRep := cfg.MaxRepetitions
	if maxRep < 0 || maxRep > 1000 {
		bad("max repetitions %d: want 0 to 1000", maxRep)
	}
	if maxRep == 0 {
		maxRep = DefaultMaxRepetitions
	}
	profiles := cfg.Profiles
	if profiles == nil {
		if profiles, err = Builtin(); err != nil {
			return nil, err
		}
	}
	var forced *Profile
	if cfg.Profile != "" && cfg.Profile != "auto" {
		p, ok := profiles.Get(cfg.Profile)
		if !ok {
			bad("profile %q: want auto or one of %s", cfg.Profile, strings.Join(profiles.Names(), ", "))
		}
		forced = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pdu: %s: %w", cfg.Address, err)
	}
	return &Collector{
		addr: net.JoinHostPort(host, strconv.Itoa(int(port))), host: host, port: port,
		cfg: cfg, timeout: timeout, retries: retries, maxRep: maxRep,
		profiles: profiles, forced: forced, log: deps.Logger, now: deps.Now,
		counters: map[seriesKey]*counter{}, varbindLimit: maxVarbinds,
	}, nil
}

func splitAddress(a string) (string, uint16, error) {
	if a == "" {
		return "", 0, errors.New("empty")
	}
	host, ps, err := net.SplitHostPort(a)
	if err != nil {
		// No port (a host name, an IPv4 address, or a bare IPv6 address).
		if strings.Count(a, ":") == 1 {
			return "", 0, fmt.Errorf("%q: %w", a, err)
		}
		return strings.Trim(a, "[]"), DefaultPort, nil
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: no host", a)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("%q: bad port %q", a, ps)
	}
	return host, uint16(p), nil
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"": gosnmp.NoAuth, "MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA1": gosnmp.SHA,
	"SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"": gosnmp.NoPriv, "DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192,
	"AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

// connect builds and connects the gosnmp session (a UDP socket; no packet
// is sent).
func (c *Collector) connect() error {
	g := &gosnmp.GoSNMP{
		Target:             c.host,
		Port:               c.port,
		Transport:          "udp",
		Timeout:            c.timeout / time.Duration(c.retries+1),
		Retries:            c.retries,
		ExponentialTimeout: false,
		MaxOids:            maxVarbinds,
		MaxRepetitions:     uint32(c.maxRep),
	}
	switch c.cfg.Version {
	case "1":
		g.Version, g.Community = gosnmp.Version1, c.cfg.Community
	case "2c":
		g.Version, g.Community = gosnmp.Version2c, c.cfg.Community
	case "3":
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		g.ContextName = c.cfg.Context
		usm := &gosnmp.UsmSecurityParameters{
			UserName:                 c.cfg.Username,
			AuthenticationProtocol:   authProtocols[strings.ToUpper(c.cfg.AuthProtocol)],
			AuthenticationPassphrase: c.cfg.AuthPassword,
			PrivacyProtocol:          privProtocols[strings.ToUpper(c.cfg.PrivProtocol)],
			PrivacyPassphrase:        c.cfg.PrivPassword,
		}
		switch {
		case c.cfg.PrivProtocol != "":
			g.MsgFlags = gosnmp.AuthPriv
		case c.cfg.AuthProtocol != "":
			g.MsgFlags = gosnmp.AuthNoPriv
		default:
			g.MsgFlags = gosnmp.NoAuthNoPriv
		}
		g.SecurityParameters = usm
	}
	if err := g.Connect(); err != nil {
		return c.snmpError("connect", err)
	}
	c.g = g
	return nil
}

// Close releases the socket.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
	return nil
}

func (c *Collector) drop() {
	if c.g != nil && c.g.Conn != nil {
		c.g.Conn.Close()
	}
	c.g = nil
}

// Profile returns the name of the profile in use: the forced one, or the one
// the last collection detected ("" before).
func (c *Collector) Profile() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forced != nil {
		return c.forced.Name
	}
	if c.chosen != nil {
		return c.chosen.Name
	}
	return ""
}

// Collect reads the device once and emits its readings. It fails with an
// error naming the address when the device does not answer within the
// timeout, with ErrUnknownDevice when no profile fits it, and with
// collectors.ErrNoData when its profile finds no reading.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.g == nil {
		if err := c.connect(); err != nil {
			return err
		}
	}
	c.g.Context = ctx
	err := c.collect(ctx, emit)
	if err != nil && !errors.Is(err, collectors.ErrNoData) && !errors.Is(err, ErrUnknownDevice) {
		// A fresh session next time (new socket; SNMPv3 rediscovers the
		// engine, which a rebooted device needs).
		c.drop()
		c.chosen = nil
	}
	return err
}

func (c *Collector) collect(ctx context.Context, emit collectors.Emitter) error {
	p := c.forced
	if p == nil {
		p = c.chosen
	}
	if p == nil {
		var err error
		if p, err = c.detect(); err != nil {
			return err
		}
		c.log.Info("pdu: profile selected", "address", c.addr, "profile", p.Name)
	}
	data, walkErr := c.walkColumns(p.columns())
	if data == nil {
		return walkErr
	}
	rs, skipped := evaluate(p, data)
	if len(skipped) > 0 {
		c.log.Debug("pdu: values skipped", "address", c.addr, "profile", p.Name, "count", len(skipped), "first", skipped[0])
	}
	if len(rs) == 0 {
		c.chosen = nil
		return errors.Join(walkErr, fmt.Errorf("pdu: %s: profile %s found no reading: %w", c.addr, p.Name, collectors.ErrNoData))
	}
	if c.forced == nil {
		c.chosen = p
	}
	at := c.now()
	for _, r := range rs {
		emit.Emit(c.toReading(r, at))
	}
	return walkErr
}

// detect picks the profile for the device: the highest-priority profile
// whose sysObjectID prefix matches and whose probe (if any) answers, else a
// fallback profile whose probe answers.
func (c *Collector) detect() (*Profile, error) {
	oid, err := c.sysObjectID()
	if err != nil {
		return nil, err
	}
	var cands []*Profile
	for _, p := range c.profiles.list {
		for _, pre := range p.Match.SysObjectID {
			if oid != "" && hasOIDPrefix(oid, pre) {
				cands = append(cands, p)
				break
			}
		}
	}
	sortByPriority(cands)
	var fallbacks []*Profile
	for _, p := range c.profiles.list {
		if p.Match.Fallback {
			fallbacks = append(fallbacks, p)
		}
	}
	sortByPriority(fallbacks)
	for _, p := range append(cands, fallbacks...) {
		if p.Match.Probe == "" {
			return p, nil
		}
		ok, err := c.probe(p.Match.Probe)
		if err != nil {
			return nil, err
		}
		if ok {
			return p, nil
		}
	}
	if oid == "" {
		oid = "none"
	}
	return nil, fmt.Errorf("pdu: %s: sysObjectID %s: %w (known: %s; the UPS-MIB does not answer either)",
		c.addr, oid, ErrUnknownDevice, strings.Join(c.profiles.Names(), ", "))
}

// sortByPriority orders profiles by decreasing priority, keeping file order
// among equals.
func sortByPriority(ps []*Profile) {
	slices.SortStableFunc(ps, func(a, b *Profile) int { return b.Priority - a.Priority })
}

// toReading gives an extracted value its metric, typed unit, labels and
// time; energy goes through the reset correction.
func (c *Collector) toReading(r reading, at time.Time) collectors.Reading {
	ls := make([]sample.Label, 0, 4)
	ls = append(ls, sample.Label{Name: collectors.LabelSource, Value: Type},
		sample.Label{Name: collectors.LabelComponent, Value: r.component},
		sample.Label{Name: collectors.LabelSensor, Value: r.sensor})
	if r.index != "" {
		ls = append(ls, sample.Label{Name: LabelIndex, Value: r.index})
	}
	switch r.q {
	case qPower:
		return collectors.PowerReading(units.Power(r.value)*units.Microwatt, at, ls...)
	case qEnergy:
		return collectors.EnergyReading(units.Energy(c.monotonic(r.key(), r.value))*units.Microjoule, at, ls...)
	case qCurrent:
		return collectors.CurrentReading(units.Current(r.value)*units.Milliampere, at, ls...)
	case qVoltage:
		return collectors.VoltageReading(units.Voltage(r.value)*units.Millivolt, at, ls...)
	case qTemperature:
		return collectors.TemperatureReading(units.Temperature(r.value)*units.MilliCelsius, at, ls...)
	case qApparentPower:
		return collectors.Reading{Metric: MetricApparentPower, Labels: ls, Value: float64(r.value) / 1e6, Time: at}
	case qPowerFactor:
		return collectors.Reading{Metric: MetricPowerFactor, Labels: ls, Value: float64(r.value) / 1e6, Time: at}
	default: // qHumidity
		return collectors.Reading{Metric: MetricHumidity, Labels: ls, Value: float64(r.value) / 1e6, Time: at}
	}
}

// monotonic returns the energy to emit for a raw reading (µJ) of series k.
func (c *Collector) monotonic(k seriesKey, raw int64) int64 {
	ct, ok := c.counters[k]
	if !ok {
		c.counters[k] = &counter{last: raw}
		return raw
	}
	if raw < ct.last {
		c.log.Info("pdu: energy counter went down, taken as a reset", "address", c.addr,
			"component", k.component, "sensor", k.sensor, "index", k.index)
		ct.offset += ct.last
	}
	ct.last = raw
	return ct.offset + raw
}
