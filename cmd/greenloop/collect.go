package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	_ "github.com/greenloop/greenloop/collectors/edge"    // registers "mqtt" and "i2c"
	_ "github.com/greenloop/greenloop/collectors/gpu"     // registers "nvml" (a stub without cgo)
	_ "github.com/greenloop/greenloop/collectors/hwmon"   // registers "hwmon"
	_ "github.com/greenloop/greenloop/collectors/ipmi"    // registers "ipmi"
	_ "github.com/greenloop/greenloop/collectors/pdu"     // registers "snmp"
	_ "github.com/greenloop/greenloop/collectors/rapl"    // registers "rapl"
	_ "github.com/greenloop/greenloop/collectors/redfish" // registers "redfish"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

const collectUsage = `Usage: greenloop collect --once --config FILE [--format json|prom] [--timeout 10s]

Polls every target of the agent configuration once, concurrently, and prints
the readings on stdout: json = one reading a line ({"metric":...,"labels":{...},
"value":...,"timestamp_ms":...}), prom = Prometheus text exposition with
millisecond timestamps (what /api/v1/import/prometheus accepts). Then one
summary line a target on stderr. The exit status is 1 when a target failed
(a target with no hardware to read, "no data", is not a failure).

Flags:
`

// errTargetsFailed is returned when at least one target failed; the readings
// of the others have been printed.
var errTargetsFailed = errors.New("targets failed")

// collectTestDeps lets tests pin the clock of the collectors.
var collectTestDeps collectors.Deps

// targetResult is what polling one target gave.
type targetResult struct {
	readings []collectors.Reading
	took     time.Duration
	err      error
	noData   bool
	skipped  int // non-finite values left out of JSON output
}

func runCollect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), collectUsage)
		fs.PrintDefaults()
	}
	once := fs.Bool("once", false, "poll every target once and exit (required for now)")
	path := fs.String("config", "", "agent configuration `file` (YAML, as for greenloop agent)")
	format := fs.String("format", "json", "output format: json (NDJSON readings) or prom (Prometheus text)")
	timeout := config.Duration(10 * time.Second)
	fs.Var(&timeout, "timeout", "time allowed to each target")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !*once {
		return errors.New("--once is required: collect polls each target once; for continuous polling and pushing run `greenloop agent --config FILE`")
	}
	if *format != "json" && *format != "prom" {
		return fmt.Errorf("--format: want json or prom, got %q", *format)
	}
	if timeout.D() <= 0 {
		return fmt.Errorf("--timeout: must be positive, got %s", timeout)
	}
	if *path == "" {
		return errors.New("--config FILE is required (the agent configuration)")
	}
	cfg, err := config.LoadAgentFile(*path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: invalid configuration:\n%w", *path, err)
	}

	results := pollOnce(ctx, &cfg, timeout.D(), stderr)

	w := bufio.NewWriter(stdout)
	for i, t := range cfg.Targets {
		res := &results[i]
		for _, o := range labelled(&cfg, t, res.readings) {
			switch *format {
			case "json":
				if !writeJSONReading(w, o.Reading, o.labels) {
					res.skipped++
				}
			case "prom":
				writePromReading(w, o.Reading, o.labels)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write readings: %w", err)
	}

	failed := 0
	for i, t := range cfg.Targets {
		res := results[i]
		status := "ok"
		switch {
		case res.err != nil:
			status = "error: " + oneLine(res.err.Error())
			failed++
		case res.noData:
			status = "no data"
		}
		n := len(res.readings) - res.skipped
		fmt.Fprintf(stderr, "target=%s type=%s readings=%d took=%s status=%s\n", t.Name, t.Type, n, res.took.Round(time.Microsecond), status)
		if res.skipped > 0 {
			fmt.Fprintf(stderr, "target=%s: %d non-finite readings left out (JSON cannot carry NaN or Inf; use --format prom)\n", t.Name, res.skipped)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d %w", failed, len(cfg.Targets), errTargetsFailed)
	}
	return nil
}

// pollOnce builds and polls every target concurrently, each under its own
// timeout. results[i] belongs to cfg.Targets[i].
func pollOnce(ctx context.Context, cfg *config.Agent, timeout time.Duration, stderr io.Writer) []targetResult {
	results := make([]targetResult, len(cfg.Targets))
	base := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var wg sync.WaitGroup
	for i, t := range cfg.Targets {
		deps := collectTestDeps
		deps.Logger = base.With("target", t.Name)
		tc, err := targetConfig(t, timeout)
		if err != nil {
			results[i].err = err
			continue
		}
		c, err := collectors.New(tc, deps)
		if err != nil {
			if errors.Is(err, collectors.ErrUnknownType) {
				err = fmt.Errorf("type %s is not available in this build yet (this build has: %s)", t.Type, strings.Join(collectors.Types(), ", "))
			}
			results[i].err = err
			continue
		}
		wg.Go(func() {
			results[i] = pollTarget(ctx, c, timeout)
			closeCollectors(deps.Logger, []collectors.Target{{Name: t.Name, Collector: c}})
		})
	}
	wg.Wait()
	return results
}

// closeCollectors closes the collectors that hold a session or a connection
// (they implement io.Closer), logging what fails.
func closeCollectors(log *slog.Logger, targets []collectors.Target) {
	for _, t := range targets {
		if cl, ok := t.Collector.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				log.Warn("closing collector", "target", t.Name, "err", err)
			}
		}
	}
}

