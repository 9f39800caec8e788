package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/accounting/kpi"
	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/internal/config"
)

// KPIs are a site's efficiency indicators over a period, as the API answers them.
type KPIs struct {
	Site     string
	From, To time.Time
	// Result holds every KPI computed, with category, meters, completeness, and the validation issues.
	Result *kpi.Result
	// Inputs are the sums the KPIs come from.
	Inputs kpi.Inputs
	// Completeness is the lower of the facility and IT meters' completeness, 0 to 1.
	Completeness float64
	// Notes say why a KPI is missing (e.g. no intensity for CUE), and
	// when on-site generation exceeded the facility energy in some hour.
	Notes []string
	// Grid, when the site meters on-site generation, is the hourly grid
	// import CUE's Scope 2 prices (see HourlyGrid).
	Grid *HourlyGrid
}

// MarshalJSON writes {"site","from","to","pue","wue","erf","ref","cue_location",
// "cue_market","cer","completeness","categories","energy":{...},"kpis":[...],
// "issues":[...],"notes":[...]}; a KPI that could not be computed is null.
// A site that meters on-site generation also gets "grid_import_kwh" (the
// energy CUE's Scope 2 prices) and "onsite_surplus_kwh".
func (k *KPIs) MarshalJSON() ([]byte, error) {
	val := func(id string) *float64 {
		if v, ok := k.Result.Get(id); ok {
			return &v.Value
		}
		return nil
	}
	cats := map[string]string{}
	for _, x := range k.Result.KPIs {
		if x.Category != "" {
			cats[x.ID] = x.Category
		}
	}
	var full struct {
		KPIs   []kpi.KPI   `json:"kpis"`
		Issues []kpi.Issue `json:"issues,omitempty"`
	}
	b, err := k.Result.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &full); err != nil {
		return nil, err
	}
	var grid, surplus *float64
	if g := k.Grid; g != nil {
		gk, sk := g.Import.Total.KWh(), g.Surplus.KWh()
		grid, surplus = &gk, &sk
	}
	return json.Marshal(struct {
		Site         string            `json:"site"`
		From         time.Time         `json:"from"`
		To           time.Time         `json:"to"`
		PUE          *float64          `json:"pue"`
		WUE          *float64          `json:"wue"`
		ERF          *float64          `json:"erf"`
		REF          *float64          `json:"ref"`
		CUELocation  *float64          `json:"cue_location"`
		CUEMarket    *float64          `json:"cue_market"`
		CER          *float64          `json:"cer"`
		Completeness float64           `json:"completeness"`
		Categories   map[string]string `json:"categories"`
		FacilityKWh  float64           `json:"facility_energy_kwh"`
		ITKWh        float64           `json:"it_energy_kwh"`
		KPIs         []kpi.KPI         `json:"kpis"`
		Issues       []kpi.Issue       `json:"issues,omitempty"`
		Notes        []string          `json:"notes,omitempty"`
		GridKWh      *float64          `json:"grid_import_kwh,omitempty"`
		SurplusKWh   *float64          `json:"onsite_surplus_kwh,omitempty"`
	}{k.Site, k.From, k.To, val("pue"), val("wue"), val("erf"), val("ref"), val("cue_location"), val("cue_market"), val("cer"),
		k.Completeness, cats, k.Inputs.Facility.Value.KWh(), k.Inputs.IT.Value.KWh(), full.KPIs, full.Issues, k.Notes, grid, surplus})
}

// KPIs computes a site's PUE, WUE, ERF, REF, CUE (location and market) and
// CER over [from, to). Facility and IT meters are required; the emissions
// for CUE and the certificates for REF are added when they can be computed,
// and Notes say why when not. CUE adds the Scope 1 entered for the EU
// report of each year the period overlaps, pro rata (see UseReports). CUE's Scope 2 is Emissions' figure: the grid
// import when the site meters on-site generation, so it agrees with the EU
// report's.
func (a *Accountant) KPIs(ctx context.Context, tenant, siteID string, from, to time.Time) (*KPIs, error) {
	if err := (Request{From: from, To: to, Method: emissions.LocationBased}).Check(); err != nil {
		return nil, err
	}
	site, err := a.Site(tenant, siteID)
	if err != nil {
		return nil, err
	}
	in, grid, err := a.measureInputs(ctx, site, from, to)
	if err != nil {
		return nil, err
	}
	out := &KPIs{Site: site.ID, From: from, To: to, Grid: grid}
	if grid != nil {
		if n := grid.SurplusNote(); n != "" {
			out.Notes = append(out.Notes, n)
		}
	}
	out.Completeness = min(in.Facility.Completeness, in.IT.Completeness)
	if in.Facility.Completeness == 0 && in.Facility.Value == 0 {
		return nil, fmt.Errorf("%w: site %q: the facility meter %v has no samples in the period", ErrNoData, site.ID, in.Facility.Meters)
	}
	if in.IT.Completeness == 0 && in.IT.Value == 0 {
		return nil, fmt.Errorf("%w: site %q: the IT meter %v has no samples in the period", ErrNoData, site.ID, in.IT.Meters)
	}
	for _, m := range []emissions.Method{emissions.LocationBased, emissions.MarketBased} {
		e, err := a.Emissions(ctx, tenant, Request{Site: site.ID, From: from, To: to, Method: m})
		if err != nil {
			if errors.Is(err, ErrNoIntensity) || errors.Is(err, ErrNotConfigured) || errors.Is(err, ErrNoData) {
				out.Notes = append(out.Notes, fmt.Sprintf("cue_%s not computed: %v", m, err))
				continue
			}
			return nil, err
		}
		em := &kpi.Emissions{Value: e.Emissions, Completeness: e.Completeness, Source: string(m) + "-based Scope 2"}
		if m == emissions.LocationBased {
			in.Scope2Location = em
			continue
		}
		in.Scope2Market = em
		go_, ppa := renewables(e.Result)
		in.RenewableGO, in.RenewablePPA = go_, ppa
	}
	s1, note, err := a.scope1(ctx, site, from, to)
	if err != nil {
		return nil, err
	}
	if note != "" {
		out.Notes = append(out.Notes, note)
	}
	in.Scope1 = s1
	out.Inputs = in
	out.Result = kpi.Compute(in)
	return out, nil
}

