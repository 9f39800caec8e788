package collectors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
	_ "github.com/greenloop/greenloop/collectors/hwmon"
	"github.com/greenloop/greenloop/collectors/rapl"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

type nop struct{}

func (nop) Collect(context.Context, collectors.Emitter) error { return nil }

var registryRuns atomic.Int64

func TestRegistry(t *testing.T) {
	if got := collectors.Types(); !slices.Contains(got, "rapl") || !slices.Contains(got, "hwmon") || !slices.IsSorted(got) {
		t.Errorf("Types() = %v", got)
	}
	var gotCfg collectors.TargetConfig
	var gotDeps collectors.Deps
	// A name of its own per run: the registry is global and refuses a second registration.
	typ := fmt.Sprintf("test-nop-%d", registryRuns.Add(1))
	collectors.Register(typ, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		gotCfg, gotDeps = cfg, deps
		if cfg.Name == "bad" {
			return nil, errors.New("no such thing")
		}
		return nop{}, nil
	})
	if _, err := collectors.New(collectors.TargetConfig{Name: "x", Type: typ}, collectors.Deps{}); err != nil {
		t.Fatal(err)
	}
	if gotDeps.Logger == nil || gotDeps.Now == nil || gotCfg.SysfsRoot() != "/sys" {
		t.Errorf("factory got %+v, %+v: want defaults filled in", gotCfg, gotDeps)
	}
	_, err := collectors.New(collectors.TargetConfig{Name: "bad", Type: typ}, collectors.Deps{})
	if err == nil || !strings.Contains(err.Error(), `target "bad" (`+typ+`): no such thing`) {
		t.Errorf("factory error = %v", err)
	}
	_, err = collectors.New(collectors.TargetConfig{Name: "y", Type: "magic"}, collectors.Deps{})
	if !errors.Is(err, collectors.ErrUnknownType) || !strings.Contains(err.Error(), "rapl") {
		t.Errorf("unknown type error = %v", err)
	}
	for name, f := range map[string]func(){
		"duplicate": func() {
			collectors.Register("rapl", func(collectors.TargetConfig, collectors.Deps) (collectors.Collector, error) { return nop{}, nil })
		},
		"empty type": func() {
			collectors.Register("", func(collectors.TargetConfig, collectors.Deps) (collectors.Collector, error) { return nop{}, nil })
		},
		"nil factory": func() { collectors.Register("x", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestReading(t *testing.T) {
	at := time.UnixMilli(1763800000123)
	l := sample.Label{Name: collectors.LabelSensor, Value: "PSU1"}
	f := func(r collectors.Reading, metric string, v float64) {
		t.Helper()
		if r.Metric != metric || r.Value != v || r.Point() != (sample.Point{T: 1763800000123, V: v}) || len(r.Labels) != 1 {
			t.Errorf("%+v, want %s %v", r, metric, v)
		}
	}
	f(collectors.PowerReading(212500*units.Milliwatt, at, l), collectors.MetricPower, 212.5)
	f(collectors.EnergyReading(3*units.Kilojoule, at, l), collectors.MetricEnergy, 3000)
	f(collectors.TemperatureReading(-1500, at, l), collectors.MetricTemperature, -1.5)
	f(collectors.VoltageReading(230000, at, l), collectors.MetricVoltage, 230)
	f(collectors.CurrentReading(16000, at, l), collectors.MetricCurrent, 16)
	r := collectors.PowerReading(212500*units.Milliwatt, at, l)
	s := r.Series()
	if s.Get("__name__") != collectors.MetricPower || s.Get("sensor") != "PSU1" || len(s.Points) != 1 {
		t.Errorf("Series() = %+v", s)
	}
	if got := r.String(); got != `greenloop_power_watts{sensor="PSU1"} 212.5` {
		t.Errorf("String() = %s", got)
	}
}

// A collector is built by type from a target's configuration and emits
// readings into whatever the caller passes in.
func Example() {
	c, err := collectors.New(collectors.TargetConfig{Name: "host", Type: rapl.Type, Sysfs: "rapl/testdata/node_exporter/sys"}, collectors.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
		fmt.Println(r)
	}))
	if errors.Is(err, collectors.ErrNoData) {
		fmt.Println("no RAPL here")
	}
	// Output:
	// greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 240422.366267
}
