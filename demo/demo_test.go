package demo

import (
	"context"
	"errors"
	"math"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/internal/sample"
)

// collected holds every series of a run, keyed by its label set.
type collected struct {
	order  []string
	labels map[string][]sample.Label
	points map[string][]sample.Point
}

func collect(t *testing.T, f *Fleet, from, to time.Time, step time.Duration) *collected {
	t.Helper()
	c := &collected{labels: map[string][]sample.Label{}, points: map[string][]sample.Point{}}
	last := int64(math.MinInt64)
	err := f.Generate(from, to, step, func(b []sample.Series) error {
		n := 0
		for _, s := range b {
			k := sample.FormatLabels(s.Labels)
			if _, ok := c.labels[k]; !ok {
				c.order = append(c.order, k)
				c.labels[k] = s.Labels
			}
			c.points[k] = append(c.points[k], s.Points...)
			n += len(s.Points)
			if len(s.Points) > 0 && s.Points[0].T <= last {
				t.Fatalf("batch starts at %d, not after the previous batch's %d", s.Points[0].T, last)
			}
		}
		if n > MaxBatchSamples {
			t.Fatalf("batch of %d samples", n)
		}
		if len(b) != f.SeriesCount() {
			t.Fatalf("batch of %d series, want %d", len(b), f.SeriesCount())
		}
		last = b[0].Points[len(b[0].Points)-1].T
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(ls []sample.Label, name string) string {
	s := sample.Series{Labels: ls}
	return s.Get(name)
}

// find returns the series whose labels include all of want.
func (c *collected) find(want ...string) []string {
	var out []string
	for _, k := range c.order {
		ok := true
		for i := 0; i < len(want); i += 2 {
			if get(c.labels[k], want[i]) != want[i+1] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, k)
		}
	}
	return out
}

func (c *collected) one(t *testing.T, want ...string) []sample.Point {
	t.Helper()
	ks := c.find(want...)
	if len(ks) != 1 {
		t.Fatalf("%d series match %v, want 1", len(ks), want)
	}
	return c.points[ks[0]]
}

var day0 = time.Date(2025, 7, 14, 0, 0, 0, 0, time.UTC) // a Monday

func TestFleetShape(t *testing.T) {
	f := New(1)
	if n := f.SeriesCount(); n < 1000 || n > 3000 {
		t.Errorf("%d series, want 1000–3000", n)
	}
	sites := f.Sites()
	if len(sites) < 6 {
		t.Fatalf("%d sites", len(sites))
	}
	zones := map[string]string{}
	for _, s := range sites {
		if z, dup := zones[s.Zone]; dup {
			t.Errorf("zone %s used by %s and %s", s.Zone, z, s.ID)
		}
		zones[s.Zone] = s.ID
		if s.ITCapacityKW < 150 || s.ITCapacityKW > 900 || s.Location.Lat < 35 || s.Tenant != "" || s.Name == "" {
			t.Errorf("site %+v", s)
		}
		want := `greenloop_energy_joules_total{site="` + s.ID + `",component="facility"}`
		if s.Meters["facility_energy"] != want || !strings.Contains(s.Meters["it_energy"], `component="it"`) {
			t.Errorf("%s meters %v", s.ID, s.Meters)
		}
	}
	for _, z := range []string{"DE", "FR", "PL", "ES", "NL", "SE"} {
		if zones[z] == "" {
			t.Errorf("no site in zone %s", z)
		}
	}
	if !strings.Contains(sites[len(sites)-1].Name, "static") {
		t.Errorf("the Nordic site's name %q should say its carbon figure is static", sites[len(sites)-1].Name)
	}
}

var (
	canonical = map[string]bool{
		MetricPower: true, MetricEnergy: true, MetricTemperature: true, MetricUtilization: true, MetricCarbonIntensity: true,
	}
	labelNameRe  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	components   = strings.Fields("package core dram psys gpu gpu_memory psu chassis inlet outlet branch phase ups ambient facility it")
	sources      = strings.Fields("rapl hwmon nvml redfish ipmi snmp mqtt i2c import")
	allowedLabel = map[string]bool{"__name__": true, "site": true, "room": true, "rack": true, "node": true, "source": true,
		"component": true, "sensor": true, "zone": true, "provider": true, "signal": true, "kind": true}
)

func TestSeriesLabels(t *testing.T) {
	f := New(1)
	c := collect(t, f, day0, day0.Add(2*time.Minute), time.Minute)
	if len(c.order) != f.SeriesCount() {
		t.Fatalf("%d distinct series, want %d (duplicate label sets?)", len(c.order), f.SeriesCount())
	}
	siteIDs := map[string]bool{}
	for _, s := range f.Sites() {
		siteIDs[s.ID] = true
	}
	for _, k := range c.order {
		ls := c.labels[k]
		if !sort.SliceIsSorted(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name }) {
			t.Errorf("%s: labels not sorted", k)
		}
		for _, l := range ls {
			if !labelNameRe.MatchString(l.Name) || !allowedLabel[l.Name] || l.Value == "" {
				t.Errorf("%s: label %q=%q", k, l.Name, l.Value)
			}
		}
		if !canonical[get(ls, "__name__")] {
			t.Errorf("%s: not a canonical metric", k)
		}
		if !siteIDs[get(ls, "site")] {
			t.Errorf("%s: no valid site", k)
		}
		if c := get(ls, "component"); c != "" && !contains(components, c) {
			t.Errorf("%s: component %q", k, c)
		}
		if s := get(ls, "source"); s != "" && !contains(sources, s) {
			t.Errorf("%s: source %q", k, s)
		}
		for _, p := range c.points[k] {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				t.Fatalf("%s: value %v", k, p.V)
			}
		}
	}
	// Every kind of reading the brief lists is there, for every site.
	for id := range siteIDs {
		for _, want := range [][]string{
			{"__name__", MetricPower, "component", "facility", "node", "facility-meter"},
			{"__name__", MetricEnergy, "component", "it", "node", "it-meter"},
			{"__name__", MetricPower, "source", "rapl", "component", "package", "sensor", "intel-rapl:1"},
			{"__name__", MetricEnergy, "source", "rapl", "component", "package", "sensor", "intel-rapl:0"},
			{"__name__", MetricPower, "source", "snmp", "component", "branch"},
			{"__name__", MetricTemperature, "component", "inlet"},
			{"__name__", MetricTemperature, "component", "ambient", "node", "weather"},
			{"__name__", MetricUtilization},
			{"__name__", MetricCarbonIntensity, "signal", "average", "kind", "actual"},
		} {
			if len(c.find(append([]string{"site", id}, want...)...)) == 0 {
				t.Errorf("site %s has no series %v", id, want)
			}
		}
		if id != "sto1" && len(c.find("site", id, "source", "nvml", "component", "gpu", "__name__", MetricEnergy)) == 0 {
			t.Errorf("site %s has no GPU energy", id)
		}
	}
	for _, k := range c.find("source", "rapl") {
		if get(c.labels[k], "rack") == "" || get(c.labels[k], "room") == "" || get(c.labels[k], "node") == "" {
			t.Errorf("%s: node series without rack, room or node", k)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestCountersAreIntegrals: every energy counter is monotonic and grows by
// exactly the integral of its power gauge taken as linear between samples
// (the trapezoid rule). Sampled more finely, the same power integrates to the
// same energy within 0.1 %.
func TestCountersAreIntegrals(t *testing.T) {
	f := New(3)
	c := collect(t, f, day0, day0.Add(24*time.Hour), 2*time.Minute)
	n := 0
	for _, k := range c.find("__name__", MetricEnergy) {
		e := c.points[k]
		gauge := strings.Replace(k, MetricEnergy, MetricPower, 1)
		p, ok := c.points[gauge]
		if !ok || len(p) != len(e) {
			t.Fatalf("%s: no matching power gauge %s", k, gauge)
		}
		var riemann, trapezoid float64
		for i := 1; i < len(e); i++ {
			if e[i].V < e[i-1].V {
				t.Fatalf("%s: decreases at %d", k, e[i].T)
			}
			dt := float64(e[i].T-e[i-1].T) / 1000
			riemann += p[i-1].V * dt
			trapezoid += (p[i-1].V + p[i].V) / 2 * dt
		}
		inc := e[len(e)-1].V - e[0].V
		if math.Abs(inc-trapezoid) > 1e-9*trapezoid {
			t.Errorf("%s: increase %.3f J, trapezoidal ∫power %.3f J", k, inc, trapezoid)
		}
		// GPU power jumps when a job starts or ends, so a Riemann sum is off by
		// up to half a step of the jump at the window's ends; elsewhere 0.1 % holds.
		if get(c.labels[k], "source") != "nvml" && math.Abs(inc-riemann) > 0.001*riemann {
			t.Errorf("%s: increase %.0f J, Riemann ∫power %.0f J", k, inc, riemann)
		}
		if e[0].V < 0 {
			t.Errorf("%s: starts negative", k)
		}
		n++
	}
	if n < 500 {
		t.Errorf("only %d counters", n)
	}
	// The same fleet sampled every 10 s over the first two hours: the 2-minute
	// counters agree with the finer integral of the facility and IT power.
	fine := collect(t, New(3), day0, day0.Add(2*time.Hour), 10*time.Second)
	for _, k := range append(c.find("__name__", MetricEnergy, "component", "facility"), c.find("__name__", MetricEnergy, "component", "it")...) {
		p := fine.points[strings.Replace(k, MetricEnergy, MetricPower, 1)]
		var integral float64
		for i := 1; i < len(p); i++ {
			integral += (p[i-1].V + p[i].V) / 2 * float64(p[i].T-p[i-1].T) / 1000
		}
		e := c.points[k]
		inc := e[60].V - e[0].V // 60 steps of 2 minutes
		if math.Abs(inc-integral) > 0.001*integral {
			t.Errorf("%s: counter increase %.0f J over 2 h, ∫power sampled every 10 s %.0f J", k, inc, integral)
		}
	}
	// IT = Σ PDU branches, facility > IT.
	for _, s := range f.Sites() {
		it := c.one(t, "site", s.ID, "__name__", MetricPower, "component", "it")
		fac := c.one(t, "site", s.ID, "__name__", MetricPower, "component", "facility")
		var sum float64
		for _, k := range c.find("site", s.ID, "__name__", MetricPower, "component", "branch") {
			sum += c.points[k][100].V
		}
		if math.Abs(sum-it[100].V) > 1e-6*sum {
			t.Errorf("%s: Σ branches %.1f W, IT meter %.1f W", s.ID, sum, it[100].V)
		}
		if u := it[100].V / (s.ITCapacityKW * 1000); u < 0.3 || u > 1 {
			t.Errorf("%s: IT at %.0f%% of capacity", s.ID, 100*u)
		}
		if fac[100].V <= it[100].V {
			t.Errorf("%s: facility %.0f W ≤ IT %.0f W", s.ID, fac[100].V, it[100].V)
		}
	}
}

// TestPUEFollowsOutsideTemperature over three winter days and three summer days.
func TestPUEFollowsOutsideTemperature(t *testing.T) {
	f := New(5)
	winter := collect(t, f, time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), 15*time.Minute)
	summer := collect(t, f, time.Date(2026, 7, 13, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 16, 0, 0, 0, 0, time.UTC), 15*time.Minute)
	for _, s := range f.Sites() {
		type obs struct{ temp, pue float64 }
		var all []obs
		for _, c := range []*collected{winter, summer} {
			it := c.one(t, "site", s.ID, "__name__", MetricPower, "component", "it")
			fac := c.one(t, "site", s.ID, "__name__", MetricPower, "component", "facility")
			amb := c.one(t, "site", s.ID, "__name__", MetricTemperature, "component", "ambient")
			for i := range it {
				pue := fac[i].V / it[i].V
				if pue < 1.05 || pue > 2.0 {
					t.Fatalf("%s: PUE %.3f at %d", s.ID, pue, it[i].T)
				}
				all = append(all, obs{amb[i].V, pue})
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].temp < all[j].temp })
		mean := func(os []obs) (tm, pm float64) {
			for _, o := range os {
				tm += o.temp
				pm += o.pue
			}
			return tm / float64(len(os)), pm / float64(len(os))
		}
		q := len(all) / 4
		coldT, coldPUE := mean(all[:q])
		hotT, hotPUE := mean(all[len(all)-q:])
		t.Logf("%s: %.1f °C → PUE %.3f; %.1f °C → PUE %.3f", s.ID, coldT, coldPUE, hotT, hotPUE)
		if hotPUE < coldPUE+0.02 {
			t.Errorf("%s: PUE %.3f in the warmest quarter (%.1f °C), %.3f in the coldest (%.1f °C): want higher when warm", s.ID, hotPUE, hotT, coldPUE, coldT)
		}
		if coldT > 10 || hotT < 15 {
			t.Errorf("%s: implausible temperatures: coldest quarter %.1f °C, warmest %.1f °C", s.ID, coldT, hotT)
		}
	}
	for _, sp := range specs {
		if p := sp.pue.pue(5); p < 1.05 || p > 1.3 {
			t.Errorf("%s: PUE at 5 °C %.3f", sp.id, p)
		}
		if p := sp.pue.pue(35); p < 1.25 || p > 1.7 || p <= sp.pue.pue(20) || sp.pue.pue(20) < sp.pue.pue(5) {
			t.Errorf("%s: PUE at 35 °C %.3f, not rising", sp.id, p)
		}
	}
}

// TestDayNight: outside and inlet air are warmer at 14:00 local than at 04:00, and load is higher on weekdays.
func TestDayNight(t *testing.T) {
	f := New(9)
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday, CET (UTC+1)
	c := collect(t, f, from, from.Add(7*24*time.Hour), 30*time.Minute)
	localHour := func(ms int64) int { return time.UnixMilli(ms).UTC().Add(cetOffset(time.UnixMilli(ms))).Hour() }
	for _, s := range f.Sites() {
		for _, comp := range []string{"ambient", "inlet"} {
			var at14, at04 float64
			var n14, n04 int
			for _, k := range c.find("site", s.ID, "__name__", MetricTemperature, "component", comp) {
				for _, p := range c.points[k] {
					switch localHour(p.T) {
					case 14:
						at14 += p.V
						n14++
					case 4:
						at04 += p.V
						n04++
					}
				}
			}
			at14, at04 = at14/float64(n14), at04/float64(n04)
			minDiff := 2.0 // °C, outside air
			if comp == "inlet" {
				minDiff = 0.3 // cold aisles are controlled: load and economiser leave a small day–night swing
			}
			if at14 <= at04+minDiff {
				t.Errorf("%s %s: %.2f °C at 14:00, %.2f °C at 04:00", s.ID, comp, at14, at04)
			}
			if comp == "inlet" && (at14 < 17 || at14 > 30) {
				t.Errorf("%s: inlet %.1f °C", s.ID, at14)
			}
		}
		it := c.one(t, "site", s.ID, "__name__", MetricPower, "component", "it")
		var wd, we float64
		var nwd, nwe int
		for _, p := range it {
			lt := time.UnixMilli(p.T).UTC().Add(cetOffset(time.UnixMilli(p.T)))
			if lt.Hour() != 14 {
				continue
			}
			if lt.Weekday() == time.Saturday || lt.Weekday() == time.Sunday {
				we += p.V
				nwe++
			} else {
				wd += p.V
				nwd++
			}
		}
		if wd/float64(nwd) <= 1.05*we/float64(nwe) {
			t.Errorf("%s: weekday 14:00 IT %.0f W, weekend %.0f W", s.ID, wd/float64(nwd), we/float64(nwe))
		}
	}
}

func TestDeterministic(t *testing.T) {
	from := day0.Add(5 * time.Hour)
	a := collect(t, New(42), from, from.Add(time.Hour), time.Minute)
	b := collect(t, New(42), from, from.Add(time.Hour), time.Minute)
	c := collect(t, New(43), from, from.Add(time.Hour), time.Minute)
	same, diff := true, false
	for _, k := range a.order {
		for i, p := range a.points[k] {
			if b.points[k][i] != p {
				same = false
			}
			if c.points[k][i] != p {
				diff = true
			}
		}
	}
	if !same {
		t.Error("two fleets with seed 42 differ")
	}
	if !diff {
		t.Error("seeds 42 and 43 give the same data")
	}
	// Gauges are a function of time alone: another start and step agree at a shared instant.
	d := collect(t, New(42), from.Add(30*time.Minute), from.Add(30*time.Minute), time.Second)
	for _, k := range d.find("__name__", MetricPower) {
		if d.points[k][0] != a.points[k][30] {
			t.Fatalf("%s: %v vs %v", k, d.points[k][0], a.points[k][30])
		}
	}
}

func TestCarbonIntensity(t *testing.T) {
	f := New(1)
	at := time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC) // replays 2022-03-10 12:00 UTC
	c := collect(t, f, at, at, time.Minute)
	de := c.find("__name__", MetricCarbonIntensity, "zone", "DE")
	if len(de) != 1 {
		t.Fatalf("DE series: %v", de)
	}
	ls := c.labels[de[0]]
	if get(ls, "provider") != ProviderReplay || get(ls, "site") != "fra1" || get(ls, "signal") != "average" || get(ls, "kind") != "actual" {
		t.Errorf("labels %v", ls)
	}
	// Electricity Maps DE_2022_hourly.csv, 2022-03-10 12:00:00: LCA 358.7 gCO2eq/kWh.
	if v := c.points[de[0]][0].V; v != 358.7 {
		t.Errorf("DE carbon intensity %v, want 358.7", v)
	}
	// FR, same hour: 89.54.
	if v := c.one(t, "__name__", MetricCarbonIntensity, "zone", "FR")[0].V; v != 89.54 {
		t.Errorf("FR carbon intensity %v, want 89.54", v)
	}
	se := c.find("__name__", MetricCarbonIntensity, "zone", "SE")
	if len(se) != 1 || get(c.labels[se[0]], "provider") != ProviderStatic || c.points[se[0]][0].V != SwedenStaticCI {
		t.Errorf("SE: %v %v", se, c.points)
	}
}