// MeasureInputs reads the site's meters into KPI inputs, with the site's IT
// meter point and WUE category. When on-site generation exceeded the
// facility energy in some hour, EDC-BG (BackupGenerators) and ERES-OS
// (RenewableOnsite) are the parts of the generation consumed on site (see
// HourlyGrid), so that EDC − EDC-BG − ERES-OS is the hourly grid import
// that Emissions prices; the surplus is not consumption.
func (a *Accountant) MeasureInputs(ctx context.Context, site config.Site, from, to time.Time) (kpi.Inputs, error) {
	in, _, err := a.measureInputs(ctx, site, from, to)
	return in, err
}

// measureInputs is MeasureInputs, also returning the hourly grid import
// when the site meters on-site generation.
func (a *Accountant) measureInputs(ctx context.Context, site config.Site, from, to time.Time) (kpi.Inputs, *HourlyGrid, error) {
	in, err := a.measureMeters(ctx, site, from, to)
	if err != nil || (in.BackupGenerators == nil && in.RenewableOnsite == nil) {
		return in, nil, err
	}
	g, err := a.hourlyGrid(ctx, site, from, to)
	if err != nil {
		return in, nil, fmt.Errorf("site %q grid import: %w", site.ID, err)
	}
	if g == nil || g.SurplusHours == 0 {
		return in, g, nil
	}
	for _, t := range []struct {
		e    *kpi.Energy
		used quantity.Energy
	}{{in.BackupGenerators, g.GeneratorUsed}, {in.RenewableOnsite, g.RenewableUsed}} {
		if t.e != nil {
			t.e.Value = t.used
			t.e.Estimated = min(t.e.Estimated, t.used)
		}
	}
	return in, g, nil
}

// measureMeters reads the meters' sums over the period.
func (a *Accountant) measureMeters(ctx context.Context, site config.Site, from, to time.Time) (kpi.Inputs, error) {
	mp := kpi.ITMeterPoint(site.ITMeterPoint)
	if mp == "" {
		mp = kpi.UPSOutput
	}
	wc := site.WUECategory
	if wc == 0 {
		wc = 2
	}
	in, err := kpi.Measure(ctx, promsource.New(a.Queryable(site)), site, from, to, kpi.MeasureOptions{ITMeterPoint: mp, WUECategory: wc, Logger: a.log,
		Energy: func(ctx context.Context, q energy.Query) (*energy.Result, error) { return a.energyOf(ctx, site, q) }})
	if errors.Is(err, energy.ErrNoSeries) {
		return in, fmt.Errorf("%w: %w", ErrNoData, err)
	}
	if err != nil {
		return in, err
	}
	if site.ITCapacityKW > 0 {
		in.InstalledITPower = quantity.Power(site.ITCapacityKW) * quantity.Kilowatt
	}
	return in, nil
}

// renewables sums the renewable attributes a market-based result applied:
// guarantees of origin and green tariffs as ERES-GOO, PPAs as ERES-PPA
// (zero-emission instruments only).
func renewables(r *emissions.Result) (goo, ppa *kpi.Energy) {
	var g, p quantity.Energy
	var gm, pm []string
	for _, al := range r.Allocations {
		if al.Instrument.Factor != 0 {
			continue
		}
		switch al.Instrument.Type {
		case emissions.GuaranteeOfOrigin, emissions.GreenTariff:
			g += al.Applied
			gm = append(gm, al.Instrument.ID)
		case emissions.PPAPhysical, emissions.PPAVirtual:
			p += al.Applied
			pm = append(pm, al.Instrument.ID)
		}
	}
	goo = &kpi.Energy{Value: g, Completeness: 1, Meters: gm}
	ppa = &kpi.Energy{Value: p, Completeness: 1, Meters: pm}
	return goo, ppa
}
