package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

const (
	counterMetric = "greenloop_energy_joules_total"
	day           = 86400.0
	hourMs        = int64(time.Hour / time.Millisecond)
)

// model is the synthetic site: IT counters (one per PSU) and facility
// counters, each drawing a known power, so every figure of the report has a
// closed form.
type model struct {
	site     string
	it, fac  int       // number of IT and facility series
	from, to time.Time // the year
	step     time.Duration
	// rawFrom: hours from here to the year's end are stored as raw samples,
	// those before it as hourly rollups only.
	rawFrom time.Time
}

// series describes one synthetic meter.
type series struct {
	labels map[string]string
	base   float64 // W
	amp    float64 // W, of a daily sine
	phase  float64 // rad
}

func (m model) series() []series {
	out := make([]series, 0, m.it+m.fac)
	var itBase float64
	for i := range m.it {
		s := series{labels: map[string]string{"__name__": counterMetric, "site": m.site, "component": "it",
			"node": fmt.Sprintf("node-%05d", i/2), "sensor": fmt.Sprintf("PSU%d", i%2+1), "source": "redfish"},
			base: 150 + float64(i%97), amp: 25, phase: float64(i%24) * math.Pi / 12}
		itBase += s.base
		out = append(out, s)
	}
	// The facility draws 1.4 times the IT load (PUE 1.4), split over its meters.
	for j := range m.fac {
		out = append(out, series{labels: map[string]string{"__name__": counterMetric, "site": m.site, "component": "facility",
			"meter": fmt.Sprintf("main-%d", j)}, base: 1.4 * itBase / float64(m.fac), amp: 500, phase: float64(j)})
	}
	return out
}

// energy is the series' energy in joules over [a, b] (Unix ms).
func (s series) energy(a, b int64) float64 {
	ta, tb := float64(a)/1000, float64(b)/1000
	w := 2 * math.Pi / day
	return s.base*(tb-ta) + s.amp/w*(math.Cos(w*ta+s.phase)-math.Cos(w*tb+s.phase))
}

// incomplete says whether hour h of series i is stored as partly covered
// (about 1 %, completeness 0.95: the energy is the same, the report's
// completeness shows whether these points were read).
func incomplete(i int, h int64) bool { return (h/hourMs+int64(i)*7)%101 == 0 }

// expected are the figures the report must show.
type expected struct {
	itKWh, facKWh float64
	// itCompleteness is the IT meters' completeness over the year.
	itCompleteness float64
}

func (m model) expected() expected {
	var e expected
	a, b, r := m.from.UnixMilli(), m.to.UnixMilli(), m.rawFrom.UnixMilli()
	var missing float64
	for i, s := range m.series() {
		kwh := s.energy(a, b) / 3.6e6
		if s.labels["component"] == "it" {
			e.itKWh += kwh
			for h := a; h < r; h += hourMs {
				if incomplete(i, h) {
					missing += 0.05
				}
			}
		} else {
			e.facKWh += kwh
		}
	}
	hours := float64((b - a) / hourMs)
	e.itCompleteness = 1 - missing/(hours*float64(m.it))
	return e
}

// writer is where the data goes: an *ingest.Writer over the store's backfill.
type writer interface {
	WriteSeries(ctx context.Context, o ingest.WriteOptions, series []sample.Series) (ingest.Result, error)
}

// writeRollups writes the hourly rollups of [from, rawFrom) through w, as
// the rollup job writes a first computation (rollup.FirstWrite: each
// series' rollups and the site's group sums), one
// block window (span, aligned on multiples since the epoch) at a time.
func (m model) writeRollups(ctx context.Context, w writer, span time.Duration, progress func(done, total time.Time)) (int64, error) {
	ss := m.series()
	var points int64
	for lo := m.from.UnixMilli(); lo < m.rawFrom.UnixMilli(); {
		hi := min((lo/span.Milliseconds()+1)*span.Milliseconds(), m.rawFrom.UnixMilli())
		f, err := firstWrite(ss, lo, hi)
		if err != nil {
			return points, err
		}
		byTenant, err := f.Series()
		if err != nil {
			return points, err
		}
		var res ingest.Result
		for tenant, batch := range byTenant {
			r, err := w.WriteSeries(ctx, ingest.WriteOptions{Tenant: tenant}, batch)
			if err != nil {
				return points, fmt.Errorf("write rollups %s to %s: %w", time.UnixMilli(lo).UTC(), time.UnixMilli(hi).UTC(), err)
			}
			if r.RejectedCount > 0 {
				x := r.Rejected[0]
				return points, fmt.Errorf("write rollups: %d points refused, first %s at %d: %s", r.RejectedCount, x.Series, x.TimestampMs, x.Reason)
			}
			res.Accepted += r.Accepted
		}
		points += int64(res.Accepted)
		if progress != nil {
			progress(time.UnixMilli(hi).UTC(), m.rawFrom)
		}
		lo = hi
	}
	return points, nil
}

// writeRaw writes the raw counter samples of [rawFrom, to + 10 min] at
// m.step, an hour per write. The counters start at 10⁶ J at the year's start.
func (m model) writeRaw(ctx context.Context, w writer) (int64, error) {
	ss := m.series()
	a := m.from.UnixMilli()
	end := m.to.Add(10 * time.Minute).UnixMilli()
	var n int64
	for lo := m.rawFrom.UnixMilli(); lo <= end; lo += hourMs {
		hi := min(lo+hourMs, end+1)
		batch := make([]sample.Series, 0, len(ss))
		for _, s := range ss {
			ls := make([]sample.Label, 0, len(s.labels))
			labels.FromMap(s.labels).Range(func(l labels.Label) { ls = append(ls, sample.Label{Name: l.Name, Value: l.Value}) })
			var pts []sample.Point
			for t := lo; t < hi; t += m.step.Milliseconds() {
				pts = append(pts, sample.Point{T: t, V: 1e6 + s.energy(a, t)})
			}
			batch = append(batch, sample.Series{Labels: ls, Points: pts})
		}
		res, err := w.WriteSeries(ctx, ingest.WriteOptions{}, batch)
		if err != nil {
			return n, fmt.Errorf("write raw samples at %s: %w", time.UnixMilli(lo).UTC(), err)
		}
		if res.RejectedCount > 0 {
			r := res.Rejected[0]
			return n, fmt.Errorf("write raw samples: %d refused, first %s at %d: %s", res.RejectedCount, r.Series, r.TimestampMs, r.Reason)
		}
		n += int64(res.Accepted)
	}
	return n, nil
}

// firstWrite is what the rollup job computes first for the hours [lo, hi)
// (ms) of the series ss: each one's energy, IT series missing 5 % of some
// hours (incomplete).
func firstWrite(ss []series, lo, hi int64) (*rollup.FirstWrite, error) {
	f := rollup.NewFirstWrite(time.UnixMilli(lo), int((hi-lo)/hourMs))
	for i, s := range ss {
		hours := make([]rollup.HourFigures, 0, (hi-lo)/hourMs)
		for h := lo; h < hi; h += hourMs {
			c := 1.0
			if s.labels["component"] == "it" && incomplete(i, h) {
				c = 0.95
			}
			hours = append(hours, rollup.HourFigures{Energy: s.energy(h, h+hourMs), Completeness: c})
		}
		if err := f.Add(s.labels, hours); err != nil {
			return nil, err
		}
	}
	return f, nil
}
