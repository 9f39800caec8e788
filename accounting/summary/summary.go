// Package summary computes the per-site "now" figures of greenloop's first
// page from the series store with PromQL: current IT and facility power, PUE,
// inlet temperature, grid carbon intensity, and today's facility energy and
// location-based CO2e.
package summary

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/internal/config"
)

// Meter keys of config.Site.Meters the summary reads. Each names a PromQL
// series selector; when a key is absent the canonical series of the site is
// used, e.g. greenloop_energy_joules_total{site="fra1",component="facility"}.
const (
	MeterFacilityEnergy   = "facility_energy"
	MeterITEnergy         = "it_energy"
	MeterFacilityPower    = "facility_power"
	MeterITPower          = "it_power"
	MeterInletTemperature = "inlet_temperature"
)

// Windows of the queries.
const (
	// GaugeLookback is how far back a power or temperature gauge's last sample may lie to count as current.
	GaugeLookback = 5 * time.Minute
	// PUEWindow is the window of the energy counters PUE is computed over.
	PUEWindow = 15 * time.Minute
	// CarbonLookback is how far back the last carbon-intensity sample may lie (providers publish hourly).
	CarbonLookback = 2 * time.Hour
)

// PUE bases.
const (
	PUEFromEnergy = "energy_15m" // increase of the facility and IT energy counters over PUEWindow
	PUEFromPower  = "power"      // ratio of the current power gauges
)

// SiteSummary is one site's current state. A nil figure means the store has
// no data for it.
type SiteSummary struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Zone         string          `json:"zone"`
	Location     config.Location `json:"location"`
	ITCapacityKW float64         `json:"it_capacity_kw"`

	// ITPowerW and FacilityPowerW are the current power of the IT and facility
	// meters: their gauges' last samples, or the rate of their energy counters.
	ITPowerW       *float64 `json:"it_power_watts"`
	FacilityPowerW *float64 `json:"facility_power_watts"`
	// PUE is facility over IT energy of the last 15 minutes (PUEBasis
	// "energy_15m"), or facility over IT power ("power") without counters.
	PUE      *float64 `json:"pue"`
	PUEBasis string   `json:"pue_basis,omitempty"`
	// InletTempC is the mean of the site's current rack inlet temperatures.
	InletTempC *float64 `json:"inlet_temperature_celsius"`
	// CarbonIntensity is the current average grid intensity of the site's zone
	// (signal "average", kind "actual"), gCO2e/kWh; CarbonProvider names its
	// provider label(s), e.g. "electricitymaps-2022-replay" for demo data.
	CarbonIntensity *float64 `json:"carbon_intensity_grams_per_kwh"`
	CarbonProvider  string   `json:"carbon_provider,omitempty"`
	// EnergyTodayKWh is the facility energy since Since.
	EnergyTodayKWh *float64 `json:"energy_today_kwh"`
	// CO2eTodayKg is location-based: the sum over the hours since Since of the
	// facility energy in the hour times that hour's carbon intensity.
	CO2eTodayKg *float64 `json:"co2e_today_kg"`

	// Since is the start of "today": midnight UTC of At's day.
	Since time.Time `json:"since"`
	// At is the instant the figures are for.
	At time.Time `json:"at"`
	// Warnings says what could not be computed and why (e.g. a bad meter selector).
	Warnings []string `json:"warnings,omitempty"`
}

