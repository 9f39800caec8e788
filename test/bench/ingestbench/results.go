package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// results is everything one run measured; -out writes it as JSON.
type results struct {
	Date       string         `json:"date"`
	Machine    machine        `json:"machine"`
	GoVersion  string         `json:"go_version"` // of this load generator
	Greenloop  binaryInfo     `json:"greenloop"`
	Prometheus binaryInfo     `json:"prometheus"`
	Settings   settings       `json:"settings"`
	Ingest     *ingestResults `json:"ingest,omitempty"`
	Disk       *diskResults   `json:"disk,omitempty"`
	Query      *queryResults  `json:"query,omitempty"`
	Targets    []target       `json:"targets"`
	Failures   []string       `json:"failures,omitempty"`
}

type machine struct {
	CPUModel      string `json:"cpu_model"`
	Cores         int    `json:"cores"`
	MemTotalBytes int64  `json:"mem_total_bytes"`
	Kernel        string `json:"kernel"`
	LoadAvgStart  string `json:"loadavg_start"`
	LoadAvgEnd    string `json:"loadavg_end"`
}

type binaryInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
}

type ingestRun struct {
	Samples                       int64   `json:"samples"`
	Requests                      int64   `json:"requests"`
	WireBytes                     int64   `json:"wire_bytes"`
	Seconds                       float64 `json:"seconds"`
	SamplesPerSec                 float64 `json:"samples_per_sec"`
	FirstScrapeSeconds            float64 `json:"first_scrape_seconds"`   // until every series' first sample was acknowledged (series creation)
	SteadySamplesPerSec           float64 `json:"steady_samples_per_sec"` // the samples after the first scrape, over the time after it
	ServerCPUSeconds              float64 `json:"server_cpu_seconds"`
	OtherCores                    float64 `json:"other_processes_cores"` // CPU other processes used meanwhile, in cores (disturbance)
	ServerCPUMicrosPerSample      float64 `json:"server_cpu_us_per_sample"`
	LoadGenCPUSeconds             float64 `json:"loadgen_cpu_seconds"`
	BaselineRSSBytes              int64   `json:"baseline_rss_bytes"`
	PeakRSSBytes                  int64   `json:"peak_rss_bytes"`
	SettledRSSBytes               int64   `json:"settled_rss_bytes"`
	PeakBytesPerSeries            float64 `json:"peak_bytes_per_series"`
	SettledBytesPerSeries         float64 `json:"settled_bytes_per_series"`
	SettledAboveBaselinePerSeries float64 `json:"settled_above_baseline_bytes_per_series"`
	QuietSeconds                  float64 `json:"quiet_after_seconds"`
	WentQuiet                     bool    `json:"went_quiet"`
	VerifiedSamples               int64   `json:"verified_samples"`
}

type ingestRound struct {
	Round   int                   `json:"round"`
	Order   []string              `json:"order"`
	Servers map[string]*ingestRun `json:"servers"`
	Ratio   float64               `json:"ratio"` // greenloop samples/s / prometheus samples/s
}

// ingestSummary is the median over rounds of one server's figures.
type ingestSummary struct {
	SamplesPerSec            float64 `json:"median_samples_per_sec"`
	SteadySamplesPerSec      float64 `json:"median_steady_samples_per_sec"`
	ServerCPUMicrosPerSample float64 `json:"median_server_cpu_us_per_sample"`
	PeakBytesPerSeries       float64 `json:"median_peak_bytes_per_series"`
	SettledBytesPerSeries    float64 `json:"median_settled_bytes_per_series"`
}

type ingestResults struct {
	Rounds      []ingestRound             `json:"rounds"`
	MedianRatio float64                   `json:"median_ratio"`
	Summary     map[string]*ingestSummary `json:"summary"`
}

func (ir *ingestResults) summarize() {
	var ratios []float64
	for _, r := range ir.Rounds {
		ratios = append(ratios, r.Ratio)
	}
	ir.MedianRatio = median(ratios)
	ir.Summary = map[string]*ingestSummary{}
	for _, name := range []string{nameGreenloop, namePrometheus} {
		var sps, steady, cpu, peak, settled []float64
		for _, r := range ir.Rounds {
			run := r.Servers[name]
			sps = append(sps, run.SamplesPerSec)
			steady = append(steady, run.SteadySamplesPerSec)
			cpu = append(cpu, run.ServerCPUMicrosPerSample)
			peak = append(peak, run.PeakBytesPerSeries)
			settled = append(settled, run.SettledBytesPerSeries)
		}
		ir.Summary[name] = &ingestSummary{SamplesPerSec: median(sps), SteadySamplesPerSec: median(steady), ServerCPUMicrosPerSample: median(cpu),
			PeakBytesPerSeries: median(peak), SettledBytesPerSeries: median(settled)}
	}
}

