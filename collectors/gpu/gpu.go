// Package gpu reads NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml) and
// registers the target type "nvml".
//
// Per GPU it emits, labelled source="nvml", component, sensor="gpu<index>",
// uuid (the GPU's UUID, stable per board) and model (the product name):
//
//   - greenloop_power_watts{component="gpu"}: board power draw (NVML mW).
//   - greenloop_energy_joules_total{component="gpu"}: NVML's energy counter
//     (mJ since the driver loaded, Volta and later). The counter restarts at 0
//     when the driver reloads; the collector keeps its own total per UUID and
//     adds what the counter shows after a restart, so the series stays
//     monotonic while the agent runs (DESIGN.md: device resets corrected).
//     After an agent restart it starts again from the raw counter, which
//     PromQL's rate/increase read as one reset.
//   - greenloop_temperature_celsius{component="gpu"} (GPU die) and
//     {component="gpu_memory"} (HBM, from the field value FI_DEV_MEMORY_TEMP;
//     boards without a memory sensor answer NOT_SUPPORTED and it is skipped).
//   - greenloop_utilization_ratio{component="gpu"} and {component="gpu_memory"}
//     (0..1 from NVML's percentages: time a kernel ran, time memory was read
//     or written, over the driver's last sample period).
//   - greenloop_power_limit_watts{component="gpu"}: the enforced power limit.
//     It is a separate metric name, not greenloop_power_watts with a kind
//     label, so that sum(greenloop_power_watts) stays a sum of power drawn
//     without every query having to filter the limit out.
//
// With MIG enabled on a GPU, each MIG device is read as well, sensor
// "gpu<index>-mig<n>" and its own MIG UUID; NVML reports no power or energy
// per MIG instance (they stay with the physical GPU, to be attributed on the
// server), so a MIG device yields only what NVML answers for it (utilisation
// where the driver supports it). A reading NVML answers with NOT_SUPPORTED is
// skipped silently; any other error skips that reading, the rest of the GPU
// is still emitted, and the error is returned.
//
// NVML needs cgo and libnvidia-ml.so.1 (loaded with dlopen when the
// collector first runs). Built without cgo, or on a host without the
// library, driver or GPU, the collector says so once in the log and returns
// an error wrapping collectors.ErrNoData on every collection; without the
// library it tries again at most once every RetryInterval.
package gpu

import (
	"time"

	"github.com/greenloop/greenloop/collectors"
)

// Type is the target type this package registers.
const Type = "nvml"

// Source is the value of the source label on every reading.
const Source = "nvml"

// Metric names this package emits besides the collectors.Metric* ones.
const (
	// MetricUtilization is the canonical utilisation gauge (0..1).
	MetricUtilization = "greenloop_utilization_ratio"
	// MetricPowerLimit is the enforced power limit in watts. It is not in
	// DESIGN.md's canonical table; it is kept apart from
	// greenloop_power_watts so that sums of power stay sums of power drawn.
	MetricPowerLimit = "greenloop_power_limit_watts"
)

// Label names this package adds to source, component and sensor.
const (
	LabelUUID  = "uuid"
	LabelModel = "model"
)

// Components.
const (
	ComponentGPU       = "gpu"
	ComponentGPUMemory = "gpu_memory"
)

// RetryInterval is how long the collector waits before it tries to load
// NVML again after the library, the driver or the GPUs were missing.
const RetryInterval = time.Minute

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return newDefault(deps.WithDefaults()), nil
	})
}
