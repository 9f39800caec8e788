// Package demo simulates a fleet of six European datacenter sites for
// `greenloop serve --demo`: facility and IT meters, PDUs, inlet and outside
// temperatures, CPU (RAPL) and GPU (NVML) power and utilisation, and the grid
// carbon intensity of each site's zone, under greenloop's canonical series.
//
// Power follows daily and weekly load curves with seeded noise, facility power
// is IT power times a PUE that rises with the outside temperature, and every
// energy counter is the exact (trapezoidal) integral of its power gauge.
//
// The carbon intensity of the DE, FR, PL, ES and NL sites is real Electricity
// Maps data of 2022 replayed onto current dates (same month, day and hour;
// provider="electricitymaps-2022-replay"; © Electricity Maps, ODbL). The
// Stockholm site has no such data: it gets one constant, illustrative figure
// (SwedenStaticCI, provider="static").
package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// Metric names the fleet writes (greenloop's canonical series).
const (
	MetricPower           = "greenloop_power_watts"
	MetricEnergy          = "greenloop_energy_joules_total"
	MetricTemperature     = "greenloop_temperature_celsius"
	MetricUtilization     = "greenloop_utilization_ratio"
	MetricCarbonIntensity = "greenloop_grid_carbon_intensity_grams_per_kwh"
)

// Provider label values of the demo's carbon-intensity series.
const (
	// ProviderReplay marks real Electricity Maps 2022 data replayed onto current dates: not live data.
	ProviderReplay = "electricitymaps-2022-replay"
	// ProviderStatic marks a constant figure (see SwedenStaticCI).
	ProviderStatic = "static"
)

// MaxBatchSamples bounds the samples of one batch Generate emits.
const MaxBatchSamples = 50_000

// Fleet is a simulated fleet. Its gauges are pure functions of the seed and
// the time; its energy counters carry state from one emitted instant to the
// next, so Generate's history and Run's live data form one continuous stream.
// A Fleet is safe for concurrent use, but its instants must go forward:
// Generate then Run.
type Fleet struct {
	seed  int64
	sites []*site

	series []seriesDef // every series, in emission order

	mu      sync.Mutex
	vals    []float64 // the latest value of every series
	started bool      // whether any instant was emitted
	lastT   int64     // ms of the last emitted instant
	prevP   []float64 // power of each counter's gauge at lastT
}

type seriesDef struct {
	labels []sample.Label // sorted by name
	// power is, for an energy counter, the index of the power gauge it integrates; -1 for gauges.
	power int
}

type site struct {
	spec                    siteSpec
	kWeather, kLoad, kCool  uint64
	ci                      *carbon.Series // nil for a static figure
	racks                   []*rack
	facP, itP, ambient, cis int // series indices (power gauges; counters follow their gauge)
	fixedW                  float64
}

type rackKind int

const (
	rackGeneral rackKind = iota // metered at its PDUs only
	rackCPU
	rackGPU
)

type rack struct {
	name, room string
	kind       rackKind
	key        uint64
	maxW       float64
	bias       float64 // how busy this rack's tenant is relative to the site
	shareA     float64 // share of the rack's draw on PDU A
	inletOff   float64 // position in the room: warmer or cooler aisle spot
	nodes      []*node
	pduP       [2]int
	inlet      int
}

type node struct {
	pkgP            [2]int // series indices
	util            int
	gpuP, gpuUtil   []int
	pkgKeys         [2]uint64 // noise keys
	gpuKeys         []uint64
	jobKey, utilKey uint64
}

// New builds the demo fleet. The seed fixes the layout details and every
// random variation, so two fleets with the same seed emit the same samples.
func New(seed int64) *Fleet {
	f := &Fleet{seed: seed}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x677265656e6c6f70))
	for _, sp := range specs {
		s := &site{spec: sp,
			kWeather: keyOf(seed, sp.id, "weather"),
			kLoad:    keyOf(seed, sp.id, "load"),
			kCool:    keyOf(seed, sp.id, "cooling"),
			fixedW:   fixedOverheadFrac * sp.itKW * 1000,
		}
		if sp.staticCI == 0 {
			ci, err := carbon.Embedded2022(sp.zone)
			if err != nil {
				panic(fmt.Sprintf("demo: site %s: %v", sp.id, err)) // the embedded data is part of the build
			}
			s.ci = ci
		}
		f.buildSite(s, rng)
		f.sites = append(f.sites, s)
	}
	f.vals = make([]float64, len(f.series))
	return f
}