type diskRun struct {
	Blocks              []blockInfo `json:"blocks"`
	FirstBlockSeconds   float64     `json:"first_block_after_seconds"`
	Samples             uint64      `json:"samples"`
	Bytes               int64       `json:"bytes"`
	ChunkBytes          int64       `json:"chunk_bytes"`
	IndexBytes          int64       `json:"index_bytes"`
	BytesPerSample      float64     `json:"bytes_per_sample"`
	ChunkBytesPerSample float64     `json:"chunk_bytes_per_sample"`
	// FullBlockBytesPerSample counts only blocks covering a whole aligned 2h range (0: none yet).
	FullBlockBytesPerSample float64 `json:"full_block_bytes_per_sample"`
	VerifiedSamples         int64   `json:"verified_samples"`
}

type diskResults struct {
	Servers map[string]*diskRun `json:"servers"`
	Ratio   float64             `json:"ratio"` // greenloop bytes/sample / prometheus bytes/sample
}

type queryRun struct {
	RunsSeconds   []float64 `json:"runs_seconds"`
	MedianSeconds float64   `json:"median_seconds"`
	// FirstSeconds is the first run (nothing cached); RepeatMedianSeconds the
	// median of the others (greenloop answers them from its results cache);
	// SlidSeconds a run over the window moved one step later, as a dashboard's
	// refresh asks.
	FirstSeconds        float64 `json:"first_seconds"`
	RepeatMedianSeconds float64 `json:"repeat_median_seconds"`
	SlidSeconds         float64 `json:"slid_seconds"`
	MaxSeconds          float64 `json:"max_seconds"`
	Series              int     `json:"result_series"`
	Points              int     `json:"result_points"`
	BlocksAtQuery       int     `json:"blocks_at_query"`
	VerifiedSamples     int64   `json:"verified_samples"`
	OtherCores          float64 `json:"other_processes_cores"` // CPU other processes used during the timed runs, in cores
}

type queryResults struct {
	Query       string               `json:"query"`
	Start       int64                `json:"start"`
	End         int64                `json:"end"`
	Step        float64              `json:"step_seconds"`
	Servers     map[string]*queryRun `json:"servers"`
	RatioMedian float64              `json:"ratio_median"` // greenloop median / prometheus median (lower is faster)
	// The same data must give the same sums of raw counter values.
	RawSumQuery      string `json:"raw_sum_query"`
	RawSumsCompared  int    `json:"raw_sums_compared"`
	RawSumsDiffering int    `json:"raw_sums_differing"`
	// How the two answers to Query differ (see the query phase).
	RateDiff matrixDiff `json:"rate_diff"`
}

