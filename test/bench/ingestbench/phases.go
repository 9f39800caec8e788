package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// bench runs the phases and fills res.
type bench struct {
	s     settings
	work  string
	res   *results
	specs map[string]serverSpec
}

// servers is the two names in the order of round r (0-based): greenloop first in even rounds.
func order(r int) []string {
	if r%2 == 0 {
		return []string{nameGreenloop, namePrometheus}
	}
	return []string{namePrometheus, nameGreenloop}
}

// withServer starts a fresh server, runs f, and stops the server (removing
// its data unless -keep). A server that exits uncleanly fails the phase.
func (b *bench) withServer(name string, f func(*server) error) (err error) {
	srv, err := b.specs[name].start(b.work)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil && err == nil {
			err = fmt.Errorf("%s stopped uncleanly: %w\n%s", name, serr, srv.logTail(20))
		}
		if !b.s.Keep {
			_ = os.RemoveAll(srv.dataDir)
		}
	}()
	if err = f(srv); err != nil {
		if aerr := srv.alive(); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return err
	}
	return srv.alive()
}

// durMs formats d as a PromQL duration in milliseconds.
func durMs(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// verifyCount checks that every sample of l is queryable:
// sum(count_over_time(metric[span])) at the last sample's time equals the samples sent.
func verifyCount(ctx context.Context, srv *server, l loadgen.Load) (int64, error) {
	c := newClient(1)
	span := time.Duration(int64(l.Steps)*l.Step) * time.Millisecond
	q := fmt.Sprintf("sum(count_over_time(%s[%s]))", l.Kind.Metric(), durMs(span))
	v, err := instantScalar(ctx, c, srv.url, q, time.UnixMilli(l.End()))
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", srv.name, q, err)
	}
	if int64(v) != l.Samples() {
		return int64(v), fmt.Errorf("%s: %s = %v, but %d samples were acknowledged", srv.name, q, v, l.Samples())
	}
	return int64(v), nil
}

// ingestPhase runs the throughput rounds.
func (b *bench) ingestPhase(ctx context.Context) error {
	s := b.s
	ir := &ingestResults{}
	b.res.Ingest = ir
	for r := range s.Rounds {
		step := s.Interval.Milliseconds()
		end := time.Now().Truncate(s.Interval).UnixMilli()
		l := loadgen.Load{Kind: loadgen.Power, Fleet: loadgen.Fleet{Series: s.Series, Sites: 10},
			Start: end - int64(s.Scrapes-1)*step, Step: step, Steps: s.Scrapes, Batch: s.Batch}
		t0 := time.Now()
		reqs, err := l.EncodeAll(s.Senders)
		if err != nil {
			return err
		}
		var bytes int64
		for _, rs := range reqs {
			for _, q := range rs {
				bytes += int64(len(q.Body))
			}
		}
		logf("round %d/%d: %d samples (%d series x %d) in %d requests of %d, %.1f MiB encoded in %s",
			r+1, s.Rounds, l.Samples(), s.Series, s.Scrapes, l.Requests(), s.Batch, float64(bytes)/(1<<20), time.Since(t0).Round(time.Millisecond))
		round := ingestRound{Round: r + 1, Order: order(r), Servers: map[string]*ingestRun{}}
		for _, name := range round.Order {
			if err := ctx.Err(); err != nil {
				return err
			}
			run := &ingestRun{}
			err := b.withServer(name, func(srv *server) error { return ingestOnce(ctx, s, srv, l, reqs, bytes, run) })
			if err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
			round.Servers[name] = run
			logf("round %d: %-10s %10.0f samples/s  (%.2fs, first scrape %.2fs, then %.0f samples/s; other processes used %.2f cores; server CPU %.2fs = %.2f µs/sample; load generator CPU %.2fs)  RSS peak %s settled %s = %.0f / %.0f B/series",
				r+1, name, run.SamplesPerSec, run.Seconds, run.FirstScrapeSeconds, run.SteadySamplesPerSec, run.OtherCores, run.ServerCPUSeconds, run.ServerCPUMicrosPerSample, run.LoadGenCPUSeconds,
				mib(run.PeakRSSBytes), mib(run.SettledRSSBytes), run.PeakBytesPerSeries, run.SettledBytesPerSeries)
		}
		round.Ratio = round.Servers[nameGreenloop].SamplesPerSec / round.Servers[namePrometheus].SamplesPerSec
		logf("round %d: greenloop / prometheus = %.2fx", r+1, round.Ratio)
		ir.Rounds = append(ir.Rounds, round)
	}
	ir.summarize()
	return nil
}

