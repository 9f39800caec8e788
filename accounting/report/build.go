package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/greenloop/greenloop/internal/config"
)

// Report statuses.
const (
	StatusPreview = "preview" // built on request, not frozen
	StatusDraft   = "draft"   // frozen with draft=true (may have blocking errors)
	StatusFinal   = "final"   // frozen without blocking errors
)

// FieldValue is one field of a report.
type FieldValue struct {
	// Value is a string, float64, bool, []string or []Instrument; nil when
	// not available.
	Value          any     `json:"value"`
	Unit           string  `json:"unit,omitempty"`
	Quality        Quality `json:"quality"`
	Source         string  `json:"source,omitempty"`
	OmissionReason string  `json:"omission_reason,omitempty"`
	AnnexRef       string  `json:"annex_ref"`
}

// Number returns the value as a number.
func (v FieldValue) Number() (float64, bool) {
	x, ok := v.Value.(float64)
	return x, ok
}

// MonthRow is one month of the monthly table and charts.
type MonthRow struct {
	Month string   `json:"month"`
	EDC   KWh      `json:"edc_kwh"`
	EIT   KWh      `json:"eit_kwh"`
	PUE   *float64 `json:"pue"`
}

// Report is the EU data-centre report of one site for one calendar year.
// Its JSON form is the canonical export (see MarshalCanonical).
type Report struct {
	SchemaVersion       string     `json:"schema_version"`
	ReportID            string     `json:"report_id"`
	Status              string     `json:"status"`
	DataCentreID        string     `json:"data_centre_id"`
	DataCentreName      string     `json:"data_centre_name"`
	ReportingYear       int        `json:"reporting_year"` // year of publication: period year + 1
	PeriodStart         string     `json:"period_start"`   // YYYY-MM-DD
	PeriodEnd           string     `json:"period_end"`     // YYYY-MM-DD, inclusive
	PartialYear         bool       `json:"partial_year"`
	ReportingRoute      string     `json:"reporting_route"`
	MSEntityReferenceID string     `json:"ms_entity_reference_id"`
	MSDCReferenceID     string     `json:"ms_dc_reference_id"`
	GeneratedAt         time.Time  `json:"generated_at"`
	SubmittedAt         *time.Time `json:"submitted_at"`
	Evidence            []string   `json:"evidence"`
	// TradeSecretFields are withheld from the public PDF (EED art. 12(1));
	// the JSON, CSV and XLSX for the authorities keep them.
	TradeSecretFields []string `json:"trade_secret_fields"`

	Fields     map[string]FieldValue `json:"fields"`
	KPIs       KPIs                  `json:"kpis"`
	Monthly    []MonthRow            `json:"monthly"`
	EnergyMix  EnergyMix             `json:"esrs_e1_5"`
	Emissions  Emissions             `json:"esrs_e1_6"`
	Validation Validation            `json:"validation"`
	// Assumptions are the options the report was built with.
	Assumptions Options `json:"assumptions"`

	year  int
	start time.Time // period start, UTC
	end   time.Time // period end, exclusive
}

// Year returns the calendar year the report covers.
func (r *Report) Year() int { return r.year }

// Hours returns the length of the reporting period in hours.
func (r *Report) Hours() float64 { return r.end.Sub(r.start).Hours() }

// Request is what Build needs.
type Request struct {
	Tenant string
	Site   config.Site
	// Year is the calendar year the report covers (the "previous calendar
	// year" of the reporting year, which is Year+1).
	Year     int
	Measured Measured
	Inputs   Inputs
	// Options; the zero value is DefaultOptions().
	Options *Options
	// Now is the build time (the injected clock's reading).
	Now time.Time
}

