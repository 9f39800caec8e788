// Package collectors is the contract between greenloop's hardware sources and
// the agent: a Collector reads one target and hands each Reading, already in
// canonical units, to an Emitter the caller passes in; source packages
// (rapl, hwmon, ...) register a Factory under their target type in init.
package collectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// Canonical metric names (DESIGN.md, "Canonical series").
const (
	MetricPower       = "greenloop_power_watts"
	MetricEnergy      = "greenloop_energy_joules_total"
	MetricTemperature = "greenloop_temperature_celsius"
	MetricVoltage     = "greenloop_voltage_volts"
	MetricCurrent     = "greenloop_current_amperes"
)

// Label names collectors set. The caller adds site and node.
const (
	LabelSource    = "source"
	LabelComponent = "component"
	LabelSensor    = "sensor"
)

// ErrNoData says the target has nothing to read here (no powercap tree, no
// hwmon chip): normal on many hosts, not a failure. Check with errors.Is.
var ErrNoData = errors.New("collector returned no data")

// Reading is one sample of a canonical series.
type Reading struct {
	// Metric is one of the Metric* names.
	Metric string
	// Labels are the series' labels without the metric name, in a fixed
	// order; the caller adds site and node.
	Labels []sample.Label
	// Value is in the unit the metric name states (W, J, °C, V, A).
	Value float64
	// Time is when the value was read.
	Time time.Time
}

// Point returns the reading as a sample point (milliseconds since the epoch).
func (r Reading) Point() sample.Point { return sample.Point{T: r.Time.UnixMilli(), V: r.Value} }

// Series returns the reading as a one-point series, metric name under "__name__".
func (r Reading) Series() sample.Series {
	ls := make([]sample.Label, 0, len(r.Labels)+1)
	ls = append(ls, sample.Label{Name: "__name__", Value: r.Metric})
	ls = append(ls, r.Labels...)
	return sample.Series{Labels: ls, Points: []sample.Point{r.Point()}}
}

// String renders the reading as `metric{labels} value`, for logs and golden files.
func (r Reading) String() string {
	s := r.Series()
	return fmt.Sprintf("%s %v", sample.FormatLabels(s.Labels), r.Value)
}

// EnergyReading is a greenloop_energy_joules_total reading.
func EnergyReading(e units.Energy, t time.Time, labels ...sample.Label) Reading {
	return Reading{Metric: MetricEnergy, Labels: labels, Value: e.Joules(), Time: t}
}

// PowerReading is a greenloop_power_watts reading.
func PowerReading(p units.Power, t time.Time, labels ...sample.Label) Reading {
	return Reading{Metric: MetricPower, Labels: labels, Value: p.Watts(), Time: t}
}

// TemperatureReading is a greenloop_temperature_celsius reading.
func TemperatureReading(c units.Temperature, t time.Time, labels ...sample.Label) Reading {
	return Reading{Metric: MetricTemperature, Labels: labels, Value: c.Celsius(), Time: t}
}

// VoltageReading is a greenloop_voltage_volts reading.
func VoltageReading(v units.Voltage, t time.Time, labels ...sample.Label) Reading {
	return Reading{Metric: MetricVoltage, Labels: labels, Value: v.Volts(), Time: t}
}

// CurrentReading is a greenloop_current_amperes reading.
func CurrentReading(c units.Current, t time.Time, labels ...sample.Label) Reading {
	return Reading{Metric: MetricCurrent, Labels: labels, Value: c.Amperes(), Time: t}
}

// Emitter receives readings. Collectors build a fresh Labels slice for every
// reading, so an Emitter may keep it.
type Emitter interface {
	Emit(r Reading)
}

// EmitterFunc adapts a function to an Emitter.
type EmitterFunc func(Reading)

// Emit calls f(r).
func (f EmitterFunc) Emit(r Reading) { f(r) }

// Collector reads one target.
type Collector interface {
	// Collect reads the target once and emits every reading it could take.
	// A partial failure (one unreadable file) emits the rest and returns an
	// error naming what failed; absent hardware returns an error wrapping
	// ErrNoData. Collect is not called concurrently for the same Collector,
	// but a Collector keeps state between calls (counter wrap, derived power).
	Collect(ctx context.Context, emit Emitter) error
}