// ingestOnce sends the pre-encoded load to a fresh server and measures it.
func ingestOnce(ctx context.Context, s settings, srv *server, l loadgen.Load, reqs [][]loadgen.Request, bytes int64, run *ingestRun) error {
	base, err := readMemStatus(srv.pid())
	if err != nil {
		return err
	}
	c := newClient(s.Senders)
	cpu0, err := cpuSeconds(srv.pid())
	if err != nil {
		return err
	}
	self0 := selfCPUSeconds()
	ol := startOtherLoad(srv.pid())
	sr, err := sendEncoded(ctx, c, srv.url+"/api/v1/write", reqs)
	run.OtherCores = ol.cores()
	self1 := selfCPUSeconds()
	cpu1, cerr := cpuSeconds(srv.pid())
	if err != nil {
		return fmt.Errorf("%s: after %d acknowledged requests: %w", srv.name, sr.Requests, err)
	}
	if cerr != nil {
		return cerr
	}
	c.CloseIdleConnections()
	run.Samples, run.Requests, run.Seconds = sr.Samples, sr.Requests, sr.Elapsed.Seconds()
	run.WireBytes = bytes
	run.SamplesPerSec = float64(sr.Samples) / sr.Elapsed.Seconds()
	run.FirstScrapeSeconds = sr.FirstStep.Seconds()
	if rest := sr.Elapsed - sr.FirstStep; rest > 0 && l.Steps > 1 {
		run.SteadySamplesPerSec = float64(sr.Samples-sr.FirstStepSamples) / rest.Seconds()
	}
	run.ServerCPUSeconds = cpu1 - cpu0
	run.ServerCPUMicrosPerSample = run.ServerCPUSeconds / float64(sr.Samples) * 1e6
	run.LoadGenCPUSeconds = self1 - self0
	run.BaselineRSSBytes = base.RSS
	// Let background work (garbage collection, WAL segment syncs) finish before reading the settled size.
	waited, quiet, err := waitQuiet(ctx, srv.pid(), s.QuietWait)
	if err != nil {
		return err
	}
	run.QuietSeconds, run.WentQuiet = waited.Seconds(), quiet
	m, err := readMemStatus(srv.pid())
	if err != nil {
		return err
	}
	run.PeakRSSBytes, run.SettledRSSBytes = m.HWM, m.RSS
	n := float64(s.Series)
	run.PeakBytesPerSeries = float64(m.HWM) / n
	run.SettledBytesPerSeries = float64(m.RSS) / n
	run.SettledAboveBaselinePerSeries = float64(m.RSS-base.RSS) / n
	// Every acknowledged sample must be queryable.
	if run.VerifiedSamples, err = verifyCount(ctx, srv, l); err != nil {
		return err
	}
	return nil
}

// historyLoad streams a load spanning hours into a server, oldest first.
func (b *bench) historyLoad(ctx context.Context, srv *server, l loadgen.Load) (sendResult, error) {
	c := newClient(b.s.Senders)
	defer c.CloseIdleConnections()
	last := time.Now()
	sr, err := sendStreaming(ctx, c, srv.url+"/api/v1/write", l, b.s.Senders, b.s.Window, func(done, total int) {
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			logf("  %s: %d/%d steps", srv.name, done, total)
		}
	})
	if err != nil {
		return sr, fmt.Errorf("%s: after %d acknowledged requests (%d samples): %w", srv.name, sr.Requests, sr.Samples, err)
	}
	logf("  %s: %d samples in %s (%.0f samples/s, not a throughput figure: senders sync every %d steps)",
		srv.name, sr.Samples, sr.Elapsed.Round(time.Millisecond), float64(sr.Samples)/sr.Elapsed.Seconds(), b.s.Window)
	return sr, nil
}

