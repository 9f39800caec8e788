// Package hwmon reads the Linux hwmon sensors under <sysfs>/class/hwmon
// (power and energy meters, temperatures, voltages, currents, including the
// INA226/INA3221-style monitors of edge boards) and emits them as canonical
// series, with "<chip>/<label>" as the sensor label.
package hwmon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/internal/sysfs"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type this package registers.
const Type = "hwmon"

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(cfg.SysfsRoot(), deps), nil
	})
}

// Collector reads every hwmon chip under one sysfs root. Build it with New.
type Collector struct {
	root string
	log  *slog.Logger
	now  func() time.Time

	mu sync.Mutex
	// energy holds, per energy channel ("hwmon3/energy1"), the last raw value
	// and the monotonic total emitted, so a counter that goes back (a driver
	// reload, a device reset) never makes the emitted counter go back.
	energy map[string]*energyState
}

type energyState struct {
	raw, total units.Energy
}

// New returns a collector for the hwmon chips under sysfsRoot (usually "/sys").
func New(sysfsRoot string, deps collectors.Deps) *Collector {
	deps = deps.WithDefaults()
	return &Collector{root: sysfsRoot, log: deps.Logger, now: deps.Now, energy: map[string]*energyState{}}
}

// Kind is the kind of quantity a sensor file holds.
type Kind string

// Kinds of sensor file read, named as in the hwmon sysfs interface.
const (
	KindPower       Kind = "power"  // µW
	KindEnergy      Kind = "energy" // µJ
	KindTemperature Kind = "temp"   // m°C
	KindVoltage     Kind = "in"     // mV
	KindCurrent     Kind = "curr"   // mA
)

// SensorFile is what a sensor file's name says: power1_average is
// {KindPower, 1, "average"}.
type SensorFile struct {
	Kind  Kind
	Index int
	Item  string // "input" or "average"
}

// ParseSensorFile parses a hwmon attribute name and reports whether it is a
// reading greenloop takes: <kind><index>_input for every kind, and
// power<index>_average for meters that only average.
func ParseSensorFile(name string) (SensorFile, bool) {
	base, item, ok := strings.Cut(name, "_")
	if !ok || (item != "input" && item != "average") {
		return SensorFile{}, false
	}
	i := strings.IndexAny(base, "0123456789")
	if i <= 0 {
		return SensorFile{}, false
	}
	kind, digits := Kind(base[:i]), base[i:]
	switch kind {
	case KindPower, KindEnergy, KindTemperature, KindVoltage, KindCurrent:
	default:
		return SensorFile{}, false
	}
	if item == "average" && kind != KindPower {
		return SensorFile{}, false
	}
	if len(digits) > 4 || strings.Trim(digits, "0123456789") != "" || (len(digits) > 1 && digits[0] == '0') {
		return SensorFile{}, false
	}
	n, _ := strconv.Atoi(digits)
	return SensorFile{Kind: kind, Index: n, Item: item}, true
}

// channel is one sensor of one chip, as found in a collection.
type channel struct {
	dir, chip, label string
	file             SensorFile
	reading          collectors.Reading
}

// Collect reads every chip and emits one reading per sensor channel. A file
// that cannot be read or parsed is named in the returned error, and the rest
// is still emitted. Without hwmon chips it returns an error wrapping
// collectors.ErrNoData.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	classDir := filepath.Join(c.root, "class", "hwmon")
	entries, err := os.ReadDir(classDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hwmon: no hwmon class at %s: %w", classDir, collectors.ErrNoData)
		}
		return fmt.Errorf("hwmon: %w", err)
	}
	now := c.now()
	var (
		errs []error
		chs  []channel
	)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		got, err := c.readChip(filepath.Join(classDir, e.Name()), e.Name(), now)
		chs = append(chs, got...)
		errs = append(errs, err...)
	}
	if len(chs) == 0 && len(errs) == 0 {
		return fmt.Errorf("hwmon: no power, energy, temperature, voltage or current sensor under %s: %w", classDir, collectors.ErrNoData)
	}
	for _, ch := range nameSensors(chs) {
		emit.Emit(ch.reading)
	}
	return errors.Join(errs...)
}

