//go:build linux && cgo

package gpu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// library is what the collector needs from nvml.Interface. The real binding
// (nvml.New()) and go-nvml's mock servers both satisfy it.
type library interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(index int) (nvml.Device, nvml.Return)
}

// device is what the collector calls on an nvml.Device (a GPU or a MIG device).
type device interface {
	GetName() (string, nvml.Return)
	GetUUID() (string, nvml.Return)
	GetPowerUsage() (uint32, nvml.Return)                         // mW
	GetTotalEnergyConsumption() (uint64, nvml.Return)             // mJ since the driver loaded
	GetTemperature(nvml.TemperatureSensors) (uint32, nvml.Return) // °C
	GetFieldValues([]nvml.FieldValue) nvml.Return
	GetUtilizationRates() (nvml.Utilization, nvml.Return) // percent
	GetEnforcedPowerLimit() (uint32, nvml.Return)         // mW
	GetMigMode() (current, pending int, ret nvml.Return)
	GetMaxMigDeviceCount() (int, nvml.Return)
	GetMigDeviceHandleByIndex(index int) (nvml.Device, nvml.Return)
}

// Collector reads every GPU NVML sees. Build it with New or NewWithLibrary.
type Collector struct {
	lib library
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	inited   bool
	failed   nvml.Return // the last Init failure, logged once (SUCCESS: none)
	lastTry  time.Time   // when Init last failed
	toldNone bool        // "no GPU" logged
	energy   map[string]*energyState
}

// energyState carries one GPU's energy counter between collections.
type energyState struct {
	raw   uint64 // last counter read, mJ
	total uint64 // monotonic total emitted, mJ
}

// New returns a collector on the system's NVML library (libnvidia-ml.so.1,
// loaded at the first collection).
func New(deps collectors.Deps) *Collector { return newCollector(nvml.New(), deps) }

// NewWithLibrary returns a collector on lib, e.g. a go-nvml mock server
// (pkg/nvml/mock/dgxh100) for tests and benchmarks without GPUs.
func NewWithLibrary(lib nvml.Interface, deps collectors.Deps) *Collector {
	return newCollector(lib, deps)
}

func newDefault(deps collectors.Deps) *Collector { return New(deps) }

func newCollector(lib library, deps collectors.Deps) *Collector {
	deps = deps.WithDefaults()
	return &Collector{lib: lib, log: deps.Logger, now: deps.Now, energy: map[string]*energyState{}}
}

// Close shuts NVML down if the collector loaded it. A later Collect loads it again.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inited {
		return nil
	}
	c.inited = false
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml: shutdown: %w", ret)
	}
	return nil
}

// Collect reads every GPU and emits its readings. Without the library, the
// driver or any GPU it returns an error wrapping collectors.ErrNoData (said
// once in the log); a reading that fails on one GPU is skipped and named in
// the returned error, and everything else is still emitted.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureInit(); err != nil {
		return err
	}
	n, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		if lost(ret) {
			c.inited = false // load again at the next collection
			c.lib.Shutdown()
		}
		return fmt.Errorf("nvml: device count: %w", ret)
	}
	if n == 0 {
		if !c.toldNone {
			c.toldNone = true
			c.log.Info("nvml: library loaded but no GPU found; the nvml target stays idle")
		}
		return fmt.Errorf("nvml: no GPU: %w", collectors.ErrNoData)
	}
	c.toldNone = false
	var errs []error
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("nvml: gpu%d: handle: %w", i, ret))
			continue
		}
		errs = append(errs, c.collectDevice(i, d, emit)...)
	}
	return errors.Join(errs...)
}

// ensureInit loads NVML unless it is loaded, at most once every RetryInterval.
func (c *Collector) ensureInit() error {
	if c.inited {
		return nil
	}
	now := c.now()
	if c.failed != nvml.SUCCESS && now.Sub(c.lastTry) < RetryInterval {
		return initError(c.failed) // too early to try again: the same answer as last time
	}
	ret := c.lib.Init()
	if ret == nvml.SUCCESS {
		if c.failed != nvml.SUCCESS {
			c.log.Info("nvml: library loaded")
		}
		c.inited, c.failed = true, nvml.SUCCESS
		return nil
	}
	if ret != c.failed {
		c.log.Warn("nvml: cannot load NVML; the nvml target stays idle and tries again every "+RetryInterval.String(),
			"error", ret.Error(), "hint", initHint(ret))
	}
	c.failed, c.lastTry = ret, now
	return initError(ret)
}

