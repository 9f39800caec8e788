// Package service connects greenloop's accounting to the configured sites
// and the series store: it computes a site's energy, location- and
// market-based emissions and KPIs from the site's meters and the stored grid
// carbon intensity (Accountant), and keeps that intensity stored by running
// the configured carbon-intensity providers on a schedule (IntensityService).
// The server's API and the `greenloop report` command share it, so both give
// the same figures.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/kpi"
	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
)

// Errors of the Accountant, checked with errors.Is. The API maps them to
// 404 (ErrUnknownSite) and 422 (the others).
var (
	// ErrUnknownSite: no such site, or not the caller's tenant's.
	ErrUnknownSite = errors.New("unknown site")
	// ErrNoData: the meters a figure needs have no series or no samples in the period.
	ErrNoData = errors.New("no meter data")
	// ErrNoIntensity: no hourly grid carbon intensity of the site's zone in the period (and no fallback factor).
	ErrNoIntensity = errors.New("no carbon intensity")
	// ErrNotConfigured: the site lacks configuration a figure needs (residual mix, PUE of an IT-only site).
	ErrNotConfigured = errors.New("site configuration incomplete")
)

// ManualProvider is the provider label of intensity imported through the API.
const ManualProvider = "manual"

// Options configure an Accountant.
type Options struct {
	// Store is the whole series store; each site is read through its
	// tenant's view (ingest.TenantQueryable) when MultiTenant is set.
	Store storage.Queryable
	// Sites are the sites when SiteSource is nil (tests, `greenloop report`).
	Sites []config.Site
	// SiteSource, when set, is read at every Site and Sites call instead of
	// Sites: the sites in force now (sitestore.Registry.Sites with
	// sites_store clickhouse). The slice it returns is not modified.
	SiteSource func() []config.Site
	// MultiTenant is true when the server runs with auth: series carry a
	// tenant label and a site is visible to its own tenant only.
	MultiTenant bool
	// Providers is the preference order of carbon-intensity providers when
	// several have a value for the same hour; ManualProvider always comes
	// first, providers not listed come last in name order.
	Providers []string
	// Rollups reads energy from the hourly rollups package rollup keeps
	// (falling back to raw samples for hours not rolled up), so a year costs
	// 8,760 points per series instead of every raw sample.
	Rollups bool
	// Energy, when set, answers the energy queries instead (Rollups is then
	// ignored): ClickHouseEnergy on the ClickHouse backend.
	Energy EnergySource
	Logger *slog.Logger
}

// Accountant computes a site's emissions and KPIs from the store.
type Accountant struct {
	store       storage.Queryable
	sites       func() []config.Site
	multiTenant bool
	rank        map[string]int
	energy      EnergySource
	log         *slog.Logger
	// reports, when set, supplies the Scope 1 entered for the EU report to
	// the CUE of KPIs (UseReports).
	reports *report.Service
}

