package rollup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	ptsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
)

// Scale knobs: ROLLUP_BENCH_SERIES (default 10000 for the job, 1000 for the
// read), ROLLUP_BENCH_DAYS (days of roll-ups read, default 365).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchLabels(i int, name string) labels.Labels {
	return labels.FromStrings("__name__", name, "site", "fra1", "node", fmt.Sprintf("node-%05d", i),
		"source", "redfish", "component", "psu", "sensor", fmt.Sprintf("PSU%d", i%2+1))
}

// writeBlocks writes samples straight into blocks of dir, one block per
// window (aligned on multiples of window since the epoch, as the store's
// Backfill aligns them), calling gen(window start, window end, append) for each.
func writeBlocks(b *testing.B, dir string, from, to time.Time, window time.Duration, gen func(lo, hi int64, app func(ls labels.Labels, t int64, v float64))) {
	b.Helper()
	ctx := context.Background()
	for lo := from; lo.Before(to); {
		hi := time.UnixMilli((lo.UnixMilli()/window.Milliseconds() + 1) * window.Milliseconds()).UTC()
		if hi.After(to) {
			hi = to
		}
		w, err := ptsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, window.Milliseconds())
		if err != nil {
			b.Fatal(err)
		}
		app := w.Appender(ctx)
		var appErr error
		gen(lo.UnixMilli(), hi.UnixMilli(), func(ls labels.Labels, t int64, v float64) {
			if _, err := app.Append(0, ls, t, v); err != nil && appErr == nil {
				appErr = err
			}
		})
		if appErr != nil {
			b.Fatal(appErr)
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		if _, err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		w.Close()
		lo = hi
	}
}

type discardWriter struct{ points int }

func (d *discardWriter) WriteSeries(_ context.Context, _ ingest.WriteOptions, s []sample.Series) (ingest.Result, error) {
	for _, x := range s {
		d.points += len(x.Points)
	}
	return ingest.Result{Accepted: d.points}, nil
}

// BenchmarkJobHour10kSeries: the job's cost of one rolled-up hour of
// 10 000 counters at 15 s (2.4 M samples, read from compacted blocks with
// the lookback), computing and comparing with the stored roll-ups; the
// write is discarded. Reported: CPU seconds per rolled-up hour.
func BenchmarkJobHour10kSeries(b *testing.B) {
	n := envInt("ROLLUP_BENCH_SERIES", 10000)
	dir := b.TempDir()
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ls := make([]labels.Labels, n)
	for i := range ls {
		ls[i] = benchLabels(i, counterName)
	}
	writeBlocks(b, dir, start, start.Add(3*time.Hour), 3*time.Hour, func(lo, hi int64, app func(labels.Labels, int64, float64)) {
		for i := range ls {
			v := 1e9 + float64(i)
			for t := lo; t < hi; t += 15000 {
				v += 15 * (200 + float64((t/15000+int64(i))%17))
				app(ls[i], t, v)
			}
		}
	})
	s, err := tsdb.Open(dir, tsdb.Options{Retention: 400 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := &discardWriter{}
	j, err := NewJob(Options{Source: s, Writer: w, Backfill: w, Metrics: []string{counterName}, Interval: 15 * time.Second, Clock: func() time.Time { return start.Add(3 * time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	h := start.Add(time.Hour).UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if err := j.computeBatch(context.Background(), h, h+hourMs, w); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/hour")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n*(240+2*40)), "cpu-ns/sample")
	if j.stats.SeriesHours != int64(n*b.N) {
		b.Fatalf("%d series-hours computed, want %d", j.stats.SeriesHours, n*b.N)
	}
}

// BenchmarkReadYear: reading and summing a year of hourly roll-ups of a
// site (ROLLUP_BENCH_SERIES series, default 1000; ROLLUP_BENCH_DAYS days,
// default 365), compacted in 31-day blocks as the store keeps them, with
// hourly buckets (what emissions need). 2 % of the hours carry a
// completeness point and 1 % a second version. ROLLUP_BENCH_BLOCK_DAYS sets
// the block span (default 31, the store's longest for a year's retention;
// 20.25 is what the head's compaction makes of live-written roll-ups).
func BenchmarkReadYear(b *testing.B) {
	n := envInt("ROLLUP_BENCH_SERIES", 1000)
	days := envInt("ROLLUP_BENCH_DAYS", 365)
	dir := b.TempDir()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(time.Duration(days) * 24 * time.Hour)
	type ser struct{ e, c labels.Labels }
	ss := make([]ser, n)
	for i := range ss {
		l := benchLabels(i, EnergyMetric)
		lb := labels.NewBuilder(l).Set(SourceMetricLabel, counterName)
		ss[i].e = lb.Labels()
		ss[i].c = lb.Set(model.MetricNameLabel, CompletenessMetric).Labels()
	}
	t0 := time.Now()
	blockSpan := time.Duration(envFloat("ROLLUP_BENCH_BLOCK_DAYS", 31) * float64(24*time.Hour))
	writeBlocks(b, dir, start, end, blockSpan, func(lo, hi int64, app func(labels.Labels, int64, float64)) {
		for i, s := range ss {
			for h := lo; h < hi; h += hourMs {
				k := h/hourMs + int64(i)
				e := 7.2e8 + float64(k%1000)*1e5
				app(s.e, h, e)
				if k%100 == 7 {
					app(s.e, h+1, e*1.01)
				}
				if k%50 == 3 {
					app(s.c, h, 0.75)
				}
			}
		}
	})
	b.Logf("wrote %d series × %d days of roll-ups in %s", n, days, time.Since(t0).Round(time.Second))
	s, err := tsdb.Open(dir, tsdb.Options{Retention: 2 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := HourlyEnergy(context.Background(), s, `greenloop_energy_joules_total{site="fra1"}`, start, end)
		if err != nil {
			b.Fatal(err)
		}
		if r.Series != n || len(r.Buckets) != days*24 || r.Completeness >= 1 || r.Completeness < 0.99 {
			b.Fatalf("%d series, %d buckets, completeness %v", r.Series, len(r.Buckets), r.Completeness)
		}
	}
	cpu := cpuTime() - cpu0
	pts := float64(n) * float64(days*24)
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/pts, "cpu-ns/point")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/pts*10000*8760/1e9, "cpu-s/10k-series-year")
}
