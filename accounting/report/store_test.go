package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stepClock returns a clock that advances one second per reading.
func stepClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return enteredAt.Add(time.Duration(n.Add(1)) * time.Second) }
}

func TestInputStoreConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	st, err := NewFileInputStore(dir, nil, stepClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := fmt.Sprintf("user%d", w)
			for i := range rounds {
				err := st.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{
					FFloorTotal:    json.RawMessage(fmt.Sprint(1000*w + i)),    // contended field
					FGridFunctions: json.RawMessage(fmt.Sprintf(`["w%d"]`, w)), // contended list
				}, who)
				if err != nil {
					errs <- err
				}
				if _, err := st.Get(ctx, "acme", "fra1", 2025); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A fresh store over the same directory sees every entry.
	st2, err := NewFileInputStore(dir, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := st2.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	hist := in.Fields[FFloorTotal]
	if len(hist) != writers*rounds || len(in.Fields[FGridFunctions]) != writers*rounds {
		t.Fatalf("history has %d/%d entries, want %d", len(hist), len(in.Fields[FGridFunctions]), writers*rounds)
	}
	perUser := map[string]int{}
	for i, e := range hist {
		perUser[e.By]++
		if i > 0 && !e.At.After(hist[i-1].At) {
			t.Errorf("history not in time order at %d", i)
		}
	}
	for w := range writers {
		if perUser[fmt.Sprintf("user%d", w)] != rounds {
			t.Errorf("user%d has %d entries", w, perUser[fmt.Sprintf("user%d", w)])
		}
	}
	cur, _ := in.Current(FFloorTotal)
	if cur.At != hist[len(hist)-1].At || cur.Quality != QualityEntered {
		t.Errorf("current %+v", cur)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "acme", "fra1"))
	if len(ents) != 1 || ents[0].Name() != "2025.json" {
		t.Errorf("directory holds %v", ents)
	}
}

func TestInputStoreRejects(t *testing.T) {
	st, err := NewFileInputStore(t.TempDir(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name   string
		fields map[string]string
		field  string // the field the error must name
		is     error
	}{
		{"unknown field", map[string]string{"floor_area_m2": "12"}, "floor_area_m2", ErrUnknownField},
		{"derived field", map[string]string{FPUE: "1.2"}, FPUE, ErrNotEnterable},
		{"derived ERES-TOT", map[string]string{FERESTot: "1"}, FERESTot, ErrNotEnterable},
		{"string for a number", map[string]string{FFloorTotal: `"12000"`}, FFloorTotal, nil},
		{"negative area", map[string]string{FFloorTotal: `-1`}, FFloorTotal, nil},
		{"coverage above 100", map[string]string{FServersCoverage: `101`}, FServersCoverage, nil},
		{"enum value", map[string]string{FDCType: `"hyperscale"`}, FDCType, nil},
		{"redundancy", map[string]string{FRedundancyElecHV: `"N+"`}, FRedundancyElecHV, nil},
		{"year-month", map[string]string{FEntryIntoOperation: `"2019-13"`}, FEntryIntoOperation, nil},
		{"bool", map[string]string{FPartialYear: `"yes"`}, FPartialYear, nil},
		{"list of numbers", map[string]string{FRefrigerantTypes: `[134]`}, FRefrigerantTypes, nil},
		{"route", map[string]string{FReportingRoute: `"national:germany"`}, FReportingRoute, nil},
		{"instrument type", map[string]string{FInstruments: `[{"instrument_type":"REC","beneficiary_dc_id":"fra1","kwh":1}]`}, FInstruments, nil},
		{"instrument unknown key", map[string]string{FInstruments: `[{"instrument_type":"GO","cert_ids":["a"],"beneficiary_dc_id":"fra1","kwh":1,"mwh":1}]`}, FInstruments, nil},
		{"GO without certificates", map[string]string{FInstruments: `[{"instrument_type":"GO","beneficiary_dc_id":"fra1","kwh":1}]`}, FInstruments, nil},
		{"supplier mix without factor", map[string]string{FInstruments: `[{"instrument_type":"supplier_mix","beneficiary_dc_id":"fra1","kwh":1}]`}, FInstruments, nil},
		{"entry quality", map[string]string{FFloorTotal: `{"value": 1, "quality": "measured"}`}, FFloorTotal, nil},
		{"one bad among good", map[string]string{FFloorTotal: `100`, FFloorCR: `"x"`}, FFloorCR, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := map[string]json.RawMessage{}
			for k, v := range c.fields {
				raw[k] = json.RawMessage(v)
			}
			err := st.Put(ctx, "acme", "fra1", 2025, raw, "alice")
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), "field "+c.field) {
				t.Errorf("error %q does not name field %s", err, c.field)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			in, _ := st.Get(ctx, "acme", "fra1", 2025)
			if len(in.Fields) != 0 {
				t.Errorf("a rejected put stored %v", in.Fields)
			}
		})
	}
	for _, bad := range []struct{ tenant, site string }{{"../x", "fra1"}, {"acme", "FRA1"}, {"acme", ""}} {
		if err := st.Put(ctx, bad.tenant, bad.site, 2025, map[string]json.RawMessage{FFloorTotal: json.RawMessage("1")}, "a"); err == nil {
			t.Errorf("put accepted tenant %q site %q", bad.tenant, bad.site)
		}
	}
	if err := st.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{FFloorTotal: json.RawMessage("1")}, ""); err == nil {
		t.Error("put accepted an anonymous entry")
	}
}

