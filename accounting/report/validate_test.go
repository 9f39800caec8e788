package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestValidationRules(t *testing.T) {
	entries := func(f func(map[string]any)) func(*Request) {
		return func(req *Request) {
			e := exampleEntries()
			f(e)
			req.Inputs = inputsOf(t, e)
		}
	}
	setField := func(id string, v any) func(*Report) {
		return func(r *Report) {
			fv := r.Fields[id]
			fv.Value = v
			r.Fields[id] = fv
		}
	}
	cases := []struct {
		name     string
		req      func(*Request)
		rep      func(*Report) // applied to the built report, then validated again
		rule     string
		field    string
		blocking bool
	}{
		{name: "EIT above EDC", req: func(r *Request) { r.Measured.EIT.Value = 16e6 }, rule: "edc_ge_eit", field: FEIT, blocking: true},
		{name: "PUE below 1", req: func(r *Request) { r.Measured.EIT.Value = 16e6 }, rule: "pue_ge_1", field: FPUE, blocking: true},
		{name: "EIT zero", req: func(r *Request) { r.Measured.EIT.Value = 0 }, rule: "eit_positive", field: FEIT, blocking: true},
		{name: "no data for the year", req: func(r *Request) { r.Measured.EDC, r.Measured.EIT = nil, nil }, rule: "no_data", field: FEDC, blocking: true},
		{name: "generator above EDC", req: func(r *Request) { r.Measured.EDCBackup.Value = 16e6 }, rule: "edcbg_le_edc", field: FEDCBG, blocking: true},
		{name: "negative grid import", req: func(r *Request) { r.Measured.OnsiteRenewable.Value = 16e6 }, rule: "grid_import_negative", field: FGridImport, blocking: true},
		{name: "potable above total water", req: func(r *Request) { r.Measured.PotableWater.Value = 10000 }, rule: "winpot_le_win", field: FWINPOT, blocking: true},
		{name: "ERF above 1", req: func(r *Request) { r.Measured.HeatReused.Value = 16e6 }, rule: "erf_range", field: FERF, blocking: true},
		{name: "ERES-TOT not the sum", rep: setField(FERESTot, 12e6), rule: "eres_sum", field: FERESTot, blocking: true},
		{name: "coverage above 100", rep: setField(FServersCoverage, 120.0), rule: "coverage_range", field: FServersCoverage, blocking: true},
		{name: "redundancy not N-notation", rep: setField(FRedundancyElecHV, "3 x N"), rule: "redundancy_format", field: FRedundancyElecHV, blocking: true},
		{name: "stored value breaks the catalogue", req: func(r *Request) {
			r.Inputs.Fields[FRedundancyCoolRack] = append(r.Inputs.Fields[FRedundancyCoolRack], Entry{Value: json.RawMessage(`"N+"`), Quality: QualityEntered, By: "mallory", At: enteredAt})
		}, rule: "invalid_value", field: FRedundancyCoolRack, blocking: true},
		{name: "required field missing", req: entries(func(e map[string]any) { delete(e, FDCType) }), rule: "required", field: FDCType, blocking: true},
		{name: "required field omitted with reason", req: func(r *Request) {
			delete(r.Inputs.Fields, FICTStorage)
			r.Inputs.Fields[FICTStorage] = []Entry{{OmissionReason: "technical reasons, first reporting period", Quality: QualityEntered, By: "alice", At: enteredAt}}
		}, rule: "omitted", field: FICTStorage},
		{name: "partial year without dates", req: entries(func(e map[string]any) { e[FPartialYear] = true }), rule: "period", field: FPeriodStart, blocking: true},
		{name: "partial period outside the year", req: entries(func(e map[string]any) {
			e[FPartialYear], e[FPeriodStart], e[FPeriodEnd] = true, "2024-06-01", "2025-12-31"
		}), rule: "period", field: FPeriodStart, blocking: true},
		{name: "measured data of another period", req: func(r *Request) { r.Measured.PeriodStart = time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC) }, rule: "period", field: FEDC, blocking: true},
		{name: "entered operation after the period", req: entries(func(e map[string]any) { e[FEntryIntoOperation] = "2026-02" }), rule: "period", field: FEntryIntoOperation, blocking: true},
		{name: "certificate claimed twice", req: entries(func(e map[string]any) {
			ins := e[FInstruments].([]Instrument)
			ins[1].CertIDs = []string{"DE-GO-2025-000002"}
		}), rule: "certificate_unique", field: FInstruments, blocking: true},
		{name: "certificate allocated to another DC", req: func(r *Request) {
			r.Measured.CertificatesElsewhere = map[string]CertificateClaim{"DE-GO-2025-000001": {DataCentreID: "ams2", Year: 2025}}
		}, rule: "certificate_unique", field: FInstruments, blocking: true},
		{name: "certificate already used for another year", req: func(r *Request) {
			r.Measured.CertificatesElsewhere = map[string]CertificateClaim{"DE-PPA-2025-77": {DataCentreID: "fra1", Year: 2024}}
		}, rule: "certificate_unique", field: FInstruments, blocking: true},
		{name: "instrument for another DC", req: entries(func(e map[string]any) {
			ins := e[FInstruments].([]Instrument)
			ins[0].BeneficiaryDCID = "ams2"
		}), rule: "certificate_unique", field: FInstruments, blocking: true},
		{name: "instruments exceed purchased electricity", req: entries(func(e map[string]any) {
			ins := e[FInstruments].([]Instrument)
			ins[0].KWh = 14_000_000
		}), rule: "instruments_exceed_consumption", field: FInstruments, blocking: true},
		{name: "PUE implausibly low", req: func(r *Request) { r.Measured.EIT.Value = 15.2e6 }, rule: "pue_range", field: FPUE},
		{name: "PUE implausibly high", req: func(r *Request) { r.Measured.EIT.Value = 5e6 }, rule: "pue_range", field: FPUE},
		{name: "REF above 1", rep: func(r *Report) {
			setField(FERESGOO, 16e6)(r)
			setField(FERESTot, 16e6+3e6+360e3)(r)
		}, rule: "ref_gt_1", field: FREF},
		{name: "mean IT load above PDIT", req: entries(func(e map[string]any) { e[FPDIT] = 1000 }), rule: "it_load_gt_pdit", field: FPDIT},
		{name: "below the 500 kW threshold", req: entries(func(e map[string]any) { e[FPDIT] = 400 }), rule: "out_of_scope", field: FPDIT},
		{name: "meter completeness below 95 %", req: func(r *Request) { r.Measured.EIT.Meters[0].CompletenessPct = 90 }, rule: "completeness", field: FEIT},
		{name: "factor of another year", req: func(r *Request) { r.Measured.LocationFactor.Year = 2024 }, rule: "ef_year", field: FGridImport},
		{name: "direct and lifecycle factors mixed", req: func(r *Request) { r.Measured.ResidualFactor.LCAScope = "lifecycle" }, rule: "ef_mixed_basis", field: FGridImport},
		{name: "KPI service disagrees", req: func(r *Request) { r.Measured.KPIs.PUE = F64(1.35) }, rule: "kpi_mismatch", field: KPIPUE},
		{name: "monthly values do not add up", req: func(r *Request) { r.Measured.Monthly = r.Measured.Monthly[:11] }, rule: "monthly_sum", field: FEDC},
		{name: "waste heat temperature missing", req: entries(func(e map[string]any) { delete(e, FTWH) }), rule: "waste_heat_temp_missing", field: FTWH},
		{name: "no Member State reference ids", req: entries(func(e map[string]any) { delete(e, FMSDCRef) }), rule: "ms_reference_missing", field: FMSDCRef},
		{name: "entry for a metered field", req: entries(func(e map[string]any) { e[FWIN] = 9000 }), rule: "measured_overrides_entry", field: FWIN},
		{name: "instrument vintage of another year", req: entries(func(e map[string]any) {
			ins := e[FInstruments].([]Instrument)
			ins[0].Vintage = "2023"
		}), rule: "instrument_vintage", field: FInstruments},
		{name: "entered GOO differs from the instruments", req: entries(func(e map[string]any) { e[FERESGOO] = 8_000_000 }), rule: "instruments_mismatch", field: FERESGOO},
		{name: "operation started during the year", req: entries(func(e map[string]any) { e[FEntryIntoOperation] = "2025-04" }), rule: "period", field: FEntryIntoOperation},
	}
	base := build(t, exampleRequest(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if hasRule(base.Validation.Errors, c.rule) || hasRule(base.Validation.Warnings, c.rule) {
				t.Fatalf("the worked example already triggers %s", c.rule)
			}
			req := exampleRequest(t)
			if c.req != nil {
				c.req(&req)
			}
			r := build(t, req)
			if c.rep != nil {
				c.rep(r)
				r.Validation = Validate(r, &req.Measured, DefaultOptions())
			}
			list, other := r.Validation.Warnings, r.Validation.Errors
			if c.blocking {
				list, other = other, list
			}
			var found *Issue
			for i, is := range list {
				if is.Rule == c.rule && is.Field == c.field {
					found = &list[i]
				}
			}
			if found == nil {
				t.Fatalf("rule %s on %s not raised (blocking=%v); errors %+v; warnings %+v", c.rule, c.field, c.blocking, r.Validation.Errors, r.Validation.Warnings)
			}
			if len(found.Message) < 20 || strings.Contains(found.Message, "%!") {
				t.Errorf("message %q is not a clear sentence", found.Message)
			}
			for _, is := range other {
				if is.Rule == c.rule && is.Field == c.field {
					t.Errorf("rule %s also raised with the other severity", c.rule)
				}
			}
			if c.blocking {
				if _, err := Freeze("acme", r, FreezeOptions{Now: testNow}); err == nil {
					t.Error("a report with a blocking error froze as final")
				}
			}
		})
	}
}

