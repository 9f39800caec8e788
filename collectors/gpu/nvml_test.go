//go:build linux && cgo

package gpu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/greenloop/greenloop/collectors"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// Per-device values of the fixture; every one differs from GPU to GPU.
func powerMW(i int) uint32  { return uint32(60000 + 10250*i) }             // 60 W + 10.25 W·i
func energyMJ(i int) uint64 { return uint64(1_000_000_500 + 1_000_000*i) } // 1000000.5 J + 1000 J·i
func tempC(i int) uint32    { return uint32(30 + i) }
func memTempC(i int) uint32 { return uint32(40 + i) }
func utilGPU(i int) uint32  { return uint32(5 + 10*i) }
func utilMem(i int) uint32  { return uint32(3 * i) }
func limitMW(i int) uint32  { return uint32(700000 - 2500*i) } // 700 W - 2.5 W·i

// fixture returns a DGX H100 mock (8 GPUs) with every function the collector
// calls set, and deterministic UUIDs.
func fixture(t testing.TB) (*server.Server, []*server.Device) {
	t.Helper()
	srv := dgxh100.New()
	if len(srv.Devices) != 8 {
		t.Fatalf("dgxh100 mock has %d devices, want 8", len(srv.Devices))
	}
	var devs []*server.Device
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i)
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return powerMW(i), nvml.SUCCESS }
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return energyMJ(i), nvml.SUCCESS }
		dev.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return tempC(i), nvml.SUCCESS
		}
		dev.GetFieldValuesFunc = fieldValues(func(id uint32) (uint32, nvml.Return) {
			if id != nvml.FI_DEV_MEMORY_TEMP {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return memTempC(i), nvml.SUCCESS
		})
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: utilGPU(i), Memory: utilMem(i)}, nvml.SUCCESS
		}
		dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return limitMW(i), nvml.SUCCESS }
		devs = append(devs, dev)
	}
	return srv, devs
}

// fieldValues answers GetFieldValues with unsigned int values from get.
func fieldValues(get func(id uint32) (uint32, nvml.Return)) func([]nvml.FieldValue) nvml.Return {
	return func(fv []nvml.FieldValue) nvml.Return {
		for k := range fv {
			v, ret := get(fv[k].FieldId)
			fv[k].NvmlReturn = uint32(ret)
			fv[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
			binary.NativeEndian.PutUint32(fv[k].Value[:], v)
		}
		return nvml.SUCCESS
	}
}

func collect(t *testing.T, c *Collector) ([]collectors.Reading, error) {
	t.Helper()
	var rs []collectors.Reading
	err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { rs = append(rs, r) }))
	return rs, err
}

func render(rs []collectors.Reading) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %d\n", r, r.Time.UnixMilli())
	}
	return b.String()
}

// find returns the value of the reading with metric, component and sensor.
func find(rs []collectors.Reading, metric, component, sensor string) (float64, bool) {
	for _, r := range rs {
		var comp, sens string
		for _, l := range r.Labels {
			switch l.Name {
			case collectors.LabelComponent:
				comp = l.Value
			case collectors.LabelSensor:
				sens = l.Value
			}
		}
		if r.Metric == metric && comp == component && sens == sensor {
			return r.Value, true
		}
	}
	return 0, false
}

func newTest(lib library) (*Collector, *clock, *bytes.Buffer) {
	clk := &clock{t0}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	return newCollector(lib, collectors.Deps{Logger: log, Now: clk.now}), clk, &logs
}

func TestDGXH100(t *testing.T) {
	srv, _ := fixture(t)
	c, _, _ := newTest(srv)
	rs, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := 8 * 7; len(rs) != want {
		t.Errorf("%d readings, want %d (7 per GPU)", len(rs), want)
	}
	for i := range 8 {
		s := fmt.Sprintf("gpu%d", i)
		for _, w := range []struct {
			metric, component string
			want              float64
		}{
			{collectors.MetricPower, ComponentGPU, 60 + 10.25*float64(i)},
			{collectors.MetricEnergy, ComponentGPU, 1000000.5 + 1000*float64(i)},
			{collectors.MetricTemperature, ComponentGPU, float64(30 + i)},
			{collectors.MetricTemperature, ComponentGPUMemory, float64(40 + i)},
			{MetricUtilization, ComponentGPU, float64(5+10*i) / 100},
			{MetricUtilization, ComponentGPUMemory, float64(3*i) / 100},
			{MetricPowerLimit, ComponentGPU, 700 - 2.5*float64(i)},
		} {
			got, ok := find(rs, w.metric, w.component, s)
			if !ok || got != w.want {
				t.Errorf("%s{component=%q,sensor=%q} = %v (found %v), want %v", w.metric, w.component, s, got, ok, w.want)
			}
		}
	}
	// A few spelled out, to see the conversions at a glance.
	for _, w := range []struct {
		metric, component, sensor string
		want                      float64
	}{
		{collectors.MetricPower, ComponentGPU, "gpu3", 90.75},          // 90750 mW
		{collectors.MetricEnergy, ComponentGPU, "gpu7", 1007000.5},     // 1007000500 mJ
		{MetricUtilization, ComponentGPU, "gpu3", 0.35},                // 35 %
		{MetricPowerLimit, ComponentGPU, "gpu7", 682.5},                // 682500 mW
		{collectors.MetricTemperature, ComponentGPUMemory, "gpu7", 47}, // 47 °C
	} {
		if got, _ := find(rs, w.metric, w.component, w.sensor); got != w.want {
			t.Errorf("%s{component=%q,sensor=%q} = %v, want %v", w.metric, w.component, w.sensor, got, w.want)
		}
	}
	got := render(rs)
	golden := filepath.Join("testdata", "dgxh100.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("readings differ from %s (run with -update to see):\n%s", golden, got)
	}
}