// initError is the error Collect returns while NVML cannot be loaded: it
// wraps collectors.ErrNoData when there is no NVIDIA stack on the host.
func initError(ret nvml.Return) error {
	if absent(ret) {
		return fmt.Errorf("nvml: init: %w: %w", ret, collectors.ErrNoData)
	}
	return fmt.Errorf("nvml: init: %w", ret)
}

// absent says whether an Init failure means there is no NVIDIA stack here
// (normal on most hosts) rather than a broken one.
func absent(ret nvml.Return) bool {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NOT_FOUND:
		return true
	}
	return false
}

// lost says whether a failure means NVML must be loaded again.
func lost(ret nvml.Return) bool {
	switch ret {
	case nvml.ERROR_UNINITIALIZED, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return true
	}
	return false
}

func initHint(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found: no NVIDIA driver on this host (normal without GPUs)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA kernel driver is not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to open the NVIDIA device files (/dev/nvidia*)"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "the NVML library and the kernel driver differ in version: reload the driver or reboot"
	}
	return "see the NVIDIA driver's logs"
}

// unsupported says whether a failure means "this GPU has no such reading".
func unsupported(ret nvml.Return) bool {
	return ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND
}

// collectDevice emits GPU i's readings and returns what failed.
func (c *Collector) collectDevice(i int, d device, emit collectors.Emitter) []error {
	sensor := "gpu" + strconv.Itoa(i)
	var errs []error
	ok := func(what string, ret nvml.Return) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		if !unsupported(ret) {
			errs = append(errs, fmt.Errorf("nvml: %s: %s: %w", sensor, what, ret))
		}
		return false
	}
	uuid, ret := d.GetUUID()
	if ret == nvml.ERROR_GPU_IS_LOST {
		return []error{fmt.Errorf("nvml: %s: %w (fell off the bus?)", sensor, ret)} // every other call fails too
	}
	ok("uuid", ret)
	model, ret := d.GetName()
	ok("name", ret)
	labels := func(component string) []sample.Label { return deviceLabels(component, sensor, uuid, model) }
	now := c.now()

	if mw, ret := d.GetPowerUsage(); ok("power", ret) {
		emit.Emit(collectors.PowerReading(units.Power(mw)*units.Milliwatt, now, labels(ComponentGPU)...))
	}
	if mj, ret := d.GetTotalEnergyConsumption(); ok("energy", ret) {
		key := uuid
		if key == "" {
			key = sensor
		}
		total := c.advance(key, mj)
		emit.Emit(collectors.EnergyReading(units.Energy(total)*units.Millijoule, now, labels(ComponentGPU)...))
	}
	if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ok("temperature", ret) {
		emit.Emit(collectors.TemperatureReading(units.Temperature(t)*1000*units.MilliCelsius, now, labels(ComponentGPU)...))
	}
	if t, good := memoryTemperature(d, ok); good {
		emit.Emit(collectors.TemperatureReading(t, now, labels(ComponentGPUMemory)...))
	}
	if u, ret := d.GetUtilizationRates(); ok("utilization", ret) {
		emit.Emit(utilization(u.Gpu, now, labels(ComponentGPU)))
		emit.Emit(utilization(u.Memory, now, labels(ComponentGPUMemory)))
	}
	if mw, ret := d.GetEnforcedPowerLimit(); ok("power limit", ret) {
		emit.Emit(collectors.Reading{Metric: MetricPowerLimit, Labels: labels(ComponentGPU),
			Value: (units.Power(mw) * units.Milliwatt).Watts(), Time: now})
	}
	if cur, _, ret := d.GetMigMode(); ok("MIG mode", ret) && cur == nvml.DEVICE_MIG_ENABLE {
		errs = append(errs, c.collectMIG(sensor, d, emit)...)
	}
	return errs
}