// Build assembles the report from measured values and operator entries,
// computes the KPIs and the ESRS tables, and validates it. Problems with
// the data end up in Report.Validation; an error is returned only for an
// unusable request.
func Build(req Request) (*Report, error) {
	if !idRe.MatchString(req.Site.ID) {
		return nil, fmt.Errorf("build report: site id %q invalid", req.Site.ID)
	}
	if req.Year < 2000 || req.Year > 2200 {
		return nil, fmt.Errorf("build report: year %d out of range", req.Year)
	}
	opts := DefaultOptions()
	if req.Options != nil {
		opts = req.Options.clone()
	}
	cat := opts.catalogue()
	b := &builder{
		req: req, opts: opts, cat: cat,
		r: &Report{
			SchemaVersion:     cat.Version(),
			ReportID:          fmt.Sprintf("eudc-%s-%s-%d", tenantOr(req.Tenant), req.Site.ID, req.Year),
			Status:            StatusPreview,
			DataCentreID:      req.Site.ID,
			DataCentreName:    req.Site.Name,
			ReportingYear:     req.Year + 1,
			GeneratedAt:       req.Now.UTC(),
			Evidence:          []string{},
			TradeSecretFields: []string{},
			Fields:            map[string]FieldValue{},
			Monthly:           []MonthRow{},
			Assumptions:       opts,
			year:              req.Year,
		},
		parsed: map[string]any{},
	}
	b.parseEntries()
	b.envelope()
	b.fields()
	b.kpis()
	b.monthly()
	// Entered Scope 1 sources win over any the caller measured.
	if l, ok := b.parsed[FScope1Sources].([]Scope1Source); ok {
		if req.Measured.Scope1 != nil {
			b.issues.warn("scope1_entered", FScope1Sources, "Scope 1 sources are both entered and supplied with the measured values; the entries are used")
		}
		req.Measured.Scope1 = l
	}
	b.r.EnergyMix = energyMix(b.r, &req.Measured, opts)
	b.r.Emissions = emissions(b.r, &req.Measured, opts)
	// CUE needs the emissions.
	b.cue()
	if b.r.Emissions.Scope1T == nil {
		b.issues.warn("scope1_missing", FScope1Sources, "Scope 1 is not available (no sources entered, or a source without a factor): the CUE counts Scope 2 only and ESRS E1-6 has no Scope 1 or total")
	}
	b.r.Validation = Validate(b.r, &req.Measured, opts)
	b.r.Validation.prepend(b.issues)
	return b.r, nil
}

func tenantOr(t string) string {
	if t == "" {
		return "default"
	}
	return t
}

type builder struct {
	req    Request
	opts   Options
	cat    *Catalogue
	r      *Report
	parsed map[string]any // current entered values, parsed
	issues Validation     // problems found while building
}

func (b *builder) parseEntries() {
	for id, hist := range b.req.Inputs.Fields {
		if len(hist) == 0 {
			continue
		}
		e := hist[len(hist)-1]
		f, ok := b.cat.Field(id)
		if !ok {
			b.issues.warn("stored_unknown_field", id, fmt.Sprintf("stored entry for %s is not a field of schema %s; ignored", id, b.cat.Version()))
			continue
		}
		v, err := ParseValue(f, e.Value)
		if err != nil {
			b.issues.fail("invalid_value", id, fmt.Sprintf("stored value of %s is invalid: %v", id, errors.Unwrap(err)))
			continue
		}
		b.parsed[id] = v
	}
}

func (b *builder) entry(id string) (Entry, bool) { return b.req.Inputs.Current(id) }

func entrySource(e Entry) string {
	return fmt.Sprintf("entered by %s at %s", e.By, e.At.UTC().Format(time.RFC3339))
}

// set records a field's value.
func (b *builder) set(id string, v any, q Quality, src string) {
	f, _ := b.cat.Field(id)
	b.r.Fields[id] = FieldValue{Value: v, Unit: f.Unit, Quality: q, Source: src, AnnexRef: f.AnnexRef}
}

// fromEntry sets a field from its operator entry; false when there is none with a value.
func (b *builder) fromEntry(id string) bool {
	v, ok := b.parsed[id]
	if !ok || v == nil {
		return false
	}
	e, _ := b.entry(id)
	b.set(id, v, e.Quality, entrySource(e))
	return true
}