func TestNotSupportedSkipsOnlyThatReading(t *testing.T) {
	srv, devs := fixture(t)
	devs[2].GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	devs[5].GetFieldValuesFunc = func([]nvml.FieldValue) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
	devs[6].GetFieldValuesFunc = fieldValues(func(uint32) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED })
	devs[7].GetFieldValuesFunc = fieldValues(func(uint32) (uint32, nvml.Return) { return 0, nvml.SUCCESS }) // GDDR board: 0
	c, _, _ := newTest(srv)
	rs, err := collect(t, c)
	if err != nil {
		t.Fatalf("NOT_SUPPORTED is no error: %v", err)
	}
	if _, ok := find(rs, collectors.MetricEnergy, ComponentGPU, "gpu2"); ok {
		t.Error("gpu2 has an energy reading though NVML said NOT_SUPPORTED")
	}
	if got, ok := find(rs, collectors.MetricPower, ComponentGPU, "gpu2"); !ok || got != 80.5 {
		t.Errorf("gpu2 power = %v (found %v), want 80.5", got, ok)
	}
	for _, s := range []string{"gpu5", "gpu6", "gpu7"} {
		if _, ok := find(rs, collectors.MetricTemperature, ComponentGPUMemory, s); ok {
			t.Errorf("%s has a memory temperature though it has none", s)
		}
		if _, ok := find(rs, collectors.MetricTemperature, ComponentGPU, s); !ok {
			t.Errorf("%s lost its GPU temperature", s)
		}
	}
	if want := 8*7 - 1 - 3; len(rs) != want {
		t.Errorf("%d readings, want %d", len(rs), want)
	}
}

func TestReadingErrorKeepsTheRest(t *testing.T) {
	srv, devs := fixture(t)
	devs[4].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	devs[6].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
	c, _, _ := newTest(srv)
	rs, err := collect(t, c)
	if err == nil || !errors.Is(err, nvml.ERROR_UNKNOWN) || !errors.Is(err, nvml.ERROR_GPU_IS_LOST) ||
		!strings.Contains(err.Error(), "gpu4: temperature") || !strings.Contains(err.Error(), "gpu6: power") {
		t.Fatalf("error = %v, want one naming gpu4's temperature and gpu6's power", err)
	}
	if errors.Is(err, collectors.ErrNoData) {
		t.Error("a partial failure is not ErrNoData")
	}
	if want := 8*7 - 2; len(rs) != want {
		t.Errorf("%d readings, want %d", len(rs), want)
	}
	if _, ok := find(rs, collectors.MetricEnergy, ComponentGPU, "gpu6"); !ok {
		t.Error("gpu6 lost its energy reading")
	}
}

func TestEnergyMonotonicAcrossDriverReload(t *testing.T) {
	srv, devs := fixture(t)
	var raw uint64
	devs[0].GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return raw, nvml.SUCCESS }
	c, clk, logs := newTest(srv)
	var got []float64
	for _, r := range []uint64{5000, 7500, 1000, 1250} { // driver reloaded between 7500 and 1000
		raw = r
		rs, err := collect(t, c)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := find(rs, collectors.MetricEnergy, ComponentGPU, "gpu0")
		got = append(got, v)
		clk.t = clk.t.Add(10 * time.Second)
	}
	if want := []float64{5, 7.5, 8.5, 8.75}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("energy = %v J, want %v", got, want)
	}
	if n := strings.Count(logs.String(), "energy counter went back"); n != 1 {
		t.Errorf("logged the reset %d times, want 1:\n%s", n, logs)
	}
}