// pollTarget runs one Collect under timeout. A collector that ignores its
// context is abandoned when the timeout expires; what it emits afterwards is dropped.
func pollTarget(ctx context.Context, c collectors.Collector, timeout time.Duration) targetResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu       sync.Mutex
		readings []collectors.Reading
		closed   bool
	)
	emit := collectors.EmitterFunc(func(r collectors.Reading) {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			readings = append(readings, r)
		}
	})
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Collect(ctx, emit) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("timed out after %s", timeout)
	case errors.Is(err, context.Canceled) && ctx.Err() == context.Canceled:
		err = errors.New("cancelled")
	}
	res := targetResult{took: time.Since(start)}
	mu.Lock()
	closed = true
	res.readings = readings
	mu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, collectors.ErrNoData):
		res.noData = true
	default:
		res.err = err
	}
	return res
}

// output is a reading with the labels it is printed with.
type output struct {
	collectors.Reading
	labels []sample.Label
}

// labelled gives the readings of target t their printed labels and sorts
// them by metric, then labels, so the output does not depend on the order
// a collector emits in.
func labelled(cfg *config.Agent, t config.Target, rs []collectors.Reading) []output {
	out := make([]output, len(rs))
	for i, r := range rs {
		out[i] = output{r, readingLabels(cfg, t, r)}
	}
	slices.SortStableFunc(out, func(a, b output) int {
		if c := strings.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return slices.CompareFunc(a.labels, b.labels, func(x, y sample.Label) int {
			if c := strings.Compare(x.Name, y.Name); c != 0 {
				return c
			}
			return strings.Compare(x.Value, y.Value)
		})
	})
	return out
}

