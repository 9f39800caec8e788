package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/forecast"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// SeriesWriter stores series; *ingest.Writer implements it.
type SeriesWriter interface {
	WriteSeries(ctx context.Context, o ingest.WriteOptions, series []sample.Series) (ingest.Result, error)
}

// Source is one configured provider and the zones it is asked for.
type Source struct {
	Provider providers.Provider
	Zones    []string
	Signal   providers.Signal
	// Points, when set, is a file's whole content (csv): written once at
	// start, and the provider is not polled.
	Points []providers.Point
}

// IntensityOptions configure an IntensityService.
type IntensityOptions struct {
	Sources []Source
	// Writer stores recent points; Backfill those older than Window (the
	// store's out-of-order window), which Writer would refuse. A nil
	// Backfill drops such points with a warning.
	Writer, Backfill SeriesWriter
	Window           time.Duration
	// Tenants returns the tenants whose view gets a zone's series (grid data
	// is not private: each tenant gets its own copy); nil means single-tenant
	// mode (no tenant label).
	Tenants func(zone string) []string
	// History is how far back the service fetches at start; Interval how
	// often it fetches recent values and forecasts; ForecastHorizon how far
	// ahead. Zero: 7 days, 15 minutes, 24 hours.
	History, Interval, ForecastHorizon time.Duration
	// MaxBackoff bounds the wait after failures (not after a quota
	// answer, which waits as long as the provider asks); zero means Interval.
	MaxBackoff time.Duration
	// Forecasts, when set, receives the latest forecast of every zone for
	// every tenant of Tenants, for reads through the query API (the web
	// server merges it with the store); nil keeps forecasts for Forecast only.
	Forecasts *forecast.Overlay
	// Sites, when set, makes the zones follow the sites in force: Sources
	// are then BuildSources(Carbon, Sites(), ...)'s, one per provider of
	// Carbon in its order. At start and every Interval the service reads
	// Sites; when their zones changed, each provider without zones of its
	// own is given the sites' zones now (keeping its client, caches and
	// rate limiter; WattTime's is built again for new zones), a new zone is
	// fetched from its History on and a zone no site has any more is no
	// longer fetched. Nil: the zones of Sources, for good.
	Sites  func() []config.Site
	Carbon config.Carbon
	Clock  providers.Clock
	Logger *slog.Logger
}

// IntensityService keeps the grid carbon intensity of the configured zones
// in the store as greenloop_grid_carbon_intensity_grams_per_kwh{zone,
// provider,signal,kind}: at start it writes the CSV files and fetches each
// provider's history, then every Interval the recent hours (which providers
// revise) and the forecast.
//
// A forecast is not stored when fetched: samples ahead of the server's clock
// would move the store's head into the future. The latest one is served from
// memory instead (IntensityOptions.Forecasts, and Forecast), and each of its
// points is stored once it is due, as a sample of kind "forecast" holding
// the value of the latest forecast fetched before the point's time, so that
// forecasts can be compared with the actual values afterwards.
type IntensityService struct {
	o   IntensityOptions
	log *slog.Logger

	mu        sync.Mutex
	sources   []Source                     // in force; entries replaced by follow
	forecasts map[string][]providers.Point // provider/zone

	// zonesKey is the sites' zones the sources were last made to follow
	// (siteZonesKey), once followed is set; only the goroutine of follow
	// touches them.
	zonesKey string
	followed bool
}

