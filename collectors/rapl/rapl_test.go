package rapl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/units"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// collect runs one collection and renders what was emitted, one reading a line.
func collect(t *testing.T, c *Collector) (string, error) {
	t.Helper()
	var b strings.Builder
	err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
		fmt.Fprintf(&b, "%s %d\n", r, r.Time.UnixMilli())
	}))
	return b.String(), err
}

// copyTree copies the powercap tree of a fixture into a temporary sysfs root
// the test may change.
func copyTree(t *testing.T, fixture string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", fixture))); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "sys")
}

func writeAttr(t *testing.T, root, zone, file, content string) {
	t.Helper()
	p := filepath.Join(root, "class", "powercap", zone, file)
	if err := os.Chmod(p, 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	for _, fixture := range []string{"node_exporter", "procfs", "kepler"} {
		t.Run(fixture, func(t *testing.T) {
			clk := &clock{t0}
			c := New(filepath.Join("testdata", fixture, "sys"), collectors.Deps{Now: clk.now})
			first, err := collect(t, c)
			if err != nil {
				t.Fatal(err)
			}
			clk.t = clk.t.Add(10 * time.Second)
			second, err := collect(t, c)
			if err != nil {
				t.Fatal(err)
			}
			got := "# first collection\n" + first + "# second collection, 10s later, same counters\n" + second
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

// Two polls of one zone with energy_uj rewritten between them: wrap, reset,
// forward steps, with the exact counter and power emitted.
func TestSecondPoll(t *testing.T) {
	// node_exporter's intel-rapl:0 starts at 240422366267 µJ, 21.7 kJ below its wrap at 262143328850.
	tests := []struct {
		name      string
		after     time.Duration
		energy    string
		wantLines string
	}{
		{
			name: "forward", after: 10 * time.Second, energy: "242422366267",
			wantLines: `greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 242422.366267
greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl:0"} 200
`,
		},
		{
			// 262143328850-240422366267+279037417 = 22000000000 µJ = 22 kJ in 100 s = 220 W
			name: "wrap", after: 100 * time.Second, energy: "279037417",
			wantLines: `greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 262422.366267
greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl:0"} 220
`,
		},
		{
			// The same step in 10 s would be 2.2 kW: a reset, no power, no step back.
			name: "reset", after: 10 * time.Second, energy: "279037417",
			wantLines: `greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 240422.366267
`,
		},
		{
			// The same kind of step over an hour is 6 W: a wrap.
			name: "slow wrap", after: time.Hour, energy: "5",
			wantLines: `greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 262143.328855
greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl:0"} 6.033601
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyTree(t, "node_exporter")
			clk := &clock{t0}
			c := New(root, collectors.Deps{Now: clk.now})
			if _, err := collect(t, c); err != nil {
				t.Fatal(err)
			}
			writeAttr(t, root, "intel-rapl:0", "energy_uj", tt.energy)
			clk.t = clk.t.Add(tt.after)
			got, err := collect(t, c)
			if err != nil {
				t.Fatal(err)
			}
			ms := clk.t.UnixMilli()
			want := ""
			for l := range strings.Lines(tt.wantLines) {
				want += fmt.Sprintf("%s %d\n", strings.TrimSuffix(l, "\n"), ms)
			}
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			// After a reset the counter continues from the new value.
			if tt.name == "reset" {
				writeAttr(t, root, "intel-rapl:0", "energy_uj", "1279037417") // +1 kJ
				clk.t = clk.t.Add(10 * time.Second)
				got, err := collect(t, c)
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf(`greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 241422.366267 %[1]d
greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl:0"} 100 %[1]d
`, clk.t.UnixMilli())
				if got != want {
					t.Errorf("after reset got\n%s\nwant\n%s", got, want)
				}
			}
		})
	}
}

func TestZoneDisappearsAndReturns(t *testing.T) {
	root := copyTree(t, "kepler")
	clk := &clock{t0}
	c := New(root, collectors.Deps{Now: clk.now})
	if _, err := collect(t, c); err != nil {
		t.Fatal(err)
	}
	mmio := filepath.Join(root, "class", "powercap", "intel-rapl-mmio:0")
	saved := t.TempDir()
	if err := os.Rename(mmio, filepath.Join(saved, "z")); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(10 * time.Second)
	got, err := collect(t, c)
	if err != nil {
		t.Fatalf("a vanished zone is no error: %v", err)
	}
	ms := clk.t.UnixMilli()
	want := fmt.Sprintf(`greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl:0"} 240422.366267 %[1]d
greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl:0"} 0 %[1]d
`, ms)
	if got != want {
		t.Errorf("zone gone: got\n%s\nwant\n%s", got, want)
	}
	// Back, 1 kJ further on, 20 s after it was last read: the counter goes on.
	if err := os.Rename(filepath.Join(saved, "z"), mmio); err != nil {
		t.Fatal(err)
	}
	writeAttr(t, root, "intel-rapl-mmio:0", "energy_uj", "241422366267")
	clk.t = clk.t.Add(10 * time.Second)
	got, _ = collect(t, c)
	if !strings.Contains(got, `greenloop_energy_joules_total{source="rapl",component="package",sensor="intel-rapl-mmio:0"} 241422.366267`) ||
		!strings.Contains(got, `greenloop_power_watts{source="rapl",component="package",sensor="intel-rapl-mmio:0"} 50 `) {
		t.Errorf("zone back: got\n%s", got)
	}
}

// Garbage in one zone's counter, and a directory where another zone's counter
// should be (an unreadable file even for root): each is named once in the
// error and the remaining zone is still emitted.
func TestBadFiles(t *testing.T) {
	root := copyTree(t, "kepler")
	writeAttr(t, root, "intel-rapl:0", "energy_uj", "garbage")
	p := filepath.Join(root, "class", "powercap", "intel-rapl-mmio:0", "energy_uj")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(root, collectors.Deps{Now: (&clock{t0}).now})
	got, err := collect(t, c)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`intel-rapl:0/energy_uj: not an unsigned decimal: "garbage"`, "intel-rapl-mmio:0", "is a directory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 2 {
		t.Errorf("want 2 errors, got %d: %q", n, msg)
	}
	if errors.Is(err, collectors.ErrNoData) {
		t.Error("bad files are not ErrNoData")
	}
	if got != "" {
		t.Errorf("kepler's other zones are disabled or malformed, want nothing emitted, got\n%s", got)
	}

	// Same in the procfs tree, where the good zone is still emitted next to a garbage one.
	root = copyTree(t, "procfs")
	writeAttr(t, root, "intel-rapl:0", "energy_uj", "12 34")
	writeAttr(t, root, "intel-rapl:0:0", "enabled", "1")
	c = New(root, collectors.Deps{Now: (&clock{t0}).now})
	got, err = collect(t, c)
	if err == nil || !strings.Contains(err.Error(), "intel-rapl:0/energy_uj") {
		t.Errorf("error = %v", err)
	}
	want := fmt.Sprintf("greenloop_energy_joules_total{source=\"rapl\",component=\"core\",sensor=\"intel-rapl:0:0\"} 118821.284256 %d\n", t0.UnixMilli())
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Without permission to read energy_uj the collector says so once with the
// fix, then briefly on every collection, and reads again once allowed.
func TestPermissionDenied(t *testing.T) {
	root := copyTree(t, "node_exporter")
	c := New(root, collectors.Deps{Now: (&clock{t0}).now})
	denied := true
	c.readAttr = func(p string) ([]byte, error) {
		if denied && filepath.Base(p) == "energy_uj" {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
		}
		return os.ReadFile(p)
	}
	_, err := collect(t, c)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_DAC_READ_SEARCH") || !strings.Contains(err.Error(), "chmod") {
		t.Fatalf("first error = %v", err)
	}
	_, err = collect(t, c)
	if !errors.Is(err, ErrPermission) || strings.Contains(err.Error(), "CAP_DAC_READ_SEARCH") {
		t.Fatalf("second error = %v, want short ErrPermission", err)
	}
	denied = false
	got, err := collect(t, c)
	if err != nil || !strings.Contains(got, `sensor="intel-rapl:0"} 240422.366267`) {
		t.Fatalf("after the fix: %q, %v", got, err)
	}
}

func TestNoData(t *testing.T) {
	c := New(t.TempDir(), collectors.Deps{})
	if _, err := collect(t, c); !errors.Is(err, collectors.ErrNoData) {
		t.Errorf("empty root: %v, want ErrNoData", err)
	}
	// Only disabled zones: no data either.
	root := copyTree(t, "node_exporter")
	writeAttr(t, root, "intel-rapl:0", "enabled", "0")
	if _, err := collect(t, New(root, collectors.Deps{})); !errors.Is(err, collectors.ErrNoData) {
		t.Errorf("all disabled: %v, want ErrNoData", err)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := New(filepath.Join("testdata", "node_exporter", "sys"), collectors.Deps{})
	if err := c.Collect(ctx, collectors.EmitterFunc(func(collectors.Reading) {})); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestRegistered(t *testing.T) {
	c, err := collectors.New(collectors.TargetConfig{Name: "host", Type: "rapl", Sysfs: filepath.Join("testdata", "node_exporter", "sys")}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ })); err != nil || n != 1 {
		t.Errorf("n = %d, err = %v", n, err)
	}
}

func TestAdvance(t *testing.T) {
	const maxR = 262143328850
	f := func(prev, cur, maxRange uint64, dt time.Duration, want units.Energy, wantKind StepKind) {
		t.Helper()
		got, kind := Advance(prev, cur, maxRange, dt)
		if got != want || kind != wantKind {
			t.Errorf("Advance(%d, %d, %d, %s) = %d, %d; want %d, %d", prev, cur, maxRange, dt, got, kind, want, wantKind)
		}
	}
	f(100, 100, maxR, time.Second, 0, StepForward)
	f(100, 250, maxR, time.Second, 150, StepForward)
	f(100, 250, 0, 0, 150, StepForward)
	// 1500 W for 10 s is 15 kJ: a wrap of exactly that is plausible, one µJ more is not.
	f(maxR-10_000_000_000, 5_000_000_000, maxR, 10*time.Second, 15_000_000_000, StepWrap)
	f(maxR-10_000_000_000, 5_000_000_001, maxR, 10*time.Second, 0, StepReset)
	f(maxR, 0, maxR, time.Second, 0, StepWrap)
	f(500, 400, 0, time.Second, 0, StepReset)        // range unknown
	f(500, 400, 450, time.Second, 0, StepReset)      // prev beyond the range: the range is wrong
	f(500, 400, maxR, 0, 0, StepReset)               // no time passed
	f(500, 400, maxR, -time.Second, 0, StepReset)    // clock went back
	f(1<<63, 0, 1<<64-1, 1<<63-1, 1<<63-1, StepWrap) // no overflow at the top of the range
}

func TestIsZoneDir(t *testing.T) {
	for name, want := range map[string]bool{
		"intel-rapl:0": true, "intel-rapl:0:0": true, "intel-rapl:12:3": true, "intel-rapl-mmio:0": true,
		"intel-rapl": false, "intel-rapl-mmio": false, "intel-rapl:a": false, "intel-rapl:": false,
		"intel-rapl:0:": false, "intel-rapl:0:0:0": false, "intel-rapl:-1": false, "dtpm": false,
		"intel-rapl:0x1": false, "intel-rapl:9999999999": false, "intel-rapl-mmio:0:1": true,
	} {
		if got := isZoneDir(name); got != want {
			t.Errorf("isZoneDir(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestComponent(t *testing.T) {
	for in, want := range map[string]string{
		"package-0": "package", "package-10": "package", "core": "core", "uncore": "uncore",
		"dram": "dram", "psys": "psys", "PSys\n": "psys", "": "unknown", "mmio": "mmio",
	} {
		if got := Component(in); got != want {
			t.Errorf("Component(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzIsZoneDir(f *testing.F) {
	f.Add("intel-rapl:0:1")
	f.Add("intel-rapl-mmio:0")
	f.Fuzz(func(t *testing.T, name string) {
		if !isZoneDir(name) {
			return
		}
		if !strings.HasPrefix(name, "intel-rapl") || strings.ContainsAny(name, "/ \n") || strings.Count(name, ":") > 2 {
			t.Fatalf("isZoneDir(%q) = true", name)
		}
	})
}

// The counter never goes back and never jumps by more than the range.
func FuzzAdvance(f *testing.F) {
	f.Add(uint64(240422366267), uint64(278037417), uint64(262143328850), int64(100e9))
	f.Add(uint64(5), uint64(4), uint64(0), int64(1))
	f.Fuzz(func(t *testing.T, prev, cur, maxRange uint64, dt int64) {
		d, kind := Advance(prev, cur, maxRange, time.Duration(dt))
		switch kind {
		case StepForward:
			if cur < prev || uint64(d) != cur-prev {
				t.Fatalf("forward %d→%d = %d", prev, cur, d)
			}
		case StepWrap:
			if cur >= prev || uint64(d) > maxRange {
				t.Fatalf("wrap %d→%d (range %d) = %d", prev, cur, maxRange, d)
			}
		case StepReset:
			if d != 0 || cur >= prev {
				t.Fatalf("reset %d→%d = %d", prev, cur, d)
			}
		}
	})
}