// readingLabels returns the labels a reading is printed with, sorted by name:
// the collector's own, then the target's labels where the collector set none,
// node (the target's labels' node, else its name) and site (the agent's).
func readingLabels(cfg *config.Agent, t config.Target, r collectors.Reading) []sample.Label {
	m := make(map[string]string, len(r.Labels)+len(t.Labels)+2)
	for k, v := range t.Labels {
		m[k] = v
	}
	for _, l := range r.Labels {
		if l.Value != "" {
			m[l.Name] = l.Value
		}
	}
	m["node"] = t.Node()
	m["site"] = cfg.Site
	ls := make([]sample.Label, 0, len(m))
	for k, v := range m {
		ls = append(ls, sample.Label{Name: k, Value: v})
	}
	slices.SortFunc(ls, func(a, b sample.Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

// writeJSONReading writes r as one NDJSON line (DESIGN.md's reading format,
// keys in the order metric, labels, value, timestamp_ms). It writes nothing
// and returns false for a NaN or infinite value, which JSON cannot carry.
func writeJSONReading(w *bufio.Writer, r collectors.Reading, ls []sample.Label) bool {
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return false
	}
	value, _ := json.Marshal(r.Value) // finite: cannot fail
	w.WriteString(`{"metric":`)
	writeJSONString(w, r.Metric)
	w.WriteString(`,"labels":{`)
	for i, l := range ls {
		if i > 0 {
			w.WriteByte(',')
		}
		writeJSONString(w, l.Name)
		w.WriteByte(':')
		writeJSONString(w, l.Value)
	}
	w.WriteString(`},"value":`)
	w.Write(value)
	w.WriteString(`,"timestamp_ms":`)
	w.WriteString(strconv.FormatInt(r.Time.UnixMilli(), 10))
	w.WriteString("}\n")
	return true
}

func writeJSONString(w *bufio.Writer, s string) {
	b, _ := json.Marshal(s) // a string cannot fail
	w.Write(b)
}

// writePromReading writes r as one line of Prometheus text exposition:
// metric{labels} value timestamp_ms.
func writePromReading(w *bufio.Writer, r collectors.Reading, ls []sample.Label) {
	w.WriteString(r.Metric)
	w.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(l.Name)
		w.WriteString(`="`)
		w.WriteString(promLabelEscaper.Replace(l.Value))
		w.WriteByte('"')
	}
	w.WriteString("} ")
	w.WriteString(promFloat(r.Value))
	w.WriteByte(' ')
	w.WriteString(strconv.FormatInt(r.Time.UnixMilli(), 10))
	w.WriteByte('\n')
}

var promLabelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func promFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// oneLine keeps a multi-line error on the summary's single line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// targetConfig turns a configured target into what a collector factory
// takes, reading its secret from the file or environment variable named.
func targetConfig(t config.Target, timeout time.Duration) (collectors.TargetConfig, error) {
	if t.Timeout > 0 && (timeout <= 0 || t.Timeout.D() < timeout) {
		timeout = t.Timeout.D()
	}
	tc := collectors.TargetConfig{Name: t.Name, Type: t.Type, Sysfs: t.Sysfs, Endpoint: t.Endpoint,
		Username: t.Username, CAFile: t.TLS.CAFile, InsecureSkipVerify: t.TLS.InsecureSkipVerify, Timeout: timeout,
		Auth: t.Auth, MinInterval: t.MinInterval.D(), MaxInFlight: t.MaxInFlight, Host: t.Host, Port: t.Port, CipherSuite: t.CipherSuite,
		Address: t.Address, Version: t.Version, Profile: t.Profile, Retries: t.Retries,
		AuthProtocol: t.AuthProtocol, PrivProtocol: t.PrivProtocol, Context: t.Context,
		Broker: t.Broker, Topic: t.Topic, Format: t.Format}
	if t.Bus != nil {
		tc.Bus = *t.Bus
	}
	for _, d := range t.Devices {
		tc.Devices = append(tc.Devices, collectors.I2CDevice{Chip: d.Chip, Address: d.Address, ShuntOhms: d.ShuntOhms})
	}
	var errs []error
	for _, s := range []struct {
		dst       *string
		file, env string
		what      string
	}{
		{&tc.Password, t.PasswordFile, t.PasswordEnv, "password"},
		{&tc.Community, t.CommunityFile, t.CommunityEnv, "community"},
		{&tc.AuthPassword, t.AuthPasswordFile, t.AuthPasswordEnv, "auth_password"},
		{&tc.PrivPassword, t.PrivPasswordFile, t.PrivPasswordEnv, "priv_password"},
	} {
		v, err := secret(s.file, s.env, s.what)
		if err != nil {
			errs = append(errs, err)
		}
		*s.dst = v
	}
	return tc, errors.Join(errs...)
}

// secret reads a secret from a file (its first line) or an environment
// variable; the error names where it looked, never the secret.
func secret(file, env, what string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", what, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("%s_env: environment variable %s is not set", what, env)
		}
		return v, nil
	}
	return "", nil
}