// TestRunContinuesGenerate: live data picks up the counters where history stopped.
func TestRunContinuesGenerate(t *testing.T) {
	f := New(11)
	from := day0
	to := from.Add(time.Hour)
	hist := collect(t, f, from, to, time.Minute)

	now := to
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got [][]sample.Series
	err := f.Run(ctx, clock, time.Millisecond, func(_ context.Context, b []sample.Series) error {
		got = append(got, b)
		if len(got) == 5 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 5 {
		t.Fatalf("%d ticks", len(got))
	}
	idx := map[string]int{}
	for i, s := range got[0] {
		idx[sample.FormatLabels(s.Labels)] = i
	}
	for _, k := range hist.find("__name__", MetricEnergy) {
		h := hist.points[k]
		i := idx[k]
		e0, p0 := h[len(h)-1], hist.points[strings.Replace(k, MetricEnergy, MetricPower, 1)]
		pw := p0[len(p0)-1].V
		live := got[0][i].Points[0]
		livePower := got[0][idx[strings.Replace(k, MetricEnergy, MetricPower, 1)]].Points[0].V
		want := e0.V + (pw+livePower)/2*float64(live.T-e0.T)/1000
		if live.T != to.Add(time.Minute).UnixMilli() || math.Abs(live.V-want) > 1e-6*want {
			t.Fatalf("%s: live %v, want %.3f at %v", k, live, want, to.Add(time.Minute))
		}
		for j := 1; j < len(got); j++ {
			if got[j][i].Points[0].V < got[j-1][i].Points[0].V {
				t.Fatalf("%s: live counter decreases", k)
			}
		}
	}
	// History cannot be written behind live data.
	if err := f.Generate(from, to, time.Minute, func([]sample.Series) error { return nil }); !errors.Is(err, ErrBackwards) {
		t.Errorf("Generate into the past: %v", err)
	}
}

// TestResume: a new fleet resumed from stored counters emits what the first
// fleet would have emitted next.
func TestResume(t *testing.T) {
	a := New(4)
	first := collect(t, a, day0, day0.Add(time.Hour), time.Minute)
	next := collect(t, a, day0.Add(61*time.Minute), day0.Add(90*time.Minute), time.Minute)

	b := New(4)
	asked := 0
	err := b.Resume(day0.Add(time.Hour), func(ls []sample.Label) (float64, bool) {
		asked++
		if get(ls, "source") == "nvml" {
			return 0, false // unknown: starts afresh
		}
		p := first.points[sample.FormatLabels(ls)]
		return p[len(p)-1].V, true
	})
	if err != nil {
		t.Fatal(err)
	}
	resumed := collect(t, b, day0.Add(61*time.Minute), day0.Add(90*time.Minute), time.Minute)
	for _, k := range next.find("__name__", MetricEnergy) {
		same := resumed.points[k][29] == next.points[k][29]
		if nvml := get(next.labels[k], "source") == "nvml"; same == nvml {
			t.Errorf("%s: resumed %v, continued %v", k, resumed.points[k][29], next.points[k][29])
		}
	}
	if asked != len(next.find("__name__", MetricEnergy)) {
		t.Errorf("asked for %d counters", asked)
	}
	if err := b.Resume(day0, nil); err == nil {
		t.Error("Resume after emitting")
	}
}

func TestRunEmitError(t *testing.T) {
	boom := errors.New("boom")
	err := New(1).Run(context.Background(), time.Now, time.Hour, func(context.Context, []sample.Series) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("got %v", err)
	}
}

func TestCETOffset(t *testing.T) {
	f := func(s string, want time.Duration) {
		t.Helper()
		tm, _ := time.Parse(time.RFC3339, s)
		if got := cetOffset(tm); got != want {
			t.Errorf("cetOffset(%s) = %v, want %v", s, got, want)
		}
	}
	f("2026-03-29T00:59:59Z", time.Hour)
	f("2026-03-29T01:00:00Z", 2*time.Hour)
	f("2026-10-25T00:59:59Z", 2*time.Hour)
	f("2026-10-25T01:00:00Z", time.Hour)
	f("2025-12-24T12:00:00Z", time.Hour)
}
