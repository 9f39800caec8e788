package hwmon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func now() time.Time { return t0 }

func collect(t *testing.T, root string) (string, error) {
	t.Helper()
	var b strings.Builder
	err := New(root, collectors.Deps{Now: now}).Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
		fmt.Fprintf(&b, "%s %d\n", r, r.Time.UnixMilli())
	}))
	return b.String(), err
}

func TestGolden(t *testing.T) {
	for _, fixture := range []string{"kepler", "node_exporter"} {
		t.Run(fixture, func(t *testing.T) {
			got, err := collect(t, filepath.Join("testdata", fixture, "sys"))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", fixture+".golden")
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
				t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// Exact readings for each kind and unit, and the rules golden files show less
// plainly: labels, _enable, _average only without _input, duplicate sensors.
func TestReadings(t *testing.T) {
	got, err := collect(t, filepath.Join("testdata", "kepler", "sys"))
	if err != nil {
		t.Fatal(err)
	}
	ms := fmt.Sprint(t0.UnixMilli())
	for _, want := range []string{
		`greenloop_power_watts{source="hwmon",sensor="k10temp/Package"} 45 ` + ms,
		`greenloop_power_watts{source="hwmon",sensor="amdgpu/GPU"} 120 ` + ms,       // power1_input, not power1_average
		`greenloop_power_watts{source="hwmon",sensor="platform_sensor/power1"} 30 `, // no label file
		`greenloop_power_watts{source="hwmon",sensor="hwmon_dir_fallback/dir_fallback_test"} 35 `,
		`greenloop_energy_joules_total{source="hwmon",sensor="energy_meter/Total"} 500 `,
		`greenloop_voltage_volts{source="hwmon",sensor="ina226/in1"} 12 `,
		`greenloop_voltage_volts{source="hwmon",sensor="ina3221/in6"} 0.05 `,
		`greenloop_current_amperes{source="hwmon",sensor="ina226/curr1 (hwmon_ina226/curr1)"} 5 `,
		`greenloop_power_watts{source="hwmon",sensor="multi_sensor/package (hwmon_aggregate/power1)"} 50 `,
		`greenloop_power_watts{source="hwmon",sensor="multi_sensor/package (hwmon_aggregate/power2)"} 30 `,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, absent := range []string{"PSU_Rail_C", "Rail_C", `volts{source="hwmon",sensor="ina3221/channel_3"}`, "118", "11.8", "4.9"} {
		if strings.Contains(got, absent) {
			t.Errorf("%q should not be read (disabled or an _average next to an _input)", absent)
		}
	}
	ne, err := collect(t, filepath.Join("testdata", "node_exporter", "sys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`greenloop_temperature_celsius{source="hwmon",sensor="coretemp/Core 0 (hwmon0/temp2)"} 54 `,
		`greenloop_temperature_celsius{source="hwmon",sensor="coretemp/Core 0 (hwmon1/temp2)"} `,
		`greenloop_voltage_volts{source="hwmon",sensor="nct6779/in0"} 0.792 `,
	} {
		if !strings.Contains(ne, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(ne, "bogus") {
		t.Error("bogus1_input is no sensor kind")
	}
}

// Garbage in one file and a directory in place of another (unreadable even
// for root): one error each, naming the file, and the rest is emitted.
func TestBadFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "kepler"))); err != nil {
		t.Fatal(err)
	}
	chip := filepath.Join(root, "sys", "class", "hwmon", "hwmon0")
	p := filepath.Join(chip, "power1_input")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("N/A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(chip, "power2_input")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, filepath.Join(root, "sys"))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`hwmon0 (k10temp) power1_input: not an unsigned decimal: "N/A"`, "hwmon0 (k10temp) power2_input", "is a directory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 2 {
		t.Errorf("want 2 errors, got %d: %q", n, msg)
	}
	if strings.Contains(got, "k10temp") || !strings.Contains(got, `sensor="amdgpu/GPU"} 120`) {
		t.Errorf("want everything but k10temp, got\n%s", got)
	}
	all, _ := collect(t, filepath.Join("testdata", "kepler", "sys"))
	if strings.Count(all, "\n")-2 != strings.Count(got, "\n") {
		t.Errorf("want exactly the two bad readings missing")
	}
}

func TestNoData(t *testing.T) {
	if _, err := collect(t, t.TempDir()); !errors.Is(err, collectors.ErrNoData) {
		t.Errorf("empty root: %v", err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "class", "hwmon", "hwmon0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "class", "hwmon", "hwmon0", "fan1_input"), []byte("1200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, root); !errors.Is(err, collectors.ErrNoData) {
		t.Errorf("fans only: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	c, err := collectors.New(collectors.TargetConfig{Name: "h", Type: "hwmon", Sysfs: filepath.Join("testdata", "kepler", "sys")}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ })); err != nil || n == 0 {
		t.Errorf("n = %d, err = %v", n, err)
	}
}

func TestParseSensorFile(t *testing.T) {
	f := func(name string, want SensorFile, wantOK bool) {
		t.Helper()
		got, ok := ParseSensorFile(name)
		if ok != wantOK || got != want {
			t.Errorf("ParseSensorFile(%q) = %+v, %v; want %+v, %v", name, got, ok, want, wantOK)
		}
	}
	f("power1_input", SensorFile{KindPower, 1, "input"}, true)
	f("power12_average", SensorFile{KindPower, 12, "average"}, true)
	f("energy3_input", SensorFile{KindEnergy, 3, "input"}, true)
	f("temp1_input", SensorFile{KindTemperature, 1, "input"}, true)
	f("in0_input", SensorFile{KindVoltage, 0, "input"}, true)
	f("curr2_input", SensorFile{KindCurrent, 2, "input"}, true)
	for _, no := range []string{
		"in1_average", "curr1_average", "temp1_max", "temp1_label", "power1_enable", "fan1_input",
		"bogus1_input", "name", "temp_input", "1_input", "temp01_input", "temp1a_input",
		"temp99999_input", "temp1_input_x", "device", "power1_input ",
	} {
		f(no, SensorFile{}, false)
	}
}

func FuzzParseSensorFile(f *testing.F) {
	f.Add("power1_average")
	f.Add("temp01_input")
	f.Fuzz(func(t *testing.T, name string) {
		sf, ok := ParseSensorFile(name)
		if !ok {
			return
		}
		if back := fmt.Sprintf("%s%d_%s", sf.Kind, sf.Index, sf.Item); back != name {
			t.Fatalf("ParseSensorFile(%q) = %+v, which formats as %q", name, sf, back)
		}
	})
}

// An energy counter that goes back (a driver reload) keeps the emitted total
// from going back; it counts on from the new value.
func TestEnergyReset(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "kepler"))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "sys", "class", "hwmon", "hwmon_energy", "energy1_input")
	c := New(filepath.Join(root, "sys"), collectors.Deps{Now: now})
	total := func() string {
		t.Helper()
		var v string
		if err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
			if strings.Contains(r.String(), "energy_meter/Total") {
				v = fmt.Sprint(r.Value)
			}
		})); err != nil {
			t.Fatal(err)
		}
		return v
	}
	set := func(uj string) {
		t.Helper()
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(uj+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct{ raw, want string }{
		{"", "500"},          // fixture: 500000000 µJ
		{"600000000", "600"}, // +100 J
		{"100000000", "600"}, // back: a reset, no step back
		{"150000000", "650"}, // +50 J from the new value
		{"150000000", "650"}, // unchanged
	} {
		if step.raw != "" {
			set(step.raw)
		}
		if got := total(); got != step.want {
			t.Errorf("after %q: total %s J, want %s", step.raw, got, step.want)
		}
	}
}