// diskPhase measures bytes per sample of persisted blocks.
func (b *bench) diskPhase(ctx context.Context) error {
	s := b.s
	step := s.DiskInterval.Milliseconds()
	steps := int(s.DiskSpan / s.DiskInterval)
	end := time.Now().Truncate(s.DiskInterval).UnixMilli()
	l := loadgen.Load{Kind: loadgen.Power, Fleet: loadgen.Fleet{Series: s.DiskSeries, Sites: 10},
		Start: end - int64(steps-1)*step, Step: step, Steps: steps, Batch: s.Batch}
	logf("disk: %d series x %d samples (%s at %s) = %d samples", s.DiskSeries, steps, s.DiskSpan, s.DiskInterval, l.Samples())
	dr := &diskResults{Servers: map[string]*diskRun{}}
	b.res.Disk = dr
	for _, name := range order(0) {
		run := &diskRun{}
		err := b.withServer(name, func(srv *server) error {
			if _, err := b.historyLoad(ctx, srv, l); err != nil {
				return err
			}
			// Wait for the first persisted block, then for compaction to finish.
			t0 := time.Now()
			var blocks []blockInfo
			for {
				var err error
				if blocks, err = listBlocks(srv.dataDir); err != nil {
					return err
				}
				if len(blocks) > 0 {
					break
				}
				if time.Since(t0) > s.CompactWait {
					return fmt.Errorf("%s: no block persisted within %s of the load's end", name, s.CompactWait)
				}
				if err := sleep(ctx, time.Second); err != nil {
					return err
				}
			}
			run.FirstBlockSeconds = time.Since(t0).Seconds()
			if _, _, err := waitQuiet(ctx, srv.pid(), s.QuietWait); err != nil {
				return err
			}
			blocks, err := listBlocks(srv.dataDir)
			if err != nil {
				return err
			}
			run.Blocks = blocks
			var fullSamples uint64
			var fullBytes int64
			for _, bl := range blocks {
				run.Samples += bl.Samples
				run.Bytes += bl.Bytes
				run.ChunkBytes += bl.ChunkBytes
				run.IndexBytes += bl.IndexBytes
				if bl.fullRange() {
					fullSamples += bl.Samples
					fullBytes += bl.Bytes
				}
			}
			if fullSamples > 0 {
				run.FullBlockBytesPerSample = float64(fullBytes) / float64(fullSamples)
			}
			if run.Samples == 0 {
				return fmt.Errorf("%s: blocks hold no samples", name)
			}
			run.BytesPerSample = float64(run.Bytes) / float64(run.Samples)
			run.ChunkBytesPerSample = float64(run.ChunkBytes) / float64(run.Samples)
			var err2 error
			run.VerifiedSamples, err2 = verifyCount(ctx, srv, l)
			return err2
		})
		if err != nil {
			return err
		}
		dr.Servers[name] = run
		logf("disk: %-10s %d block(s) after %.0fs, %d samples, %d bytes = %.3f bytes/sample (chunks alone %.3f; full 2h blocks alone %.3f)",
			name, len(run.Blocks), run.FirstBlockSeconds, run.Samples, run.Bytes, run.BytesPerSample, run.ChunkBytesPerSample, run.FullBlockBytesPerSample)
	}
	dr.Ratio = dr.Servers[nameGreenloop].BytesPerSample / dr.Servers[namePrometheus].BytesPerSample
	return nil
}

