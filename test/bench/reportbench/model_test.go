package main

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
)

// The closed-form energy equals the trapezoidal integral of the power.
func TestSeriesEnergyClosedForm(t *testing.T) {
	s := series{base: 180, amp: 25, phase: 1.3}
	w := 2 * math.Pi / day
	a := time.Date(2025, 7, 1, 5, 0, 0, 0, time.UTC).UnixMilli()
	cases := []struct {
		name string
		span int64
	}{{"an hour", hourMs}, {"a day", 24 * hourMs}, {"ten minutes", 600_000}}
	for _, c := range cases {
		var sum float64
		const n = 100000
		dt := float64(c.span) / 1000 / n
		for k := range n {
			t0 := float64(a)/1000 + float64(k)*dt
			p0 := s.base + s.amp*math.Sin(w*t0+s.phase)
			p1 := s.base + s.amp*math.Sin(w*(t0+dt)+s.phase)
			sum += (p0 + p1) / 2 * dt
		}
		if got := s.energy(a, a+c.span); math.Abs(got-sum) > 1e-6*sum {
			t.Errorf("%s: closed form %v J, integral %v J", c.name, got, sum)
		}
	}
}

// A small year written as the benchmark writes it reads back, through the
// rollup reader, as the model's totals and completeness — and the rolled-up
// hours have no raw samples, so they can only come from the rollups.
func TestWrittenYearReadsBackFromRollups(t *testing.T) {
	// Last year's first 40 days: always within the store's retention.
	from := time.Date(time.Now().UTC().Year()-1, 1, 1, 0, 0, 0, 0, time.UTC)
	m := model{site: "fra1", it: 6, fac: 2, from: from, to: from.Add(40 * 24 * time.Hour), step: 15 * time.Second}
	m.rawFrom = m.to.Add(-2 * time.Hour)
	retention := 800 * 24 * time.Hour
	st, err := tsdb.Open(t.TempDir(), tsdb.Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := ingest.NewWriter(st.Backfill(), ingest.WriterOptions{MaxAge: retention - time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pts, err := m.writeRollups(ctx, w, 31*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wantPts := int64(8 * (40*24 - 2)); pts < wantPts {
		t.Errorf("%d rollup points, want at least %d energy points", pts, wantPts)
	}
	raw, err := m.writeRaw(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(8 * (2*240 + 41)); raw != want {
		t.Errorf("%d raw samples, want %d", raw, want)
	}
	want := m.expected()
	for _, c := range []struct {
		component string
		kwh       float64
		compl     float64
	}{{"it", want.itKWh, want.itCompleteness}, {"facility", want.facKWh, 1}} {
		sel := `greenloop_energy_joules_total{site="fra1",component="` + c.component + `"}`
		r, err := rollup.Compute(ctx, st, energy.Query{Selectors: []string{sel}, From: m.from, To: m.to, Buckets: energy.Bucketing{Calendar: energy.Month}})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Total.KWh()-c.kwh) > 1e-9*c.kwh || math.Abs(r.Completeness-c.compl) > 1e-12 {
			t.Errorf("%s: %v, completeness %v; want %v kWh, %v", c.component, r.Total, r.Completeness, c.kwh, c.compl)
		}
		// The raw samples alone hold only the last hours' energy.
		rr, err := energy.Compute(ctx, promsource.New(st), energy.Query{Selectors: []string{sel}, From: m.from, To: m.to, Buckets: energy.Bucketing{Calendar: energy.Month}})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Total.KWh() > 0.01*c.kwh {
			t.Errorf("%s: raw samples hold %v of %v kWh; the rolled-up hours must have none", c.component, rr.Total, c.kwh)
		}
	}
	if want.itCompleteness >= 1 || want.itCompleteness < 0.99 {
		t.Errorf("model IT completeness %v, want just under 1", want.itCompleteness)
	}
}

func TestCheckReport(t *testing.T) {
	want := expected{itKWh: 1000, facKWh: 1400, itCompleteness: 0.995}
	body := func(edc, eit, compl string) []byte {
		return []byte(`{"fields":{"energy_total_kwh":{"value":` + edc + `},"energy_it_kwh":{"value":` + eit + `}},"kpis":{"pue":{"completeness_pct":` + compl + `}}}`)
	}
	cases := []struct {
		name string
		body []byte
		ok   bool
	}{
		{"matches", body("1400.5", "999.5", "99.5"), true},
		{"facility off by 1 %", body("1414", "1000", "99.5"), false},
		{"IT read from raw only", body("1400", "0.4", "99.5"), false},
		{"completeness points not read", body("1400", "1000", "100"), false},
		{"no completeness", body("1400", "1000", "null"), false},
		{"value not a number", body(`"n/a"`, "1000", "99.5"), false},
		{"not JSON", []byte("%PDF-1.7"), false},
	}
	for _, c := range cases {
		var rep report
		err := checkReport(c.body, want, &rep)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