// collectMIG emits what NVML reports per MIG device of a GPU (utilisation,
// where the driver supports it; never power or energy, which NVML keeps at the
// physical GPU).
func (c *Collector) collectMIG(parent string, d device, emit collectors.Emitter) []error {
	var errs []error
	maxN, ret := d.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		if !unsupported(ret) {
			errs = append(errs, fmt.Errorf("nvml: %s: MIG device count: %w", parent, ret))
		}
		return errs
	}
	for j := range maxN {
		md, ret := d.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT || unsupported(ret) {
			continue // empty slot
		}
		sensor := parent + "-mig" + strconv.Itoa(j)
		if ret != nvml.SUCCESS {
			errs = append(errs, fmt.Errorf("nvml: %s: handle: %w", sensor, ret))
			continue
		}
		uuid, _ := md.GetUUID()
		model, _ := md.GetName()
		if u, ret := md.GetUtilizationRates(); ret == nvml.SUCCESS {
			now := c.now()
			emit.Emit(utilization(u.Gpu, now, deviceLabels(ComponentGPU, sensor, uuid, model)))
			emit.Emit(utilization(u.Memory, now, deviceLabels(ComponentGPUMemory, sensor, uuid, model)))
		} else if !unsupported(ret) {
			errs = append(errs, fmt.Errorf("nvml: %s: utilization: %w", sensor, ret))
		}
	}
	return errs
}

// advance folds a new raw energy reading (mJ) into the GPU's monotonic total.
// A counter below the last one means the driver reloaded: the counter
// restarted at 0, so all of it is new energy.
func (c *Collector) advance(key string, raw uint64) uint64 {
	st, seen := c.energy[key]
	if !seen {
		c.energy[key] = &energyState{raw: raw, total: raw}
		return raw
	}
	if raw >= st.raw {
		st.total += raw - st.raw
	} else {
		c.log.Warn("nvml: energy counter went back (driver reloaded?); counting on from the new value",
			"gpu", key, "from_mj", st.raw, "to_mj", raw)
		st.total += raw
	}
	st.raw = raw
	return st.total
}

// memoryTemperature reads FI_DEV_MEMORY_TEMP (HBM temperature). NVML answers
// NOT_SUPPORTED, or 0, on boards without a memory sensor: both are skipped.
func memoryTemperature(d device, ok func(string, nvml.Return) bool) (units.Temperature, bool) {
	fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_MEMORY_TEMP}}
	if !ok("memory temperature", d.GetFieldValues(fv)) || !ok("memory temperature", nvml.Return(fv[0].NvmlReturn)) {
		return 0, false
	}
	v, good := fieldFloat(fv[0])
	if !good || v <= 0 || v > 200 {
		return 0, false
	}
	return units.Temperature(math.Round(v*1000)) * units.MilliCelsius, true
}

// fieldFloat decodes a field value by its type.
func fieldFloat(f nvml.FieldValue) (float64, bool) {
	b := f.Value[:]
	ne := binary.NativeEndian
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(ne.Uint64(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(ne.Uint32(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(ne.Uint64(b)), true
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(ne.Uint64(b))), true
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(ne.Uint32(b))), true
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(ne.Uint16(b)), true
	}
	return 0, false
}

// deviceLabels returns a fresh label slice for one reading; empty uuid or
// model (NVML could not say) are left out.
func deviceLabels(component, sensor, uuid, model string) []sample.Label {
	ls := make([]sample.Label, 0, 5)
	ls = append(ls,
		sample.Label{Name: collectors.LabelSource, Value: Source},
		sample.Label{Name: collectors.LabelComponent, Value: component},
		sample.Label{Name: collectors.LabelSensor, Value: sensor})
	if uuid != "" {
		ls = append(ls, sample.Label{Name: LabelUUID, Value: uuid})
	}
	if model != "" {
		ls = append(ls, sample.Label{Name: LabelModel, Value: model})
	}
	return ls
}

// utilization returns a greenloop_utilization_ratio reading from a percentage.
func utilization(percent uint32, t time.Time, labels []sample.Label) collectors.Reading {
	return collectors.Reading{Metric: MetricUtilization, Labels: labels, Value: float64(percent) / 100, Time: t}
}
