package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
)

// TestKPIsScope1: the CUE of KPIs adds the Scope 1 entered for the EU
// report, the year's share of it that the period covers; without an entry
// (or without report entries at all) CUE is Scope 2 only and a note says so.
func TestKPIsScope1(t *testing.T) {
	ctx := context.Background()
	fuel := json.RawMessage(`[{"kind":"fuel","name":"diesel","quantity":5500,"unit":"L","factor_kg_per_unit":2.66},{"kind":"refrigerant","name":"R-134a","quantity":10,"unit":"kg"}]`)
	const annualKg = 5500*2.66 + 10*1530
	share := float64(servicetest.To.Sub(servicetest.From)) / float64(365*24*time.Hour) // 2025 has 365 days
	for _, c := range []struct {
		name    string
		entries map[int]json.RawMessage // year → scope1_sources
		noStore bool
		wantKg  float64 // Scope 1 added to the CUE's numerator
		note    string  // substring of a note; "" means none about Scope 1
	}{
		{name: "entered", entries: map[int]json.RawMessage{2025: fuel}, wantKg: annualKg * share},
		{name: "none entered for the year", entries: map[int]json.RawMessage{2024: fuel}, note: "scope1_sources of fra1 for 2025 (not entered)"},
		{name: "empty list", entries: map[int]json.RawMessage{2025: json.RawMessage(`[]`)}},
		{name: "cleared", entries: map[int]json.RawMessage{2025: json.RawMessage(`null`)}, note: "2025 (cleared)"},
		{name: "no report entries", noStore: true, note: "no EU report entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _ := fixture(t, false)
			base, err := a.KPIs(ctx, "", "fra1", servicetest.From, servicetest.To)
			if err != nil {
				t.Fatal(err)
			}
			if !c.noStore {
				in, err := report.NewFileInputStore(t.TempDir(), nil, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				for y, raw := range c.entries {
					if err := in.Put(ctx, "acme", "fra1", y, map[string]json.RawMessage{report.FScope1Sources: raw}, "alice"); err != nil {
						t.Fatal(err)
					}
				}
				a.UseReports(&report.Service{Inputs: in})
			}
			k, err := a.KPIs(ctx, "", "fra1", servicetest.From, servicetest.To)
			if err != nil {
				t.Fatal(err)
			}
			eit := k.Inputs.IT.Value.KWh()
			for _, id := range []string{"cue_location", "cue_market"} {
				b, _ := base.Result.Get(id)
				got, ok := k.Result.Get(id)
				if !ok {
					t.Fatalf("no %s: %v", id, k.Notes)
				}
				if want := b.Value + c.wantKg/eit; !near(got.Value, want) {
					t.Errorf("%s = %v, want %v (Scope 2 only %v)", id, got.Value, want, b.Value)
				}
			}
			var notes []string
			for _, n := range k.Notes {
				if strings.Contains(n, "Scope 1") {
					notes = append(notes, n)
				}
			}
			switch {
			case c.note == "" && len(notes) > 0:
				t.Errorf("unexpected notes %q", notes)
			case c.note != "" && (len(notes) != 1 || !strings.Contains(notes[0], c.note)):
				t.Errorf("notes %q, want one containing %q", notes, c.note)
			}
		})
	}
}

// TestScope1AcrossYears apportions each year's entry by its share of a
// period that spans New Year.
func TestScope1AcrossYears(t *testing.T) {
	ctx := context.Background()
	a, _ := fixture(t, false)
	in, err := report.NewFileInputStore(t.TempDir(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := func(kg float64) json.RawMessage {
		return json.RawMessage(`[{"kind":"fuel","name":"diesel","quantity":` + ftoa(kg) + `,"unit":"kg","factor_kg_per_unit":1}]`)
	}
	for y, kg := range map[int]float64{2024: 366 * 24, 2025: 365 * 24 * 2} { // 1 kg/h in 2024, 2 kg/h in 2025
		if err := in.Put(ctx, "acme", "fra1", y, map[string]json.RawMessage{report.FScope1Sources: one(kg)}, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	a.UseReports(&report.Service{Inputs: in})
	site, err := a.Site("", "fra1")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2024, 12, 31, 14, 0, 0, 0, time.UTC) // 10 h of 2024, 6 h of 2025
	e, note, err := a.scope1(ctx, site, from, from.Add(16*time.Hour))
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	if got := e.Value.Kg(); !near(got, 10*1+6*2) {
		t.Errorf("Scope 1 %v kg, want 22", got)
	}
	if _, note, _ := a.scope1(ctx, site, from, from.Add(400*24*time.Hour)); !strings.Contains(note, "2026 (not entered)") {
		t.Errorf("a period into 2026: note %q", note)
	}
}

func ftoa(v float64) string { b, _ := json.Marshal(v); return string(b) }