// TargetConfig is what a factory needs from one configured target.
type TargetConfig struct {
	// Name of the target, unique in the agent's configuration.
	Name string
	// Type selects the factory ("rapl", "hwmon", ...).
	Type string
	// Sysfs is the sysfs root for local sources; empty means "/sys".
	Sysfs string
	// Endpoint is the base URL of a network device (Redfish: https://bmc).
	Endpoint string
	// Username and Password authenticate to the device. The password comes
	// from a file or the environment, never the configuration itself, and is
	// never logged.
	Username, Password string
	// CAFile verifies the device's TLS certificate; InsecureSkipVerify skips
	// the check, only when the operator asked for it.
	CAFile             string
	InsecureSkipVerify bool
	// Timeout bounds one collection; zero means the collector's default.
	Timeout time.Duration
	// Auth is how a Redfish target authenticates: "session" (or empty) or "basic".
	Auth string
	// MinInterval and MaxInFlight tune a Redfish target: the shortest time
	// between two reads of the BMC and the concurrent requests to it; zero
	// means the collector's default.
	MinInterval time.Duration
	MaxInFlight int

	// Host, Port and CipherSuite address an IPMI BMC over RMCP+; Port 0 is
	// 623 and a nil CipherSuite the collector's default (17).
	Host        string
	Port        int
	CipherSuite *int

	// Address is an SNMP agent's host[:port]; Version is "1", "2c" or "3";
	// Community is the v1/v2c community; Profile is "auto" (or empty) or a
	// vendor profile's name; Retries is nil for the default.
	Address, Version, Community, Profile string
	Retries                              *int
	// SNMP v3 (USM): Username above, and these.
	AuthProtocol, AuthPassword, PrivProtocol, PrivPassword, Context string

	// Broker, Topic and Format configure an MQTT target (format "tasmota" or "shelly").
	Broker, Topic, Format string

	// Bus is the I2C bus number (/dev/i2c-N) and Devices the sensors on it.
	Bus     int
	Devices []I2CDevice
}

// I2CDevice is one sensor on an I2C bus.
type I2CDevice struct {
	// Chip is the sensor model: ina219, ina3221, bme280, bmp280.
	Chip string
	// Address is the 7-bit bus address.
	Address int
	// ShuntOhms is the shunt resistor of a current monitor; zero means the
	// chip's usual board value.
	ShuntOhms float64
}

// SysfsRoot returns Sysfs, or "/sys" when it is empty.
func (c TargetConfig) SysfsRoot() string {
	if c.Sysfs == "" {
		return "/sys"
	}
	return c.Sysfs
}

// Deps are the services a collector may use. The zero value is usable.
type Deps struct {
	// Logger receives the collector's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// WithDefaults returns d with nil fields replaced by their defaults.
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Factory builds a Collector for one target.
type Factory func(cfg TargetConfig, deps Deps) (Collector, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a factory available under a target type. It is meant to be
// called from a source package's init and panics when the type is empty, the
// factory nil, or the type already registered.
func Register(typ string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if typ == "" || f == nil {
		panic("collectors: Register with empty type or nil factory")
	}
	if _, dup := registry[typ]; dup {
		panic("collectors: type " + typ + " registered twice")
	}
	registry[typ] = f
}

// ErrUnknownType is returned by New for a type nobody registered.
var ErrUnknownType = errors.New("unknown collector type")

// New builds the collector for cfg.Type. The source package must be linked
// in (a blank import) for its type to be known.
func New(cfg TargetConfig, deps Deps) (Collector, error) {
	registryMu.RLock()
	f, ok := registry[cfg.Type]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("target %q: %w %q (known: %v)", cfg.Name, ErrUnknownType, cfg.Type, Types())
	}
	c, err := f(cfg, deps.WithDefaults())
	if err != nil {
		return nil, fmt.Errorf("target %q (%s): %w", cfg.Name, cfg.Type, err)
	}
	return c, nil
}

// Types returns the registered target types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	ts := make([]string, 0, len(registry))
	for t := range registry {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}
