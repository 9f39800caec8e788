package report

import (
	"encoding/json"
	"regexp"
	"testing"
)

// TestCatalogueCoversSpec checks that every field id of the spec's §3 tables
// is in the catalogue with its annex reference, unit and obtain code.
func TestCatalogueCoversSpec(t *testing.T) {
	cat := DefaultCatalogue()
	if cat.Version() != SchemaVersion {
		t.Fatalf("default catalogue version %s", cat.Version())
	}
	want := []struct{ id, ref, unit, obtain, symbol string }{
		{"dc_name", "I.1(a)", "", "O", ""}, {"owner_name", "I.1(b)", "", "O", ""}, {"owner_contact", "I.1(b)", "", "O", ""},
		{"operator_name", "I.1(b)", "", "O", ""}, {"operator_contact", "I.1(b)", "", "O", ""}, {"location_lau_code", "I.1(c)", "", "O/D", ""},
		{"dc_type", "I.1(d)", "", "O", ""}, {"dc_structure", "I.1(d)", "", "O", ""}, {"dc_type_mixed_services", "I.1(d)", "", "O", ""},
		{"entry_into_operation", "I.1(e)", "", "O", ""},
		{"redundancy_electrical_hv", "I.2(a)", "", "O", ""}, {"redundancy_electrical_lv", "I.2(a)", "", "O", ""}, {"redundancy_electrical_rack", "I.2(a)", "", "O", ""},
		{"redundancy_cooling_room", "I.2(b)", "", "O", ""}, {"redundancy_cooling_rack", "I.2(b)", "", "O", ""},
		{"pd_it_kw", "II.1(a)", "kW", "O/D", "PDIT"}, {"pd_it_basis", "II.1(a)", "", "O", ""}, {"floor_area_total_m2", "II.1(b)", "m²", "O", "SDC"},
		{"floor_area_computer_room_m2", "II.1(c)", "m²", "O", "SCR"}, {"energy_total_kwh", "II.1(d)", "kWh", "M", "EDC"},
		{"energy_backup_gen_kwh", "II.1(d)", "kWh", "M", "EDC-BG"}, {"energy_it_kwh", "II.1(e)", "kWh", "M", "EIT"},
		{"energy_it_meter_basis", "II.1(e)", "", "O", ""}, {"grid_functions", "II.1(f)", "", "O", ""}, {"battery_to_grid_kw", "II.1(g)", "kW", "O/M", "CBtG"},
		{"water_input_m3", "II.1(h)", "m³", "M", "WIN"}, {"wue_category", "II.1(h)", "", "O", ""}, {"water_potable_input_m3", "II.1(i)", "m³", "M", "WIN-POT"},
		{"waste_heat_reused_kwh", "II.1(j)", "kWh", "M", "EREUSE"}, {"waste_heat_temp_avg_c", "II.1(k)", "°C", "M/D", "TWH"},
		{"it_intake_setpoint_avg_c", "II.1(l)", "°C", "M/O", "TIN"}, {"refrigerant_types", "II.1(m)", "", "O", ""},
		{"cooling_degree_days", "II.1(n)", "degree-days", "X/D", "CDD"}, {"renewable_total_kwh", "II.1(o)", "kWh", "D", "ERES-TOT"},
		{"renewable_goo_kwh", "II.1(p)", "kWh", "O", "ERES-GOO"}, {"renewable_ppa_kwh", "II.1(q)", "kWh", "O/M", "ERES-PPA"},
		{"renewable_onsite_kwh", "II.1(r)", "kWh", "M", "ERES-OS"},
		{"ict_capacity_servers", "II.2", "SERT score", "D/O", "CSERV"}, {"ict_capacity_servers_coverage_pct", "II.2", "%", "O", ""},
		{"ict_capacity_storage_pb", "II.2", "PB", "D/O", "CSTOR"}, {"ict_capacity_storage_coverage_pct", "II.2", "%", "O", ""},
		{"bandwidth_in", "II.3", "GB/s", "O", "BIN"}, {"bandwidth_out", "II.3", "GB/s", "O", "BOUT"},
		{"traffic_in_eb", "II.3", "EB", "M/O", "TIN"}, {"traffic_out_eb", "II.3", "EB", "M/O", "TOUT"},
		{"pue", "III(a)", "", "D", "PUE"}, {"wue", "III(b)", "L/kWh", "D", "WUE"}, {"erf", "III(c)", "", "D", "ERF"}, {"ref", "III(d)", "", "D", "REF"},
	}
	last := -1
	for _, w := range want {
		f, ok := cat.Field(w.id)
		if !ok {
			t.Errorf("field %s missing", w.id)
			continue
		}
		if f.AnnexRef != w.ref || f.Unit != w.unit || string(f.Obtain) != w.obtain || f.Symbol != w.symbol || f.Name == "" {
			t.Errorf("%s = ref %s unit %q obtain %s symbol %s, want %s %q %s %s", w.id, f.AnnexRef, f.Unit, f.Obtain, f.Symbol, w.ref, w.unit, w.obtain, w.symbol)
		}
		if i := cat.byID[w.id]; i < last {
			t.Errorf("%s is out of annex order", w.id)
		} else {
			last = i
		}
	}
	for _, f := range cat.Fields() {
		if f.Obtain == "D" && f.Enterable() {
			t.Errorf("derived field %s is enterable", f.ID)
		}
	}
}