func (b *builder) envelope() {
	r := b.r
	str := func(id string) string {
		s, _ := b.parsed[id].(string)
		return s
	}
	r.ReportingRoute = str(FReportingRoute)
	if r.ReportingRoute == "" {
		r.ReportingRoute = "eu_database"
	}
	r.MSEntityReferenceID = str(FMSEntityRef)
	r.MSDCReferenceID = str(FMSDCRef)
	if ev, ok := b.parsed[FEvidence].([]string); ok {
		r.Evidence = ev
	}
	if ts, ok := b.parsed[FTradeSecrets].([]string); ok {
		for _, id := range ts {
			f, known := b.cat.Field(id)
			if !known || f.Section == SectionEnvelope {
				b.issues.warn("trade_secret_unknown", FTradeSecrets, fmt.Sprintf("%s lists %q, which is not a report field", FTradeSecrets, id))
				continue
			}
			r.TradeSecretFields = append(r.TradeSecretFields, id)
		}
	}
	r.PartialYear, _ = b.parsed[FPartialYear].(bool)
	r.start = time.Date(b.req.Year, 1, 1, 0, 0, 0, 0, time.UTC)
	r.end = r.start.AddDate(1, 0, 0)
	if r.PartialYear {
		s, err1 := time.Parse(time.DateOnly, str(FPeriodStart))
		e, err2 := time.Parse(time.DateOnly, str(FPeriodEnd))
		if err1 != nil || err2 != nil {
			b.issues.fail("period", FPeriodStart, "partial_year needs period_start and period_end (YYYY-MM-DD); the full calendar year is used")
		} else {
			r.start, r.end = s, e.AddDate(0, 0, 1)
		}
	}
	r.PeriodStart = r.start.Format(time.DateOnly)
	r.PeriodEnd = r.end.AddDate(0, 0, -1).Format(time.DateOnly)
	if name := str(FDCName); name != "" {
		r.DataCentreName = name
	}
}

// measuredKWh maps fields to their readings.
func (b *builder) readingsKWh() map[string]*Reading[KWh] {
	m := &b.req.Measured
	return map[string]*Reading[KWh]{
		FEDC: m.EDC, FEDCBG: m.EDCBackup, FEIT: m.EIT, FERESOS: m.OnsiteRenewable,
		FEREUSE: m.HeatReused, FGridImport: m.GridImport, FERESPPA: m.PPA,
	}
}

func (b *builder) fromMeasured(id string) bool {
	m := &b.req.Measured
	var (
		v   float64
		q   Quality
		src string
	)
	if r, ok := b.readingsKWh()[id]; ok {
		if r == nil {
			return false
		}
		v, q, src = float64(r.Value), r.quality(), r.source()
	} else {
		switch id {
		case FWIN, FWINPOT:
			r := m.Water
			if id == FWINPOT {
				r = m.PotableWater
			}
			if r == nil {
				return false
			}
			v, q, src = float64(r.Value), r.quality(), r.source()
		case FTWH, FTIN:
			r := m.WasteHeatTemp
			if id == FTIN {
				r = m.IntakeSetpoint
			}
			if r == nil {
				return false
			}
			v, q, src = float64(r.Value), r.quality(), r.source()
		case FCoolingDegreeDays:
			if m.CoolingDegreeDays == nil {
				return false
			}
			v, q, src = m.CoolingDegreeDays.Value, m.CoolingDegreeDays.quality(), m.CoolingDegreeDays.source()
		default:
			return false
		}
	}
	b.set(id, v, q, src)
	if e, ok := b.entry(id); ok && len(e.Value) > 0 {
		b.issues.warn("measured_overrides_entry", id, fmt.Sprintf("%s: the value %s entered by %s is ignored; the measured %v %s is used", id, e.Value, e.By, v, b.r.Fields[id].Unit))
	}
	return true
}

func (b *builder) num(id string) (float64, Quality, bool) {
	fv, ok := b.r.Fields[id]
	if !ok {
		return 0, "", false
	}
	x, ok := fv.Number()
	return x, fv.Quality, ok
}

// instruments returns the entered contractual instruments.
func (b *builder) instruments() []Instrument {
	l, _ := b.parsed[FInstruments].([]Instrument)
	return l
}

func (b *builder) sumInstruments(types ...string) (KWh, int) {
	var s KWh
	n := 0
	for _, in := range b.instruments() {
		if in.BeneficiaryDCID != b.req.Site.ID {
			continue
		}
		for _, t := range types {
			if in.Type == t {
				s += in.KWh
				n++
			}
		}
	}
	return s, n
}

func (b *builder) fields() {
	for _, f := range b.cat.Fields() {
		if f.Section == SectionEnvelope || f.Section == SectionAnnexIII {
			continue
		}
		if b.fromMeasured(f.ID) || b.fromEntry(f.ID) || b.derive(f.ID) {
			continue
		}
		fv := FieldValue{Unit: f.Unit, Quality: QualityNotAvailable, AnnexRef: f.AnnexRef}
		if e, ok := b.entry(f.ID); ok {
			fv.OmissionReason = e.OmissionReason
			fv.Source = entrySource(e)
		}
		b.r.Fields[f.ID] = fv
	}
	// ERES-TOT and grid import depend on fields set above.
	b.deriveLate()
}