func (f *Fleet) add(power int, kv ...string) int {
	ls := make([]sample.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, sample.Label{Name: kv[i], Value: kv[i+1]})
	}
	slices.SortFunc(ls, func(a, b sample.Label) int { return strings.Compare(a.Name, b.Name) })
	f.series = append(f.series, seriesDef{labels: ls, power: power})
	return len(f.series) - 1
}

// addMeter adds a power gauge and its energy counter, returning the gauge's index.
func (f *Fleet) addMeter(kv ...string) int {
	p := f.add(-1, append([]string{"__name__", MetricPower}, kv...)...)
	f.add(p, append([]string{"__name__", MetricEnergy}, kv...)...)
	return p
}

func (f *Fleet) buildSite(s *site, rng *rand.Rand) {
	sp := s.spec
	id := sp.id
	s.facP = f.addMeter("site", id, "node", "facility-meter", "source", "import", "component", "facility")
	s.itP = f.addMeter("site", id, "node", "it-meter", "source", "snmp", "component", "it")
	s.ambient = f.add(-1, "__name__", MetricTemperature, "site", id, "node", "weather", "source", "import", "component", "ambient")
	provider := ProviderReplay
	if s.ci == nil {
		provider = ProviderStatic
	}
	s.cis = f.add(-1, "__name__", MetricCarbonIntensity, "site", id, "zone", sp.zone,
		"provider", provider, "signal", "average", "kind", "actual")

	// Racks with node telemetry first (room hall-1), then racks metered at
	// their PDUs only, enough of them to make up the site's IT capacity.
	kinds := slices.Repeat([]rackKind{rackCPU}, sp.cpuRacks)
	kinds = append(kinds, slices.Repeat([]rackKind{rackGPU}, sp.gpuRacks)...)
	nodeKW := float64(sp.cpuRacks)*(cpuNodesPerRack*cpuNodeMaxW()+torSwitchW)/1000 +
		float64(sp.gpuRacks)*(gpuNodesPerRack*gpuNodeMaxW()+torSwitchW)/1000
	nGeneral := max(1, int(math.Round((sp.itKW-nodeKW)/generalRackKW)))
	generalW := (sp.itKW - nodeKW) * 1000 / float64(nGeneral)
	kinds = append(kinds, slices.Repeat([]rackKind{rackGeneral}, nGeneral)...)
	perRoom := (len(kinds) + sp.rooms - 1) / sp.rooms

	for i, kind := range kinds {
		r := &rack{
			name:     fmt.Sprintf("r%02d", i+1),
			room:     fmt.Sprintf("hall-%d", i/perRoom+1),
			kind:     kind,
			bias:     0.8 + 0.4*rng.Float64(),
			shareA:   0.46 + 0.08*rng.Float64(),
			inletOff: -0.8 + 2.0*rng.Float64(),
			maxW:     generalW,
		}
		r.key = keyOf(f.seed, id, r.name)
		loc := []string{"site", id, "room", r.room, "rack", r.name}
		for j, feed := range []string{"a", "b"} {
			r.pduP[j] = f.addMeter(append(slices.Clone(loc), "node", id+"-"+r.name+"-pdu-"+feed, "source", "snmp", "component", "branch", "sensor", "B1")...)
		}
		r.inlet = f.add(-1, append(slices.Clone(loc), "__name__", MetricTemperature, "node", id+"-"+r.name+"-pdu-a", "source", "snmp", "component", "inlet", "sensor", "T1")...)
		switch kind {
		case rackCPU:
			r.maxW = cpuNodesPerRack*cpuNodeMaxW() + torSwitchW
			for n := range cpuNodesPerRack {
				r.nodes = append(r.nodes, f.buildNode(id, r, n, 0, loc))
			}
		case rackGPU:
			r.maxW = gpuNodesPerRack*gpuNodeMaxW() + torSwitchW
			for n := range gpuNodesPerRack {
				r.nodes = append(r.nodes, f.buildNode(id, r, n, gpusPerNode, loc))
			}
		}
		s.racks = append(s.racks, r)
	}
}

