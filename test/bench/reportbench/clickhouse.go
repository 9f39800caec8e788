package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// chDatabase is the database the ClickHouse mode writes (dropped first).
const chDatabase = "reportbench"

// writeCHData writes the year into ClickHouse as the server holds it once
// its group job has caught up: the raw samples of the last hours, then the
// hourly group sums and members of every earlier hour (rollup.FirstWrite's
// GroupRows, what the job computes) with each hour's marker carrying the
// signature of the samples stored around it, as the job would have
// computed it. No per-series data exists for those hours (nor any raw
// sample, nor samples_1h row): a report with the synthetic totals read
// the group sums.
func writeCHData(ctx context.Context, m model, addr string, retention time.Duration, rep *report, stdout io.Writer) error {
	boot, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{addr}, Database: chDatabase + "_boot"})
	if err != nil {
		return err
	}
	for _, db := range []string{chDatabase, chDatabase + "_boot"} {
		if err := boot.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			boot.Close()
			return fmt.Errorf("drop database %s: %w", db, err)
		}
	}
	boot.Close()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{addr}, Database: chDatabase, Retention: retention, HourRetention: retention,
		WriteTimeout: time.Minute}) // a shared machine: inserts of 100,000 rows may wait
	if err != nil {
		return err
	}
	defer st.Close()
	eg, err := st.EnergyGroups(ctx)
	if err != nil {
		return err
	}
	w, err := ingest.NewWriter(st, ingest.WriterOptions{MaxAge: retention - time.Hour})
	if err != nil {
		return err
	}
	if rep.RawSamples, err = m.writeRaw(ctx, w); err != nil {
		return err
	}
	from, rawFrom := m.from.UnixMilli(), m.rawFrom.UnixMilli()
	counts, err := eg.Counts(ctx, rollup.DefaultMetrics, from-hourMs, rawFrom+hourMs)
	if err != nil {
		return err
	}
	sig := rollup.Signatures(counts, from, rawFrom)
	version := uint64(time.Now().UnixMilli())
	store := service.ClickHouseGroups{Groups: eg}
	t0 := time.Now()
	ss := m.series()
	span := 31 * 24 * hourMs
	for lo := from; lo < rawFrom; {
		hi := min((lo/span+1)*span, rawFrom)
		f, err := firstWrite(ss, lo, hi)
		if err != nil {
			return err
		}
		rows, members := f.GroupRows(version)
		for h := lo; h < hi; h += hourMs {
			rows = append(rows, rollup.GroupRow{Hour: h, Inputs: sig[h], Version: version})
		}
		for i := range rows {
			rows[i].Inputs = sig[rows[i].Hour]
		}
		if err := store.WriteGroups(ctx, rows, members); err != nil {
			return err
		}
		rep.RollupPoints += int64(len(rows) + len(members))
		fmt.Fprintf(stdout, "  group sums written up to %s (%.0f s)\n", time.UnixMilli(hi).UTC().Format(time.DateOnly), time.Since(t0).Seconds())
		lo = hi
	}
	// The report must read the group sums: check the reader's figure before the server does.
	r, err := service.ClickHouseEnergy{Store: st, Groups: eg}.Energy(ctx, "", energy.Query{
		Selectors: []string{fmt.Sprintf(`%s{site=%q,component="it"}`, counterMetric, m.site)},
		From:      m.from, To: m.rawFrom, Buckets: energy.Bucketing{Calendar: energy.Hour}})
	if err != nil {
		return err
	}
	want := 0.0
	for _, s := range ss {
		if s.labels["component"] == "it" {
			want += s.energy(from, rawFrom) / 3.6e6
		}
	}
	if math.Abs(r.Total.KWh()-want) > 1e-6*want {
		return fmt.Errorf("the group-sum reader gives %.1f kWh of IT energy before the raw hours, want %.1f: the group sums were not read", r.Total.KWh(), want)
	}
	return nil
}