func TestInputStoreEntryForms(t *testing.T) {
	st, err := NewFileInputStore(t.TempDir(), nil, stepClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(id, raw, who string) {
		t.Helper()
		if err := st.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{id: json.RawMessage(raw)}, who); err != nil {
			t.Fatal(err)
		}
	}
	put(FWIN, `{"value": 9100.5, "quality": "estimated"}`, "alice")
	put(FICTStorage, `{"omission_reason": "technical reasons (DR art. 3(2))"}`, "alice")
	put(FFloorTotal, `12000`, "alice")
	put(FFloorTotal, `12500`, "bob")
	put(FFloorTotal, `null`, "carol")
	in, err := st.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := in.Current(FWIN); string(e.Value) != "9100.5" || e.Quality != QualityEstimated {
		t.Errorf("water entry %+v", e)
	}
	if h := in.Fields[FFloorTotal]; len(h) != 3 || string(h[0].Value) != "12000" || h[1].By != "bob" || h[2].Value != nil || h[2].By != "carol" {
		t.Errorf("floor history %+v", h)
	}
	req := exampleRequest(t)
	req.Inputs = in
	req.Measured.Water = nil
	r := build(t, req)
	if fv := r.Fields[FWIN]; fv.Value != 9100.5 || fv.Quality != QualityEstimated || !strings.HasPrefix(fv.Source, "entered by alice at ") {
		t.Errorf("water field %+v", fv)
	}
	if fv := r.Fields[FICTStorage]; fv.Value != nil || fv.Quality != QualityNotAvailable || fv.OmissionReason == "" {
		t.Errorf("omitted field %+v", fv)
	}
	if fv := r.Fields[FFloorTotal]; fv.Value != nil {
		t.Errorf("cleared field still has %v", fv.Value)
	}
	if !hasRule(r.Validation.Errors, "required") || !hasRule(r.Validation.Warnings, "omitted") {
		t.Errorf("cleared field / omission not reported: %+v %+v", r.Validation.Errors, r.Validation.Warnings)
	}
}

func TestInputStoreContextCancelled(t *testing.T) {
	st, err := NewFileInputStore(t.TempDir(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{FFloorTotal: json.RawMessage("1")}, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("put: %v", err)
	}
	if _, err := st.Get(ctx, "acme", "fra1", 2025); !errors.Is(err, context.Canceled) {
		t.Errorf("get: %v", err)
	}
}
