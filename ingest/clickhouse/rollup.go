package clickhouse

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Bucket is one rollup bucket of one series. Buckets are left-open, holding
// the samples with End-resolution < ts <= End (PromQL's window convention);
// NaN samples are left out.
type Bucket struct {
	// End is the bucket's end in ms, a multiple of the resolution.
	End int64
	// Min, Max and Avg are over the bucket's samples; Last and First are the
	// values of its newest and oldest samples. First is NaN at minute
	// resolution (the minute rollup does not keep it).
	Min, Max, Avg, Last, First float64
	// Count is the number of samples (distinct timestamps).
	Count uint64
	// LastTS is the time of the newest sample in ms.
	LastTS int64
}

// RollupSeries is the buckets of one series, oldest first.
type RollupSeries struct {
	Labels  labels.Labels
	Buckets []Bucket
}

func rollupTable(res time.Duration) (string, int64, error) {
	for _, r := range rollupBuckets {
		if r.bucket == res {
			return r.table, res.Milliseconds(), nil
		}
	}
	return "", 0, fmt.Errorf("clickhouse store: no rollup at resolution %v (have 1m and 1h)", res)
}

type bucketKey struct {
	id  uint64
	end int64
}

// Rollups returns the buckets at resolution res (time.Minute or time.Hour)
// whose end lies in [from, to], for the series matching ms, sorted by labels.
//
// Min, max, first and last are exact even when a batch was written twice
// (they are idempotent aggregates). Count and the sum behind Avg are not, so
// a bucket whose row count exceeds its duplicate-proof distinct count (a
// resent batch not yet merged away, or, at minute resolution, two samples in
// one second) is recomputed from the deduplicated raw samples.
func (s *Store) Rollups(ctx context.Context, res time.Duration, from, to int64, ms ...*labels.Matcher) ([]RollupSeries, error) {
	table, b, err := rollupTable(res)
	if err != nil {
		return nil, err
	}
	lsets, err := s.seriesLabels(ctx, ms, math.MinInt64, math.MaxInt64, false)
	if err != nil || len(lsets) == 0 {
		return nil, err
	}
	cond, args := matchersSQL(ms)
	args = append(args, from, to)
	// distinct: the number of distinct sample timestamps, or fewer when two
	// samples share a second of a minute bucket (then the bucket is reread).
	distinct, first := "length(bitmaskToArray(groupBitOrMerge(seen)))", "nan" // 18.16 has no bitCount
	if table == tbl1h {
		distinct, first = "uniqExactMerge(uniq)", "argMinMerge(first)"
	}
	rows, err := s.conn.Query(ctx, "SELECT series_id, bucket, minMerge(min), maxMerge(max), sumMerge(sum),"+
		" countMerge(cnt), toUInt64("+distinct+"), "+first+", argMaxMerge(last), maxMerge(last_ts) FROM "+s.t.q(table)+
		" WHERE series_id IN (SELECT series_id FROM "+s.t.local(tblSeries)+" WHERE "+cond+")"+
		" AND bucket >= ? AND bucket <= ? GROUP BY series_id, bucket ORDER BY series_id, bucket", args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read %s: %w", table, err))
	}
	out := map[uint64]*RollupSeries{}
	dirty := map[bucketKey]bool{}
	var dirtyIDs []uint64
	for rows.Next() {
		var (
			id       uint64
			bk       Bucket
			sum      float64
			cnt, unq uint64
		)
		if err := rows.Scan(&id, &bk.End, &bk.Min, &bk.Max, &sum, &cnt, &unq, &bk.First, &bk.Last, &bk.LastTS); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse store: scan %s: %w", table, err)
		}
		l, ok := lsets[id]
		if !ok {
			continue
		}
		bk.Count = cnt
		bk.Avg = sum / float64(cnt)
		rs := out[id]
		if rs == nil {
			rs = &RollupSeries{Labels: l}
			out[id] = rs
		}
		rs.Buckets = append(rs.Buckets, bk)
		if cnt != unq {
			dirty[bucketKey{id, bk.End}] = true
			if !slices.Contains(dirtyIDs, id) {
				dirtyIDs = append(dirtyIDs, id)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read %s: %w", table, err))
	}
	if len(dirty) > 0 {
		fixed, err := s.recount(ctx, b, dirty, dirtyIDs)
		if err != nil {
			return nil, err
		}
		for id, rs := range out {
			for i := range rs.Buckets {
				if f, ok := fixed[bucketKey{id, rs.Buckets[i].End}]; ok {
					rs.Buckets[i].Avg, rs.Buckets[i].Count = f.avg, f.count
				}
			}
		}
	}
	res2 := make([]RollupSeries, 0, len(out))
	for _, rs := range out {
		res2 = append(res2, *rs)
	}
	slices.SortFunc(res2, func(a, b RollupSeries) int { return labels.Compare(a.Labels, b.Labels) })
	return res2, nil
}

type avgCount struct {
	avg   float64
	count uint64
}

// recount recomputes the averages and counts of dirty buckets from deduplicated raw samples.
func (s *Store) recount(ctx context.Context, b int64, dirty map[bucketKey]bool, ids []uint64) (map[bucketKey]avgCount, error) {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for k := range dirty {
		lo, hi = min(lo, k.end-b+1), max(hi, k.end)
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatUint(id, 10)
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT series_id, intDiv(ts + %d, %d) * %d AS bucket, avg(value), count() FROM %s FINAL"+
		" WHERE series_id IN (%s) AND ts >= ? AND ts <= ? AND NOT isNaN(value) GROUP BY series_id, bucket",
		b-1, b, b, s.t.q(tblSamples), strings.Join(list, ", ")), lo, hi)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: recompute rollup averages: %w", err))
	}
	defer rows.Close()
	fixed := map[bucketKey]avgCount{}
	for rows.Next() {
		var (
			k bucketKey
			f avgCount
		)
		if err := rows.Scan(&k.id, &k.end, &f.avg, &f.count); err != nil {
			return nil, fmt.Errorf("clickhouse store: scan rollup averages: %w", err)
		}
		if dirty[k] {
			fixed[k] = f
		}
	}
	return fixed, classify(rows.Err())
}

