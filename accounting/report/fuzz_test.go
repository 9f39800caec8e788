package report

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// FuzzParseEntry feeds operator input (a field id and its raw JSON) to the
// entry parser: it must never panic, and an accepted value must parse back
// to the same value from what would be stored.
func FuzzParseEntry(f *testing.F) {
	f.Add(FFloorTotal, []byte(`12000`))
	f.Add(FRedundancyElecHV, []byte(`"2N+1"`))
	f.Add(FWIN, []byte(`{"value": 9100.5, "quality": "estimated"}`))
	f.Add(FInstruments, []byte(`[{"instrument_type":"GO","cert_ids":["a"],"beneficiary_dc_id":"fra1","kwh":1e6,"vintage":"2025"}]`))
	f.Add(FEntryIntoOperation, []byte(`"2019-04"`))
	f.Add(FRefrigerantTypes, []byte(`["R-134a"]`))
	f.Add(FScope1Sources, []byte(`[{"kind":"fuel","name":"diesel","quantity":5500,"unit":"L","factor_kg_per_unit":2.66},{"kind":"refrigerant","name":"R-32","quantity":1.5,"unit":"kg"}]`))
	cat := DefaultCatalogue()
	f.Fuzz(func(t *testing.T, id string, raw []byte) {
		e, err := ParseEntry(cat, id, raw)
		if err != nil {
			return
		}
		if e.Quality != QualityEntered && e.Quality != QualityEstimated {
			t.Fatalf("quality %q", e.Quality)
		}
		fld, _ := cat.Field(id)
		v1, err := ParseValue(fld, raw)
		if err != nil && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			t.Fatalf("accepted entry fails to parse directly: %v", err)
		}
		v2, err := ParseValue(fld, e.Value)
		if err != nil {
			t.Fatalf("stored value %s does not parse: %v", e.Value, err)
		}
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && !reflect.DeepEqual(v1, v2) {
			t.Fatalf("round trip %#v != %#v", v1, v2)
		}
	})
}

// FuzzParseReport feeds arbitrary bytes to the snapshot reader: it must
// never panic, and what it accepts must marshal canonically.
func FuzzParseReport(f *testing.F) {
	golden, err := os.ReadFile(goldenJSON)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(`{"schema_version":"dr2024-1364.v1","period_start":"2025-01-01","period_end":"2025-12-31","fields":{"pue":{"value":1.2}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data)
		if err != nil {
			return
		}
		if _, err := MarshalCanonical(r); err != nil {
			t.Fatalf("parsed report does not marshal: %v", err)
		}
		if !json.Valid(data) {
			t.Fatal("accepted invalid JSON")
		}
	})
}