// Compute returns the summary of every site at now, in the order of sites.
// q is the store as the caller may see it (tenant scoping is the caller's:
// pass a Queryable that only returns the tenant's series). Each figure is
// one PromQL query over all sites, so the cost does not grow with the number
// of sites in queries. Only the sites' IT and facility meters count as IT and
// facility: node, PDU and other readings are never added to them.
//
// "Today" starts at midnight UTC. Energy per hour is increase() of the
// facility counters over each whole hour since then, plus the running hour;
// its CO2e uses the mean intensity of the samples inside that hour (an hour
// without one takes the nearest hour's).
func Compute(ctx context.Context, q storage.Queryable, eng *promql.Engine, sites []config.Site, now time.Time) ([]SiteSummary, error) {
	now = now.UTC().Truncate(time.Millisecond)
	since := now.Truncate(24 * time.Hour)
	out := make([]SiteSummary, len(sites))
	sel := make([]selectors, len(sites))
	for i, s := range sites {
		out[i] = SiteSummary{ID: s.ID, Name: s.Name, Zone: s.Zone, Location: s.Location, ITCapacityKW: s.ITCapacityKW, Since: since, At: now}
		sel[i] = selectorsFor(s, &out[i].Warnings)
	}
	c := &computer{ctx: ctx, q: q, eng: eng, sites: sites, sel: sel, now: now}

	gauge := "sum(last_over_time(%s[" + dur(GaugeLookback) + "]))"
	rate := "sum(rate(%s[" + dur(GaugeLookback) + "]))"
	inc := "sum(increase(%s[" + dur(PUEWindow) + "]))"
	itGauge := c.instant(itPower, gauge)
	facGauge := c.instant(facPower, gauge)
	itRate := c.instant(itEnergy, rate)
	facRate := c.instant(facEnergy, rate)
	itInc := c.instant(itEnergy, inc)
	facInc := c.instant(facEnergy, inc)
	inlet := c.instant(inletTemp, "avg(last_over_time(%s["+dur(GaugeLookback)+"]))")
	ci := c.instantBy("provider", carbonSel, "avg by (provider) (last_over_time(%s["+dur(CarbonLookback)+"]))")
	energy := c.today(since)
	if c.err != nil {
		return nil, c.err
	}

	for i := range out {
		o, id := &out[i], sites[i].ID
		o.ITPowerW = first(itGauge[id], itRate[id])
		o.FacilityPowerW = first(facGauge[id], facRate[id])
		if f, it := facInc[id], itInc[id]; f != nil && it != nil && *it > 0 {
			o.PUE, o.PUEBasis = ptr(*f / *it), PUEFromEnergy
		} else if o.FacilityPowerW != nil && o.ITPowerW != nil && *o.ITPowerW > 0 {
			o.PUE, o.PUEBasis = ptr(*o.FacilityPowerW / *o.ITPowerW), PUEFromPower
		}
		o.InletTempC = inlet[id]
		if byProv := ci[id]; len(byProv) > 0 {
			names := make([]string, 0, len(byProv))
			var sum float64
			for p, v := range byProv {
				names = append(names, p)
				sum += v
			}
			sort.Strings(names)
			o.CarbonIntensity, o.CarbonProvider = ptr(sum/float64(len(byProv))), strings.Join(names, ",")
		}
		if e, ok := energy[id]; ok {
			o.EnergyTodayKWh = ptr(e.kwh)
			if e.co2eOK {
				o.CO2eTodayKg = ptr(e.co2eKg)
			} else if e.kwh > 0 {
				o.Warnings = append(o.Warnings, "no carbon intensity today for zone "+sites[i].Zone)
			}
		}
	}
	return out, nil
}

// Totals are the fleet-wide figures over a set of site summaries.
type Totals struct {
	Sites          int     `json:"sites"`
	ITPowerW       float64 `json:"it_power_watts"`
	FacilityPowerW float64 `json:"facility_power_watts"`
	// PUE is total facility over total IT power of the sites that have both; nil when none has.
	PUE            *float64 `json:"pue"`
	EnergyTodayKWh float64  `json:"energy_today_kwh"`
	CO2eTodayKg    float64  `json:"co2e_today_kg"`
	// CarbonIntensityToday is today's CO2e over today's energy (of the sites that have both), gCO2e/kWh.
	CarbonIntensityToday *float64 `json:"carbon_intensity_today_grams_per_kwh"`
}

// Total adds up site summaries.
func Total(sites []SiteSummary) Totals {
	t := Totals{Sites: len(sites)}
	var pueIT, pueFac, ciKWh float64
	for _, s := range sites {
		if s.ITPowerW != nil {
			t.ITPowerW += *s.ITPowerW
		}
		if s.FacilityPowerW != nil {
			t.FacilityPowerW += *s.FacilityPowerW
		}
		if s.ITPowerW != nil && s.FacilityPowerW != nil {
			pueIT += *s.ITPowerW
			pueFac += *s.FacilityPowerW
		}
		if s.EnergyTodayKWh != nil {
			t.EnergyTodayKWh += *s.EnergyTodayKWh
			if s.CO2eTodayKg != nil {
				t.CO2eTodayKg += *s.CO2eTodayKg
				ciKWh += *s.EnergyTodayKWh
			}
		}
	}
	if pueIT > 0 {
		t.PUE = ptr(pueFac / pueIT)
	}
	if ciKWh > 0 {
		t.CarbonIntensityToday = ptr(t.CO2eTodayKg * 1000 / ciKWh)
	}
	return t
}