func TestPartialYear(t *testing.T) {
	req := exampleRequest(t)
	e := exampleEntries()
	e[FPartialYear], e[FPeriodStart], e[FPeriodEnd], e[FEntryIntoOperation] = true, "2025-07-01", "2025-12-31", "2025-07"
	req.Inputs = inputsOf(t, e)
	req.Measured.PeriodStart = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	req.Measured.Monthly = req.Measured.Monthly[6:]
	for _, r := range []*Reading[KWh]{req.Measured.EDC, req.Measured.EIT} {
		r.Value /= 2
	}
	req.Measured.EDC.Value = 7.55e6 // sum of Jul–Dec
	r := build(t, req)
	if r.PeriodStart != "2025-07-01" || r.PeriodEnd != "2025-12-31" || r.Hours() != 184*24 {
		t.Fatalf("period %s – %s, %v h", r.PeriodStart, r.PeriodEnd, r.Hours())
	}
	if hasRule(r.Validation.Errors, "period") || hasRule(r.Validation.Warnings, "period") {
		t.Errorf("partial year flagged: %+v %+v", r.Validation.Errors, r.Validation.Warnings)
	}
	// Mean IT load over 184 days: 6e6 kWh / 4416 h = 1358.7 kW < 2000 kW.
	if hasRule(r.Validation.Warnings, "it_load_gt_pdit") {
		t.Error("mean IT load computed over the full year instead of the operating period")
	}
}

func TestResidualRenewableOption(t *testing.T) {
	req := exampleRequest(t)
	req.Measured.ResidualMix = &MixShares{FossilPct: 60, NuclearPct: 25, RenewablePct: 15}
	conservative := build(t, req).EnergyMix
	opts := DefaultOptions()
	opts.ResidualRenewableAs = "renewable"
	req.Options = &opts
	counted := build(t, req).EnergyMix
	// 3 220 MWh untracked: 15 % = 483 MWh moves from fossil to renewable.
	if !near(conservative.FossilMWh, 55+3220*0.75, 1e-6) || !near(counted.FossilMWh, 55+3220*0.60, 1e-6) || !near(counted.RenewableMWh, 12360+483, 1e-6) {
		t.Errorf("fossil %v / %v, renewable %v", conservative.FossilMWh, counted.FossilMWh, counted.RenewableMWh)
	}
	if !near(conservative.TotalMWh, counted.TotalMWh, 1e-9) {
		t.Error("the option changed the total")
	}
}