// derive fills fields that have a default or a derivation from other inputs.
func (b *builder) derive(id string) bool {
	switch id {
	case FDCName:
		if b.req.Site.Name != "" {
			b.set(id, b.req.Site.Name, QualityEntered, "site configuration (sites[].name)")
			return true
		}
	case FPDIT:
		if b.req.Site.ITCapacityKW > 0 {
			b.set(id, b.req.Site.ITCapacityKW, QualityEntered, "site configuration (sites[].it_capacity_kw, rated IT load)")
			return true
		}
	case FPDITBasis:
		if _, ok := b.parsed[FPDIT]; !ok && b.req.Site.ITCapacityKW > 0 {
			b.set(id, "rated", QualityEntered, "site configuration (sites[].it_capacity_kw is the rated IT load)")
			return true
		}
	case FScope1Sources:
		if l := b.req.Measured.Scope1; l != nil {
			b.set(id, l, QualityEntered, "supplied with the measured values")
			return true
		}
	case FERESGOO:
		if s, n := b.sumInstruments(InstrumentGO); n > 0 {
			b.set(id, float64(s), QualityEntered, fmt.Sprintf("derived: sum of %d GO instrument(s) of %s", n, FInstruments))
			return true
		}
	case FERESPPA:
		if s, n := b.sumInstruments(b.opts.PPATypesForERESPPA...); n > 0 {
			b.set(id, float64(s), QualityEntered, fmt.Sprintf("derived: sum of %d PPA instrument(s) of %s", n, FInstruments))
			return true
		}
	}
	return false
}

func (b *builder) deriveLate() {
	if _, ok := b.r.Fields[FGridImport]; !ok || b.r.Fields[FGridImport].Value == nil {
		edc, q1, ok1 := b.num(FEDC)
		bg, q2, ok2 := b.num(FEDCBG)
		os, q3, ok3 := b.num(FERESOS)
		if ok1 && ok2 && ok3 {
			b.set(FGridImport, edc-bg-os, worst(q1, q2, q3), "derived: EDC − EDC-BG − ERES-OS")
		}
	}
	goo, q1, ok1 := b.num(FERESGOO)
	ppa, q2, ok2 := b.num(FERESPPA)
	os, q3, ok3 := b.num(FERESOS)
	if ok1 && ok2 && ok3 {
		b.set(FERESTot, goo+ppa+os, worst(q1, q2, q3), "derived: ERES-GOO + ERES-PPA + ERES-OS")
	} else {
		var missing []string
		for _, p := range []struct {
			id string
			ok bool
		}{{FERESGOO, ok1}, {FERESPPA, ok2}, {FERESOS, ok3}} {
			if !p.ok {
				missing = append(missing, p.id)
			}
		}
		fv := b.r.Fields[FERESTot]
		fv.OmissionReason = "not derivable: missing " + strings.Join(missing, ", ")
		b.r.Fields[FERESTot] = fv
	}
}

func (b *builder) kwhPtr(id string) (*KWh, Quality) {
	x, q, ok := b.num(id)
	if !ok {
		return nil, QualityNotAvailable
	}
	v := KWh(x)
	return &v, q
}

