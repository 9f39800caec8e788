// Command chbench measures greenloop's ingest into ClickHouse side by side
// with ClickHouse's own client, on the same rows:
//
//   - client: clickhouse-client inserting a Native-format file (written by
//     clickhouse-client itself) into a database holding greenloop's own schema
//     (samples table, rollup tables and their materialized views), the
//     practical limit of one machine;
//   - greenloop: `greenloop serve` with storage.backend clickhouse receiving
//     the same rows as Prometheus remote_write requests (package loadgen) from
//     several concurrent senders, timed until the last one is acknowledged
//     (greenloop acknowledges only what ClickHouse accepted).
//
// With -baseline-batch N it also times clickhouse-go column inserts of N rows
// each, one after another, into a third database: the INSERT sizes greenloop
// sends without remote_write in front, to tell what the gap to the client is.
//
// It starts a throw-away clickhouse-server (package chtest), runs several
// rounds in alternating order, each into fresh databases, then checks that
// both hold exactly the same rows: the counts, the distinct (series_id, ts)
// pairs, greenloop's table after OPTIMIZE FINAL, and a row-by-row comparison.
// It prints a table and, with -out, writes JSON. It exits 1 on any failure.
//
// Usage: go run ./test/bench/chbench [-rounds 3] [-out results.json]   (-h lists the flags)
package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// settings are the benchmark's parameters, from the flags.
type settings struct {
	Series        int           `json:"series"`
	Samples       int           `json:"samples_per_series"`
	Interval      time.Duration `json:"interval_ns"`
	Batch         int           `json:"samples_per_request"`
	StepsPerReq   int           `json:"steps_per_request"`
	Senders       int           `json:"senders"`
	Rounds        int           `json:"rounds"`
	BatchSize     int           `json:"greenloop_batch_size,omitempty"`
	FlushInterval time.Duration `json:"greenloop_flush_interval_ns,omitempty"`
	QuietWait     time.Duration `json:"quiet_wait_ns"`
	BaselineBatch int           `json:"baseline_batch,omitempty"`
	// AsyncInsert is greenloop's storage.clickhouse.async_insert ("": not written).
	AsyncInsert string `json:"greenloop_async_insert,omitempty"`
	// Buffer is greenloop's storage.clickhouse.buffer (zero thresholds: not written).
	Buffer bufferSettings `json:"greenloop_buffer"`
	// RollupViews is which rollup materialized views every database keeps
	// during its timed section: all, none, 1m or 1h (a diagnostic: what the views cost).
	RollupViews  string `json:"rollup_views"`
	GreenloopBin string `json:"-"`
	ClientBin    string `json:"-"`
	Out          string `json:"-"`
	Keep         bool   `json:"-"`
	WorkParent   string `json:"-"`
}