// energyLookback is how far before the first hour EnergyByHour looks for the previous reading.
const energyLookback = 7 * 24 * time.Hour

// EnergyHour is the energy one counter series counted in one hour.
type EnergyHour struct {
	// Start is the hour's start in ms; the hour holds samples with Start < ts <= Start+1h.
	Start int64
	// Joules is the counter's increase over the hour.
	Joules float64
}

// EnergySeries is the hourly energy of one series, oldest hour first.
type EnergySeries struct {
	Labels labels.Labels
	Hours  []EnergyHour
}

// EnergyByHour returns, for each energy counter (joules, e.g.
// greenloop_energy_joules_total) matching ms, its increase in each hour that
// starts in [from, to), read from the hourly rollup.
//
// The increase of an hour is its last reading minus the last reading of the
// series' previous hour with data, up to a week back (so energy crossing the hour boundary is
// counted once, in the hour of the reading after it); for the first hour of
// the series it is last minus first. A reading below the previous one is a
// counter reset, counted as an increase from zero (as PromQL's increase does).
// Resets inside one hour are not seen: greenloop's canonical counters are
// already corrected for wraps and resets by the collectors.
func (s *Store) EnergyByHour(ctx context.Context, from, to int64, ms ...*labels.Matcher) ([]EnergySeries, error) {
	const h = int64(time.Hour / time.Millisecond)
	// Hours starting in [from, to) are the buckets ending in [from+h, to+h).
	rs, err := s.Rollups(ctx, time.Hour, from+h, to+h-1, ms...)
	if err != nil {
		return nil, err
	}
	// The latest reading before the first hour, up to a week back.
	before, err := s.Rollups(ctx, time.Hour, from+h-1-energyLookback.Milliseconds(), from+h-1, ms...)
	if err != nil {
		return nil, err
	}
	prev := map[string]float64{}
	for _, r := range before {
		prev[r.Labels.String()] = r.Buckets[len(r.Buckets)-1].Last
	}
	out := make([]EnergySeries, 0, len(rs))
	for _, r := range rs {
		es := EnergySeries{Labels: r.Labels}
		last, havePrev := prev[r.Labels.String()]
		for _, bk := range r.Buckets {
			var inc float64
			switch {
			case !havePrev:
				inc = bk.Last - bk.First
			case bk.Last >= last:
				inc = bk.Last - last
			default:
				inc = bk.Last
			}
			es.Hours = append(es.Hours, EnergyHour{Start: bk.End - h, Joules: inc})
			last, havePrev = bk.Last, true
		}
		if len(es.Hours) > 0 {
			out = append(out, es)
		}
	}
	return out, nil
}