func (f *Fleet) buildNode(siteID string, r *rack, n, gpus int, loc []string) *node {
	host := fmt.Sprintf("%s-%s-n%02d", siteID, r.name, n+1)
	nl := append(slices.Clone(loc), "node", host)
	key := keyOf(f.seed, host)
	nd := &node{jobKey: sub(key, 1), utilKey: sub(key, 2)}
	for s := range 2 {
		sensor := fmt.Sprintf("intel-rapl:%d", s)
		nd.pkgP[s] = f.addMeter(append(slices.Clone(nl), "source", "rapl", "component", "package", "sensor", sensor)...)
		nd.pkgKeys[s] = keyOf(f.seed, host, sensor)
	}
	nd.util = f.add(-1, append(slices.Clone(nl), "__name__", MetricUtilization, "source", "import", "component", "package")...)
	for g := range gpus {
		sensor := fmt.Sprintf("gpu%d", g)
		gl := append(slices.Clone(nl), "source", "nvml", "component", "gpu", "sensor", sensor)
		nd.gpuP = append(nd.gpuP, f.addMeter(gl...))
		nd.gpuUtil = append(nd.gpuUtil, f.add(-1, append(slices.Clone(gl), "__name__", MetricUtilization)...))
		nd.gpuKeys = append(nd.gpuKeys, keyOf(f.seed, host, sensor))
	}
	return nd
}

// SeriesCount is the number of series the fleet emits.
func (f *Fleet) SeriesCount() int { return len(f.series) }

// Sites returns the configuration of the demo sites, with the meter selectors
// facility_energy, it_energy, facility_power and it_power filled in. Tenant is
// left empty.
func (f *Fleet) Sites() []config.Site {
	out := make([]config.Site, 0, len(f.sites))
	for _, s := range f.sites {
		sel := func(metric, component string) string {
			return fmt.Sprintf(`%s{site=%q,component=%q}`, metric, s.spec.id, component)
		}
		out = append(out, config.Site{
			ID:           s.spec.id,
			Name:         s.spec.name,
			Zone:         s.spec.zone,
			Location:     config.Location{Lat: s.spec.lat, Lon: s.spec.lon},
			ITCapacityKW: s.spec.itKW,
			Meters: map[string]string{
				"facility_energy": sel(MetricEnergy, "facility"),
				"it_energy":       sel(MetricEnergy, "it"),
				"facility_power":  sel(MetricPower, "facility"),
				"it_power":        sel(MetricPower, "it"),
			},
		})
	}
	return out
}

// eval computes every gauge at tms into f.vals; counters are left to advance.
func (f *Fleet) eval(tms int64) {
	t := time.UnixMilli(tms).UTC()
	v := f.vals
	for _, s := range f.sites {
		outside := s.outsideC(t, tms)
		load := s.loadFrac(t, tms)
		itW := 0.0
		for _, r := range s.racks {
			var w float64
			switch r.kind {
			case rackGeneral:
				u := clamp(load*r.bias+0.06*noise(r.key, tms, 2*hourMs)+0.02*noise(sub(r.key, 1), tms, 10*minuteMs), 0.03, 1)
				w = r.maxW * (generalRackIdleFrac + (1-generalRackIdleFrac)*u)
			case rackCPU:
				ur := load*r.bias + 0.05*noise(r.key, tms, 2*hourMs)
				w = torSwitchW
				for _, nd := range r.nodes {
					u := clamp(ur+0.10*noise(nd.utilKey, tms, 45*minuteMs)+0.03*noise(sub(nd.utilKey, 1), tms, 4*minuteMs), 0.01, 1)
					w += f.cpuNode(nd, u, 0, tms)
				}
			case rackGPU:
				w = torSwitchW
				for _, nd := range r.nodes {
					w += f.gpuNode(nd, tms)
				}
			}
			v[r.pduP[0]] = w * r.shareA
			v[r.pduP[1]] = w - v[r.pduP[0]]
			v[r.inlet] = s.spec.supplyC + r.inletOff + 2.0*(w/r.maxW-0.5) + 0.07*(outside-12) +
				0.25*noise(sub(r.key, 5), tms, 50*minuteMs)
			itW += w
		}
		pue := s.spec.pue.pue(outside) + 0.01*noise(s.kCool, tms, 15*minuteMs)
		facW := clamp(itW*pue+s.fixedW, itW*minPUE, itW*maxPUE)
		v[s.itP] = itW
		v[s.facP] = facW
		v[s.ambient] = outside
		v[s.cis] = s.carbonIntensity(t)
	}
}

// cpuNode sets a node's package power and utilisation gauges and returns its wall power.
func (f *Fleet) cpuNode(nd *node, u, extraW float64, tms int64) float64 {
	w := cpuNodeBaseW + cpuNodeDynW*u + extraW
	for s := range 2 {
		p := (pkgIdleW + (pkgMaxW-pkgIdleW)*math.Pow(u, 0.85)) * (1 + 0.03*noise(nd.pkgKeys[s], tms, 7*minuteMs))
		f.vals[nd.pkgP[s]] = p
		w += p
	}
	f.vals[nd.util] = u
	return w / psuEfficiency
}

// gpuNode: GPU nodes run long jobs (hours) at high utilisation with idle gaps between them.
func (f *Fleet) gpuNode(nd *node, tms int64) float64 {
	busy := noise(nd.jobKey, tms, 6*hourMs) > -0.45
	gpuW, sum := 0.0, 0.0
	for g, k := range nd.gpuKeys {
		var u float64
		if busy {
			u = clamp(0.93+0.06*noise(k, tms, 3*minuteMs), 0, 1)
		} else {
			u = 0.01 * (1 + noise(k, tms, 10*minuteMs))
		}
		p := gpuIdleW + (gpuMaxW-gpuIdleW)*math.Pow(u, 1.2) + 6*noise(sub(k, 1), tms, 2*minuteMs)
		f.vals[nd.gpuUtil[g]] = u
		f.vals[nd.gpuP[g]] = p
		gpuW += p
		sum += u
	}
	cpuU := clamp(0.12+0.3*sum/float64(len(nd.gpuKeys))+0.04*noise(nd.utilKey, tms, 20*minuteMs), 0.01, 1)
	return f.cpuNode(nd, cpuU, gpuW+gpuNodeBaseW-cpuNodeBaseW, tms)
}

// carbonIntensity is the LCA intensity of the hour containing t replayed from
// 2022, or the site's static figure.
func (s *site) carbonIntensity(t time.Time) float64 {
	if s.ci == nil {
		return s.spec.staticCI
	}
	if p, ok := s.ci.Replay(t); ok {
		return p.LCA.GramsPerKWh()
	}
	return math.NaN() // unreachable: the embedded year is complete
}

// advance evaluates the fleet at tms and moves every energy counter on by the
// trapezoidal integral of its power since the last instant. f.mu must be held.
func (f *Fleet) advance(tms int64) {
	f.eval(tms)
	if !f.started {
		f.startCounters(tms, nil)
		return
	}
	for i, sd := range f.series {
		if sd.power < 0 {
			continue
		}
		p := f.vals[sd.power]
		f.vals[i] += (f.prevP[i] + p) / 2 * float64(tms-f.lastT) / 1000
		f.prevP[i] = p
	}
	f.lastT = tms
}

// startCounters sets every counter at tms, f.vals holding the gauges there:
// from last when it has the counter, else from a plausible meter reading (the
// meters were commissioned long ago). f.mu must be held.
func (f *Fleet) startCounters(tms int64, last func([]sample.Label) (float64, bool)) {
	f.prevP = make([]float64, len(f.series))
	for i, sd := range f.series {
		if sd.power < 0 {
			continue
		}
		p := f.vals[sd.power]
		if v, ok := lookup(last, sd.labels); ok {
			f.vals[i] = v
		} else {
			days := 200 + 1300*(unit(sub(keyOf(f.seed, "counter"), uint64(i)))+1)/2
			f.vals[i] = math.Round(p * days * 86400)
		}
		f.prevP[i] = p
	}
	f.started, f.lastT = true, tms
}