// queryPhase times the 24-hour range query.
func (b *bench) queryPhase(ctx context.Context) error {
	s := b.s
	step := s.QueryInterval.Milliseconds()
	steps := int(s.QuerySpan / s.QueryInterval)
	end := time.Now().Truncate(s.QueryInterval).UnixMilli()
	l := loadgen.Load{Kind: loadgen.Energy, Fleet: loadgen.Fleet{Series: s.QuerySeries, Sites: s.QuerySites},
		Start: end - int64(steps-1)*step, Step: step, Steps: steps, Batch: s.Batch}
	qr := &queryResults{Servers: map[string]*queryRun{},
		Query: fmt.Sprintf("sum by (site)(rate(%s[5m]))", loadgen.EnergyMetric),
		Start: time.UnixMilli(end).Add(-s.QuerySpan).Unix(), End: time.UnixMilli(end).Unix(), Step: s.QueryInterval.Seconds()}
	b.res.Query = qr
	logf("query: %d counters x %d samples (%s at %s) over %d sites = %d samples", s.QuerySeries, steps, s.QuerySpan, s.QueryInterval, l.Fleet.SitesUsed(), l.Samples())
	results := map[string]matrix{}
	raw := map[string]map[string]float64{}
	rawQuery := fmt.Sprintf("sum by (site)(%s)", loadgen.EnergyMetric)
	for _, name := range order(0) {
		run := &queryRun{}
		err := b.withServer(name, func(srv *server) error {
			if _, err := b.historyLoad(ctx, srv, l); err != nil {
				return err
			}
			if _, _, err := waitQuiet(ctx, srv.pid(), s.QuietWait); err != nil {
				return err
			}
			var err error
			if run.VerifiedSamples, err = verifyCount(ctx, srv, l); err != nil {
				return err
			}
			blocks, err := listBlocks(srv.dataDir)
			if err != nil {
				return err
			}
			run.BlocksAtQuery = len(blocks)
			c := newClient(1)
			if raw[name], err = instantVector(ctx, c, srv.url, rawQuery, time.UnixMilli(l.End())); err != nil {
				return fmt.Errorf("%s: %s: %w", name, rawQuery, err)
			}
			p := url.Values{"query": {qr.Query}, "start": {fmt.Sprint(qr.Start)}, "end": {fmt.Sprint(qr.End)},
				"step": {fmt.Sprint(qr.Step)}}
			ol := startOtherLoad(srv.pid())
			defer func() { run.OtherCores = ol.cores() }()
			for range s.QueryRuns {
				d, took, err := apiGet(ctx, c, srv.url, "/api/v1/query_range", p)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				run.RunsSeconds = append(run.RunsSeconds, took.Seconds())
				m, points, err := parseMatrix(d)
				if err != nil {
					return err
				}
				run.Series, run.Points = len(m), points
				results[name] = m
			}
			// A dashboard refreshing: the same window one step later.
			slid := url.Values{"query": {qr.Query}, "start": {fmt.Sprint(qr.Start + int64(qr.Step))},
				"end": {fmt.Sprint(qr.End + int64(qr.Step))}, "step": {fmt.Sprint(qr.Step)}}
			if _, took, err := apiGet(ctx, c, srv.url, "/api/v1/query_range", slid); err != nil {
				return fmt.Errorf("%s: slid window: %w", name, err)
			} else {
				run.SlidSeconds = took.Seconds()
			}
			if s.PerfDir != "" && name == nameGreenloop {
				// The window shifted by a second: steps the results cache has
				// not seen, so the profile is of an uncached evaluation.
				cold := url.Values{"query": {qr.Query}, "start": {fmt.Sprint(qr.Start + 1)},
					"end": {fmt.Sprint(qr.End + 1)}, "step": {fmt.Sprint(qr.Step)}}
				err := perfRecord(ctx, srv.pid(), s.PerfDir, name+"-query", func() error {
					_, took, err := apiGet(ctx, c, srv.url, "/api/v1/query_range", cold)
					logf("perf: %s query took %s under perf", name, took.Round(time.Millisecond))
					return err
				})
				if err != nil {
					return err
				}
			}
			if run.Series != l.Fleet.SitesUsed() {
				return fmt.Errorf("%s: %d series in the result, want one per site (%d)", name, run.Series, l.Fleet.SitesUsed())
			}
			return nil
		})
		if err != nil {
			return err
		}
		run.MedianSeconds = median(run.RunsSeconds)
		if len(run.RunsSeconds) > 0 {
			run.FirstSeconds = run.RunsSeconds[0]
			run.RepeatMedianSeconds = median(run.RunsSeconds[1:])
		}
		run.MaxSeconds = slices.Max(run.RunsSeconds)
		qr.Servers[name] = run
		logf("query: %-10s median %.3fs max %.3fs over %d runs, first %.3fs, repeats %.3fs, slid by a step %.3fs (%d series, %d points, %d blocks; other processes used %.2f cores)",
			name, run.MedianSeconds, run.MaxSeconds, len(run.RunsSeconds), run.FirstSeconds, run.RepeatMedianSeconds, run.SlidSeconds,
			run.Series, run.Points, run.BlocksAtQuery, run.OtherCores)
	}
	qr.RatioMedian = qr.Servers[nameGreenloop].MedianSeconds / qr.Servers[namePrometheus].MedianSeconds
	// Same data: the counters' values must agree exactly (up to summation order).
	g, p := raw[nameGreenloop], raw[namePrometheus]
	qr.RawSumQuery = rawQuery
	qr.RawSumsCompared = len(g)
	for k, v := range g {
		if w, ok := p[k]; !ok || !closeEnough(v, w, 1e-12) {
			qr.RawSumsDiffering++
		}
	}
	if len(g) != len(p) || len(g) != l.Fleet.SitesUsed() || qr.RawSumsDiffering > 0 {
		return fmt.Errorf("%s at the last sample: greenloop has %d sites, prometheus %d, %d differ", rawQuery, len(g), len(p), qr.RawSumsDiffering)
	}
	// rate() may differ: Prometheus 3's engine (greenloop's) leaves range
	// selectors open on the left, 2.x's includes a sample at exactly t-5m.
	qr.RateDiff = compareMatrices(results[nameGreenloop], results[namePrometheus], 1e-9)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
