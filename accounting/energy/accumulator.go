package energy

import (
	"math"
	"time"
)

// warmN is how many samples a series with no nominal interval is buffered
// for, to estimate the interval as the median of their spacing.
const warmN = 17

// accumulator spreads the amounts of sample intervals over buckets. It holds
// no per-sample allocation: samples of one series arrive in time order, and
// the bucket index only moves forward.
type accumulator struct {
	res       rawResult
	edges     []int64 // bucket boundaries in Unix ms, len(buckets)+1
	gapFactor float64
	interval  int64 // nominal interval in ms, 0 = estimate per series
	wrapAt    float64
	maxGaps   int
	series    int
	samples   int

	// Per series.
	m      Metric
	labels map[string]string
	maxGap int64 // ms; an interval longer than this is a gap
	have   bool
	t0     int64
	v0     float64
	bi     int
	first  int64
	warm   [warmN]struct {
		t int64
		v float64
	}
	nwarm   int
	warming bool
}

func newAccumulator(edges []time.Time, gapFactor float64, interval time.Duration, wrapAt float64, maxGaps int) *accumulator {
	a := &accumulator{gapFactor: gapFactor, interval: interval.Milliseconds(), wrapAt: wrapAt, maxGaps: maxGaps}
	n := len(edges) - 1
	a.edges = make([]int64, len(edges))
	for i, e := range edges {
		a.edges[i] = e.UnixMilli()
	}
	a.res.edges = edges
	a.res.edgeMs = a.edges
	a.res.amount = make([]float64, n)
	a.res.estimated = make([]float64, n)
	a.res.covered = make([]int64, n)
	return a
}

func (a *accumulator) begin(m Metric, labels map[string]string) {
	a.series++
	a.m, a.labels = m, labels
	a.have, a.bi, a.nwarm = false, 0, 0
	a.warming = a.interval <= 0
	if !a.warming {
		a.maxGap = int64(a.gapFactor * float64(a.interval))
	}
}

// add takes the next sample of the current series.
func (a *accumulator) add(t int64, v float64) {
	if v-v != 0 { // NaN (stale markers) and ±Inf
		return
	}
	if a.warming {
		if a.nwarm > 0 && t <= a.warm[a.nwarm-1].t {
			return
		}
		a.warm[a.nwarm].t, a.warm[a.nwarm].v = t, v
		a.nwarm++
		if a.nwarm == warmN {
			a.settle()
		}
		return
	}
	a.step(t, v)
}

// addBatch takes the next samples of the current series. It is add with the
// common case — an ordered sample inside the current bucket, no gap, no
// counter drop — done inline on local copies of the state.
func (a *accumulator) addBatch(ts []int64, vs []float64) {
	if len(vs) < len(ts) {
		ts = ts[:len(vs)]
	}
	i := 0
	for i < len(ts) && (a.warming || !a.have) {
		a.add(ts[i], vs[i])
		i++
	}
	if i == len(ts) {
		return
	}
	amount, covered, edges := a.res.amount, a.res.covered, a.edges
	bi, t0, v0, maxGap := a.bi, a.t0, a.v0, a.maxGap
	lo, hi := edges[bi], edges[bi+1]
	counter := a.m.Kind == Counter
	scale := a.m.Scale
	halfPerMs := scale / 2000
	for ; i < len(ts); i++ {
		t, v := ts[i], vs[i]
		if dt := t - t0; dt > 0 && dt <= maxGap && t0 >= lo && t <= hi && v-v == 0 {
			if counter {
				if d := v - v0; d >= 0 {
					amount[bi] += d * scale
					covered[bi] += dt
					t0, v0 = t, v
					continue
				}
			} else {
				amount[bi] += (v0 + v) * float64(dt) * halfPerMs
				covered[bi] += dt
				t0, v0 = t, v
				continue
			}
		}
		a.bi, a.t0, a.v0 = bi, t0, v0
		a.add(t, v)
		bi, t0, v0 = a.bi, a.t0, a.v0
		lo, hi = edges[bi], edges[bi+1]
	}
	a.bi, a.t0, a.v0 = bi, t0, v0
}

// settle estimates the nominal interval from the buffered samples and replays them.
func (a *accumulator) settle() {
	a.warming = false
	n := a.nwarm - 1
	if n < 1 {
		a.maxGap = math.MaxInt64
	} else {
		var d [warmN - 1]int64
		for i := range n {
			d[i] = a.warm[i+1].t - a.warm[i].t
		}
		// Insertion sort: at most 16 values.
		for i := 1; i < n; i++ {
			for j := i; j > 0 && d[j] < d[j-1]; j-- {
				d[j], d[j-1] = d[j-1], d[j]
			}
		}
		med := d[n/2]
		if n%2 == 0 {
			med = (d[n/2-1] + d[n/2]) / 2
		}
		a.maxGap = max(int64(a.gapFactor*float64(med)), 1)
	}
	for i := range a.nwarm {
		a.step(a.warm[i].t, a.warm[i].v)
	}
}