// NewIntensityService checks the options and fills in defaults.
func NewIntensityService(o IntensityOptions) (*IntensityService, error) {
	if o.Writer == nil {
		return nil, errors.New("intensity service: Writer is required")
	}
	if o.Window <= 0 {
		o.Window = 72 * time.Hour
	}
	if o.History <= 0 {
		o.History = 7 * 24 * time.Hour
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Minute
	}
	if o.ForecastHorizon <= 0 {
		o.ForecastHorizon = 24 * time.Hour
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = o.Interval
	}
	if o.Clock == nil {
		o.Clock = providers.SystemClock{}
	}
	if o.Tenants == nil {
		o.Tenants = func(string) []string { return []string{""} }
	}
	if o.Sites != nil && len(o.Sources) != len(o.Carbon.Providers) {
		return nil, fmt.Errorf("intensity service: %d sources for %d providers: with Sites, Sources must be BuildSources(Carbon, ...)'s", len(o.Sources), len(o.Carbon.Providers))
	}
	s := &IntensityService{o: o, log: o.Logger, sources: slices.Clone(o.Sources), forecasts: map[string][]providers.Point{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// pollers are the running poll goroutines, by source index and zone.
type pollers struct {
	ctx     context.Context
	wg      *sync.WaitGroup
	running map[pollerKey]context.CancelFunc
}

type pollerKey struct {
	source int
	zone   string
}

func (s *IntensityService) startPoller(ps *pollers, i int, zone string) {
	k := pollerKey{i, zone}
	if _, ok := ps.running[k]; ok {
		return
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	ps.running[k] = cancel
	ps.wg.Go(func() { s.poll(ctx, i, zone) })
}

// Run writes the files and polls every provider until ctx ends; it returns
// nil then. One provider's failures never stop the others. With
// IntensityOptions.Sites, the zones polled follow the sites.
func (s *IntensityService) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	ps := &pollers{ctx: ctx, wg: &wg, running: map[pollerKey]context.CancelFunc{}}
	if s.o.Sites != nil {
		s.follow(ps) // the sites may have changed since Sources were built
	}
	s.mu.Lock()
	srcs := slices.Clone(s.sources)
	s.mu.Unlock()
	for i, src := range srcs {
		if src.Points != nil {
			if err := s.write(ctx, src.Provider.Name(), src.Points); err != nil {
				s.log.Error("storing carbon-intensity file", "provider", src.Provider.Name(), "err", err)
			}
			continue
		}
		for _, zone := range src.Zones {
			s.startPoller(ps, i, zone)
		}
	}
	if s.o.Sites != nil {
		wg.Go(func() {
			for s.o.Clock.Sleep(ctx, s.o.Interval) == nil {
				s.follow(ps)
			}
		})
	}
	wg.Wait()
	return nil
}

// siteZonesKey identifies what the sources' zones depend on: each zone of
// the sites, and whether one of its sites has a location (WattTime looks a
// zone's region up by location).
func siteZonesKey(sites []config.Site) string {
	var keys []string
	for _, st := range sites {
		if st.Zone == "" {
			continue
		}
		keys = append(keys, st.Zone)
		if st.Location != (config.Location{}) {
			keys = append(keys, st.Zone+"@")
		}
	}
	slices.Sort(keys)
	return strings.Join(slices.Compact(keys), "\n")
}

// follow makes the sources follow the zones of the sites in force, when
// these changed since the last call: it starts polling the new zones and
// stops polling those gone. A provider that cannot follow keeps its zones,
// and the next call tries again.
func (s *IntensityService) follow(ps *pollers) {
	sites := s.o.Sites()
	key := siteZonesKey(sites)
	if s.followed && key == s.zonesKey {
		return
	}
	s.mu.Lock()
	cur := slices.Clone(s.sources)
	s.mu.Unlock()
	next, rebuilt, err := followSites(s.o.Carbon, cur, sites, s.o.Clock, s.log)
	if err != nil {
		s.log.Warn("carbon-intensity zones do not follow the sites yet; tried again in an interval", "retry_in", s.o.Interval, "err", err)
	} else {
		s.zonesKey, s.followed = key, true
	}
	for i := range next {
		added, removed := zoneDiff(cur[i].Zones, next[i].Zones)
		if len(added) == 0 && len(removed) == 0 && !rebuilt[i] {
			continue
		}
		name := next[i].Provider.Name()
		// Stopped first, so that a poller still running stores no forecast
		// of its zone after it was dropped (see poll).
		for _, z := range removed {
			k := pollerKey{i, z}
			if cancel, ok := ps.running[k]; ok {
				cancel()
				delete(ps.running, k)
			}
		}
		s.mu.Lock()
		s.sources[i] = next[i]
		for _, z := range removed {
			delete(s.forecasts, name+"/"+z)
		}
		s.mu.Unlock()
		for _, z := range added {
			s.startPoller(ps, i, z)
		}
		s.log.Info("carbon-intensity zones follow the sites", "provider", name, "zones", next[i].Zones,
			"added", added, "removed", removed, "new_client", rebuilt[i])
	}
}

// zoneDiff returns the zones of next not in cur, and those of cur not in next.
func zoneDiff(cur, next []string) (added, removed []string) {
	for _, z := range next {
		if !slices.Contains(cur, z) {
			added = append(added, z)
		}
	}
	for _, z := range cur {
		if !slices.Contains(next, z) {
			removed = append(removed, z)
		}
	}
	return added, removed
}

// source returns the i-th source in force.
func (s *IntensityService) source(i int) Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sources[i]
}

// Forecast returns the latest forecast fetched for zone, as the provider
// gave it, from the first provider (in configuration order) that has one.
func (s *IntensityService) Forecast(zone string) []providers.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range s.sources {
		if f := s.forecasts[src.Provider.Name()+"/"+zone]; len(f) > 0 {
			return slices.Clone(f)
		}
	}
	return nil
}

// poll fetches one zone of the i-th source: history first, then every
// Interval, each time through the source's provider in force then.
func (s *IntensityService) poll(ctx context.Context, i int, zone string) {
	name := s.source(i).Provider.Name()
	log := s.log.With("provider", name, "zone", zone)
	var (
		historyDone bool
		noForecast  bool
		failures    int
		last        time.Time // newest point written
		archive     = forecastArchive{}
	)
	for {
		src := s.source(i)
		now := s.o.Clock.Now()
		s.archiveDue(ctx, log, name, zone, archive, now)
		from := now.Add(-s.o.History)
		if historyDone {
			// Providers revise the last hours: ask again for them.
			from = now.Add(-2*s.o.Interval - time.Hour)
			if !last.IsZero() && last.Before(from) {
				from = last
			}
		}
		pts, err := src.Provider.Intensity(ctx, zone, from, now, src.Signal)
		if err == nil {
			pts = slices.DeleteFunc(pts, func(p providers.Point) bool { return p.Time.After(now) || p.Kind == providers.Forecast })
			err = s.write(ctx, name, pts)
			if err == nil {
				if !historyDone {
					log.Info("carbon-intensity history stored", "points", len(pts), "from", from.UTC().Format(time.RFC3339))
				}
				historyDone = true
				if n := len(pts); n > 0 && pts[n-1].Time.After(last) {
					last = pts[n-1].Time
				}
			}
		}
		if err == nil && !noForecast {
			f, ferr := src.Provider.Forecast(ctx, zone, now, now.Add(s.o.ForecastHorizon), src.Signal)
			switch {
			case errors.Is(ferr, providers.ErrUnsupported):
				noForecast = true
				log.Debug("provider has no forecast", "err", ferr)
			case ferr != nil:
				err = ferr
			default:
				s.mu.Lock()
				if ctx.Err() == nil { // a zone dropped by follow keeps no forecast
					s.forecasts[name+"/"+zone] = f
				}
				s.mu.Unlock()
				archive.add(now, f, src.Signal)
				s.publish(name, zone, src.Signal, now, f)
			}
		}
		wait := s.o.Interval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = s.backoff(failures)
			var qe *providers.QuotaError
			if errors.As(err, &qe) {
				if d := qe.Until.Sub(s.o.Clock.Now()); d > 0 {
					wait = d
				} else if qe.RetryAfter > 0 {
					wait = qe.RetryAfter
				}
				log.Warn("carbon-intensity provider quota exceeded, waiting", "retry_in", wait.Round(time.Second))
			} else {
				// Provider errors name the endpoint and status, never a token.
				log.Warn("fetching carbon intensity failed", "err", err, "attempt", failures, "retry_in", wait.Round(time.Second))
			}
		} else {
			failures = 0
		}
		if s.o.Clock.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// forecastArchive holds, for one provider and zone, the forecast points not
// yet due: for each, the value of the latest forecast issued before its time.
type forecastArchive map[forecastPoint]float64

type forecastPoint struct {
	signal providers.Signal
	t      int64 // ms
}

// add takes a forecast fetched at issued: its points after issued replace
// what earlier forecasts said of them; points at or before issued are no
// forecast of this one's and are ignored. Points without a signal are def's.
func (a forecastArchive) add(issued time.Time, pts []providers.Point, def providers.Signal) {
	for _, p := range pts {
		if !p.Time.After(issued) {
			continue
		}
		sig := cmp.Or(p.Signal, def)
		a[forecastPoint{sig, p.Time.UnixMilli()}] = p.Intensity.GramsPerKWh()
	}
}

// take removes and returns the points due at now (at or before it), as
// forecast points of zone in time order.
func (a forecastArchive) take(zone string, now time.Time) []providers.Point {
	var out []providers.Point
	for k, v := range a {
		if k.t > now.UnixMilli() {
			continue
		}
		out = append(out, providers.Point{Zone: zone, Time: time.UnixMilli(k.t).UTC(), Intensity: carbon.Intensity(v),
			Kind: providers.Forecast, Signal: k.signal})
		delete(a, k)
	}
	slices.SortFunc(out, func(x, y providers.Point) int {
		return cmp.Or(x.Time.Compare(y.Time), cmp.Compare(x.Signal, y.Signal))
	})
	return out
}

// archiveDue stores the forecast points of one provider and zone that are
// due at now. Points that could not be stored are tried again at the next
// fetch, as long as they are within History.
func (s *IntensityService) archiveDue(ctx context.Context, log *slog.Logger, provider, zone string, a forecastArchive, now time.Time) {
	due := a.take(zone, now)
	if len(due) == 0 {
		return
	}
	err := s.write(ctx, provider, due)
	if err == nil {
		return
	}
	oldest := now.Add(-s.o.History)
	kept := 0
	for _, p := range due {
		if !p.Time.Before(oldest) {
			a[forecastPoint{p.Signal, p.Time.UnixMilli()}] = p.Intensity.GramsPerKWh()
			kept++
		}
	}
	if ctx.Err() == nil {
		log.Warn("storing due carbon-intensity forecast points failed", "points", len(due), "retried_later", kept, "err", err)
	}
}

// publish hands a forecast fetched at issued to the overlay, for every
// tenant of zone: its points after issued (those before are no forecast of
// this one's; the store has them from earlier forecasts), one series per
// signal. The series of def is always replaced, by nothing when the forecast
// has no point ahead.
func (s *IntensityService) publish(provider, zone string, def providers.Signal, issued time.Time, f []providers.Point) {
	if s.o.Forecasts == nil {
		return
	}
	bySignal := map[providers.Signal][]providers.Point{def: nil}
	for _, p := range f {
		if p.Time.After(issued) {
			sig := cmp.Or(p.Signal, def)
			bySignal[sig] = append(bySignal[sig], p)
		}
	}
	for _, tenant := range s.o.Tenants(zone) {
		for sig, pts := range bySignal {
			s.o.Forecasts.Set(forecast.Key{Tenant: tenant, Zone: zone, Provider: provider, Signal: sig}, pts)
		}
	}
}

// backoff is 1 min doubling per failure, at most MaxBackoff.
func (s *IntensityService) backoff(failures int) time.Duration {
	d := time.Minute
	for i := 1; i < failures && d < s.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.o.MaxBackoff)
}

// write stores points, those older than the out-of-order window through
// the backfill writer, for every tenant of their zone.
func (s *IntensityService) write(ctx context.Context, provider string, pts []providers.Point) error {
	byZone := map[string][]providers.Point{}
	for _, p := range pts {
		byZone[p.Zone] = append(byZone[p.Zone], p)
	}
	var errs []error
	for zone, zp := range byZone {
		for _, tenant := range s.o.Tenants(zone) {
			res, err := WriteIntensity(ctx, s.o.Writer, s.o.Backfill, s.o.Window, s.o.Clock.Now(), provider, tenant, zp)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if res.RejectedCount > 0 && !onlyDuplicates(res) {
				s.log.Warn("carbon-intensity samples refused", "provider", provider, "zone", zone, "tenant", tenant,
					"refused", res.RejectedCount, "first", res.Rejected[0].Detail)
			}
		}
	}
	return errors.Join(errs...)
}

// ErrNoBackfill is returned by WriteIntensity for points older than the
// out-of-order window when there is no backfill writer.
var ErrNoBackfill = errors.New("points older than the out-of-order window need a backfill writer")

// WriteIntensity stores points as provider's canonical intensity series
// for tenant: those older than window before now (less an hour's margin)
// through backfill as whole blocks, the others through w.
func WriteIntensity(ctx context.Context, w, backfill SeriesWriter, window time.Duration, now time.Time, provider, tenant string, pts []providers.Point) (ingest.Result, error) {
	var res ingest.Result
	edge := now.Add(-window + time.Hour)
	var recent, old []providers.Point
	for _, p := range pts {
		if p.Time.Before(edge) {
			old = append(old, p)
		} else {
			recent = append(recent, p)
		}
	}
	if len(old) > 0 && backfill == nil {
		return res, fmt.Errorf("%s carbon intensity: %d %w", provider, len(old), ErrNoBackfill)
	}
	for _, part := range []struct {
		w    SeriesWriter
		pts  []providers.Point
		kind string
	}{{backfill, old, "backfill"}, {w, recent, "recent"}} {
		if len(part.pts) == 0 {
			continue
		}
		r, err := part.w.WriteSeries(ctx, ingest.WriteOptions{Tenant: tenant}, providers.Series(provider, part.pts))
		if err != nil {
			return res, fmt.Errorf("store %s carbon intensity (%s, %d points): %w", provider, part.kind, len(part.pts), err)
		}
		res.Merge(r)
	}
	return res, nil
}

// onlyDuplicates reports whether every listed refusal is a revised value of
// a sample already stored (a provider's correction of an hour it gave
// before), which the store keeps as first written.
func onlyDuplicates(r ingest.Result) bool {
	for _, rej := range r.Rejected {
		if rej.Reason != sample.ReasonDuplicateSample {
			return false
		}
	}
	return len(r.Rejected) > 0
}

// BuildSources makes the configured providers. Zones default to the sites'
// zones (GB for ukgrid); CSV files are read now, so a bad file fails start-up
// with its line and column. Secrets are read from their files or
// environment variables and handed to the providers only.
func BuildSources(c config.Carbon, sites []config.Site, clock providers.Clock, log *slog.Logger) ([]Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	siteZones := zonesOf(sites)
	var out []Source
	var errs []error
	for i, pc := range c.Providers {
		path := fmt.Sprintf("carbon.providers[%d]", i)
		src, err := buildSource(pc, sites, siteZones, clock, log.With("provider", pc.Type))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", path, pc.Type, err))
			continue
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}

// zonesOf returns the zones of sites, in the sites' order.
func zonesOf(sites []config.Site) []string {
	var zones []string
	for _, s := range sites {
		if s.Zone != "" && !slices.Contains(zones, s.Zone) {
			zones = append(zones, s.Zone)
		}
	}
	return zones
}

// zonesFollowSites reports whether pc is asked for the sites' zones: it
// names no zone of its own and is neither a file nor ukgrid (GB only).
func zonesFollowSites(pc config.CarbonProvider) bool {
	return pc.Type != "csv" && pc.Type != "ukgrid" && len(pc.ProviderZones()) == 0
}

// followSites returns cur, the sources BuildSources made for c, with the
// zones of sites: each provider asked for the sites' zones gets those of
// sites now, and keeps its client, with its caches and rate limiter. Only a
// WattTime provider whose zones change is built again, for the locations of
// the new zones (it looks their regions up by location). A provider that
// cannot be built again keeps its zones and client, and the error names it;
// the others follow all the same. rebuilt says which were built again; cur
// is not modified.
func followSites(c config.Carbon, cur []Source, sites []config.Site, clock providers.Clock, log *slog.Logger) (out []Source, rebuilt []bool, err error) {
	if len(cur) != len(c.Providers) {
		return cur, make([]bool, len(cur)), fmt.Errorf("%d sources for %d carbon.providers: not BuildSources' for this configuration", len(cur), len(c.Providers))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zones := zonesOf(sites)
	out = slices.Clone(cur)
	rebuilt = make([]bool, len(cur))
	var errs []error
	for i, pc := range c.Providers {
		if !zonesFollowSites(pc) {
			continue
		}
		if pc.Type != "watttime" {
			out[i].Zones = slices.Clone(zones)
			continue
		}
		src, err := buildSource(pc, sites, zones, clock, log.With("provider", pc.Type))
		if err != nil {
			errs = append(errs, fmt.Errorf("carbon.providers[%d] (%s): %w", i, pc.Type, err))
			continue
		}
		if added, removed := zoneDiff(cur[i].Zones, src.Zones); len(added)+len(removed) > 0 {
			out[i], rebuilt[i] = src, true
		}
	}
	return out, rebuilt, errors.Join(errs...)
}

func buildSource(pc config.CarbonProvider, sites []config.Site, siteZones []string, clock providers.Clock, log *slog.Logger) (Source, error) {
	zones := pc.ProviderZones()
	if len(zones) == 0 {
		zones = siteZones
	}
	sig := providers.Average
	if pc.Signal != "" {
		sig = providers.Signal(pc.Signal)
	}
	opt := providers.Options{BaseURL: pc.BaseURL, Logger: log, Clock: clock, RateLimit: pc.RateLimit, Burst: pc.Burst,
		LatestTTL: pc.LatestTTL.D(), ForecastTTL: pc.ForecastTTL.D(), RecentTTL: pc.RecentTTL.D(), HistoryTTL: pc.HistoryTTL.D()}
	if pc.Timeout > 0 {
		opt.HTTPClient = &http.Client{Timeout: pc.Timeout.D()}
	}
	switch pc.Type {
	case "csv":
		pts, err := providers.ReadCSVFile(pc.Path, pc.Zone, pc.Direct)
		if err != nil {
			return Source{}, err
		}
		if pts == nil {
			pts = []providers.Point{}
		}
		return Source{Provider: providers.NewMemory("csv", clock, pts), Points: pts, Signal: sig}, nil
	case "electricitymaps":
		tok, err := readSecret(pc.TokenFile, pc.TokenEnv, "token")
		if err != nil {
			return Source{}, err
		}
		p, err := providers.NewElectricityMaps(providers.ElectricityMapsConfig{Options: opt, Token: tok,
			EmissionFactorType: pc.EmissionFactorType, MaxRange: pc.MaxRange.D()})
		return Source{Provider: p, Zones: zones, Signal: sig}, err
	case "entsoe":
		tok, err := readSecret(pc.TokenFile, pc.TokenEnv, "token")
		if err != nil {
			return Source{}, err
		}
		var f map[string]carbon.Intensity
		if len(pc.EmissionFactors) > 0 {
			f = map[string]carbon.Intensity{}
			for k, v := range pc.EmissionFactors {
				f[k] = carbon.Intensity(v)
			}
		}
		p, err := providers.NewENTSOE(providers.ENTSOEConfig{Options: opt, Token: tok, EmissionFactors: f, MaxRange: pc.MaxRange.D()})
		return Source{Provider: p, Zones: zones, Signal: sig}, err
	case "watttime":
		pw, err := readSecret(pc.PasswordFile, pc.PasswordEnv, "password")
		if err != nil {
			return Source{}, err
		}
		// Zones named by the provider are WattTime regions; without them,
		// the sites' zones are served through their locations' regions
		// (looked up once with /v3/region-from-loc).
		zones = pc.ProviderZones()
		locs := map[string]providers.Location{}
		if len(zones) == 0 {
			for _, s := range sites {
				if s.Zone == "" || s.Location == (config.Location{}) {
					continue
				}
				if l, ok := locs[s.Zone]; ok {
					if l != (providers.Location{Lat: s.Location.Lat, Lon: s.Location.Lon}) {
						log.Warn("sites share a zone but not a location: the zone's WattTime region is looked up at the first site's",
							"zone", s.Zone, "site", s.ID)
					}
					continue
				}
				locs[s.Zone] = providers.Location{Lat: s.Location.Lat, Lon: s.Location.Lon}
				zones = append(zones, s.Zone)
			}
		}
		if len(zones) == 0 {
			return Source{}, errors.New("zone: must name the WattTime region (e.g. CAISO_NORTH), or the sites must have a location to look their region up")
		}
		p, err := providers.NewWattTime(providers.WattTimeConfig{Options: opt, Username: pc.Username, Password: pw,
			LoginURL: pc.LoginURL, MaxRange: pc.MaxRange.D(), ForecastHorizon: pc.ForecastHorizon.D(), Locations: locs})
		return Source{Provider: p, Zones: zones, Signal: sig}, err
	case "ukgrid":
		return Source{Provider: providers.NewUKGrid(opt), Zones: []string{providers.UKGridZone}, Signal: sig}, nil
	case "static":
		var extra []providers.AnnualFactor
		for _, f := range pc.Factors {
			extra = append(extra, providers.AnnualFactor{Zone: f.Zone, Year: f.Year, Intensity: carbon.Intensity(f.GPerKWh), Source: f.Source})
		}
		p, err := providers.NewStatic(clock, extra...)
		return Source{Provider: p, Zones: zones, Signal: sig}, err
	}
	return Source{}, fmt.Errorf("unknown provider type %q", pc.Type)
}

// readSecret reads a secret from a file (trimmed) or an environment
// variable. Errors name the file or variable, never the content.
func readSecret(file, env, what string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s_file %s is empty", what, file)
		}
		return v, nil
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s_env: environment variable %s is empty or unset", what, env)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s_file or %s_env must be set", what, what)
}

// Conflicts returns, for the points of pts that provider already has a
// different stored value for (same zone, signal, kind and timestamp) in q,
// their index and the stored value. The store keeps a sample as first
// written, so such points would be refused: an import checks first and
// changes nothing.
func Conflicts(ctx context.Context, q storage.Queryable, provider string, pts []providers.Point) (map[int]float64, error) {
	if len(pts) == 0 {
		return nil, nil
	}
	mint, maxt := pts[0].Time.UnixMilli(), pts[0].Time.UnixMilli()
	zones := map[string]bool{}
	for _, p := range pts {
		mint, maxt = min(mint, p.Time.UnixMilli()), max(maxt, p.Time.UnixMilli())
		zones[p.Zone] = true
	}
	qr, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("read stored %s carbon intensity: %w", provider, err)
	}
	defer qr.Close()
	type key struct {
		zone, signal, kind string
		t                  int64
	}
	stored := map[key]float64{}
	set := qr.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt},
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, providers.MetricName),
		labels.MustNewMatcher(labels.MatchEqual, "provider", provider))
	var it chunkenc.Iterator
	for set.Next() {
		ls := set.At().Labels()
		z := ls.Get("zone")
		if !zones[z] {
			continue
		}
		it = set.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			stored[key{z, ls.Get("signal"), ls.Get("kind"), t}] = v
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read stored %s carbon intensity: %w", provider, err)
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("read stored %s carbon intensity: %w", provider, err)
	}
	out := map[int]float64{}
	for i, p := range pts {
		if v, ok := stored[key{p.Zone, string(p.Signal), string(p.Kind), p.Time.UnixMilli()}]; ok && v != float64(p.Intensity) {
			out[i] = v
		}
	}
	return out, nil
}
