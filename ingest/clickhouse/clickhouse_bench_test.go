package clickhouse_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// benchRows builds n samples over nSeries series, 15 s apart, power-like values.
func benchRows(nSeries, perSeries int, base int64) ([]labels.Labels, []uint64) {
	ls := make([]labels.Labels, nSeries)
	ids := make([]uint64, nSeries)
	for i := range ls {
		ls[i] = labels.FromStrings("__name__", "greenloop_power_watts", "site", fmt.Sprint("s", i%20), "node", fmt.Sprint("n", i), "source", "redfish")
		ids[i] = clickhouse.SeriesID(ls[i])
	}
	return ls, ids
}

func powerValue(i, j int) float64 {
	return math.Round((200+50*math.Sin(float64(i+j)/40))*100) / 100
}

// BenchmarkInsert compares the Appender (100,000 samples per commit) with a
// direct clickhouse-go column batch of the same rows into the same table.
func BenchmarkInsert(b *testing.B) {
	const nSeries, perSeries = 1000, 100
	ls, ids := benchRows(nSeries, perSeries, 0)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
	var appenderRate, directRate float64
	b.Run("appender", func(b *testing.B) {
		st := open(b, newDB(b))
		defer st.Close()
		round := int64(0)
		for b.Loop() {
			app := st.Appender(context.Background())
			for i := range nSeries {
				var ref storage.SeriesRef
				for j := range perSeries {
					ref, _ = app.Append(ref, ls[i], base+(round*perSeries+int64(j))*15_000, powerValue(i, j))
				}
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
			round++
		}
		appenderRate = float64(nSeries*perSeries*b.N) / b.Elapsed().Seconds()
		b.ReportMetric(appenderRate, "rows/s")
	})
	b.Run("direct", func(b *testing.B) {
		st := open(b, newDB(b))
		defer st.Close()
		db := st.Database()
		round := int64(0)
		tsCol := make([]int64, 0, nSeries*perSeries)
		idCol := make([]uint64, 0, nSeries*perSeries)
		vCol := make([]float64, 0, nSeries*perSeries)
		for b.Loop() {
			tsCol, idCol, vCol = tsCol[:0], idCol[:0], vCol[:0]
			for i := range nSeries {
				for j := range perSeries {
					idCol = append(idCol, ids[i])
					tsCol = append(tsCol, base+(round*perSeries+int64(j))*15_000)
					vCol = append(vCol, powerValue(i, j))
				}
			}
			batch, err := st.Conn().PrepareBatch(context.Background(), "INSERT INTO "+db+".samples (series_id, ts, value)")
			if err != nil {
				b.Fatal(err)
			}
			if err := batch.Column(0).Append(idCol); err != nil {
				b.Fatal(err)
			}
			if err := batch.Column(1).Append(tsCol); err != nil {
				b.Fatal(err)
			}
			if err := batch.Column(2).Append(vCol); err != nil {
				b.Fatal(err)
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
			round++
		}
		directRate = float64(nSeries*perSeries*b.N) / b.Elapsed().Seconds()
		b.ReportMetric(directRate, "rows/s")
	})
	if appenderRate > 0 && directRate > 0 {
		b.Logf("appender/direct = %.2f", appenderRate/directRate)
	}
}

// BenchmarkBytesPerSample loads 1,000 series x 1 day at 15 s (5.76 M samples)
// and reports the raw table's and the whole database's bytes on disk per sample
// after merges.
func BenchmarkBytesPerSample(b *testing.B) {
	const nSeries, perSeries = 1000, 5760
	st := open(b, newDB(b), func(o *clickhouse.Options) { o.WriteTimeout = 2 * time.Minute })
	defer st.Close()
	ls, _ := benchRows(nSeries, perSeries, 0)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
	load(b, st, ls, perSeries, base, 15_000)
	db := st.Database()
	ctx := context.Background()
	for _, tb := range []string{"samples", "samples_1m", "samples_1h"} {
		if err := st.Conn().Exec(ctx, "OPTIMIZE TABLE "+db+"."+tb+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		raw := queryUint(b, st, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '"+db+"' AND table = 'samples'")
		all := queryUint(b, st, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '"+db+"'")
		rows := queryUint(b, st, "SELECT count() FROM "+db+".samples")
		b.ReportMetric(float64(raw)/float64(rows), "raw-bytes/sample")
		b.ReportMetric(float64(all)/float64(rows), "all-bytes/sample")
	}
}

// load appends perSeries samples of every series, step ms apart, in commits of about 100,000 samples.
func load(b testing.TB, st storage.Appendable, ls []labels.Labels, perSeries int, base, step int64) {
	chunk := max(1, 100_000/len(ls))
	for lo := 0; lo < perSeries; lo += chunk {
		app := st.Appender(context.Background())
		for i, l := range ls {
			var ref storage.SeriesRef
			for j := lo; j < min(lo+chunk, perSeries); j++ {
				ref, _ = app.Append(ref, l, base+int64(j)*step, powerValue(i, j))
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueryRange24h: 10,000 series x 24 h scraped every 60 s (14.4 M
// samples), a PromQL query_range over the whole day at 60 s step, answered
// from the 1-minute rollup (step-aligned) and from raw samples.
func BenchmarkQueryRange24h(b *testing.B) { benchQueryRange(b, 10_000, time.Minute) }

// BenchmarkQueryRange24hScrape15s: the same number of samples from 2,500
// series scraped every 15 s, where the 1-minute rollup holds 4 times fewer rows.
func BenchmarkQueryRange24hScrape15s(b *testing.B) { benchQueryRange(b, 2_500, 15*time.Second) }

func benchQueryRange(b *testing.B, nSeries int, scrape time.Duration) {
	perSeries := int(24 * time.Hour / scrape)
	db := fmt.Sprintf("bench_query24h_%d_%d", nSeries, scrape/time.Second)
	st := open(b, db, func(o *clickhouse.Options) { o.WriteTimeout = 2 * time.Minute })
	defer st.Close()
	end := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixMilli()
	if n := queryUint(b, st, "SELECT count() FROM "+db+".samples"); n < uint64(nSeries*perSeries) {
		ls, _ := benchRows(nSeries, perSeries, 0)
		start := time.Now()
		load(b, st, ls, perSeries, end-24*3_600_000+scrape.Milliseconds(), scrape.Milliseconds())
		b.Logf("loaded %d samples in %v", nSeries*perSeries, time.Since(start))
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 500_000_000, Timeout: 5 * time.Minute, LookbackDelta: 5 * time.Minute})
	for _, c := range []struct {
		name  string
		query string
		raw   bool
	}{
		{"sum/rollup", "sum(greenloop_power_watts)", false},
		{"sum/raw", "sum(greenloop_power_watts)", true},
		{"max_by_site_5m/rollup", "max by (site) (max_over_time(greenloop_power_watts[5m]))", false},
		{"max_by_site_5m/raw", "max by (site) (max_over_time(greenloop_power_watts[5m]))", true},
		{"avg_over_time_by_site/raw", "avg by (site) (avg_over_time(greenloop_power_watts[5m]))", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			qs := st
			if c.raw {
				qs = open(b, db, func(o *clickhouse.Options) { o.DisableRollupReads = true })
				defer qs.Close()
			}
			for b.Loop() {
				q, err := eng.NewRangeQuery(context.Background(), qs, nil, c.query, time.UnixMilli(end-24*3_600_000), time.UnixMilli(end), time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				res := q.Exec(context.Background())
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				m, _ := res.Matrix()
				// Steps from end-24h (no sample in its lookback yet) to end.
				if len(m) == 0 || len(m[0].Floats) != 1440 {
					b.Fatalf("%d series, %d points", len(m), len(m[0].Floats))
				}
				q.Close()
			}
		})
	}
}

// BenchmarkFinalCost measures what FINAL (deduplication at read time) costs
// on the raw read of 1,000 series x 24 h at 60 s.
func BenchmarkFinalCost(b *testing.B) {
	st := open(b, newDB(b), func(o *clickhouse.Options) { o.WriteTimeout = 2 * time.Minute })
	defer st.Close()
	ls, _ := benchRows(1000, 1440, 0)
	end := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixMilli()
	load(b, st, ls, 1440, end-24*3_600_000+60_000, 60_000)
	load(b, st, ls[:100], 1440, end-24*3_600_000+60_000, 60_000) // a resend of a tenth
	db := st.Database()
	for _, final := range []string{"", " FINAL"} {
		b.Run("select"+final, func(b *testing.B) {
			for b.Loop() {
				rows, err := st.Conn().Query(context.Background(), "SELECT series_id, ts, value FROM "+db+".samples"+final+
					" WHERE series_id IN (SELECT series_id FROM "+db+".series WHERE metric = 'greenloop_power_watts') ORDER BY series_id, ts")
				if err != nil {
					b.Fatal(err)
				}
				var n int
				for rows.Next() {
					n++
				}
				rows.Close()
			}
		})
	}
}