// target is one goal of the benchmark issue and whether this run met it.
type target struct {
	Name   string  `json:"name"`
	Goal   string  `json:"goal"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

func targets(res *results) []target {
	var ts []target
	if ir := res.Ingest; ir != nil && ir.Summary != nil {
		g, p := ir.Summary[nameGreenloop], ir.Summary[namePrometheus]
		ts = append(ts,
			target{"ingest_ratio", ">= 3x Prometheus samples/s (median of per-round ratios)", ir.MedianRatio, ir.MedianRatio >= 3,
				fmt.Sprintf("%.2fx", ir.MedianRatio)},
			target{"ingest_rate", ">= 1,000,000 samples/s (median)", g.SamplesPerSec, g.SamplesPerSec >= 1e6,
				fmt.Sprintf("%.0f samples/s", g.SamplesPerSec)},
			target{"memory_peak", "peak RSS bytes/series <= Prometheus", g.PeakBytesPerSeries / p.PeakBytesPerSeries,
				g.PeakBytesPerSeries <= p.PeakBytesPerSeries, fmt.Sprintf("%.0f vs %.0f B/series", g.PeakBytesPerSeries, p.PeakBytesPerSeries)},
			target{"memory_settled", "settled RSS bytes/series <= Prometheus", g.SettledBytesPerSeries / p.SettledBytesPerSeries,
				g.SettledBytesPerSeries <= p.SettledBytesPerSeries, fmt.Sprintf("%.0f vs %.0f B/series", g.SettledBytesPerSeries, p.SettledBytesPerSeries)})
	}
	if dr := res.Disk; dr != nil && dr.Servers[namePrometheus] != nil && dr.Servers[nameGreenloop] != nil {
		g, p := dr.Servers[nameGreenloop].BytesPerSample, dr.Servers[namePrometheus].BytesPerSample
		ts = append(ts, target{"disk", "block bytes/sample <= Prometheus", dr.Ratio, g <= p, fmt.Sprintf("%.3f vs %.3f B/sample", g, p)})
	}
	if qr := res.Query; qr != nil && qr.Servers[nameGreenloop] != nil {
		g := qr.Servers[nameGreenloop]
		ts = append(ts, target{"query", "range query < 0.5 s (first run, nothing cached)", g.FirstSeconds, g.FirstSeconds < 0.5,
			fmt.Sprintf("%.3fs", g.FirstSeconds)})
		ts = append(ts, target{"query", "range query < 0.5 s (repeated, and slid by a step)", g.RepeatMedianSeconds, g.RepeatMedianSeconds < 0.5 && g.SlidSeconds < 0.5,
			fmt.Sprintf("median %.3fs repeated, %.3fs slid", g.RepeatMedianSeconds, g.SlidSeconds)})
	}
	return ts
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemTotalBytes = n << 10
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
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

// greenloopInfo reads the Go version and VCS revision the binary was built with.
func greenloopInfo(bin string) binaryInfo {
	bi := binaryInfo{Version: "unknown", GoVersion: "unknown"}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return bi
	}
	bi.GoVersion = info.GoVersion
	bi.Version = info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		bi.Version = "rev " + rev[:min(12, len(rev))]
		if modified == "true" {
			bi.Version += " (modified)"
		}
	}
	return bi
}

var (
	promVersionRe = regexp.MustCompile(`version (\S+)`)
	goVersionRe   = regexp.MustCompile(`go version:\s*(\S+)`)
)

// prometheusInfo runs `prometheus --version`.
func prometheusInfo(ctx context.Context, bin string) binaryInfo {
	bi := binaryInfo{Version: "unknown", GoVersion: "unknown"}
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return bi
	}
	if m := promVersionRe.FindSubmatch(out); m != nil {
		bi.Version = string(m[1])
	}
	if m := goVersionRe.FindSubmatch(out); m != nil {
		bi.GoVersion = string(m[1])
	}
	return bi
}

// printReport writes the human-readable table.
func printReport(w io.Writer, res *results) {
	fmt.Fprintf(w, "\ningestbench %s\n", res.Date)
	fmt.Fprintf(w, "machine:    %s, %d cores, %.0f GiB, load avg %s -> %s\n", res.Machine.CPUModel, res.Machine.Cores,
		float64(res.Machine.MemTotalBytes)/(1<<30), res.Machine.LoadAvgStart, res.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "greenloop:  %s, %s\nprometheus: %s, %s\nloadgen:    %s\n\n", res.Greenloop.Version, res.Greenloop.GoVersion,
		res.Prometheus.Version, res.Prometheus.GoVersion, res.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	s := res.Settings
	if ir := res.Ingest; ir != nil && len(ir.Rounds) > 0 {
		fmt.Fprintf(w, "Ingest: %d series x %d samples (%s apart), %d samples/request, %d senders, fresh servers each round\n",
			s.Series, s.Scrapes, s.Interval, s.Batch, s.Senders)
		row("round", "order", "greenloop samples/s", "prometheus samples/s", "ratio", "greenloop steady", "prometheus steady", "greenloop CPU µs/sample", "prometheus CPU µs/sample")
		for _, r := range ir.Rounds {
			g, p := r.Servers[nameGreenloop], r.Servers[namePrometheus]
			row(strconv.Itoa(r.Round), shortOrder(r.Order), f0(g.SamplesPerSec), f0(p.SamplesPerSec), f2(r.Ratio)+"x",
				f0(g.SteadySamplesPerSec), f0(p.SteadySamplesPerSec), f2(g.ServerCPUMicrosPerSample), f2(p.ServerCPUMicrosPerSample))
		}
		if ir.Summary != nil {
			g, p := ir.Summary[nameGreenloop], ir.Summary[namePrometheus]
			row("median", "", f0(g.SamplesPerSec), f0(p.SamplesPerSec), f2(ir.MedianRatio)+"x",
				f0(g.SteadySamplesPerSec), f0(p.SteadySamplesPerSec), f2(g.ServerCPUMicrosPerSample), f2(p.ServerCPUMicrosPerSample))
		}
		tw.Flush()
		fmt.Fprintln(w, "(steady: the samples after the first scrape, which creates every series, over the time after it)")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Memory after the ingest (%d active series; RSS from /proc/PID/status)\n", s.Series)
		row("round", "greenloop peak B/series", "prometheus peak B/series", "greenloop settled B/series", "prometheus settled B/series")
		for _, r := range ir.Rounds {
			g, p := r.Servers[nameGreenloop], r.Servers[namePrometheus]
			row(strconv.Itoa(r.Round), f0(g.PeakBytesPerSeries), f0(p.PeakBytesPerSeries), f0(g.SettledBytesPerSeries), f0(p.SettledBytesPerSeries))
		}
		if ir.Summary != nil {
			g, p := ir.Summary[nameGreenloop], ir.Summary[namePrometheus]
			row("median", f0(g.PeakBytesPerSeries), f0(p.PeakBytesPerSeries), f0(g.SettledBytesPerSeries), f0(p.SettledBytesPerSeries))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if dr := res.Disk; dr != nil && len(dr.Servers) > 0 {
		fmt.Fprintf(w, "Disk: %d series, %s at %s, persisted blocks (chunks + index + meta)\n", s.DiskSeries, s.DiskSpan, s.DiskInterval)
		row("server", "blocks", "samples", "bytes", "bytes/sample", "chunk bytes/sample", "full 2h blocks: bytes/sample")
		for _, name := range []string{nameGreenloop, namePrometheus} {
			if d := dr.Servers[name]; d != nil {
				row(name, strconv.Itoa(len(d.Blocks)), strconv.FormatUint(d.Samples, 10), strconv.FormatInt(d.Bytes, 10), f3(d.BytesPerSample),
					f3(d.ChunkBytesPerSample), f3(d.FullBlockBytesPerSample))
			}
		}
		if dr.Ratio > 0 {
			row("ratio", "", "", "", f3(dr.Ratio)+"x", "", "")
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if qr := res.Query; qr != nil && len(qr.Servers) > 0 {
		fmt.Fprintf(w, "Query: %s over %s at step %gs (%d counters over %d sites)\n", qr.Query, s.QuerySpan, qr.Step, s.QuerySeries, s.QuerySites)
		row("server", "median s", "max s", "first s", "repeat median s", "slid s", "runs", "result series", "points")
		for _, name := range []string{nameGreenloop, namePrometheus} {
			if q := qr.Servers[name]; q != nil {
				row(name, f3(q.MedianSeconds), f3(q.MaxSeconds), f3(q.FirstSeconds), f3(q.RepeatMedianSeconds), f3(q.SlidSeconds),
					strconv.Itoa(len(q.RunsSeconds)), strconv.Itoa(q.Series), strconv.Itoa(q.Points))
			}
		}
		if qr.RatioMedian > 0 {
			row("ratio", f2(qr.RatioMedian)+"x", "", "", "", "")
		}
		tw.Flush()
		if qr.RawSumsCompared > 0 {
			fmt.Fprintf(w, "same data: %s at the last sample agrees on %d of %d sites\n", qr.RawSumQuery, qr.RawSumsCompared-qr.RawSumsDiffering, qr.RawSumsCompared)
		}
		if d := qr.RateDiff; d.Compared > 0 {
			fmt.Fprintf(w, "rate() answers: %d points compared, %d differ (max relative difference %.3g), %d only in one answer\n"+
				"  (Prometheus 3 range selectors, in greenloop's engine, exclude a sample at exactly t-5m; 2.x includes it)\n",
				d.Compared, d.Differing, d.MaxRelDiff, d.OnlyInOne)
		}
		fmt.Fprintln(w)
	}
	if len(res.Targets) > 0 {
		fmt.Fprintln(w, "Targets")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range res.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", map[bool]string{true: "MET", false: "MISSED"}[t.Met], t.Name, t.Goal, t.Detail)
		}
		tw.Flush()
	}
	if w2 := disturbed(res); w2 != "" {
		fmt.Fprintf(w, "\nWARNING: other processes used CPU during timed work (%s): rerun on a quiet machine for figures to publish.\n", w2)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(w, "FAILURE: %s\n", f)
	}
}

// disturbedCores is how much CPU (in cores) other processes may use during a timed section before the report warns.
const disturbedCores = 0.1

// disturbed lists the timed sections during which other processes used more than disturbedCores.
func disturbed(res *results) string {
	var out []string
	if ir := res.Ingest; ir != nil {
		for _, r := range ir.Rounds {
			for _, name := range []string{nameGreenloop, namePrometheus} {
				if run := r.Servers[name]; run != nil && run.OtherCores > disturbedCores {
					out = append(out, fmt.Sprintf("round %d %s: %.2f cores", r.Round, name, run.OtherCores))
				}
			}
		}
	}
	if qr := res.Query; qr != nil {
		for _, name := range []string{nameGreenloop, namePrometheus} {
			if run := qr.Servers[name]; run != nil && run.OtherCores > disturbedCores {
				out = append(out, fmt.Sprintf("query %s: %.2f cores", name, run.OtherCores))
			}
		}
	}
	return strings.Join(out, ", ")
}

func shortOrder(o []string) string {
	if len(o) > 0 && o[0] == nameGreenloop {
		return "greenloop first"
	}
	return "prometheus first"
}

func f0(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) }
func f2(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
func f3(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
