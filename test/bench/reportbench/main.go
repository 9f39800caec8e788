// Command reportbench times the EU data-centre report of a full year for a
// site with many meters (issue #6: 10,000 series at 15 s, under 10 s), end
// to end: GET /api/v1/reports/eu from a real `greenloop serve` over the
// embedded store.
//
// A year of 10,000 series at 15 s is 21 billion raw samples, which cannot be
// written on a development machine. The benchmark therefore writes the year
// as the server would hold it once its rollup job has caught up: the hourly
// rollups of every hour (written with rollup.FirstVersions, what the job
// writes, through the store's backfill as the job does for old hours) and,
// for the last hours of the year only, the raw samples at 15 s. No raw
// sample exists for the rolled-up hours, so a report whose energy equals
// the synthetic total can only have read the rollups; the benchmark checks
// that (and the completeness points) and fails otherwise.
//
// With -backend clickhouse the server runs on ClickHouse (a throw-away
// clickhouse-server started in the work directory, or -ch-addr), and the
// year is written as the ClickHouse group job keeps it: the hourly group sums
// of the site's meters (energy_group_1h, see writeCHData) and the raw
// samples of the last hours, which the server's job computes at start.
//
// Usage: go run ./test/bench/reportbench [-backend tsdb|clickhouse] [-series 10000] [-year 2025] [-formats json,pdf,xlsx] [-out results.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/test/bench/internal/procstat"
)

type options struct {
	series, facility int
	year             int
	rawHours         int
	step             time.Duration
	formats          []string
	repeat           int
	bin, dir, out    string
	keep             bool
	backend, chAddr  string
}

// result is one timed request.
type result struct {
	Format     string  `json:"format"`
	Run        int     `json:"run"`
	WallS      float64 `json:"wall_s"`
	ServerCPUS float64 `json:"server_cpu_s"`
	Bytes      int     `json:"bytes"`
	LoadAvg    string  `json:"load_avg_1m"`
}

type report struct {
	Backend         string    `json:"backend"`
	Series          int       `json:"series"`
	FacilitySeries  int       `json:"facility_series"`
	Year            int       `json:"year"`
	RollupPoints    int64     `json:"rollup_points_written"`
	RawSamples      int64     `json:"raw_samples_written"`
	RawFrom         time.Time `json:"raw_from"`
	WriteS          float64   `json:"write_s"`
	StartS          float64   `json:"server_start_s"`
	Runs            []result  `json:"runs"`
	EnergyTotalKWh  float64   `json:"energy_total_kwh"`
	ExpectedEDCKWh  float64   `json:"expected_energy_total_kwh"`
	EnergyITKWh     float64   `json:"energy_it_kwh"`
	ExpectedEITKWh  float64   `json:"expected_energy_it_kwh"`
	ITCompleteness  float64   `json:"it_completeness_pct"`
	ExpectedITCompl float64   `json:"expected_it_completeness_pct"`
	Note            string    `json:"note"`
}