func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("chbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.Series, "series", 10_000, "series (power sensors)")
	fs.IntVar(&s.Samples, "samples", 200, "samples per series, -interval apart")
	fs.DurationVar(&s.Interval, "interval", 15*time.Second, "time between a series' samples")
	fs.IntVar(&s.Batch, "batch", 2000, "samples (series) per remote_write request")
	fs.IntVar(&s.StepsPerReq, "steps-per-request", 10, "consecutive time steps per request, of -batch / this many series each, one entry per sample: a Prometheus shard's batch when its queue is behind (the default, with -senders 50, is one Prometheus at its default queue_config, 50 shards of 2,000 samples, for 10,000 series)")
	fs.IntVar(&s.Senders, "senders", 50, "concurrent remote_write senders (remote-write shards), each owning a fixed set of series")
	fs.IntVar(&s.Rounds, "rounds", 3, "rounds, each into fresh databases, in alternating order")
	fs.IntVar(&s.BatchSize, "ch-batch-size", 0, "greenloop storage.clickhouse.batch_size (0: greenloop's default)")
	fs.DurationVar(&s.FlushInterval, "ch-flush-interval", 0, "greenloop storage.clickhouse.flush_interval (0: greenloop's default)")
	fs.DurationVar(&s.QuietWait, "quiet-wait", 30*time.Second, "longest wait for clickhouse-server to finish background merges before a timed section")
	fs.IntVar(&s.BaselineBatch, "baseline-batch", 0, "also time clickhouse-go column inserts of this many rows each, one after another (0: off), to separate the cost of small INSERTs from greenloop's")
	fs.StringVar(&s.AsyncInsert, "ch-async-insert", "", "greenloop storage.clickhouse.async_insert: auto, on or off (empty: greenloop's default)")
	fs.BoolVar(&s.Buffer.Enabled, "ch-buffer", false, "greenloop storage.clickhouse.buffer.enabled: insert through a Buffer table (then the report adds the time to flush it)")
	fs.IntVar(&s.Buffer.Layers, "ch-buffer-layers", 0, "storage.clickhouse.buffer.layers (0: greenloop's default)")
	fs.DurationVar(&s.Buffer.MinTime, "ch-buffer-min-time", 0, "storage.clickhouse.buffer.min_time (0: greenloop's default)")
	fs.DurationVar(&s.Buffer.MaxTime, "ch-buffer-max-time", 0, "storage.clickhouse.buffer.max_time (0: greenloop's default)")
	fs.Int64Var(&s.Buffer.MinRows, "ch-buffer-min-rows", 0, "storage.clickhouse.buffer.min_rows (0: greenloop's default)")
	fs.Int64Var(&s.Buffer.MaxRows, "ch-buffer-max-rows", 0, "storage.clickhouse.buffer.max_rows (0: greenloop's default)")
	fs.StringVar(&s.RollupViews, "rollup-views", "all", "rollup materialized views every database keeps: all, none, 1m or 1h; the others are dropped before timing (diagnostic: what the views cost ClickHouse)")
	fs.StringVar(&s.GreenloopBin, "greenloop", "", "greenloop binary (default: go build ./cmd/greenloop into the work directory)")
	fs.StringVar(&s.ClientBin, "client", "clickhouse-client", "clickhouse-client binary")
	fs.StringVar(&s.Out, "out", "", "write the results as JSON to this file")
	fs.BoolVar(&s.Keep, "keep", false, "keep the work directory (ClickHouse data and logs, greenloop logs)")
	fs.StringVar(&s.WorkParent, "workdir", "", "parent of the temporary work directory (default: the system's)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./test/bench/chbench [flags]\n\n"+
			"Compares the rows/s greenloop's remote_write endpoint stores into ClickHouse\n"+
			"with clickhouse-client inserting the same rows in Native format.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"series", s.Series}, {"samples", s.Samples}, {"batch", s.Batch}, {"steps-per-request", s.StepsPerReq}, {"senders", s.Senders}, {"rounds", s.Rounds}, {"baseline-batch", s.BaselineBatch + 1}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive, got %d", f.name, f.v))
		}
	}
	if s.StepsPerReq > 0 && s.Batch%s.StepsPerReq != 0 {
		errs = append(errs, fmt.Errorf("-batch (%d) must be a multiple of -steps-per-request (%d)", s.Batch, s.StepsPerReq))
	}
	if s.Interval < time.Millisecond {
		errs = append(errs, fmt.Errorf("-interval must be at least 1ms, got %s", s.Interval))
	}
	if s.BatchSize < 0 || s.FlushInterval < 0 {
		errs = append(errs, errors.New("-ch-batch-size and -ch-flush-interval must not be negative"))
	}
	if _, ok := viewsToDrop(s.RollupViews); !ok {
		errs = append(errs, fmt.Errorf("-rollup-views: want all, none, 1m or 1h, got %q", s.RollupViews))
	}
	switch s.AsyncInsert {
	case "", "auto", "on", "off":
	default:
		errs = append(errs, fmt.Errorf("-ch-async-insert: want auto, on or off, got %q", s.AsyncInsert))
	}
	if bf := s.Buffer; bf.Layers < 0 || bf.MinTime < 0 || bf.MaxTime < 0 || bf.MinRows < 0 || bf.MaxRows < 0 {
		errs = append(errs, errors.New("-ch-buffer-* thresholds must not be negative"))
	}
	return s, errors.Join(errs...)
}