// New returns an Accountant.
func New(o Options) *Accountant {
	a := &Accountant{store: o.Store, sites: o.SiteSource, multiTenant: o.MultiTenant, log: o.Logger, rank: map[string]int{ManualProvider: 0},
		energy: o.Energy}
	if a.sites == nil {
		static := o.Sites
		a.sites = func() []config.Site { return static }
	}
	if a.energy == nil {
		a.energy = RawEnergy{Store: o.Store}
		if o.Rollups {
			a.energy = RollupEnergy{Store: o.Store}
		}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range o.Providers {
		if _, ok := a.rank[p]; !ok {
			a.rank[p] = len(a.rank)
		}
	}
	return a
}

// Site returns the site with id that tenant may see. With MultiTenant off
// every site is visible.
func (a *Accountant) Site(tenant, id string) (config.Site, error) {
	for _, s := range a.sites() {
		if s.ID == id && (!a.multiTenant || s.SiteTenant() == tenant) {
			return s, nil
		}
	}
	return config.Site{}, fmt.Errorf("%w %q", ErrUnknownSite, id)
}

// Sites returns the sites tenant may see.
func (a *Accountant) Sites(tenant string) []config.Site {
	var out []config.Site
	for _, s := range a.sites() {
		if !a.multiTenant || s.SiteTenant() == tenant {
			out = append(out, s)
		}
	}
	return out
}

// Queryable returns the store as the site's tenant sees it.
func (a *Accountant) Queryable(site config.Site) storage.Queryable {
	if !a.multiTenant {
		return a.store
	}
	return ingest.TenantQueryable(a.store, site.SiteTenant())
}

// QueryableFor returns the store as tenant sees it (the whole store when
// MultiTenant is off).
func (a *Accountant) QueryableFor(tenant string) storage.Queryable {
	if !a.multiTenant {
		return a.store
	}
	return ingest.TenantQueryable(a.store, tenant)
}

// Request asks for a site's emissions over [From, To).
type Request struct {
	Site     string
	From, To time.Time
	Method   emissions.Method
	// Step, when positive, asks for the series in buckets of Step (a whole
	// number of hours); zero leaves the series out.
	Step time.Duration
}

// Check validates the request's own fields, naming the parameter at fault.
func (r Request) Check() error {
	switch {
	case r.From.IsZero():
		return &ParamError{Param: "from", Msg: "must be set"}
	case r.To.IsZero():
		return &ParamError{Param: "to", Msg: "must be set"}
	case !r.To.After(r.From):
		return &ParamError{Param: "to", Msg: "must be after from"}
	case r.To.Sub(r.From) > MaxRange:
		return &ParamError{Param: "to", Msg: fmt.Sprintf("the period may span at most %s", MaxRange)}
	}
	switch r.Method {
	case emissions.LocationBased, emissions.MarketBased:
	default:
		return &ParamError{Param: "method", Msg: fmt.Sprintf("want location or market, got %q", r.Method)}
	}
	if r.Step < 0 || r.Step%time.Hour != 0 {
		return &ParamError{Param: "step", Msg: fmt.Sprintf("want a whole number of hours (1h, 24h), got %s", r.Step)}
	}
	return nil
}

// MaxRange bounds the period of one request (a little over two years).
const MaxRange = 2 * 366 * 24 * time.Hour

// ParamError is a request parameter that is wrong.
type ParamError struct {
	Param, Msg string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %q: %s", e.Param, e.Msg) }

// Emissions is a Scope 2 figure of a site, as the API answers it.
type Emissions struct {
	*emissions.Result
	// WithSeries includes the bucketed series in the JSON.
	WithSeries bool
	// Source says where the energy comes from: the facility meter, or the IT
	// meter scaled by the configured PUE.
	Source string
	// EnergySelector is the selector the energy was read from.
	EnergySelector string
	// IntensityProviders are the providers whose values were used.
	IntensityProviders []string
	// Grid, when the site meters on-site generation (Source is
	// SourceGridImport), says how the priced grid import was derived.
	Grid *HourlyGrid
}

// MarshalJSON writes emissions.Result's API shape, without "series" unless
// WithSeries, plus energy_source, energy_selector and intensity_providers,
// and, when the energy is the grid import (Grid set), facility_energy_kwh,
// grid_import_kwh (= energy_kwh), onsite_generation_kwh (consumed on site),
// backup_generator_kwh and onsite_renewable_kwh (metered) and
// onsite_surplus_kwh (generation above the facility's draw, not priced).
func (e *Emissions) MarshalJSON() ([]byte, error) {
	b, err := e.Result.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if !e.WithSeries {
		delete(m, "series")
	}
	m["energy_source"], _ = json.Marshal(e.Source)
	m["energy_selector"], _ = json.Marshal(e.EnergySelector)
	if len(e.IntensityProviders) > 0 {
		m["intensity_providers"], _ = json.Marshal(e.IntensityProviders)
	}
	if g := e.Grid; g != nil {
		for k, v := range map[string]quantity.Energy{"facility_energy_kwh": g.Facility, "grid_import_kwh": e.Energy,
			"onsite_generation_kwh": g.OnsiteUsed(), "backup_generator_kwh": g.Generator, "onsite_renewable_kwh": g.Renewable,
			"onsite_surplus_kwh": g.Surplus} {
			m[k], _ = json.Marshal(v.KWh())
		}
	}
	return json.Marshal(m)
}

// Energy sources of Emissions.Source.
const (
	SourceFacility = "facility_meter"
	SourceITxPUE   = "it_meter_x_pue"
	// SourceGridImport: the facility meter minus the site's metered
	// back-up generator and on-site renewable energy, hour by hour,
	// clamped at zero (see HourlyGrid).
	SourceGridImport = "grid_import"
)

// Emissions computes a site's location- or market-based emissions. The
// energy is the purchased grid electricity Scope 2 prices: the site's
// facility meter (everything the site draws) when it has series, less, hour
// by hour, the energy of its back-up generator and on-site renewable meters
// when it has them (see HourlyGrid); else its IT meter scaled by the site's
// configured PUE.
func (a *Accountant) Emissions(ctx context.Context, tenant string, r Request) (*Emissions, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	site, err := a.Site(tenant, r.Site)
	if err != nil {
		return nil, err
	}
	e, overhead, source, grid, err := a.siteEnergy(ctx, site, r.From, r.To)
	if err != nil {
		return nil, err
	}
	out := &Emissions{WithSeries: r.Step > 0, Source: source, EnergySelector: e.Selector, Grid: grid}
	switch r.Method {
	case emissions.LocationBased:
		out.Result, out.IntensityProviders, err = a.location(ctx, site, e, overhead)
	case emissions.MarketBased:
		out.Result, err = a.market(site, e, overhead)
	}
	if err != nil {
		return nil, err
	}
	if grid != nil {
		if n := grid.SurplusNote(); n != "" {
			out.Warnings = append(out.Warnings, n)
		}
	}
	if r.Step > time.Hour {
		rb, err := emissions.Rebucket(out.Result, energy.Bucketing{Step: r.Step})
		if err != nil {
			return nil, err
		}
		out.Result = rb
	}
	return out, nil
}

// siteEnergy reads the hourly energy Emissions prices: the site's grid
// import (facility minus metered on-site generation, see HourlyGrid) when it
// meters generation, else its facility meter, or its IT meter with the PUE
// overhead when the facility meter has no series.
func (a *Accountant) siteEnergy(ctx context.Context, site config.Site, from, to time.Time) (*energy.Result, *emissions.Overhead, string, *HourlyGrid, error) {
	q := energy.Query{From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour}, Logger: a.log,
		Selectors: selectors(site, kpi.MeterFacilityEnergy, kpi.MeterFacilityPower)}
	g, err := a.hourlyGrid(ctx, site, from, to)
	if err == nil && g != nil {
		if err := hasData(site, g.Import); err != nil {
			return nil, nil, "", nil, err
		}
		return g.Import, nil, SourceGridImport, g, nil
	}
	var e *energy.Result
	if err == nil {
		e, err = a.energyOf(ctx, site, q)
	}
	if err == nil {
		if err := hasData(site, e); err != nil {
			return nil, nil, "", nil, err
		}
		return e, nil, SourceFacility, nil, nil
	}
	if !errors.Is(err, energy.ErrNoSeries) {
		return nil, nil, "", nil, fmt.Errorf("site %q facility energy: %w", site.ID, err)
	}
	facErr := err
	if site.PUE == nil {
		return nil, nil, "", nil, fmt.Errorf("%w: site %q: no facility meter series (%v) and no pue configured to scale the IT meter: %w",
			ErrNoData, site.ID, q.Selectors, facErr)
	}
	q.Selectors = selectors(site, kpi.MeterITEnergy, kpi.MeterITPower)
	e, err = a.energyOf(ctx, site, q)
	if errors.Is(err, energy.ErrNoSeries) {
		return nil, nil, "", nil, fmt.Errorf("%w: site %q: neither the facility nor the IT meter (%v) has series: %w", ErrNoData, site.ID, q.Selectors, err)
	}
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("site %q IT energy: %w", site.ID, err)
	}
	if err := hasData(site, e); err != nil {
		return nil, nil, "", nil, err
	}
	return e, &emissions.Overhead{PUE: site.PUE.Value, Basis: site.PUE.Basis}, SourceITxPUE, nil, nil
}

