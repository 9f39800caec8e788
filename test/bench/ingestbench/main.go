// Command ingestbench measures greenloop against Prometheus 2.42, side by side
// and in one run, on the same synthetic remote_write load (package loadgen):
//
//  1. ingest throughput: samples/s acknowledged over remote_write 1.0, with
//     requests encoded before the timer starts, in several rounds, each with
//     fresh server processes and data directories, in alternating order; every
//     acknowledged sample is then checked to be queryable;
//  2. memory and disk: peak and settled resident memory per active series
//     after the ingest, and bytes per sample of the blocks the TSDB persists
//     after a load spanning more than 3 hours;
//  3. query: the time of a 24-hour range query summing rate() by site over
//     counters.
//
// It prints a table and, with -out, writes the results as JSON. It exits 1 when
// a server refused a request, lost a sample or failed otherwise. The servers
// run one at a time, on loopback ports, each in a temporary directory removed
// at the end (-keep keeps them).
//
// Usage: go run ./test/bench/ingestbench [-rounds 3] [-out results.json]   (-h lists the flags)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// settings are the benchmark's parameters, from the flags.
type settings struct {
	Phases string `json:"phases"`
	// Ingest phase.
	Series    int           `json:"series"`
	Scrapes   int           `json:"scrapes"`
	Interval  time.Duration `json:"interval_ns"`
	Batch     int           `json:"batch"`
	Senders   int           `json:"senders"`
	Rounds    int           `json:"rounds"`
	QuietWait time.Duration `json:"quiet_wait_ns"`
	// Disk phase.
	DiskSeries   int           `json:"disk_series"`
	DiskSpan     time.Duration `json:"disk_span_ns"`
	DiskInterval time.Duration `json:"disk_interval_ns"`
	CompactWait  time.Duration `json:"compact_wait_ns"`
	// Query phase.
	QuerySeries   int           `json:"query_series"`
	QuerySites    int           `json:"query_sites"`
	QuerySpan     time.Duration `json:"query_span_ns"`
	QueryInterval time.Duration `json:"query_interval_ns"`
	QueryRuns     int           `json:"query_runs"`
	// History loads (disk and query phases): senders wait for each other every Window samples of a series.
	Window int `json:"window"`
	// Servers.
	GreenloopBin  string `json:"-"`
	PrometheusBin string `json:"-"`
	PromOOOWindow string `json:"prometheus_out_of_order_time_window,omitempty"`
	Out           string `json:"-"`
	Keep          bool   `json:"-"`
	WorkParent    string `json:"-"`
	PerfDir       string `json:"-"`
}

func (s settings) has(phase string) bool {
	return slices.Contains(strings.Split(s.Phases, ","), phase)
}

func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.Phases, "phases", "ingest,disk,query", "comma-separated phases to run: ingest, disk, query")
	fs.IntVar(&s.Series, "series", 100_000, "ingest: active series")
	fs.IntVar(&s.Scrapes, "scrapes", 20, "ingest: samples per series (scrape rounds), -interval apart")
	fs.DurationVar(&s.Interval, "interval", time.Second, "ingest: time between a series' samples")
	fs.IntVar(&s.Batch, "batch", 2000, "samples (series) per remote_write request")
	fs.IntVar(&s.Senders, "senders", 4, "concurrent senders (remote-write shards), each owning a fixed set of series")
	fs.IntVar(&s.Rounds, "rounds", 3, "ingest: rounds, each with fresh servers, in alternating order")
	fs.DurationVar(&s.QuietWait, "quiet-wait", time.Minute, "longest wait for a server to go idle after a load, before reading its settled memory")
	fs.IntVar(&s.DiskSeries, "disk-series", 10_000, "disk: series")
	fs.DurationVar(&s.DiskSpan, "disk-span", 4*time.Hour, "disk: time span of the load; above 3h the TSDB persists a block")
	fs.DurationVar(&s.DiskInterval, "disk-interval", 15*time.Second, "disk: time between a series' samples")
	fs.DurationVar(&s.CompactWait, "compact-wait", 3*time.Minute, "disk: longest wait for a persisted block")
	fs.IntVar(&s.QuerySeries, "query-series", 10_000, "query: counter series")
	fs.IntVar(&s.QuerySites, "query-sites", 20, "query: sites the series are spread over")
	fs.DurationVar(&s.QuerySpan, "query-span", 24*time.Hour, "query: history loaded and queried")
	fs.DurationVar(&s.QueryInterval, "query-interval", time.Minute, "query: time between a series' samples, and the query step")
	fs.IntVar(&s.QueryRuns, "query-runs", 5, "query: timed runs per server")
	fs.IntVar(&s.Window, "window", 10, "history loads: senders wait for each other every this many samples per series")
	fs.StringVar(&s.GreenloopBin, "greenloop", "", "greenloop binary (default: go build ./cmd/greenloop into the work directory)")
	fs.StringVar(&s.PrometheusBin, "prometheus", "prometheus", "Prometheus 2.x server binary")
	fs.StringVar(&s.PromOOOWindow, "prom-ooo-window", "", "Prometheus storage.tsdb.out_of_order_time_window (default: none, as Prometheus ships)")
	fs.StringVar(&s.Out, "out", "", "write the results as JSON to this file")
	fs.BoolVar(&s.Keep, "keep", false, "keep the work directory (data directories, server logs)")
	fs.StringVar(&s.WorkParent, "workdir", "", "parent of the temporary work directory (default: the system's)")
	fs.StringVar(&s.PerfDir, "perf", "", "profile greenloop with Linux perf during one more, uncached query run (query phase, the window shifted by a second) and, after the phases, one more ingest load (untimed); write the recordings and reports into this directory")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./test/bench/ingestbench [flags]\n\n"+
			"Benchmarks greenloop against Prometheus on the same remote_write load:\n"+
			"ingest samples/s, memory per series, disk bytes per sample, range-query time.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	for _, p := range strings.Split(s.Phases, ",") {
		if p != "ingest" && p != "disk" && p != "query" {
			errs = append(errs, fmt.Errorf("-phases: unknown phase %q", p))
		}
	}
	for name, v := range map[string]int{"series": s.Series, "scrapes": s.Scrapes, "batch": s.Batch, "senders": s.Senders,
		"rounds": s.Rounds, "disk-series": s.DiskSeries, "query-series": s.QuerySeries, "query-sites": s.QuerySites,
		"query-runs": s.QueryRuns, "window": s.Window} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive", name))
		}
	}
	for name, v := range map[string]time.Duration{"interval": s.Interval, "disk-span": s.DiskSpan, "disk-interval": s.DiskInterval,
		"query-span": s.QuerySpan, "query-interval": s.QueryInterval} {
		if v < time.Millisecond {
			errs = append(errs, fmt.Errorf("-%s must be at least 1ms", name))
		}
	}
	return s, errors.Join(errs...)
}