// kpis computes the KPIs from the fields and records their inputs' quality, meters and completeness.
func (b *builder) kpis() {
	edc, qEDC := b.kwhPtr(FEDC)
	eit, qEIT := b.kwhPtr(FEIT)
	reuse, qReuse := b.kwhPtr(FEREUSE)
	ren, qRen := b.kwhPtr(FERESTot)
	var water *CubicMetres
	qWater := QualityNotAvailable
	if x, q, ok := b.num(FWIN); ok {
		water, qWater = Ptr(CubicMetres(x)), q
	}
	k := ComputeKPIs(AnnualSums{EDC: edc, EIT: eit, Water: water, HeatReused: reuse, Renewable: ren}, b.opts.Decimals)
	b.r.KPIs = k
	quality := map[string]Quality{
		KPIPUE: worst(qEDC, qEIT), KPIWUE: worst(qWater, qEIT), KPIERF: worst(qReuse, qEDC), KPIREF: worst(qRen, qEDC),
	}
	meters := map[string][]string{FEDC: nil, FEIT: nil, FWIN: nil, FEREUSE: nil}
	m := &b.req.Measured
	addMeters := func(id string, ms []Meter) {
		for _, x := range ms {
			meters[id] = append(meters[id], x.Selector)
		}
	}
	if m.EDC != nil {
		addMeters(FEDC, m.EDC.Meters)
	}
	if m.EIT != nil {
		addMeters(FEIT, m.EIT.Meters)
	}
	if m.Water != nil {
		addMeters(FWIN, m.Water.Meters)
	}
	if m.HeatReused != nil {
		addMeters(FEREUSE, m.HeatReused.Meters)
	}
	inputs := map[string][]string{KPIPUE: {FEDC, FEIT}, KPIWUE: {FWIN, FEIT}, KPIERF: {FEREUSE, FEDC}, KPIREF: {FEDC},
		KPICUELB: {FEDC, FEIT}, KPICUEMB: {FEDC, FEIT}}
	period := b.r.PeriodStart + "/" + b.r.PeriodEnd
	for id, kp := range k {
		kp.Period = period
		switch id {
		case KPIPUE:
			if basis, ok := b.parsed[FEITBasis].(string); ok {
				kp.Category = map[string]string{"ups": "1", "pdu": "2", "cat2": "2", "custom": "custom"}[basis]
			} else {
				kp.Category = "1"
			}
		case KPIWUE:
			kp.Category, _ = b.parsed[FWUECategory].(string)
		}
		comp, est := 100.0, 0.0
		any := false
		for _, in := range inputs[id] {
			kp.MeterIDs = append(kp.MeterIDs, meters[in]...)
			if r := b.reading(in); r != nil {
				any = true
				comp = min(comp, r.completeness())
				est = max(est, r.EstimatedSharePct)
			}
		}
		if any {
			kp.CompletenessPct, kp.EstimatedSharePct = Ptr(comp), Ptr(est)
		}
		k[id] = kp
	}
	for _, id := range []string{KPIPUE, KPIWUE, KPIERF, KPIREF} {
		f, _ := b.cat.Field(id)
		kp := k[id]
		fv := FieldValue{Unit: f.Unit, Quality: QualityNotAvailable, AnnexRef: f.AnnexRef, Source: "derived: " + kp.Formula}
		if kp.Value != nil {
			fv.Value, fv.Quality = *kp.Value, quality[id]
		} else {
			fv.OmissionReason = kp.Reason
		}
		b.r.Fields[id] = fv
	}
}

// reading returns the measured energy or water reading behind a field as a
// float reading, nil when the field was not measured.
func (b *builder) reading(id string) *Reading[float64] {
	if id == FWIN {
		if w := b.req.Measured.Water; w != nil {
			return &Reading[float64]{Value: float64(w.Value), Meters: w.Meters, EstimatedSharePct: w.EstimatedSharePct}
		}
		return nil
	}
	if r := b.readingsKWh()[id]; r != nil {
		return &Reading[float64]{Value: float64(r.Value), Meters: r.Meters, EstimatedSharePct: r.EstimatedSharePct}
	}
	return nil
}

func (b *builder) cue() {
	e := b.r.Emissions
	eit, _ := b.kwhPtr(FEIT)
	var s1, lb, mb *KgCO2e
	if e.Scope1T != nil {
		s1 = Ptr(KgCO2e(*e.Scope1T * 1000))
	}
	if e.Scope2LBT != nil {
		lb = Ptr(KgCO2e(*e.Scope2LBT * 1000))
	}
	if e.Scope2MBT != nil {
		mb = Ptr(KgCO2e(*e.Scope2MBT * 1000))
	}
	k := ComputeKPIs(AnnualSums{EIT: eit, Scope1: s1, Scope2LB: lb, Scope2MB: mb}, b.opts.Decimals)
	for _, id := range []string{KPICUELB, KPICUEMB} {
		kp := k[id]
		old := b.r.KPIs[id]
		kp.Period, kp.MeterIDs, kp.CompletenessPct, kp.EstimatedSharePct = old.Period, old.MeterIDs, old.CompletenessPct, old.EstimatedSharePct
		b.r.KPIs[id] = kp
	}
}

func (b *builder) monthly() {
	for _, m := range b.req.Measured.Monthly {
		row := MonthRow{Month: m.Month, EDC: m.EDC, EIT: m.EIT}
		if m.EIT > 0 {
			row.PUE = Ptr(float64(m.EDC) / float64(m.EIT))
		}
		b.r.Monthly = append(b.r.Monthly, row)
	}
}

// decodeFieldValue restores the typed value of a field decoded from JSON
// (numbers, strings, lists, instruments), used when a snapshot is read back.
func decodeFieldValue(f Field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return parseValue(f, raw)
}