// selectors are one site's series selectors; an empty one is left out of the queries.
type selectors struct {
	facEnergy, itEnergy, facPower, itPower, inlet, carbon string
}

func selectorsFor(s config.Site, warnings *[]string) selectors {
	canonical := func(metric, component string) string {
		return fmt.Sprintf(`%s{site=%q,component=%q}`, metric, s.ID, component)
	}
	meter := func(key, def string) string {
		v, ok := s.Meters[key]
		if !ok {
			return def
		}
		if err := checkSelector(v); err != nil {
			*warnings = append(*warnings, fmt.Sprintf("meters.%s: %v", key, err))
			return ""
		}
		return v
	}
	sel := selectors{
		facEnergy: meter(MeterFacilityEnergy, canonical("greenloop_energy_joules_total", "facility")),
		itEnergy:  meter(MeterITEnergy, canonical("greenloop_energy_joules_total", "it")),
		facPower:  meter(MeterFacilityPower, canonical("greenloop_power_watts", "facility")),
		itPower:   meter(MeterITPower, canonical("greenloop_power_watts", "it")),
		inlet:     meter(MeterInletTemperature, canonical("greenloop_temperature_celsius", "inlet")),
	}
	if s.Zone != "" {
		sel.carbon = fmt.Sprintf(`greenloop_grid_carbon_intensity_grams_per_kwh{zone=%q,signal="average",kind="actual"}`, s.Zone)
	}
	return sel
}

// checkSelector accepts a plain series selector, the form meters take.
func checkSelector(s string) error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	if err != nil {
		return fmt.Errorf("invalid selector %q: %w", s, err)
	}
	if _, ok := e.(*parser.VectorSelector); !ok {
		return fmt.Errorf("%q is not a series selector", s)
	}
	return nil
}

type computer struct {
	ctx   context.Context
	q     storage.Queryable
	eng   *promql.Engine
	sites []config.Site
	sel   []selectors
	now   time.Time
	err   error
}

// pick chooses one selector of a site.
type pick func(selectors) string

var (
	facEnergy pick = func(s selectors) string { return s.facEnergy }
	itEnergy  pick = func(s selectors) string { return s.itEnergy }
	facPower  pick = func(s selectors) string { return s.facPower }
	itPower   pick = func(s selectors) string { return s.itPower }
	inletTemp pick = func(s selectors) string { return s.inlet }
	carbonSel pick = func(s selectors) string { return s.carbon }
)

// siteLabel tags each site's part of a query with the site, so a site's own
// "site" label, or its absence, does not matter.
const siteLabel = "greenloop_summary_site"

// union builds one query of the per-site expressions tmpl (with %s standing
// for the site's selector), each tagged with its site; sites without that
// selector are left out.
func (c *computer) union(sel pick, tmpl string) string {
	var parts []string
	for i, s := range c.sites {
		if v := sel(c.sel[i]); v != "" {
			parts = append(parts, fmt.Sprintf(`label_replace(%s, %q, %q, "", "")`, fmt.Sprintf(tmpl, v), siteLabel, s.ID))
		}
	}
	return strings.Join(parts, " or ")
}

func (c *computer) exec(qs string, start, end time.Time, step time.Duration) parser.Value {
	if c.err != nil || qs == "" {
		return nil
	}
	var (
		qry promql.Query
		err error
	)
	if step == 0 {
		qry, err = c.eng.NewInstantQuery(c.ctx, c.q, nil, qs, start)
	} else {
		qry, err = c.eng.NewRangeQuery(c.ctx, c.q, nil, qs, start, end, step)
	}
	if err != nil {
		c.err = fmt.Errorf("summary query %s: %w", qs, err)
		return nil
	}
	defer qry.Close()
	res := qry.Exec(c.ctx)
	if res.Err != nil {
		c.err = fmt.Errorf("summary query %s: %w", qs, res.Err)
		return nil
	}
	return res.Value
}

// instant runs a per-site expression at now and returns each site's value.
func (c *computer) instant(sel pick, tmpl string) map[string]*float64 {
	out := map[string]*float64{}
	v, _ := c.exec(c.union(sel, tmpl), c.now, c.now, 0).(promql.Vector)
	for _, s := range v {
		if !math.IsNaN(s.F) {
			out[s.Metric.Get(siteLabel)] = ptr(s.F)
		}
	}
	return out
}