// energyOf computes q over the site's tenant's series with the Accountant's
// EnergySource (the hourly rollups when they are kept, else raw samples),
// through the context's EnergyMemo when it has one.
func (a *Accountant) energyOf(ctx context.Context, site config.Site, q energy.Query) (*energy.Result, error) {
	tenant := ""
	if a.multiTenant {
		tenant = site.SiteTenant()
	}
	if m := EnergyMemoFrom(ctx); m != nil {
		return m.energy(ctx, a.energy, tenant, q)
	}
	return a.energy.Energy(ctx, tenant, q)
}

// hasData refuses a result without a single covered moment: a zero that
// means "nothing measured" must not pass as "nothing consumed".
func hasData(site config.Site, e *energy.Result) error {
	if e.Completeness == 0 && e.Total == 0 {
		return fmt.Errorf("%w: site %q: %s has no samples between %s and %s", ErrNoData, site.ID, e.Selector,
			e.From.UTC().Format(time.RFC3339), e.To.UTC().Format(time.RFC3339))
	}
	return nil
}

// selectors returns the site's selectors for meter keys, configured or canonical.
func selectors(site config.Site, keys ...string) []string {
	var out []string
	for _, k := range keys {
		s, ok := site.Meters[k]
		if !ok {
			s = kpi.DefaultSelector(site.ID, k)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (a *Accountant) location(ctx context.Context, site config.Site, e *energy.Result, overhead *emissions.Overhead) (*emissions.Result, []string, error) {
	series, provs, err := a.Intensity(ctx, a.Queryable(site), site.Zone, e.From, e.To)
	if err != nil {
		return nil, nil, err
	}
	var fb *emissions.Factor
	if f := site.FallbackFactor; f != nil {
		fb = &emissions.Factor{Zone: site.Zone, Intensity: quantity.Intensity(f.GPerKWh) * quantity.GramPerKWh, Source: f.Source, Year: f.Year}
	}
	if len(series.Points) == 0 && fb == nil {
		return nil, nil, fmt.Errorf("%w: zone %s has no stored hourly intensity (signal average) between %s and %s, and site %q has no fallback_factor",
			ErrNoIntensity, site.Zone, e.From.UTC().Format(time.RFC3339), e.To.UTC().Format(time.RFC3339), site.ID)
	}
	res, err := emissions.Location(emissions.LocationInput{Site: site.ID, Zone: site.Zone, Energy: e, Intensity: series, Fallback: fb, Overhead: overhead})
	if err != nil {
		return nil, nil, fmt.Errorf("site %q location-based emissions: %w", site.ID, err)
	}
	return res, provs, nil
}

func (a *Accountant) market(site config.Site, e *energy.Result, overhead *emissions.Overhead) (*emissions.Result, error) {
	residual := ResidualMix(site, e.From)
	res, err := emissions.Market(emissions.MarketInput{Site: site.ID, Zone: site.Zone, Energy: e,
		Instruments: Instruments(site), Residual: residual, Overhead: overhead})
	if err != nil {
		if residual == nil {
			return nil, fmt.Errorf("%w: site %q has no residual_mix for zone %s: %w", ErrNotConfigured, site.ID, site.Zone, err)
		}
		return nil, fmt.Errorf("site %q market-based emissions: %w", site.ID, err)
	}
	return res, nil
}

// Instruments converts the site's configured instruments.
func Instruments(site config.Site) []emissions.Instrument {
	out := make([]emissions.Instrument, 0, len(site.Instruments))
	for _, in := range site.Instruments {
		zone := in.Zone
		if zone == "" {
			zone = site.Zone
		}
		out = append(out, emissions.Instrument{ID: in.ID, Type: emissions.InstrumentType(in.Type), Registry: in.Registry,
			CertIDs: in.CertIDs, Site: site.ID, Zone: zone, Technology: in.Technology, From: in.From, To: in.To,
			Energy: quantity.Energy(in.EnergyMWh) * quantity.MegawattHour, Factor: quantity.Intensity(in.FactorGPerKWh) * quantity.GramPerKWh,
			CancelledAt: in.CancelledAt})
	}
	return out
}

// ResidualMix picks the site zone's residual mix for the year of at: that
// year's, else the latest earlier one, else the earliest later one; nil when
// the site has none for its zone.
func ResidualMix(site config.Site, at time.Time) *emissions.Factor {
	year := at.UTC().Year()
	var best *config.EmissionFactor
	for i := range site.ResidualMix {
		f := &site.ResidualMix[i]
		if f.Zone != "" && f.Zone != site.Zone {
			continue
		}
		switch {
		case best == nil:
			best = f
		case f.Year == year:
			best = f
		case best.Year == year:
		case f.Year < year && (best.Year > year || f.Year > best.Year):
			best = f
		case f.Year > year && best.Year > year && f.Year < best.Year:
			best = f
		}
	}
	if best == nil {
		return nil
	}
	return &emissions.Factor{Zone: site.Zone, Intensity: quantity.Intensity(best.GPerKWh) * quantity.GramPerKWh, Source: best.Source, Year: best.Year}
}

// Intensity reads the hourly grid carbon intensity of zone (signal
// "average", kinds actual and estimate — never forecasts) over [from, to)
// from q. An hour holds the mean of the samples inside it; where several
// providers have the hour, the preferred one (Options.Providers) wins. It
// also returns the providers used, in preference order.
func (a *Accountant) Intensity(ctx context.Context, q storage.Queryable, zone string, from, to time.Time) (*carbon.Series, []string, error) {
	mint, maxt := from.Truncate(time.Hour).UnixMilli(), to.UnixMilli()-1
	qr, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, fmt.Errorf("carbon intensity of zone %s: %w", zone, err)
	}
	defer qr.Close()
	set := qr.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt},
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, providers.MetricName),
		labels.MustNewMatcher(labels.MatchEqual, "zone", zone),
		labels.MustNewMatcher(labels.MatchEqual, "signal", string(providers.Average)),
		labels.MustNewMatcher(labels.MatchNotEqual, "kind", string(providers.Forecast)))
	type hour struct {
		rank       [2]int
		sum        float64
		n          int
		provider   string
		estimated  bool
		seriesHash uint64
	}
	hours := map[int64]*hour{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		prov, kind := ls.Get("provider"), ls.Get("kind")
		rank := [2]int{a.providerRank(prov), kindRank(kind)}
		h := ls.Hash()
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if t < mint || t > maxt || math.IsNaN(v) || v < 0 {
				continue
			}
			key := t - ((t%3_600_000)+3_600_000)%3_600_000
			cur := hours[key]
			switch {
			case cur == nil || less(rank, cur.rank) || (rank == cur.rank && prov < cur.provider):
				hours[key] = &hour{rank: rank, sum: v, n: 1, provider: prov, estimated: kind != string(providers.Actual), seriesHash: h}
			case cur.seriesHash == h:
				cur.sum += v
				cur.n++
			}
		}
		if err := it.Err(); err != nil {
			return nil, nil, fmt.Errorf("carbon intensity of zone %s, series %s: %w", zone, ls, err)
		}
	}
	if err := set.Err(); err != nil {
		return nil, nil, fmt.Errorf("carbon intensity of zone %s: %w", zone, err)
	}
	keys := make([]int64, 0, len(hours))
	for k := range hours {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := &carbon.Series{Zone: zone, Points: make([]carbon.Point, 0, len(keys))}
	used := map[string][2]int{}
	for _, k := range keys {
		h := hours[k]
		v := carbon.Intensity(h.sum / float64(h.n))
		// Providers give one figure, read as LCA (emissions.LifeCycle, the default signal).
		out.Points = append(out.Points, carbon.Point{Time: time.UnixMilli(k).UTC(), LCA: v, Estimated: h.estimated})
		used[h.provider] = h.rank
	}
	provs := make([]string, 0, len(used))
	for p := range used {
		provs = append(provs, p)
	}
	sort.Slice(provs, func(i, j int) bool {
		ri, rj := used[provs[i]], used[provs[j]]
		if ri[0] != rj[0] {
			return ri[0] < rj[0]
		}
		return provs[i] < provs[j]
	})
	return out, provs, nil
}

func (a *Accountant) providerRank(p string) int {
	if r, ok := a.rank[p]; ok {
		return r
	}
	return len(a.rank)
}

func kindRank(k string) int {
	if k == string(providers.Actual) {
		return 0
	}
	return 1
}

func less(a, b [2]int) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) }