// readChip reads one class/hwmon entry. The entry itself is usually a link
// into devices/, which os.Stat and os.ReadDir follow; links inside the chip
// directory (device, subsystem, of_node) are never followed: chips whose
// attributes sit under device/ (kernels before 2012) are not read.
func (c *Collector) readChip(dir, entry string, now time.Time) ([]channel, []error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("hwmon: chip link leads nowhere", "chip", entry)
			return nil, nil // a dangling link: the device went away
		}
		return nil, []error{fmt.Errorf("hwmon: %s: %w", entry, err)}
	}
	if !fi.IsDir() {
		return nil, nil
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("hwmon: %s: %w", entry, err)}
	}
	chip := entry
	if b, err := sysfs.ReadAttr(filepath.Join(dir, "name")); err == nil && len(b) > 0 {
		chip = string(b)
	}
	present := make(map[string]bool, len(files))
	for _, f := range files {
		present[f.Name()] = true
	}
	var (
		chs  []channel
		errs []error
	)
	for _, f := range files {
		sf, ok := ParseSensorFile(f.Name())
		if !ok || f.Type()&fs.ModeSymlink != 0 {
			continue
		}
		prefix := string(sf.Kind) + strconv.Itoa(sf.Index)
		if sf.Item == "average" && present[prefix+"_input"] {
			continue // the instantaneous reading wins; one series per channel
		}
		if b, err := sysfs.ReadAttr(filepath.Join(dir, prefix+"_enable")); err == nil {
			if on, err := sysfs.ParseBool(b); err == nil && !on {
				continue
			}
		}
		b, err := sysfs.ReadAttr(filepath.Join(dir, f.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("hwmon: %s (%s) %s: %w", entry, chip, f.Name(), err))
			continue
		}
		var r collectors.Reading
		if sf.Kind == KindEnergy {
			var v uint64
			if v, err = sysfs.ParseUint(b); err == nil {
				r = collectors.EnergyReading(c.monotonic(entry+"/"+prefix, units.Energy(v)), now)
			}
		} else {
			r, err = toReading(sf, b, now)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hwmon: %s (%s) %s: %w", entry, chip, f.Name(), err))
			continue
		}
		label := prefix
		if lb, err := sysfs.ReadAttr(filepath.Join(dir, prefix+"_label")); err == nil && len(lb) > 0 {
			label = string(lb)
		}
		chs = append(chs, channel{dir: entry, chip: chip, label: label, file: sf, reading: r})
	}
	return chs, errs
}

// monotonic returns the channel's monotonic total for a raw energy counter
// value: the first value read, plus every increase since. A decrease is taken
// as a reset (hwmon energy counters are 64 bits wide and do not wrap in
// practice): the total stays and counts on from the new value.
func (c *Collector) monotonic(key string, raw units.Energy) units.Energy {
	st, ok := c.energy[key]
	switch {
	case !ok:
		st = &energyState{raw: raw, total: raw}
		c.energy[key] = st
	case raw >= st.raw:
		st.total += raw - st.raw
	default:
		c.log.Warn("hwmon: energy counter went back, taken as a reset", "channel", key, "from", st.raw, "to", raw)
	}
	st.raw = raw
	return st.total
}

// toReading converts the content of a gauge's sensor file (all kinds but
// energy) to a reading, without labels.
func toReading(sf SensorFile, b []byte, now time.Time) (collectors.Reading, error) {
	if sf.Kind == KindPower {
		v, err := sysfs.ParseUint(b)
		if err != nil {
			return collectors.Reading{}, err
		}
		return collectors.PowerReading(units.Power(v), now), nil
	}
	v, err := sysfs.ParseInt(b)
	if err != nil {
		return collectors.Reading{}, err
	}
	switch sf.Kind {
	case KindTemperature:
		return collectors.TemperatureReading(units.Temperature(v), now), nil
	case KindVoltage:
		return collectors.VoltageReading(units.Voltage(v), now), nil
	default:
		return collectors.CurrentReading(units.Current(v), now), nil
	}
}

// nameSensors sets each channel's labels. The sensor is "<chip>/<label>",
// the label being the channel's _label file or its attribute prefix (temp1).
// Chip names and labels are not unique (two coretemp chips on a two-socket
// host both have "Core 0"; some drivers label two rails alike), so where one
// metric would get the same sensor twice, every one of those gets
// " (<hwmon entry>/<prefix>)" added, which is unique. The result is sorted by
// metric and sensor.
func nameSensors(chs []channel) []channel {
	key := func(ch channel) string { return ch.reading.Metric + "\x00" + ch.chip + "/" + ch.label }
	count := make(map[string]int, len(chs))
	for _, ch := range chs {
		count[key(ch)]++
	}
	for i, ch := range chs {
		sensor := ch.chip + "/" + ch.label
		if count[key(ch)] > 1 {
			sensor += " (" + ch.dir + "/" + string(ch.file.Kind) + strconv.Itoa(ch.file.Index) + ")"
		}
		chs[i].reading.Labels = []sample.Label{
			{Name: collectors.LabelSource, Value: "hwmon"},
			{Name: collectors.LabelSensor, Value: sensor},
		}
	}
	sort.SliceStable(chs, func(i, j int) bool {
		a, b := chs[i].reading, chs[j].reading
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Labels[1].Value < b.Labels[1].Value
	})
	return chs
}