func main() {
	var o options
	var formats string
	flag.IntVar(&o.series, "series", 10000, "IT meter series (energy counters, one per PSU)")
	flag.IntVar(&o.facility, "facility", 8, "facility meter series")
	flag.IntVar(&o.year, "year", time.Now().UTC().Year()-1, "the report's year (must lie within the store's retention, set to 800 days)")
	flag.IntVar(&o.rawHours, "raw-hours", 3, "the last hours of the year stored as raw samples instead of rollups")
	flag.DurationVar(&o.step, "step", 15*time.Second, "raw sample interval")
	flag.StringVar(&formats, "formats", "json,pdf,xlsx", "report formats requested, each timed")
	flag.IntVar(&o.repeat, "repeat", 2, "requests per format")
	flag.StringVar(&o.bin, "bin", "", "greenloop binary (default: go build ./cmd/greenloop into the work directory)")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one, removed at the end)")
	flag.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.backend, "backend", "tsdb", "the server's store: tsdb (embedded) or clickhouse")
	flag.StringVar(&o.chAddr, "ch-addr", "", "with -backend clickhouse: a running server's native address (default: start clickhouse-server in the work directory)")
	flag.Parse()
	o.formats = strings.Split(formats, ",")
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reportbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if o.series <= 0 || o.facility <= 0 || o.rawHours < 1 || o.repeat < 1 || o.step <= 0 {
		return errors.New("series, facility, raw-hours, repeat and step must be positive")
	}
	if o.backend != "tsdb" && o.backend != "clickhouse" {
		return fmt.Errorf("backend %q: want tsdb or clickhouse", o.backend)
	}
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "reportbench-")
		if err != nil {
			return err
		}
		dir = d
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	from := time.Date(o.year, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	m := model{site: "fra1", it: o.series, fac: o.facility, from: from, to: to, step: o.step,
		rawFrom: to.Add(-time.Duration(o.rawHours) * time.Hour)}
	const retention = 800 * 24 * time.Hour
	if time.Since(from) > retention-48*time.Hour {
		return fmt.Errorf("year %d lies beyond the retention of %s", o.year, retention)
	}
	rep := report{Backend: o.backend, Series: o.series, FacilitySeries: o.facility, Year: o.year, RawFrom: m.rawFrom,
		Note: fmt.Sprintf("hours before %s are stored as hourly rollups only (written as the rollup job writes them), the last %d h as raw samples at %s",
			m.rawFrom.Format(time.RFC3339), o.rawHours, o.step)}

	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "greenloop")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/greenloop")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build greenloop: %w", err)
		}
	}

	data := filepath.Join(dir, "data")
	storage := fmt.Sprintf("storage:\n  backend: tsdb\n  tsdb: {retention: %dh}\n", int(retention.Hours()))
	waitFor, waitLimit := "rollup: caught up", 2*time.Minute
	if o.backend == "clickhouse" {
		addr := o.chAddr
		if addr == "" {
			chs, err := chtest.Start(filepath.Join(dir, "clickhouse"), 0)
			if err != nil {
				return fmt.Errorf("start clickhouse-server: %w", err)
			}
			defer chs.Stop()
			addr = chs.Addr
		}
		rep.Note = fmt.Sprintf("ClickHouse at %s: hours before %s are stored as hourly group sums only (as the group job writes them), the last %d h as raw samples at %s",
			addr, m.rawFrom.Format(time.RFC3339), o.rawHours, o.step)
		t0 := time.Now()
		if err := writeCHData(ctx, m, addr, retention, &rep, stdout); err != nil {
			return err
		}
		rep.WriteS = time.Since(t0).Seconds()
		fmt.Fprintf(stdout, "wrote %d group rows and members and %d raw samples in %.0f s\n", rep.RollupPoints, rep.RawSamples, rep.WriteS)
		storage = fmt.Sprintf("storage:\n  backend: clickhouse\n  clickhouse: {addrs: [%q], database: %s, retention: %dh, hour_retention: %dh}\n",
			addr, chDatabase, int(retention.Hours()), int(retention.Hours()))
		waitFor, waitLimit = "rollup: group sums computed", 5*time.Minute
	} else if err := writeTSDB(ctx, o, m, dir, data, retention, &rep, stdout); err != nil {
		return err
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s
%slog: {level: info}
sites:
  - id: fra1
    name: Frankfurt 1
    zone: DE
    it_capacity_kw: 4000
    fallback_factor: {g_per_kwh: 380, source: EEA %d, year: %d}
    residual_mix: [{g_per_kwh: 700, source: AIB %d, year: %d}]
`, port, data, storage, o.year, o.year, o.year, o.year)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return err
	}
	srv, err := startServer(ctx, bin, cfg, filepath.Join(dir, "server.log"), port)
	if err != nil {
		return err
	}
	defer srv.stop()
	rep.StartS = srv.started.Seconds()
	fmt.Fprintf(stdout, "greenloop serve ready in %.1f s (pid %d)\n", rep.StartS, srv.cmd.Process.Pid)
	// The server's rollup job rolls up the raw hours at start: wait for it,
	// so that it does not share the CPU with the timed requests.
	if took, ok := waitLog(filepath.Join(dir, "server.log"), waitFor, waitLimit); ok {
		fmt.Fprintf(stdout, "server's rollup job caught up after %.1f s\n", took.Seconds())
	} else {
		fmt.Fprintf(stdout, "server's rollup job not caught up after %s; timing anyway\n", waitLimit)
	}

	want := m.expected()
	rep.ExpectedEDCKWh, rep.ExpectedEITKWh, rep.ExpectedITCompl = want.facKWh, want.itKWh, 100*want.itCompleteness
	for _, f := range o.formats {
		for i := range o.repeat {
			body, r, err := srv.get(ctx, fmt.Sprintf("/api/v1/reports/eu?site=fra1&year=%d&format=%s", o.year, f))
			if err != nil {
				return err
			}
			r.Format, r.Run, r.LoadAvg = f, i+1, loadAvg()
			rep.Runs = append(rep.Runs, r)
			fmt.Fprintf(stdout, "GET report format=%-4s run %d: wall %6.2f s, server CPU %6.2f s, %d bytes (load average %s)\n", f, i+1, r.WallS, r.ServerCPUS, r.Bytes, r.LoadAvg)
			if f == "json" && i == 0 {
				if err := checkReport(body, want, &rep); err != nil {
					return err
				}
			}
		}
	}
	fmt.Fprintf(stdout, "energy_total_kwh %.1f (expected %.1f), energy_it_kwh %.1f (expected %.1f), IT completeness %.4f %% (expected %.4f %%)\n",
		rep.EnergyTotalKWh, rep.ExpectedEDCKWh, rep.EnergyITKWh, rep.ExpectedEITKWh, rep.ITCompleteness, rep.ExpectedITCompl)
	fmt.Fprintln(stdout, "note:", rep.Note)
	if o.out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeTSDB writes the year into a new embedded store in data, or reuses
// what a kept work directory holds of the same model.
func writeTSDB(ctx context.Context, o options, m model, dir, data string, retention time.Duration, rep *report, stdout io.Writer) error {
	// A work directory kept (-keep -dir) from a run with the same model is reused.
	marker, stamp := filepath.Join(dir, "written"), fmt.Sprintf("%d %d %d %d %s\n", o.series, o.facility, o.year, o.rawHours, o.step)
	if b, err := os.ReadFile(marker); err == nil && strings.HasPrefix(string(b), stamp) {
		// The second line holds what was written.
		_, _ = fmt.Sscanf(strings.TrimPrefix(string(b), stamp), "%d %d %g", &rep.RollupPoints, &rep.RawSamples, &rep.WriteS)
		fmt.Fprintf(stdout, "reusing the data written earlier in %s (%d rollup points, %d raw samples, written in %.0f s)\n",
			data, rep.RollupPoints, rep.RawSamples, rep.WriteS)
	} else {
		if err := os.RemoveAll(data); err != nil {
			return err
		}
		t0 := time.Now()
		if err := writeData(ctx, m, data, retention, rep, stdout); err != nil {
			return err
		}
		rep.WriteS = time.Since(t0).Seconds()
		fmt.Fprintf(stdout, "wrote %d rollup points and %d raw samples in %.0f s\n", rep.RollupPoints, rep.RawSamples, rep.WriteS)
		if err := os.WriteFile(marker, fmt.Appendf([]byte(stamp), "%d %d %g\n", rep.RollupPoints, rep.RawSamples, rep.WriteS), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeData writes the year into a new embedded store in dir: rollups
// through the backfill as the job does, then the raw samples of the last hours.
func writeData(ctx context.Context, m model, dir string, retention time.Duration, rep *report, stdout io.Writer) error {
	st, err := tsdb.Open(dir, tsdb.Options{Retention: retention})
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := ingest.NewWriter(st.Backfill(), ingest.WriterOptions{MaxAge: retention - time.Hour})
	if err != nil {
		return err
	}
	t0 := time.Now()
	rep.RollupPoints, err = m.writeRollups(ctx, w, 31*24*time.Hour, func(done, total time.Time) {
		fmt.Fprintf(stdout, "  rollups written up to %s (%.0f s)\n", done.Format(time.DateOnly), time.Since(t0).Seconds())
	})
	if err != nil {
		return err
	}
	if rep.RawSamples, err = m.writeRaw(ctx, w); err != nil {
		return err
	}
	// The report must read the rollups: check the reader's figure before the server does.
	r, err := rollup.HourlyEnergy(ctx, st, fmt.Sprintf(`%s{site=%q,component="it"}`, counterMetric, m.site), m.from, m.to)
	if err != nil {
		return err
	}
	if want := m.expected().itKWh; math.Abs(r.Total.KWh()-want) > 1e-3*want {
		return fmt.Errorf("the rollup reader gives %.1f kWh of IT energy, want %.1f: the rollups were not read", r.Total.KWh(), want)
	}
	return nil
}

// server is a running `greenloop serve`.
type server struct {
	cmd     *exec.Cmd
	base    string
	started time.Duration
	done    chan error
}

func startServer(ctx context.Context, bin, cfg, logFile string, port int) (*server, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve", "-config", cfg)
	cmd.Stdout, cmd.Stderr = lf, lf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start greenloop serve: %w", err)
	}
	s := &server{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); lf.Close() }()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("greenloop serve exited: %v (log: %s)", err, logFile)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("greenloop serve not ready after 2 minutes (log: %s)", logFile)
		}
	}
	s.started = time.Since(t0)
	return s, nil
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// get times one request: wall on the client, CPU of the server process.
func (s *server) get(ctx context.Context, path string) ([]byte, result, error) {
	cpu0, err := procCPU(s.cmd.Process.Pid)
	if err != nil {
		return nil, result{}, err
	}
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	if err != nil {
		return nil, result{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, result{}, fmt.Errorf("GET %s: %w", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wall := time.Since(t0)
	if err != nil {
		return nil, result{}, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != 200 {
		return nil, result{}, fmt.Errorf("GET %s: %s: %.500s", path, resp.Status, body)
	}
	cpu1, err := procCPU(s.cmd.Process.Pid)
	if err != nil {
		return nil, result{}, err
	}
	return body, result{WallS: wall.Seconds(), ServerCPUS: (cpu1 - cpu0).Seconds(), Bytes: len(body)}, nil
}

// procCPU is the user + system CPU time of process pid (Linux /proc).
func procCPU(pid int) (time.Duration, error) {
	d, err := procstat.Process(pid)
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	return d, nil
}

// checkReport compares the JSON report's measured energy, and the
// completeness of its PUE (the lesser of the facility's, complete, and the
// IT meters', which carry the rollups' completeness points), with the model's.
func checkReport(body []byte, want expected, rep *report) error {
	var doc struct {
		Fields map[string]struct {
			Value any `json:"value"`
		} `json:"fields"`
		KPIs map[string]struct {
			CompletenessPct *float64 `json:"completeness_pct"`
		} `json:"kpis"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("report JSON: %w", err)
	}
	get := func(id string) (float64, error) {
		v, ok := doc.Fields[id].Value.(float64)
		if !ok {
			return 0, fmt.Errorf("report JSON: no number for %s: %v", id, doc.Fields[id].Value)
		}
		return v, nil
	}
	edc, err := get("energy_total_kwh")
	if err != nil {
		return err
	}
	eit, err := get("energy_it_kwh")
	if err != nil {
		return err
	}
	rep.EnergyTotalKWh, rep.EnergyITKWh = edc, eit
	var errs []error
	if c := doc.KPIs["pue"].CompletenessPct; c != nil {
		rep.ITCompleteness = *c
	} else {
		errs = append(errs, errors.New("report JSON: no completeness_pct of the PUE"))
	}
	if math.Abs(edc-want.facKWh) > 1e-3*want.facKWh {
		errs = append(errs, fmt.Errorf("energy_total_kwh %.1f, want %.1f (±0.1 %%)", edc, want.facKWh))
	}
	if math.Abs(eit-want.itKWh) > 1e-3*want.itKWh {
		errs = append(errs, fmt.Errorf("energy_it_kwh %.1f, want %.1f (±0.1 %%)", eit, want.itKWh))
	}
	if math.Abs(rep.ITCompleteness-100*want.itCompleteness) > 1e-6 {
		errs = append(errs, fmt.Errorf("PUE (IT meters') completeness %.6f %%, want %.6f %% (the rollups' completeness points)", rep.ITCompleteness, 100*want.itCompleteness))
	}
	return errors.Join(errs...)
}

// waitLog waits until file contains line, up to limit.
func waitLog(file, line string, limit time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		if b, err := os.ReadFile(file); err == nil && strings.Contains(string(b), line) {
			return time.Since(t0), true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(t0), false
}

// loadAvg is the 1-minute load average (other work on the machine).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
