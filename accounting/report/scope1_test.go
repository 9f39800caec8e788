package report

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScope1SourcesEntry(t *testing.T) {
	cat := DefaultCatalogue()
	for _, c := range []struct {
		name, raw string
		wantErr   string // substring; "" means valid
		wantN     int
	}{
		{"worked example", `[{"kind":"fuel","name":"diesel","quantity":5500,"unit":"L","factor_kg_per_unit":2.66,"source":"fuel log"},{"kind":"refrigerant","name":"R-134a","quantity":10,"unit":"kg"}]`, "", 2},
		{"none", `[]`, "", 0},
		{"renewable fuel", `[{"kind":"fuel","name":"hvo","quantity":100,"unit":"L","factor_kg_per_unit":0.2,"renewable":true}]`, "", 1},
		{"fuel without factor", `[{"kind":"fuel","name":"diesel","quantity":5500,"unit":"L"}]`, "needs factor_kg_per_unit", 0},
		{"unknown kind", `[{"kind":"coal","name":"x","quantity":1,"unit":"kg","factor_kg_per_unit":1}]`, `kind "coal"`, 0},
		{"negative quantity", `[{"kind":"fuel","name":"diesel","quantity":-1,"unit":"L","factor_kg_per_unit":2.66}]`, "quantity -1", 0},
		{"no name", `[{"kind":"fuel","name":" ","quantity":1,"unit":"L","factor_kg_per_unit":2.66}]`, "name must be set", 0},
		{"no unit", `[{"kind":"fuel","name":"diesel","quantity":1,"factor_kg_per_unit":2.66}]`, "unit must be set", 0},
		{"refrigerant in litres", `[{"kind":"refrigerant","name":"R-32","quantity":1,"unit":"L"}]`, `want kg`, 0},
		{"negative factor", `[{"kind":"refrigerant","name":"R-32","quantity":1,"unit":"kg","factor_kg_per_unit":-3}]`, "factor_kg_per_unit -3", 0},
		{"unknown key", `[{"kind":"fuel","name":"diesel","quantity":1,"unit":"L","factor_kg_per_unit":2.66,"litres":4}]`, "unknown field", 0},
		{"not a list", `"diesel"`, "want a list of Scope 1 sources", 0},
		{"entry form", `{"value":[{"kind":"fuel","name":"gas","quantity":1,"unit":"m³"}],"quality":"estimated"}`, "needs factor_kg_per_unit", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := ParseEntry(cat, FScope1Sources, json.RawMessage(c.raw))
			if c.wantErr != "" {
				var fe *FieldError
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.As(err, &fe) || fe.Field != FScope1Sources {
					t.Fatalf("err = %v, want a FieldError for %s containing %q", err, FScope1Sources, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, _ := cat.Field(FScope1Sources)
			v, err := ParseValue(f, e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if l := v.([]Scope1Source); len(l) != c.wantN {
				t.Fatalf("%d sources, want %d", len(l), c.wantN)
			}
		})
	}
}

// TestScope1FromEntries: the worked example's Scope 1 entered through the
// input store gives the spec's 29.9 t and CUE; without an entry Scope 1 and
// the totals are unavailable and a warning says the CUE counts Scope 2 only;
// an empty list states zero.
func TestScope1FromEntries(t *testing.T) {
	sources := []map[string]any{
		{"kind": "fuel", "name": "diesel", "quantity": 5500, "unit": "L", "factor_kg_per_unit": 2.66, "source": "generator fuel log"},
		{"kind": "refrigerant", "name": "R-134a", "quantity": 10, "unit": "kg", "source": "F-gas log"},
	}
	for _, c := range []struct {
		name       string
		entry      any // nil: not entered
		wantS1     *float64
		wantCUELB  string
		wantWarned bool
	}{
		{"entered", sources, Ptr(29.93), "0.446", false},
		{"none entered", nil, nil, "0.444", true},
		{"empty list", []map[string]any{}, Ptr(0.0), "0.444", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			entries := exampleEntries()
			if c.entry != nil {
				entries[FScope1Sources] = c.entry
			}
			m := exampleMeasured()
			m.Scope1 = nil
			r := build(t, Request{Tenant: "acme", Site: testSite(), Year: 2025, Measured: m, Inputs: inputsOf(t, entries), Now: testNow})
			em := r.Emissions
			switch {
			case c.wantS1 == nil && em.Scope1T != nil:
				t.Errorf("Scope 1 = %v, want not available", *em.Scope1T)
			case c.wantS1 != nil && (em.Scope1T == nil || !near(*em.Scope1T, *c.wantS1, 1e-9)):
				t.Errorf("Scope 1 = %v, want %v", em.Scope1T, *c.wantS1)
			}
			if (em.TotalLBT == nil) != (c.wantS1 == nil) {
				t.Errorf("total LB %v with Scope 1 %v", em.TotalLBT, em.Scope1T)
			}
			if got := r.KPIs[KPICUELB].Display; got != c.wantCUELB {
				t.Errorf("CUE LB %q, want %q", got, c.wantCUELB)
			}
			warned := false
			for _, w := range r.Validation.Warnings {
				if w.Rule == "scope1_missing" && w.Field == FScope1Sources {
					warned = true
				}
			}
			if warned != c.wantWarned {
				t.Errorf("scope1_missing warning %v, want %v: %+v", warned, c.wantWarned, r.Validation.Warnings)
			}
			fv := r.Fields[FScope1Sources]
			if c.entry != nil && (fv.Quality != QualityEntered || !strings.HasPrefix(fv.Source, "entered by alice")) {
				t.Errorf("field %+v", fv)
			}
		})
	}
}