func main() {
	s, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, s)
	if res != nil {
		printReport(os.Stdout, res)
		if s.Out != "" {
			if werr := writeJSON(s.Out, res); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintf(os.Stderr, "ingestbench: results written to %s\n", s.Out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench: FAILED:", err)
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

// run runs the selected phases. It returns the results gathered so far even on failure.
func run(ctx context.Context, s settings) (*results, error) {
	work, err := os.MkdirTemp(s.WorkParent, "ingestbench-")
	if err != nil {
		return nil, err
	}
	if s.Keep {
		logf("work directory (kept): %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	res := &results{Date: time.Now().UTC().Format(time.RFC3339), Settings: s, Machine: machineInfo(), GoVersion: runtime.Version()}
	built := s.GreenloopBin == ""
	if built {
		s.GreenloopBin, err = buildGreenloop(ctx, work)
		if err != nil {
			return nil, err
		}
	}
	if s.PrometheusBin, err = exec.LookPath(s.PrometheusBin); err != nil {
		return nil, fmt.Errorf("prometheus server binary: %w", err)
	}
	res.Greenloop = greenloopInfo(s.GreenloopBin)
	if built && res.Greenloop.Version == "(devel)" {
		// Built with -buildvcs=false: ask git about the tree it was built from.
		res.Greenloop.Version = gitRevision(ctx)
	}
	res.Prometheus = prometheusInfo(ctx, s.PrometheusBin)
	logf("greenloop %s (%s) vs Prometheus %s (%s) on %s, %d cores",
		res.Greenloop.Version, res.Greenloop.GoVersion, res.Prometheus.Version, res.Prometheus.GoVersion, res.Machine.CPUModel, res.Machine.Cores)
	b := &bench{s: s, work: work, res: res,
		specs: map[string]serverSpec{
			nameGreenloop:  {name: nameGreenloop, bin: s.GreenloopBin},
			namePrometheus: {name: namePrometheus, bin: s.PrometheusBin, promOOOWindow: s.PromOOOWindow},
		}}
	var errs []error
	fail := func(phase string, err error) {
		err = fmt.Errorf("%s: %w", phase, err)
		res.Failures = append(res.Failures, err.Error())
		errs = append(errs, err)
	}
	if s.has("ingest") {
		if err := b.ingestPhase(ctx); err != nil {
			fail("ingest", err)
		}
	}
	if s.has("disk") && ctx.Err() == nil {
		if err := b.diskPhase(ctx); err != nil {
			fail("disk", err)
		}
	}
	if s.has("query") && ctx.Err() == nil {
		if err := b.queryPhase(ctx); err != nil {
			fail("query", err)
		}
	}
	if s.PerfDir != "" && ctx.Err() == nil {
		if err := b.profileIngest(ctx, s.PerfDir); err != nil {
			fail("perf", err)
		}
	}
	res.Machine.LoadAvgEnd = loadAvg()
	res.Targets = targets(res)
	return res, errors.Join(errs...)
}

// gitRevision describes the checkout of the working directory: "rev <hash>", plus " (modified)" when tracked files changed.
func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "(devel)"
	}
	v := "rev " + strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		v += " (modified)"
	}
	return v
}

// buildGreenloop builds ./cmd/greenloop of the module this command belongs to.
func buildGreenloop(ctx context.Context, work string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the greenloop module: run from the repository, or pass -greenloop")
	}
	bin := filepath.Join(work, "bin", "greenloop")
	logf("building greenloop (go build ./cmd/greenloop)")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/greenloop")
	cmd.Dir = filepath.Dir(gomod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/greenloop: %w\n%s", err, msg)
	}
	return bin, nil
}