func (a *accumulator) step(t int64, v float64) {
	if !a.have {
		a.have, a.t0, a.v0, a.first = true, t, v, t
		return
	}
	t0, v0 := a.t0, a.v0
	if t <= t0 { // duplicate or out of order
		return
	}
	a.t0, a.v0 = t, v
	gap := t-t0 > a.maxGap
	switch a.m.Kind {
	case Counter:
		d := v - v0
		if d < 0 {
			if a.wrapAt > 0 {
				d = a.wrapAt - v0 + v
				a.res.wraps++
			} else {
				d = v
				a.res.resets++
			}
		}
		a.spreadLinear(t0, t, d*a.m.Scale, gap)
		if gap {
			a.addGap(t0, t, true)
		}
	case Gauge:
		if gap {
			a.addGap(t0, t, false)
			return
		}
		a.spreadTrapezoid(t0, v0, t, v)
	}
}

// locate moves a.bi to the bucket holding lo (lo within the edges).
func (a *accumulator) locate(lo int64) {
	for a.edges[a.bi+1] <= lo {
		a.bi++
	}
}

// spreadLinear adds amount, spent evenly over [t0, t1], to the buckets it overlaps.
func (a *accumulator) spreadLinear(t0, t1 int64, amount float64, estimated bool) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	a.locate(lo)
	if lo == t0 && hi == t1 && t1 <= e[a.bi+1] { // the common case: inside one bucket
		a.res.amount[a.bi] += amount
		if estimated {
			a.res.estimated[a.bi] += amount
		} else {
			a.res.covered[a.bi] += t1 - t0
		}
		return
	}
	span := float64(t1 - t0)
	for b := a.bi; b < len(e)-1 && e[b] < hi; b++ {
		sl, sh := max(lo, e[b]), min(hi, e[b+1])
		part := amount
		if sl != t0 || sh != t1 {
			part = amount * float64(sh-sl) / span
		}
		a.res.amount[b] += part
		if estimated {
			a.res.estimated[b] += part
		} else {
			a.res.covered[b] += sh - sl
		}
	}
}

// spreadTrapezoid adds the integral of the rate, linear from v0 at t0 to v1 at t1, to the buckets it overlaps.
func (a *accumulator) spreadTrapezoid(t0 int64, v0 float64, t1 int64, v1 float64) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	a.locate(lo)
	scale := a.m.Scale / 1000                    // per ms
	if lo == t0 && hi == t1 && t1 <= e[a.bi+1] { // the common case: inside one bucket
		a.res.amount[a.bi] += (v0 + v1) * float64(t1-t0) * (a.m.Scale / 2000) // as in addBatch, to the bit
		a.res.covered[a.bi] += t1 - t0
		return
	}
	slope := (v1 - v0) / float64(t1-t0)
	for b := a.bi; b < len(e)-1 && e[b] < hi; b++ {
		sl, sh := max(lo, e[b]), min(hi, e[b+1])
		pl := v0 + slope*float64(sl-t0)
		ph := v0 + slope*float64(sh-t0)
		a.res.amount[b] += (pl + ph) / 2 * float64(sh-sl) * scale
		a.res.covered[b] += sh - sl
	}
}

func (a *accumulator) addGap(t0, t1 int64, estimated bool) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	if len(a.res.gaps) >= a.maxGaps {
		a.res.gapsOmitted++
		return
	}
	a.res.gaps = append(a.res.gaps, Gap{Series: LabelString(a.labels),
		Start: time.UnixMilli(lo).UTC(), End: time.UnixMilli(hi).UTC(), Estimated: estimated})
}

// end closes the current series: gaps before its first and after its last sample.
func (a *accumulator) end() {
	if a.warming {
		a.settle()
	}
	e := a.edges
	from, to := e[0], e[len(e)-1]
	if !a.have || a.t0 == a.first { // no sample, or a single one: no interval covered
		a.addGap(from, to, false)
		return
	}
	// Missing data at either end is a gap once it is longer than a gap
	// (a shorter lack is the normal lead-in of sampling, and only lowers completeness).
	if a.first-from > a.maxGap {
		a.addGap(from, a.first, false)
	}
	if to-a.t0 > a.maxGap {
		a.addGap(a.t0, to, false)
	}
}

func (a *accumulator) finish() *rawResult {
	r := &a.res
	r.series = a.series
	var covered int64
	for i := range r.amount {
		r.total += r.amount[i]
		r.estTotal += r.estimated[i]
		covered += r.covered[i]
	}
	span := a.edges[len(a.edges)-1] - a.edges[0]
	if a.series > 0 && span > 0 {
		r.completeness = float64(covered) / (float64(span) * float64(a.series))
	}
	return r
}