func lookup(last func([]sample.Label) (float64, bool), ls []sample.Label) (float64, bool) {
	if last == nil {
		return 0, false
	}
	return last(slices.Clone(ls))
}

// Resume continues the energy counters from a store that already holds this
// fleet's data (a restarted demo), so they go on from their stored values
// instead of starting afresh, which queries would read as counter resets.
// at is the last stored instant; last returns a counter's stored value there,
// given the counter's labels as the fleet emits them (false: start that
// counter afresh). Call it before Generate or Run; the next instant must be
// after at. The fleet must have the same seed as the one that wrote the data,
// for the power at at to be the one stored.
func (f *Fleet) Resume(at time.Time, last func(labels []sample.Label) (float64, bool)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return errors.New("demo: Resume after the fleet has emitted")
	}
	tms := at.UnixMilli()
	f.eval(tms)
	f.startCounters(tms, last)
	return nil
}

func (f *Fleet) newBatch(steps int) []sample.Series {
	b := make([]sample.Series, len(f.series))
	for i, sd := range f.series {
		b[i] = sample.Series{Labels: slices.Clone(sd.labels), Points: make([]sample.Point, 0, steps)}
	}
	return b
}

func (f *Fleet) appendPoints(b []sample.Series, tms int64) {
	for i := range b {
		b[i].Points = append(b[i].Points, sample.Point{T: tms, V: f.vals[i]})
	}
}

// ErrBackwards is returned when an instant is not after the last one emitted.
var ErrBackwards = errors.New("demo: time must move forward")

// Generate emits the fleet's samples at from, from+step, ... up to and
// including to, in time order, in batches of whole instants of at most
// MaxBatchSamples samples (every series, a run of instants each). Batches are
// fresh slices the callee may keep. An error from emit stops the generation
// and is returned.
func (f *Fleet) Generate(from, to time.Time, step time.Duration, emit func([]sample.Series) error) error {
	if step < time.Millisecond {
		return fmt.Errorf("demo: step %v is shorter than 1ms", step)
	}
	if to.Before(from) {
		return fmt.Errorf("demo: to %v is before from %v", to, from)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	start, end, stepMs := from.UnixMilli(), to.UnixMilli(), step.Milliseconds()
	if f.started && start <= f.lastT {
		return fmt.Errorf("%w: from %v is not after the last emitted instant %v", ErrBackwards, from.UTC(), time.UnixMilli(f.lastT).UTC())
	}
	per := max(1, MaxBatchSamples/len(f.series))
	for t := start; t <= end; {
		n := min(int64(per), (end-t)/stepMs+1)
		b := f.newBatch(int(n))
		for range n {
			f.advance(t)
			f.appendPoints(b, t)
			t += stepMs
		}
		if err := emit(b); err != nil {
			return err
		}
	}
	return nil
}

// Run emits the fleet's values at clock() now and then every step until ctx is
// done, one instant (every series, one point each) per call of emit. Counters
// continue from where Generate (or an earlier Run) left them. A tick whose
// clock is not after the last emitted instant is skipped. Run returns nil when
// ctx is done, or the first error of emit.
func (f *Fleet) Run(ctx context.Context, clock func() time.Time, step time.Duration, emit func(context.Context, []sample.Series) error) error {
	if step <= 0 {
		return fmt.Errorf("demo: step %v must be positive", step)
	}
	tick := func() error {
		f.mu.Lock()
		tms := clock().UnixMilli()
		if f.started && tms <= f.lastT {
			f.mu.Unlock()
			return nil
		}
		b := f.newBatch(1)
		f.advance(tms)
		f.appendPoints(b, tms)
		f.mu.Unlock()
		return emit(ctx, b)
	}
	if err := tick(); err != nil {
		return err
	}
	tk := time.NewTicker(step)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			if err := tick(); err != nil {
				return err
			}
		}
	}
}
