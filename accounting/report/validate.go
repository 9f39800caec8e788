package report

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Issue is one validation finding about one field.
type Issue struct {
	Rule    string `json:"rule"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Validation lists the blocking errors and the warnings of a report. A
// report with errors can be previewed and frozen as a draft, but not
// frozen as final (see Freeze).
type Validation struct {
	Errors   []Issue `json:"errors"`
	Warnings []Issue `json:"warnings"`
}

// OK reports whether there is no blocking error.
func (v Validation) OK() bool { return len(v.Errors) == 0 }

func (v *Validation) fail(rule, field, msg string) {
	v.Errors = append(v.Errors, Issue{Rule: rule, Field: field, Message: msg})
}

func (v *Validation) warn(rule, field, msg string) {
	v.Warnings = append(v.Warnings, Issue{Rule: rule, Field: field, Message: msg})
}

func (v *Validation) prepend(o Validation) {
	v.Errors = append(o.Errors, v.Errors...)
	v.Warnings = append(o.Warnings, v.Warnings...)
	if v.Errors == nil {
		v.Errors = []Issue{}
	}
	if v.Warnings == nil {
		v.Warnings = []Issue{}
	}
}

// Validate checks the report's fields against the blocking and warning rules of
// the spec (§8) and the catalogue's constraints. m (may be nil) adds the
// rules about meters, monthly values, factors and certificates claimed by
// other data centres.
func Validate(r *Report, m *Measured, opts Options) Validation {
	if m == nil {
		m = &Measured{}
	}
	cat := opts.catalogue()
	v := Validation{Errors: []Issue{}, Warnings: []Issue{}}
	num := func(id string) (float64, bool) { return fieldNum(r, id) }
	tol := func(a, b float64) bool {
		return math.Abs(a-b) <= opts.SumTolerance*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
	}

	// Catalogue constraints and required fields.
	for _, f := range cat.Fields() {
		if f.Section == SectionEnvelope {
			continue
		}
		fv, ok := r.Fields[f.ID]
		if !ok || fv.Value == nil {
			if !f.Required {
				continue
			}
			if ok && fv.OmissionReason != "" {
				v.warn("omitted", f.ID, fmt.Sprintf("%s (%s) is omitted: %s", f.ID, f.Name, fv.OmissionReason))
			} else {
				v.fail("required", f.ID, fmt.Sprintf("%s (%s, %s) is missing: enter it or give an omission reason", f.ID, f.Name, f.AnnexRef))
			}
			continue
		}
		if f.Section == SectionAnnexIII {
			continue
		}
		if _, err := decodeFieldValue(f, fv.Value); err != nil {
			rule := "constraint"
			switch {
			case f.Pattern == redundancyPattern:
				rule = "redundancy_format"
			case f.ID == FServersCoverage || f.ID == FStorageCoverage:
				rule = "coverage_range"
			}
			v.fail(rule, f.ID, fmt.Sprintf("%s: %v", f.ID, err))
		}
	}

	// A year with no data.
	if _, okEDC := num(FEDC); !okEDC {
		if _, okEIT := num(FEIT); !okEIT {
			v.fail("no_data", FEDC, fmt.Sprintf("no energy data (EDC, EIT) for %d: check the site's meters or enter the values", r.year))
		}
	}

	edc, okEDC := num(FEDC)
	eit, okEIT := num(FEIT)
	if okEIT && eit <= 0 {
		v.fail("eit_positive", FEIT, fmt.Sprintf("EIT must be above zero, got %v kWh", eit))
	}
	if okEDC && okEIT && eit > edc {
		v.fail("edc_ge_eit", FEIT, fmt.Sprintf("EIT %v kWh exceeds EDC %v kWh; EDC must include the IT energy", eit, edc))
	}
	if bg, ok := num(FEDCBG); ok && okEDC && bg > edc {
		v.fail("edcbg_le_edc", FEDCBG, fmt.Sprintf("EDC-BG %v kWh exceeds EDC %v kWh; generator energy is part of EDC", bg, edc))
	}
	win, okWIN := num(FWIN)
	if pot, ok := num(FWINPOT); ok && okWIN && pot > win {
		v.fail("winpot_le_win", FWINPOT, fmt.Sprintf("WIN-POT %v m³ exceeds WIN %v m³", pot, win))
	}
	if tot, ok := num(FERESTot); ok {
		goo, ok1 := num(FERESGOO)
		ppa, ok2 := num(FERESPPA)
		os, ok3 := num(FERESOS)
		if !ok1 || !ok2 || !ok3 || !tol(tot, goo+ppa+os) {
			v.fail("eres_sum", FERESTot, fmt.Sprintf("ERES-TOT %v kWh is not ERES-GOO + ERES-PPA + ERES-OS = %v kWh", tot, goo+ppa+os))
		}
		if okEDC && tot > edc*(1+opts.SumTolerance) {
			v.warn("ref_gt_1", FREF, fmt.Sprintf("renewable energy %v kWh exceeds EDC %v kWh (REF > 1)", tot, edc))
		}
	}
	if g, ok := num(FGridImport); ok && g < 0 {
		v.fail("grid_import_negative", FGridImport, fmt.Sprintf("purchased electricity is negative (%v kWh): EDC − EDC-BG − ERES-OS < 0; check the meters", g))
	}
	if pue, ok := num(FPUE); ok {
		if pue < 1 {
			v.fail("pue_ge_1", FPUE, fmt.Sprintf("PUE %.3f is below 1", pue))
		} else if pue < opts.PUEWarnMin || pue > opts.PUEWarnMax {
			v.warn("pue_range", FPUE, fmt.Sprintf("PUE %.3f is outside the plausible range [%v, %v]", pue, opts.PUEWarnMin, opts.PUEWarnMax))
		}
	}
	if erf, ok := num(FERF); ok && (erf < 0 || erf > 1) {
		v.fail("erf_range", FERF, fmt.Sprintf("ERF %.3f is outside [0, 1]; reused heat cannot exceed EDC", erf))
	}
	if ref, ok := num(FREF); ok && ref > 1+opts.SumTolerance && !hasRule(v.Warnings, "ref_gt_1") {
		v.warn("ref_gt_1", FREF, fmt.Sprintf("REF %.3f is above 1", ref))
	}
	for _, id := range []string{FServersCoverage, FStorageCoverage} {
		if c, ok := num(id); ok && (c < 0 || c > 100) && !hasField(v.Errors, id) {
			v.fail("coverage_range", id, fmt.Sprintf("%s %v %% is outside [0, 100]", id, c))
		}
	}

	// Scope and load.
	hours := r.Hours()
	if pdit, ok := num(FPDIT); ok {
		if pdit < opts.ScopeThresholdKW {
			v.warn("out_of_scope", FPDIT, fmt.Sprintf("installed IT power %v kW is below %v kW: reporting under EED art. 12 is not required", pdit, opts.ScopeThresholdKW))
		}
		if okEIT && hours > 0 && eit/hours > pdit {
			v.warn("it_load_gt_pdit", FPDIT, fmt.Sprintf("mean IT load %.1f kW (EIT / %.0f h) exceeds installed IT power %v kW", eit/hours, hours, pdit))
		}
	}
	if reuse, ok := num(FEREUSE); ok && reuse > 0 {
		if _, ok := num(FTWH); !ok {
			v.warn("waste_heat_temp_missing", FTWH, "waste heat is reused but its average temperature (TWH) is missing")
		}
	}

	// Period.
	validatePeriod(r, m, &v)

	// Envelope.
	if r.MSEntityReferenceID == "" || r.MSDCReferenceID == "" {
		v.warn("ms_reference_missing", FMSDCRef, "the Member State entity and data-centre ReferenceIDs are needed before submission")
	}

	// Meters.
	for id, rd := range map[string]*Reading[float64]{
		FEDC: kwhReading(m.EDC), FEDCBG: kwhReading(m.EDCBackup), FEIT: kwhReading(m.EIT), FERESOS: kwhReading(m.OnsiteRenewable),
		FEREUSE: kwhReading(m.HeatReused), FGridImport: kwhReading(m.GridImport), FERESPPA: kwhReading(m.PPA), FWIN: m3Reading(m.Water), FWINPOT: m3Reading(m.PotableWater),
	} {
		if rd == nil {
			continue
		}
		for _, mt := range rd.Meters {
			if mt.CompletenessPct < opts.CompletenessMinPct {
				v.warn("completeness", id, fmt.Sprintf("%s: meter %s has data for %.1f %% of the period (< %v %%); gap-filled energy is flagged estimated", id, mt.Selector, mt.CompletenessPct, opts.CompletenessMinPct))
			}
		}
	}
	sortIssues(v.Warnings, "completeness", cat)

	// Monthly values against the annual sums.
	if len(m.Monthly) > 0 {
		var sEDC, sEIT float64
		for _, mo := range m.Monthly {
			sEDC += float64(mo.EDC)
			sEIT += float64(mo.EIT)
		}
		for _, c := range []struct {
			id       string
			sum, tot float64
			ok       bool
		}{{FEDC, sEDC, edc, okEDC}, {FEIT, sEIT, eit, okEIT}} {
			if c.ok && c.tot > 0 && math.Abs(c.sum-c.tot)/c.tot > opts.MonthlyTolerance {
				v.warn("monthly_sum", c.id, fmt.Sprintf("%s: the monthly values sum to %.0f kWh, the annual value is %.0f kWh", c.id, c.sum, c.tot))
			}
		}
	}

	// KPIs computed elsewhere.
	for _, c := range []struct {
		id  string
		ext *float64
	}{{KPIPUE, m.KPIs.PUE}, {KPIWUE, m.KPIs.WUE}, {KPIERF, m.KPIs.ERF}, {KPIREF, m.KPIs.REF}, {KPICUELB, m.KPIs.CUELB}, {KPICUEMB, m.KPIs.CUEMB}} {
		k, ok := r.KPIs[c.id]
		if c.ext == nil || !ok || k.Value == nil {
			continue
		}
		if math.Abs(*c.ext-*k.Value) > opts.KPITolerance*math.Max(math.Abs(*k.Value), 1e-9) {
			v.warn("kpi_mismatch", c.id, fmt.Sprintf("%s computed by the KPI service (%.4f) differs from the report's ratio of annual sums (%.4f)", c.id, *c.ext, *k.Value))
		}
	}

	// Emission factors.
	for _, f := range []struct {
		name string
		ef   *EmissionFactor
	}{{"location-based", m.LocationFactor}, {"residual-mix", m.ResidualFactor}} {
		if f.ef != nil && f.ef.Year != 0 && f.ef.Year != r.year {
			v.warn("ef_year", FGridImport, fmt.Sprintf("the %s factor (%s %s) describes %d, the report covers %d", f.name, f.ef.Source, f.ef.DatasetVersion, f.ef.Year, r.year))
		}
	}
	if lb, mb := m.LocationFactor, m.ResidualFactor; lb != nil && mb != nil && (lb.LCAScope != mb.LCAScope || lb.Gases != mb.Gases) {
		v.warn("ef_mixed_basis", FGridImport, fmt.Sprintf("location-based factor is %s %s, residual-mix factor is %s %s: they are not comparable", lb.Gases, lb.LCAScope, mb.Gases, mb.LCAScope))
	}

	validateInstruments(r, m, opts, &v)
	return v
}

func hasRule(is []Issue, rule string) bool {
	for _, i := range is {
		if i.Rule == rule {
			return true
		}
	}
	return false
}

func hasField(is []Issue, field string) bool {
	for _, i := range is {
		if i.Field == field {
			return true
		}
	}
	return false
}

// sortIssues orders the issues of one rule (built from a map) by the
// catalogue order of their field, then by message, so output is stable.
func sortIssues(is []Issue, rule string, cat *Catalogue) {
	idx := func(i Issue) int { return cat.byID[i.Field] }
	var pos []int
	for i, x := range is {
		if x.Rule == rule {
			pos = append(pos, i)
		}
	}
	sub := make([]Issue, len(pos))
	for i, p := range pos {
		sub[i] = is[p]
	}
	for i := 1; i < len(sub); i++ {
		for j := i; j > 0; j-- {
			a, b := sub[j-1], sub[j]
			if idx(a) > idx(b) || (idx(a) == idx(b) && a.Message > b.Message) {
				sub[j-1], sub[j] = b, a
			}
		}
	}
	for i, p := range pos {
		is[p] = sub[i]
	}
}

func kwhReading(r *Reading[KWh]) *Reading[float64] {
	if r == nil {
		return nil
	}
	return &Reading[float64]{Value: float64(r.Value), Meters: r.Meters, EstimatedSharePct: r.EstimatedSharePct}
}

func m3Reading(r *Reading[CubicMetres]) *Reading[float64] {
	if r == nil {
		return nil
	}
	return &Reading[float64]{Value: float64(r.Value), Meters: r.Meters, EstimatedSharePct: r.EstimatedSharePct}
}

func validatePeriod(r *Report, m *Measured, v *Validation) {
	yStart := time.Date(r.year, 1, 1, 0, 0, 0, 0, time.UTC)
	yEnd := yStart.AddDate(1, 0, 0)
	if r.PartialYear {
		ps, err1 := time.Parse(time.DateOnly, r.PeriodStart)
		pe, err2 := time.Parse(time.DateOnly, r.PeriodEnd)
		switch {
		case err1 != nil || err2 != nil:
			v.fail("period", FPeriodStart, "partial_year needs period_start and period_end (YYYY-MM-DD)")
		case ps.Before(yStart) || !pe.Before(yEnd) || pe.Before(ps):
			v.fail("period", FPeriodStart, fmt.Sprintf("partial period %s – %s must lie within %d", r.PeriodStart, r.PeriodEnd, r.year))
		case ps.Equal(yStart) && pe.Equal(yEnd.AddDate(0, 0, -1)):
			v.warn("period", FPartialYear, "partial_year is set but the period is the full calendar year")
		}
	} else if !r.start.Equal(yStart) || !r.end.Equal(yEnd) {
		v.fail("period", FPeriodStart, fmt.Sprintf("the period %s – %s is not the calendar year %d; set partial_year for a data centre in operation less than a year", r.PeriodStart, r.PeriodEnd, r.year))
	}
	if !m.PeriodStart.IsZero() || !m.PeriodEnd.IsZero() {
		if !m.PeriodStart.UTC().Equal(r.start) || !m.PeriodEnd.UTC().Equal(r.end) {
			v.fail("period", FEDC, fmt.Sprintf("the measured data cover %s – %s, the report's period is %s – %s",
				m.PeriodStart.UTC().Format(time.DateOnly), m.PeriodEnd.UTC().AddDate(0, 0, -1).Format(time.DateOnly), r.PeriodStart, r.PeriodEnd))
		}
	}
	if s, ok := r.Fields[FEntryIntoOperation].Value.(string); ok && !r.PartialYear {
		if t, err := time.Parse("2006-01", s); err == nil {
			if t.After(yStart) && t.Before(yEnd) {
				v.warn("period", FEntryIntoOperation, fmt.Sprintf("the data centre entered operation in %s, during %d: set partial_year and the operating period", s, r.year))
			} else if !t.Before(yEnd) {
				v.fail("period", FEntryIntoOperation, fmt.Sprintf("the data centre entered operation in %s, after the reporting period %d", s, r.year))
			}
		}
	}
}

func validateInstruments(r *Report, m *Measured, opts Options, v *Validation) {
	ins := fieldInstruments(r)
	seen := map[string]int{}
	var sumGO, sumPPA float64
	for i, in := range ins {
		if in.BeneficiaryDCID != r.DataCentreID {
			v.fail("certificate_unique", FInstruments, fmt.Sprintf("instrument %d (%s) is allocated to data centre %q, not %q", i, in.Type, in.BeneficiaryDCID, r.DataCentreID))
			continue
		}
		for _, id := range in.CertIDs {
			if j, dup := seen[id]; dup {
				v.fail("certificate_unique", FInstruments, fmt.Sprintf("certificate %s is claimed twice (instruments %d and %d)", id, j, i))
			} else {
				seen[id] = i
			}
			if c, ok := m.CertificatesElsewhere[id]; ok && (c.DataCentreID != r.DataCentreID || c.Year != r.year) {
				v.fail("certificate_unique", FInstruments, fmt.Sprintf("certificate %s is already allocated to data centre %q for %d", id, c.DataCentreID, c.Year))
			}
		}
		if in.Vintage != "" && !strings.HasPrefix(in.Vintage, fmt.Sprint(r.year)) {
			v.warn("instrument_vintage", FInstruments, fmt.Sprintf("instrument %d (%s) has vintage %s, the report covers %d", i, in.Type, in.Vintage, r.year))
		}
		switch {
		case in.Type == InstrumentGO:
			sumGO += float64(in.KWh)
		case containsStr(opts.PPATypesForERESPPA, in.Type):
			sumPPA += float64(in.KWh)
		}
	}
	if grid, ok := fieldNum(r, FGridImport); ok && grid >= 0 {
		var covered float64
		for _, in := range ownInstruments(r) {
			covered += float64(in.KWh)
		}
		if covered > grid*(1+opts.SumTolerance) {
			v.fail("instruments_exceed_consumption", FInstruments, fmt.Sprintf("contractual instruments cover %.0f kWh, more than the purchased electricity %.0f kWh", covered, grid))
		}
	}
	if len(ins) == 0 {
		return
	}
	for _, c := range []struct {
		id  string
		sum float64
	}{{FERESGOO, sumGO}, {FERESPPA, sumPPA}} {
		fv := r.Fields[c.id]
		x, ok := fv.Number()
		if ok && strings.HasPrefix(fv.Source, "entered") && math.Abs(x-c.sum) > opts.SumTolerance*math.Max(1, x) {
			v.warn("instruments_mismatch", c.id, fmt.Sprintf("%s entered as %.0f kWh, the contractual instruments sum to %.0f kWh", c.id, x, c.sum))
		}
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
