package service

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkClickHouseEnergy: a site's energy over CH_BENCH_DAYS days
// (default 14) of CH_BENCH_SERIES counters (default 50) at 15 s, hourly
// buckets, from the hourly rollup table (ClickHouseEnergy) and from raw
// samples (RawEnergy), on a ClickHouse server of its own. Reported: the cost
// per series-hour read, to scale to a year of 10,000 series (87.6 M).
func BenchmarkClickHouseEnergy(b *testing.B) {
	chtest.Require(b)
	n, days := benchEnv("CH_BENCH_SERIES", 50), benchEnv("CH_BENCH_DAYS", 14)
	srv, err := chtest.Start(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	ctx := context.Background()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "bench", FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	from := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Duration(days) * 24 * time.Hour)
	for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
		app := st.Appender(ctx)
		for i := range n {
			ls := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "it", "node", fmt.Sprintf("n%05d", i))
			for t := d; t.Before(d.Add(24 * time.Hour)); t = t.Add(15 * time.Second) {
				if _, err := app.Append(0, ls, t.UnixMilli(), 1e6+float64(200+i%50)*t.Sub(from).Seconds()); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	q := energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1",component="it"}`}, From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour}}
	seriesHours := float64(n) * float64(days*24)
	for _, c := range []struct {
		name string
		src  EnergySource
	}{{"rollup-sql", ClickHouseEnergy{Store: st}}, {"raw", RawEnergy{Store: st}}} {
		b.Run(c.name, func(b *testing.B) {
			var total float64
			for b.Loop() {
				r, err := c.src.Energy(ctx, "", q)
				if err != nil {
					b.Fatal(err)
				}
				if r.Series != n {
					b.Fatalf("%d series, want %d", r.Series, n)
				}
				total = r.Total.KWh()
			}
			perSH := b.Elapsed().Seconds() / float64(b.N) / seriesHours
			b.ReportMetric(perSH*1e9, "wall-ns/series-hour")
			b.ReportMetric(perSH*10000*8760, "wall-s/10k-series-year")
			b.ReportMetric(total, "kWh")
		})
	}
}