func main() {
	s, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, s)
	if res != nil {
		if err != nil {
			res.Failures = append(res.Failures, err.Error())
		}
		printReport(os.Stdout, res)
		if s.Out != "" {
			if werr := writeJSON(s.Out, res); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintf(os.Stderr, "chbench: results written to %s\n", s.Out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chbench: FAILED:", err)
		os.Exit(1)
	}
}

func writeJSON(path string, res *results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// logf reports progress on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// results is everything one run measured; -out writes it as JSON.
type results struct {
	Date             string   `json:"date"`
	Cores            int      `json:"cores"`
	LoadAvgStart     string   `json:"loadavg_start"`
	LoadAvgEnd       string   `json:"loadavg_end"`
	Greenloop        string   `json:"greenloop_version"`
	ClickHouse       string   `json:"clickhouse_version"`
	Settings         settings `json:"settings"`
	Rows             int64    `json:"rows"`
	NativeFileBytes  int64    `json:"native_file_bytes"`
	WireBytes        int64    `json:"remote_write_bytes"`
	Requests         int      `json:"remote_write_requests"`
	ClientStartupSec float64  `json:"client_startup_seconds"` // clickhouse-client running SELECT 1: the fixed cost in each insert's wall time
	Rounds           []round  `json:"rounds"`
	Summary          *summary `json:"summary,omitempty"`
	Failures         []string `json:"failures,omitempty"`
}

// side is one timed ingest of the rows.
type side struct {
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_sec"`
	// ClickHouseCPU is clickhouse-server's CPU time during the timed section.
	ClickHouseCPU float64 `json:"clickhouse_server_cpu_seconds"`
	// SenderCPU is clickhouse-client's CPU (client side) or greenloop's (greenloop side).
	SenderCPU float64 `json:"sender_cpu_seconds"`
	// LoadGenCPU is this process' CPU while sending remote_write (greenloop side).
	LoadGenCPU float64 `json:"loadgen_cpu_seconds,omitempty"`
	// OtherCores is the CPU that processes not under test used meanwhile, in cores.
	OtherCores float64 `json:"other_processes_cores"`
	Requests   int64   `json:"requests,omitempty"`
	// FlushSeconds (greenloop with -ch-buffer) is how long flushing the Buffer
	// table into the samples table took after the last acknowledgement
	// (OPTIMIZE TABLE through clickhouse-client, its startup included), and
	// DurableRowsPerSec the rows over the time until then: acknowledged rows
	// are only in ClickHouse's memory until that flush.
	FlushSeconds      float64 `json:"buffer_flush_seconds,omitempty"`
	DurableRowsPerSec float64 `json:"durable_rows_per_sec,omitempty"`
	// ServerEvents are the growth of clickhouse-server's system.events counters
	// over the section: INSERT queries, rows inserted (materialized views'
	// rows included), background merges and the rows they merged.
	ServerEvents map[string]uint64 `json:"clickhouse_events"`
}

type round struct {
	Round     int     `json:"round"`
	Order     string  `json:"order"`
	Client    side    `json:"client"`
	Greenloop side    `json:"greenloop"`
	Batched   *side   `json:"batched_baseline,omitempty"`
	Ratio     float64 `json:"ratio"` // greenloop rows/s / client rows/s
	// DurableRatio (with -ch-buffer) counts greenloop's time until the buffer is flushed.
	DurableRatio float64      `json:"durable_ratio,omitempty"`
	Verify       verification `json:"verify"`
}

type summary struct {
	ClientRowsPerSec    spread  `json:"client_rows_per_sec"`
	GreenloopRowsPerSec spread  `json:"greenloop_rows_per_sec"`
	Ratio               spread  `json:"ratio"`
	DurableRatio        *spread `json:"durable_ratio,omitempty"`
	ClientCHCPU         spread  `json:"client_clickhouse_cpu_seconds"`
	GreenloopCHCPU      spread  `json:"greenloop_clickhouse_cpu_seconds"`
	GreenloopCPU        spread  `json:"greenloop_cpu_seconds"`
	TargetRatio         float64 `json:"target_ratio"`
	TargetMet           bool    `json:"target_met"`
}

// targetRatio is the goal: greenloop stores at least 70 % of the client's rows/s.
const targetRatio = 0.70

// disturbedCores is how much CPU other processes may use during a timed section before the report warns.
const disturbedCores = 0.1

func summarize(rs []round) *summary {
	var c, g, ratio, durable, ccpu, gcpu, glcpu []float64
	for _, r := range rs {
		if r.DurableRatio > 0 {
			durable = append(durable, r.DurableRatio)
		}
		c = append(c, r.Client.RowsPerSec)
		g = append(g, r.Greenloop.RowsPerSec)
		ratio = append(ratio, r.Ratio)
		ccpu = append(ccpu, r.Client.ClickHouseCPU)
		gcpu = append(gcpu, r.Greenloop.ClickHouseCPU)
		glcpu = append(glcpu, r.Greenloop.SenderCPU)
	}
	s := &summary{ClientRowsPerSec: spreadOf(c), GreenloopRowsPerSec: spreadOf(g), Ratio: spreadOf(ratio),
		ClientCHCPU: spreadOf(ccpu), GreenloopCHCPU: spreadOf(gcpu), GreenloopCPU: spreadOf(glcpu), TargetRatio: targetRatio}
	if len(durable) > 0 {
		d := spreadOf(durable)
		s.DurableRatio = &d
	}
	s.TargetMet = s.Ratio.Median >= targetRatio
	return s
}

// bufferSettings are greenloop's storage.clickhouse.buffer keys that chbench sets.
type bufferSettings struct {
	Enabled bool          `json:"enabled"`
	Layers  int           `json:"layers,omitempty"`
	MinTime time.Duration `json:"min_time_ns,omitempty"`
	MaxTime time.Duration `json:"max_time_ns,omitempty"`
	MinRows int64         `json:"min_rows,omitempty"`
	MaxRows int64         `json:"max_rows,omitempty"`
}

// bench holds what the rounds share.
type bench struct {
	s        settings
	work     string
	ch       *chtest.Server
	chPID    int
	cli      *chClient
	glBin    string
	input    string // the Native file
	reqs     [][]loadgen.Request
	rowsKept rows // for -baseline-batch
	rows     int64
	startupS float64
}

func run(ctx context.Context, s settings) (*results, error) {
	work, err := os.MkdirTemp(s.WorkParent, "chbench-")
	if err != nil {
		return nil, err
	}
	if s.Keep {
		logf("work directory (kept): %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	res := &results{Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), LoadAvgStart: loadAvg(), Settings: s}
	defer func() { res.LoadAvgEnd = loadAvg() }()
	b := &bench{s: s, work: work, glBin: s.GreenloopBin}
	if b.glBin == "" {
		if b.glBin, err = buildGreenloop(ctx, work); err != nil {
			return res, err
		}
	}
	res.Greenloop = greenloopVersion(b.glBin)
	if b.ch, err = chtest.Start(work+"/clickhouse", 0); err != nil {
		return res, err
	}
	defer b.ch.Stop()
	if b.chPID, err = serverPID(b.ch); err != nil {
		return res, err
	}
	if b.cli, err = newCHClient(s.ClientBin, b.ch.Addr); err != nil {
		return res, err
	}
	if out, err := b.cli.query(ctx, "SELECT version()"); err == nil {
		res.ClickHouse = strings.TrimSpace(string(out))
	}
	logf("clickhouse-server %s on %s (pid %d), greenloop %s", res.ClickHouse, b.ch.Addr, b.chPID, res.Greenloop)

	// The same rows for both: loadgen's fleet of power sensors, ending at the last whole interval.
	step := s.Interval.Milliseconds()
	end := time.Now().Add(-time.Minute).Truncate(s.Interval).UnixMilli()
	l := loadgen.Load{Kind: loadgen.Power, Fleet: loadgen.Fleet{Series: s.Series, Sites: 10},
		Start: end - int64(s.Samples-1)*step, Step: step, Steps: s.Samples, Batch: s.Batch / s.StepsPerReq, StepsPerRequest: s.StepsPerReq}
	if chunks := l.Chunks(); chunks < s.Senders {
		logf("note: %d series make %d chunks of %d: only %d of the %d senders have requests to send", s.Series, chunks, l.Batch, chunks, s.Senders)
	}
	t0 := time.Now()
	r, err := loadRows(l)
	if err != nil {
		return res, err
	}
	b.rows, res.Rows = int64(r.len()), int64(r.len())
	if b.input, res.NativeFileBytes, err = prepareInput(ctx, b.cli, r, work); err != nil {
		return res, err
	}
	if s.BaselineBatch > 0 {
		b.rowsKept = r
	}
	r = rows{}
	if b.reqs, err = l.EncodeAll(s.Senders); err != nil {
		return res, err
	}
	for _, rs := range b.reqs {
		res.Requests += len(rs)
		for _, q := range rs {
			res.WireBytes += int64(len(q.Body))
		}
	}
	logf("%d rows (%d series x %d samples, %s apart): Native file %.1f MiB; %d remote_write requests of %d samples, %.1f MiB; prepared in %s",
		b.rows, s.Series, s.Samples, s.Interval, float64(res.NativeFileBytes)/(1<<20), res.Requests, s.Batch,
		float64(res.WireBytes)/(1<<20), time.Since(t0).Round(time.Millisecond))
	if _, run, err := b.cli.exec(ctx, "SELECT 1", nil); err == nil {
		b.startupS, res.ClientStartupSec = run.Wall.Seconds(), run.Wall.Seconds()
	}

	for i := range s.Rounds {
		rd, err := b.round(ctx, i+1)
		if err != nil {
			return res, fmt.Errorf("round %d: %w", i+1, err)
		}
		res.Rounds = append(res.Rounds, rd)
		logf("round %d: client %.0f rows/s, greenloop %.0f rows/s, ratio %.2f", rd.Round, rd.Client.RowsPerSec, rd.Greenloop.RowsPerSec, rd.Ratio)
	}
	res.Summary = summarize(res.Rounds)
	return res, nil
}

// round runs both sides into fresh databases, verifies and drops them.
func (b *bench) round(ctx context.Context, n int) (round, error) {
	rd := round{Round: n, Order: "client first"}
	clientDB, glDB := fmt.Sprintf("chbench_client_r%d", n), fmt.Sprintf("chbench_greenloop_r%d", n)
	if err := b.createSchema(ctx, clientDB); err != nil {
		return rd, err
	}
	if drop, _ := viewsToDrop(b.s.RollupViews); len(drop) > 0 {
		// greenloop finds its schema migrated and keeps it as it is.
		if err := b.createSchema(ctx, glDB); err != nil {
			return rd, err
		}
	}
	sides := []func() error{
		func() (err error) { rd.Client, err = b.clientSide(ctx, clientDB); return err },
		func() (err error) { rd.Greenloop, err = b.greenloopSide(ctx, glDB); return err },
	}
	if n%2 == 0 {
		rd.Order = "greenloop first"
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, f := range sides {
		if err := f(); err != nil {
			return rd, err
		}
	}
	rd.Ratio = rd.Greenloop.RowsPerSec / rd.Client.RowsPerSec
	if rd.Greenloop.DurableRowsPerSec > 0 {
		rd.DurableRatio = rd.Greenloop.DurableRowsPerSec / rd.Client.RowsPerSec
	}
	v, err := verify(ctx, b.cli, clientDB, glDB, uint64(b.rows))
	rd.Verify = v
	if err != nil {
		return rd, fmt.Errorf("verify: %w", err)
	}
	dbs := []string{clientDB, glDB}
	if b.s.BaselineBatch > 0 {
		batchedDB := fmt.Sprintf("chbench_batched_r%d", n)
		dbs = append(dbs, batchedDB)
		if rd.Batched, err = b.batchedSide(ctx, batchedDB); err != nil {
			return rd, fmt.Errorf("batched baseline: %w", err)
		}
	}
	if !b.s.Keep {
		for _, db := range dbs {
			if _, err := b.cli.query(ctx, "DROP DATABASE "+db); err != nil {
				return rd, err
			}
		}
	}
	return rd, nil
}

// quiet waits for clickhouse-server's background work to end before a timed section.
func (b *bench) quiet(ctx context.Context) error {
	ok, err := waitQuiet(ctx, b.chPID, b.s.QuietWait)
	if err != nil {
		return err
	}
	if !ok {
		logf("clickhouse-server still busy after %s; timing anyway", b.s.QuietWait)
	}
	return nil
}

// meter measures the CPU of the processes under test and of the rest of the machine over a timed section.
type meter struct {
	pids         []int
	t0           time.Time
	busy0, self0 float64
	cpu0         []float64
}

func startMeter(pids ...int) *meter {
	m := &meter{pids: pids, t0: time.Now(), self0: selfCPUSeconds()}
	m.busy0, _ = machineBusySeconds()
	for _, p := range pids {
		c, _ := cpuSeconds(p)
		m.cpu0 = append(m.cpu0, c)
	}
	return m
}

// stop returns each process' CPU seconds, this process' CPU seconds, and the
// cores used by everything else (extra: CPU of finished children, such as clickhouse-client).
func (m *meter) stop(extra float64) (cpu []float64, self, other float64) {
	busy, _ := machineBusySeconds()
	self = selfCPUSeconds() - m.self0
	known := self + extra
	for i, p := range m.pids {
		c, _ := cpuSeconds(p)
		cpu = append(cpu, c-m.cpu0[i])
		known += c - m.cpu0[i]
	}
	other = max(busy-m.busy0-known, 0) / time.Since(m.t0).Seconds()
	return cpu, self, other
}

func (b *bench) clientSide(ctx context.Context, db string) (side, error) {
	if err := b.quiet(ctx); err != nil {
		return side{}, err
	}
	ev0, err := b.cli.events(ctx)
	if err != nil {
		return side{}, err
	}
	m := startMeter(b.chPID)
	run, err := b.cli.insertFile(ctx, db+".samples", b.input)
	cpu, _, other := m.stop(run.CPU)
	if err != nil {
		return side{}, err
	}
	sd := side{Seconds: run.Wall.Seconds(), ClickHouseCPU: cpu[0], SenderCPU: run.CPU, OtherCores: other}
	if sd.ServerEvents, err = b.eventsSince(ctx, ev0); err != nil {
		return sd, err
	}
	sd.RowsPerSec = float64(b.rows) / sd.Seconds
	return sd, nil
}

// createSchema creates db with greenloop's schema, without the rollup views when -rollup-views=false.
func (b *bench) createSchema(ctx context.Context, db string) error {
	if err := createGreenloopSchema(ctx, b.ch.Addr, db); err != nil {
		return err
	}
	drop, _ := viewsToDrop(b.s.RollupViews)
	for _, v := range drop {
		if _, err := b.cli.query(ctx, "DROP TABLE "+db+"."+v); err != nil {
			return fmt.Errorf("drop rollup view: %w", err)
		}
	}
	return nil
}

// viewsToDrop maps -rollup-views to the materialized views (of greenloop's
// schema, which fill its rollups) to drop; ok is false for an unknown value.
func viewsToDrop(keep string) (drop []string, ok bool) {
	switch keep {
	case "all":
		return nil, true
	case "none":
		return []string{"samples_1m_mv", "samples_1h_mv"}, true
	case "1m":
		return []string{"samples_1h_mv"}, true
	case "1h":
		return []string{"samples_1m_mv"}, true
	}
	return nil, false
}

func (b *bench) batchedSide(ctx context.Context, db string) (*side, error) {
	if err := b.createSchema(ctx, db); err != nil {
		return nil, err
	}
	if err := b.quiet(ctx); err != nil {
		return nil, err
	}
	ev0, err := b.cli.events(ctx)
	if err != nil {
		return nil, err
	}
	m := startMeter(b.chPID)
	took, _, err := batchedInsert(ctx, b.ch.Addr, db+".samples", b.rowsKept, b.s.BaselineBatch)
	cpu, self, other := m.stop(0)
	if err != nil {
		return nil, err
	}
	sd := &side{Seconds: took.Seconds(), RowsPerSec: float64(b.rows) / took.Seconds(), ClickHouseCPU: cpu[0], SenderCPU: self, OtherCores: other}
	if sd.ServerEvents, err = b.eventsSince(ctx, ev0); err != nil {
		return sd, err
	}
	vs, err := b.cli.uints(ctx, "SELECT count(), uniqExact(series_id, ts) FROM "+db+".samples", 2)
	if err != nil {
		return sd, err
	}
	if vs[0] != uint64(b.rows) || vs[1] != uint64(b.rows) {
		return sd, fmt.Errorf("%s holds %d rows (%d distinct), want %d", db, vs[0], vs[1], b.rows)
	}
	return sd, nil
}

func (b *bench) greenloopSide(ctx context.Context, db string) (sd side, err error) {
	g, err := startGreenloop(b.glBin, b.work, b.ch.Addr, db, b.s)
	if err != nil {
		return sd, err
	}
	defer func() {
		if serr := g.stop(); serr != nil && err == nil {
			err = fmt.Errorf("greenloop stopped uncleanly: %w\n%s", serr, g.logTail(20))
		}
	}()
	if err := b.quiet(ctx); err != nil {
		return sd, err
	}
	c := newHTTPClient(b.s.Senders)
	defer c.CloseIdleConnections()
	ev0, err := b.cli.events(ctx)
	if err != nil {
		return sd, err
	}
	m := startMeter(b.chPID, g.pid())
	sr, err := sendEncoded(ctx, c, g.url+"/api/v1/write", b.reqs)
	var flush time.Duration
	if err == nil && b.s.Buffer.Enabled {
		// Acknowledged rows may be in the buffer's memory only: time moving them to disk.
		t0 := time.Now()
		if _, err = b.cli.query(ctx, "OPTIMIZE TABLE "+db+".samples_buffer"); err != nil {
			err = fmt.Errorf("flush the buffer table: %w", err)
		}
		flush = time.Since(t0)
	}
	cpu, self, other := m.stop(0)
	if err != nil {
		return sd, fmt.Errorf("greenloop remote_write, after %d acknowledged requests: %w\n%s", sr.Requests, err, g.logTail(20))
	}
	if sr.Samples != b.rows {
		return sd, fmt.Errorf("greenloop acknowledged %d samples, want %d", sr.Samples, b.rows)
	}
	sd = side{Seconds: sr.Elapsed.Seconds(), ClickHouseCPU: cpu[0], SenderCPU: cpu[1], LoadGenCPU: self, OtherCores: other, Requests: sr.Requests}
	if sd.ServerEvents, err = b.eventsSince(ctx, ev0); err != nil {
		return sd, err
	}
	sd.RowsPerSec = float64(sr.Samples) / sd.Seconds
	if flush > 0 {
		sd.FlushSeconds = flush.Seconds()
		sd.DurableRowsPerSec = float64(sr.Samples) / (sd.Seconds + sd.FlushSeconds)
	}
	return sd, nil
}

// eventsSince returns how much each of clickhouse-server's counters grew since ev0
// (less the one query that reads them).
func (b *bench) eventsSince(ctx context.Context, ev0 map[string]uint64) (map[string]uint64, error) {
	ev, err := b.cli.events(ctx)
	if err != nil {
		return nil, err
	}
	d := map[string]uint64{}
	for _, k := range serverEvents {
		d[k] = ev[k] - min(ev0[k], ev[k])
	}
	return d, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// greenloopVersion is the VCS revision the binary was built from, or git's view of the checkout.
func greenloopVersion(bin string) string {
	if info, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "rev " + s.Value[:12]
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		return "checkout at rev " + strings.TrimSpace(string(out)) + " (binary without VCS stamp)"
	}
	return "unknown"
}

// printReport writes the human-readable table.
func printReport(w io.Writer, res *results) {
	s := res.Settings
	fmt.Fprintf(w, "\nchbench %s: %d cores, load avg %s -> %s\n", res.Date, res.Cores, res.LoadAvgStart, res.LoadAvgEnd)
	fmt.Fprintf(w, "greenloop %s, ClickHouse %s\n", res.Greenloop, res.ClickHouse)
	fmt.Fprintf(w, "greenloop settings: batch_size %d, flush_interval %s, async_insert %q, buffer %+v; rollup views kept: %s\n",
		s.BatchSize, s.FlushInterval, s.AsyncInsert, s.Buffer, s.RollupViews)
	fmt.Fprintf(w, "%d rows = %d series x %d samples (%s apart); client: one clickhouse-client INSERT ... FORMAT Native (%.1f MiB, startup %.3fs);\n"+
		"greenloop: %d remote_write requests of %d samples (%d steps of %d series) from %d senders (%.1f MiB snappy); both into greenloop's schema\n\n",
		res.Rows, s.Series, s.Samples, s.Interval, float64(res.NativeFileBytes)/(1<<20), res.ClientStartupSec,
		res.Requests, s.Batch, s.StepsPerReq, s.Batch/max(s.StepsPerReq, 1), s.Senders, float64(res.WireBytes)/(1<<20))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	row("round", "order", "client rows/s", "greenloop rows/s", "ratio", "client s", "greenloop s",
		"CH CPU s (client)", "CH CPU s (greenloop)", "clickhouse-client CPU s", "greenloop CPU s", "loadgen CPU s", "other cores")
	for _, r := range res.Rounds {
		row(fmt.Sprint(r.Round), r.Order, f0(r.Client.RowsPerSec), f0(r.Greenloop.RowsPerSec), f2(r.Ratio),
			f2(r.Client.Seconds), f2(r.Greenloop.Seconds), f2(r.Client.ClickHouseCPU), f2(r.Greenloop.ClickHouseCPU),
			f2(r.Client.SenderCPU), f2(r.Greenloop.SenderCPU), f2(r.Greenloop.LoadGenCPU),
			f2(r.Client.OtherCores)+" / "+f2(r.Greenloop.OtherCores))
	}
	if sm := res.Summary; sm != nil {
		row("median", "", f0(sm.ClientRowsPerSec.Median), f0(sm.GreenloopRowsPerSec.Median), f2(sm.Ratio.Median), "", "",
			f2(sm.ClientCHCPU.Median), f2(sm.GreenloopCHCPU.Median), "", f2(sm.GreenloopCPU.Median), "", "")
		row("min-max", "", f0(sm.ClientRowsPerSec.Min)+"-"+f0(sm.ClientRowsPerSec.Max), f0(sm.GreenloopRowsPerSec.Min)+"-"+f0(sm.GreenloopRowsPerSec.Max),
			f2(sm.Ratio.Min)+"-"+f2(sm.Ratio.Max), "", "", "", "", "", "", "", "")
	}
	tw.Flush()
	fmt.Fprintln(w, "\nclickhouse-server work (system.events during the timed section)")
	row("round", "client INSERTs", "greenloop INSERTs", "client rows inserted", "greenloop rows inserted", "client merges", "greenloop merges", "client rows merged", "greenloop rows merged")
	for _, r := range res.Rounds {
		c, g := r.Client.ServerEvents, r.Greenloop.ServerEvents
		row(fmt.Sprint(r.Round), u(c["InsertQuery"]), u(g["InsertQuery"]), u(c["InsertedRows"]), u(g["InsertedRows"]),
			u(c["Merge"]), u(g["Merge"]), u(c["MergedRows"]), u(g["MergedRows"]))
	}
	tw.Flush()
	fmt.Fprintln(w, "(rows inserted: into the samples table and, for greenloop, its series table; materialized views not counted)")
	for _, r := range res.Rounds {
		if bt := r.Batched; bt != nil {
			fmt.Fprintf(w, "round %d baseline: clickhouse-go column inserts of %d rows, one after another: %.0f rows/s (%.2fs, %d INSERTs, ClickHouse CPU %.2fs, %d rows merged); greenloop / baseline = %.2f\n",
				r.Round, s.BaselineBatch, bt.RowsPerSec, bt.Seconds, bt.ServerEvents["InsertQuery"], bt.ClickHouseCPU, bt.ServerEvents["MergedRows"], r.Greenloop.RowsPerSec/bt.RowsPerSec)
		}
	}
	for _, r := range res.Rounds {
		v := r.Verify
		fmt.Fprintf(w, "round %d stored: client %d rows (%d distinct series/ts); greenloop %d rows (%d distinct), %d after OPTIMIZE FINAL, %d series rows; rows differing: %d\n",
			r.Round, v.ClientRows, v.ClientDistinct, v.GreenloopRawRows, v.GreenloopDistinct, v.GreenloopFinalRows, v.GreenloopSeries, v.RowsDiffering)
	}
	for _, r := range res.Rounds {
		if g := r.Greenloop; g.FlushSeconds > 0 {
			fmt.Fprintf(w, "round %d buffer: acknowledged in %.2fs, flushed to the samples table %.2fs later: %.0f rows/s until on disk, ratio %.2f\n",
				r.Round, g.Seconds, g.FlushSeconds, g.DurableRowsPerSec, r.DurableRatio)
		}
	}
	if sm := res.Summary; sm != nil {
		if d := sm.DurableRatio; d != nil {
			fmt.Fprintf(w, "\nwith the buffer flush counted: median ratio %.2f (rounds %.2f-%.2f)\n", d.Median, d.Min, d.Max)
		}
		verdict := "MET"
		if !sm.TargetMet {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "\n%s: greenloop at >= %.0f %% of clickhouse-client's rows/s: median ratio %.2f (rounds %.2f-%.2f)\n",
			verdict, targetRatio*100, sm.Ratio.Median, sm.Ratio.Min, sm.Ratio.Max)
	}
	var busy []string
	for _, r := range res.Rounds {
		if r.Client.OtherCores > disturbedCores || r.Greenloop.OtherCores > disturbedCores {
			busy = append(busy, fmt.Sprintf("round %d: %.2f / %.2f cores", r.Round, r.Client.OtherCores, r.Greenloop.OtherCores))
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(w, "WARNING: other processes used CPU during timed work (%s): rerun on a quiet machine for figures to publish.\n", strings.Join(busy, ", "))
	}
	for _, f := range res.Failures {
		fmt.Fprintf(w, "FAILURE: %s\n", f)
	}
}

func u(x uint64) string   { return fmt.Sprint(x) }
func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }
