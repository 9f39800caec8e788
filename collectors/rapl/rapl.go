// Package rapl reads Intel/AMD RAPL energy counters from the Linux powercap
// tree (<sysfs>/class/powercap/intel-rapl:N[:M], intel-rapl-mmio:N) and emits
// them as a monotonic greenloop_energy_joules_total, corrected for the
// counter's wrap at max_energy_range_uj and for device resets, plus
// greenloop_power_watts derived from the last two readings.
package rapl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/internal/sysfs"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type this package registers.
const Type = "rapl"

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(cfg.SysfsRoot(), deps), nil
	})
}

// MaxPlausiblePower bounds the power one zone can draw. When a counter goes
// down between two readings, the step is taken as a wrap at
// max_energy_range_uj if the energy it implies stays under this power over the
// time between the readings, and as a device reset otherwise. A whole package
// draws well under 1 kW today.
const MaxPlausiblePower = 1500 * units.Watt

// ErrPermission says energy_uj could not be read for lack of permission
// (the file is root-only on current kernels).
var ErrPermission = errors.New("rapl: permission denied reading energy_uj")

// permissionFix is said once, with the first ErrPermission.
const permissionFix = "give the agent CAP_DAC_READ_SEARCH (systemd: AmbientCapabilities=CAP_DAC_READ_SEARCH), " +
	"or make energy_uj readable to its user (a udev rule or tmpfiles.d entry that runs chmod 0444 on " +
	"class/powercap/*/energy_uj)"

// Collector reads every enabled powercap zone under one sysfs root.
// Its zero value is not usable; build it with New.
type Collector struct {
	root string
	log  *slog.Logger
	now  func() time.Time
	// readAttr is sysfs.ReadAttr; tests replace it to provoke errors that
	// file modes cannot provoke when they run as root.
	readAttr func(string) ([]byte, error)

	mu          sync.Mutex
	zones       map[string]*zoneState
	toldNoPerms bool
}

// zoneState is what one zone carries from one collection to the next.
type zoneState struct {
	raw   uint64       // last energy_uj read
	total units.Energy // monotonic counter emitted
	at    time.Time    // when raw was read
}

// New returns a collector for the powercap zones under sysfsRoot (usually "/sys").
func New(sysfsRoot string, deps collectors.Deps) *Collector {
	deps = deps.WithDefaults()
	return &Collector{
		root:     sysfsRoot,
		log:      deps.Logger,
		now:      deps.Now,
		readAttr: sysfs.ReadAttr,
		zones:    map[string]*zoneState{},
	}
}

// Collect reads every enabled zone and emits its energy counter, and its
// power from the second collection of that zone on. A zone that cannot be
// read is named in the returned error; the other zones are still emitted.
// Without a powercap tree it returns an error wrapping collectors.ErrNoData.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(c.root, "class", "powercap")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rapl: no powercap tree at %s: %w", dir, collectors.ErrNoData)
		}
		return fmt.Errorf("rapl: %w", err)
	}
	var errs []error
	found, denied := 0, 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !isZoneDir(e.Name()) {
			continue // the control types (intel-rapl), or a malformed name (intel-rapl:a)
		}
		err := c.collectZone(filepath.Join(dir, e.Name()), e.Name(), emit)
		switch {
		case err == nil:
			found++
		case errors.Is(err, errZoneDisabled), errors.Is(err, fs.ErrNotExist):
			// Disabled, or gone between listing and reading: nothing to say.
		case errors.Is(err, fs.ErrPermission):
			denied++
		default:
			errs = append(errs, err)
		}
	}
	if denied > 0 {
		if !c.toldNoPerms {
			c.toldNoPerms = true
			errs = append(errs, fmt.Errorf("%w in %d zone(s) under %s; to fix: %s", ErrPermission, denied, dir, permissionFix))
		} else {
			errs = append(errs, fmt.Errorf("%w in %d zone(s) (fix given before)", ErrPermission, denied))
		}
	}
	if found == 0 && len(errs) == 0 {
		return fmt.Errorf("rapl: no enabled zone under %s: %w", dir, collectors.ErrNoData)
	}
	return errors.Join(errs...)
}

var errZoneDisabled = errors.New("zone disabled")

func (c *Collector) collectZone(dir, zone string, emit collectors.Emitter) error {
	read := func(name string) ([]byte, error) { return c.readAttr(filepath.Join(dir, name)) }
	if b, err := read("enabled"); err == nil {
		if on, err := sysfs.ParseBool(b); err == nil && !on {
			return errZoneDisabled
		}
	} // no or odd "enabled": zones without the file are enabled
	nameB, err := read("name")
	if err != nil {
		return fmt.Errorf("rapl: %s: %w", zone, err)
	}
	b, err := read("energy_uj")
	if err != nil {
		return fmt.Errorf("rapl: %s: %w", zone, err)
	}
	raw, err := sysfs.ParseUint(b)
	if err != nil {
		return fmt.Errorf("rapl: %s/energy_uj: %w", zone, err)
	}
	var maxRange uint64
	if b, err := read("max_energy_range_uj"); err == nil {
		maxRange, _ = sysfs.ParseUint(b) // unknown range: every decrease is a reset
	}
	now := c.now()
	labels := func() []sample.Label {
		return []sample.Label{
			{Name: collectors.LabelSource, Value: "rapl"},
			{Name: collectors.LabelComponent, Value: Component(string(nameB))},
			{Name: collectors.LabelSensor, Value: zone},
		}
	}
	st, seen := c.zones[zone]
	if !seen {
		st = &zoneState{raw: raw, total: units.Energy(raw), at: now}
		c.zones[zone] = st
		emit.Emit(collectors.EnergyReading(st.total, now, labels()...))
		return nil
	}
	dt := now.Sub(st.at)
	d, kind := Advance(st.raw, raw, maxRange, dt)
	if kind == StepReset {
		c.log.Warn("rapl: energy counter went back, taken as a device reset", "zone", zone, "from", st.raw, "to", raw)
	}
	st.raw, st.at = raw, now
	st.total += d
	emit.Emit(collectors.EnergyReading(st.total, now, labels()...))
	if kind != StepReset && dt > 0 {
		emit.Emit(collectors.PowerReading(PowerOver(d, dt), now, labels()...))
	}
	return nil
}

// StepKind says how Advance read the step from one counter value to the next.
type StepKind int

// Kinds of step.
const (
	StepForward StepKind = iota // the counter went up (or stayed)
	StepWrap                    // the counter wrapped at max_energy_range_uj
	StepReset                   // the counter went back and a wrap is implausible: the device was reset
)

// Advance returns the energy used between two raw readings prev and cur of a
// counter that wraps at maxRange, dt apart. A decrease is a wrap when the
// energy it implies, maxRange-prev+cur, is possible at MaxPlausiblePower over
// dt; otherwise it is a reset and Advance returns 0 (the counter continues from
// the new value without a step back).
func Advance(prev, cur, maxRange uint64, dt time.Duration) (units.Energy, StepKind) {
	if cur >= prev {
		return units.Energy(cur - prev), StepForward
	}
	if maxRange == 0 || prev > maxRange || cur > maxRange || dt <= 0 {
		return 0, StepReset
	}
	wrapped := maxRange - prev + cur
	limit := float64(MaxPlausiblePower) / float64(units.Watt) * float64(units.Joule) * dt.Seconds()
	if float64(wrapped) > limit {
		return 0, StepReset
	}
	return units.Energy(wrapped), StepWrap
}

// PowerOver returns the mean power of using e over dt (dt > 0).
func PowerOver(e units.Energy, dt time.Duration) units.Power {
	return units.Power(float64(e)/dt.Seconds() + 0.5)
}

// isZoneDir reports whether name is a powercap zone of the RAPL control types:
// intel-rapl:N, intel-rapl:N:M or intel-rapl-mmio:N (N, M decimal).
func isZoneDir(name string) bool {
	var rest string
	switch {
	case strings.HasPrefix(name, "intel-rapl:"):
		rest = name[len("intel-rapl:"):]
	case strings.HasPrefix(name, "intel-rapl-mmio:"):
		rest = name[len("intel-rapl-mmio:"):]
	default:
		return false
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// Component maps a zone's name file to the component label: "package-0" is
// "package"; core, uncore, dram and psys keep their names; anything else is
// kept too, lower-cased, so a new kind of zone is visible rather than dropped.
func Component(zoneName string) string {
	n := strings.ToLower(strings.TrimSpace(zoneName))
	if strings.HasPrefix(n, "package") {
		return "package"
	}
	if n == "" {
		return "unknown"
	}
	return n
}