func TestMIG(t *testing.T) {
	srv, devs := fixture(t)
	d := devs[1]
	d.MigMode = nvml.DEVICE_MIG_ENABLE
	// With MIG on, the physical GPU has no utilisation of its own.
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	mig := func(j int, util nvml.Return) *mock.Device {
		return &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) {
				return fmt.Sprintf("MIG-00000000-0000-0000-0000-00000000001%d", j), nvml.SUCCESS
			},
			GetNameFunc: func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3 MIG 3g.40gb", nvml.SUCCESS },
			GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
				return nvml.Utilization{Gpu: uint32(20 + j), Memory: uint32(10 + j)}, util
			},
		}
	}
	d.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
		switch j {
		case 0:
			return mig(0, nvml.SUCCESS), nvml.SUCCESS
		case 4:
			return mig(4, nvml.SUCCESS), nvml.SUCCESS
		case 5:
			return mig(5, nvml.ERROR_NOT_SUPPORTED), nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	c, _, _ := newTest(srv)
	rs, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(rs, MetricUtilization, ComponentGPU, "gpu1"); ok {
		t.Error("gpu1 has a utilisation though NVML said NOT_SUPPORTED")
	}
	if got, _ := find(rs, collectors.MetricPower, ComponentGPU, "gpu1"); got != 70.25 {
		t.Errorf("gpu1 power = %v, want 70.25", got)
	}
	var lines []string
	for _, r := range rs {
		if s := r.String(); strings.Contains(s, "-mig") {
			lines = append(lines, s)
		}
	}
	want := []string{
		`greenloop_utilization_ratio{source="nvml",component="gpu",sensor="gpu1-mig0",uuid="MIG-00000000-0000-0000-0000-000000000010",model="NVIDIA H100 80GB HBM3 MIG 3g.40gb"} 0.2`,
		`greenloop_utilization_ratio{source="nvml",component="gpu_memory",sensor="gpu1-mig0",uuid="MIG-00000000-0000-0000-0000-000000000010",model="NVIDIA H100 80GB HBM3 MIG 3g.40gb"} 0.1`,
		`greenloop_utilization_ratio{source="nvml",component="gpu",sensor="gpu1-mig4",uuid="MIG-00000000-0000-0000-0000-000000000014",model="NVIDIA H100 80GB HBM3 MIG 3g.40gb"} 0.24`,
		`greenloop_utilization_ratio{source="nvml",component="gpu_memory",sensor="gpu1-mig4",uuid="MIG-00000000-0000-0000-0000-000000000014",model="NVIDIA H100 80GB HBM3 MIG 3g.40gb"} 0.14`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("MIG readings:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range rs {
		if s := r.String(); strings.Contains(s, "-mig") && r.Metric != MetricUtilization {
			t.Errorf("a MIG device has a %s reading: NVML attributes power and energy to the GPU only", r.Metric)
		}
	}
}

// noLibrary is a library without libnvidia-ml.so.1: Init fails, and nothing
// else may be called.
type noLibrary struct {
	inits int
	ret   nvml.Return
}

func (l *noLibrary) Init() nvml.Return     { l.inits++; return l.ret }
func (l *noLibrary) Shutdown() nvml.Return { panic("Shutdown without Init") }
func (l *noLibrary) DeviceGetCount() (int, nvml.Return) {
	panic("DeviceGetCount without Init")
}
func (l *noLibrary) DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return) {
	panic("DeviceGetHandleByIndex without Init")
}