func TestRedundancyPattern(t *testing.T) {
	f, _ := DefaultCatalogue().Field(FRedundancyElecHV)
	for s, ok := range map[string]bool{"N": true, "N+1": true, "N+2": true, "2N": true, "2N+1": true, "3N+12": true,
		"": false, "N+": false, "2 N": false, "n+1": false, "N-1": false, "2N+": false, "NN": false, "10N": false} {
		raw, _ := json.Marshal(s)
		_, err := ParseValue(f, raw)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok=%v", s, err, ok)
		}
	}
	if !regexp.MustCompile(redundancyPattern).MatchString("N+1") {
		t.Error("pattern")
	}
}

// TestLaterSchemaVersion shows how the pending amending act (WIN-FRE instead
// of WIN-POT) would be represented: a new catalogue version, registered
// beside the current one, which reports then name.
func TestLaterSchemaVersion(t *testing.T) {
	fields := DefaultCatalogue().Fields()
	for i, f := range fields {
		if f.ID == FWINPOT {
			fields[i] = Field{ID: "water_fresh_input_m3", Name: "Total freshwater input", Symbol: "WIN-FRE", Unit: "m³", AnnexRef: "II.1(i)",
				Section: SectionAnnexII1, Obtain: "M", Type: TypeNumber, Min: fp(0), Required: true}
		}
	}
	amended, err := NewCatalogue("test-amended.v2", fields)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := LookupCatalogue(amended.Version()); !ok { // -count=N reruns
		if err := RegisterCatalogue(amended); err != nil {
			t.Fatal(err)
		}
	}
	if err := RegisterCatalogue(amended); err == nil {
		t.Error("registered the same version twice")
	}
	if _, ok := LookupCatalogue("test-amended.v2"); !ok {
		t.Fatal("lookup")
	}
	if _, err := ParseEntry(amended, FWINPOT, json.RawMessage("1")); err == nil {
		t.Error("amended catalogue accepts WIN-POT")
	}
	opts := DefaultOptions()
	opts.Catalogue = amended
	req := exampleRequest(t)
	req.Options = &opts
	r := build(t, req)
	if r.SchemaVersion != "test-amended.v2" || !hasField(r.Validation.Errors, "water_fresh_input_m3") {
		t.Errorf("schema %s, errors %+v", r.SchemaVersion, r.Validation.Errors)
	}
	if _, ok := r.Fields[FWINPOT]; ok {
		t.Error("the amended report still has WIN-POT")
	}
	if _, err := NewCatalogue("bad", []Field{{ID: "a", Type: TypeString}, {ID: "a", Type: TypeString}}); err == nil {
		t.Error("duplicate ids accepted")
	}
	if _, err := NewCatalogue("bad", []Field{{ID: "a", Type: TypeEnum}}); err == nil {
		t.Error("enum without values accepted")
	}
}