// instantBy is instant for an expression with one result per value of label.
func (c *computer) instantBy(label string, sel pick, tmpl string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	v, _ := c.exec(c.union(sel, tmpl), c.now, c.now, 0).(promql.Vector)
	for _, s := range v {
		if math.IsNaN(s.F) {
			continue
		}
		id := s.Metric.Get(siteLabel)
		if out[id] == nil {
			out[id] = map[string]float64{}
		}
		out[id][s.Metric.Get(label)] = s.F
	}
	return out
}

// rangeQ runs a per-site expression at each step of [start, end] and returns each site's points by time.
func (c *computer) rangeQ(sel pick, tmpl string, start, end time.Time, step time.Duration) map[string]map[int64]float64 {
	out := map[string]map[int64]float64{}
	m, _ := c.exec(c.union(sel, tmpl), start, end, step).(promql.Matrix)
	for _, s := range m {
		id := s.Metric.Get(siteLabel)
		if out[id] == nil {
			out[id] = map[int64]float64{}
		}
		for _, p := range s.Floats {
			if !math.IsNaN(p.F) {
				out[id][p.T] = p.F
			}
		}
	}
	return out
}

type dayEnergy struct {
	kwh, co2eKg float64
	co2eOK      bool
}

// today sums facility energy and its CO2e per hour since midnight.
func (c *computer) today(since time.Time) map[string]dayEnergy {
	// Hour h covers (end-1h, end]; its intensity is the mean of the samples in
	// [end-1h, end), hence the 1ms offset (the value in force from the hour's start).
	lastEnd := c.now.Truncate(time.Hour)
	type hour struct {
		end    int64
		energy map[string]float64 // J by site
		ci     map[string]float64
	}
	var hours []hour
	if lastEnd.After(since) {
		first := since.Add(time.Hour)
		e := c.rangeQ(facEnergy, "sum(increase(%s[1h]))", first, lastEnd, time.Hour)
		ci := c.rangeQ(carbonSel, "avg(avg_over_time(%s[1h] offset 1ms))", first, lastEnd, time.Hour)
		for t := first; !t.After(lastEnd); t = t.Add(time.Hour) {
			h := hour{end: t.UnixMilli(), energy: map[string]float64{}, ci: map[string]float64{}}
			for id, pts := range e {
				if v, ok := pts[h.end]; ok {
					h.energy[id] = v
				}
			}
			for id, pts := range ci {
				if v, ok := pts[h.end]; ok {
					h.ci[id] = v
				}
			}
			hours = append(hours, h)
		}
	}
	if part := c.now.Sub(lastEnd); part > 0 {
		e := c.instant(facEnergy, "sum(increase(%s["+dur(part)+"]))")
		ci := c.instant(carbonSel, "avg(avg_over_time(%s["+dur(part+time.Millisecond)+"]))")
		h := hour{end: c.now.UnixMilli(), energy: map[string]float64{}, ci: map[string]float64{}}
		for id, v := range e {
			h.energy[id] = *v
		}
		for id, v := range ci {
			h.ci[id] = *v
		}
		hours = append(hours, h)
	}
	if c.err != nil {
		return nil
	}

	out := map[string]dayEnergy{}
	for _, s := range c.sites {
		var d dayEnergy
		seen := false
		// Intensity per hour, gaps filled from the nearest hour that has one.
		ci := make([]float64, len(hours))
		have := make([]bool, len(hours))
		for i, h := range hours {
			ci[i], have[i] = h.ci[s.ID]
		}
		filled := fillNearest(ci, have)
		d.co2eOK = filled
		for i, h := range hours {
			j, ok := h.energy[s.ID]
			if !ok {
				continue
			}
			seen = true
			kwh := j / 3.6e6
			d.kwh += kwh
			d.co2eKg += kwh * ci[i] / 1000
		}
		if seen {
			out[s.ID] = d
		}
	}
	return out
}

// fillNearest fills the values not had from the nearest hour that has one
// (the earlier on a tie), and reports whether any hour had one.
func fillNearest(v []float64, have []bool) bool {
	if !slices.Contains(have, true) {
		return false
	}
	orig := slices.Clone(have)
	for i := range v {
		if orig[i] {
			continue
		}
		for d := 1; ; d++ {
			if i-d >= 0 && orig[i-d] {
				v[i] = v[i-d]
				break
			}
			if i+d < len(v) && orig[i+d] {
				v[i] = v[i+d]
				break
			}
		}
		have[i] = true
	}
	return true
}

// dur renders a duration for PromQL in milliseconds, exactly.
func dur(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

func ptr(v float64) *float64 { return &v }

func first(vs ...*float64) *float64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}