func TestNoLibrary(t *testing.T) {
	lib := &noLibrary{ret: nvml.ERROR_LIBRARY_NOT_FOUND}
	c, clk, logs := newTest(lib)
	for k, dt := range []time.Duration{0, 10 * time.Second, 59 * time.Second, 61 * time.Second, 90 * time.Second, 125 * time.Second} {
		clk.t = t0.Add(dt)
		rs, err := collect(t, c)
		if !errors.Is(err, collectors.ErrNoData) || len(rs) != 0 {
			t.Fatalf("collection %d: %d readings, error %v; want none and ErrNoData", k, len(rs), err)
		}
	}
	if lib.inits != 3 { // at 0 s, 61 s and 125 s: at most once a minute
		t.Errorf("Init called %d times in 125 s, want 3", lib.inits)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "ERROR_LIBRARY_NOT_FOUND") {
		t.Errorf("want one log line naming ERROR_LIBRARY_NOT_FOUND, got:\n%s", logs)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

func TestLibraryAppearsLater(t *testing.T) {
	srv, _ := fixture(t)
	ret := nvml.ERROR_DRIVER_NOT_LOADED
	inits := 0
	srv.InitFunc = func() nvml.Return { inits++; return ret }
	shutdowns := 0
	srv.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
	c, clk, logs := newTest(srv)
	if _, err := collect(t, c); !errors.Is(err, collectors.ErrNoData) {
		t.Fatalf("error = %v, want ErrNoData", err)
	}
	ret = nvml.SUCCESS
	clk.t = clk.t.Add(RetryInterval)
	rs, err := collect(t, c)
	if err != nil || len(rs) != 56 {
		t.Fatalf("after the driver loaded: %d readings, error %v", len(rs), err)
	}
	clk.t = clk.t.Add(time.Second)
	if _, err := collect(t, c); err != nil || inits != 2 {
		t.Fatalf("error %v, %d Init calls; want NVML loaded once and kept", err, inits)
	}
	if !strings.Contains(logs.String(), "ERROR_DRIVER_NOT_LOADED") || !strings.Contains(logs.String(), "library loaded") {
		t.Errorf("logs:\n%s", logs)
	}
	if err := c.Close(); err != nil || shutdowns != 1 {
		t.Errorf("Close: %v, %d Shutdown calls", err, shutdowns)
	}
}

func TestNoGPU(t *testing.T) {
	srv, _ := fixture(t)
	srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
	c, _, logs := newTest(srv)
	for range 3 {
		if _, err := collect(t, c); !errors.Is(err, collectors.ErrNoData) {
			t.Fatalf("error = %v, want ErrNoData", err)
		}
	}
	if n := strings.Count(logs.String(), "no GPU"); n != 1 {
		t.Errorf("said 'no GPU' %d times, want once:\n%s", n, logs)
	}
}

func TestDriverLostReloads(t *testing.T) {
	srv, _ := fixture(t)
	inits := 0
	srv.InitFunc = func() nvml.Return { inits++; return nvml.SUCCESS }
	srv.ShutdownFunc = func() nvml.Return { return nvml.SUCCESS }
	count := nvml.ERROR_UNINITIALIZED
	srv.DeviceGetCountFunc = func() (int, nvml.Return) {
		if count != nvml.SUCCESS {
			return 0, count
		}
		return 8, nvml.SUCCESS
	}
	c, _, _ := newTest(srv)
	if _, err := collect(t, c); !errors.Is(err, nvml.ERROR_UNINITIALIZED) {
		t.Fatalf("error = %v", err)
	}
	count = nvml.SUCCESS
	if rs, err := collect(t, c); err != nil || len(rs) != 56 || inits != 2 {
		t.Fatalf("%d readings, error %v, %d Init calls; want NVML loaded again", len(rs), err, inits)
	}
}

func TestRegisteredType(t *testing.T) {
	c, err := collectors.New(collectors.TargetConfig{Name: "gpus", Type: Type}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// On a host without NVIDIA's library this is ErrNoData; with GPUs, readings.
	err = c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) {}))
	if err != nil && !errors.Is(err, collectors.ErrNoData) {
		t.Logf("real NVML: %v", err)
	}
	if cl, ok := c.(interface{ Close() error }); ok {
		cl.Close()
	}
}

func TestContextCancelled(t *testing.T) {
	srv, _ := fixture(t)
	c, _, _ := newTest(srv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Collect(ctx, collectors.EmitterFunc(func(collectors.Reading) {})); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestNoPermissionIsAFailureNotNoData(t *testing.T) {
	lib := &noLibrary{ret: nvml.ERROR_NO_PERMISSION}
	c, clk, logs := newTest(lib)
	for _, dt := range []time.Duration{0, 30 * time.Second} {
		clk.t = t0.Add(dt)
		err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) {}))
		if err == nil || errors.Is(err, collectors.ErrNoData) || !errors.Is(err, nvml.ERROR_NO_PERMISSION) {
			t.Fatalf("error = %v, want ERROR_NO_PERMISSION and not ErrNoData", err)
		}
	}
	if lib.inits != 1 || !strings.Contains(logs.String(), "/dev/nvidia") {
		t.Errorf("%d Init calls (want 1); logs:\n%s", lib.inits, logs)
	}
}

// BenchmarkCollectDGXH100 is one collection of 8 mock GPUs: the collector's
// own cost, without NVML's.
func BenchmarkCollectDGXH100(b *testing.B) {
	srv, _ := fixture(b)
	c := NewWithLibrary(srv, collectors.Deps{})
	emit := collectors.EmitterFunc(func(collectors.Reading) {})
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Collect(context.Background(), emit); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLostGPUIsOneError(t *testing.T) {
	srv, devs := fixture(t)
	devs[3].GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
	c, _, _ := newTest(srv)
	rs, err := collect(t, c)
	if !errors.Is(err, nvml.ERROR_GPU_IS_LOST) || strings.Count(err.Error(), "gpu3") != 1 {
		t.Fatalf("error = %v, want one naming gpu3", err)
	}
	if len(rs) != 7*7 {
		t.Errorf("%d readings, want 49 (7 GPUs)", len(rs))
	}
}
