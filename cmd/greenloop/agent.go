package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/ingest/forwarder"
	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

const agentUsage = `Usage: greenloop agent --config FILE [--log-level info]

Runs the site agent: polls every target of the configuration on its schedule,
serves the latest readings on /metrics (Prometheus exposition) and the state
of every target on /healthz at the configured listen address, and, when
server.url is set, pushes every reading to the server (remote_write) through
a disk queue in server.queue_dir that survives restarts and outages, and
pushes its own health (queue depth and age, records sent, dropped, retried
and refused, labelled site and agent) every 30 s to the server's
/api/v1/import/prometheus, so that an agent behind NAT stays visible.
SIGINT or SIGTERM stops polling, lets the request in flight finish, syncs
the queue and exits 0.

Flags:
`

// agentShutdownTimeout bounds how long the agent waits, after a stop signal,
// for the forwarder's request in flight and for the HTTP server.
const agentShutdownTimeout = 10 * time.Second

// agentDrainGrace is how long, after polling stopped, the forwarder may go
// on delivering what is pending before it is stopped.
const agentDrainGrace = 2 * time.Second

// agentTestHooks lets tests see the address the agent listens on.
var agentTestHooks struct {
	listening func(addr string)
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentUsage)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "agent configuration `file` (YAML)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *path == "" {
		return errors.New("--config FILE is required (the agent configuration)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: want debug, info, warn or error, got %q", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := config.LoadAgentFile(*path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: invalid configuration:\n%w", *path, err)
	}

	a := &agent{cfg: &cfg, log: log, latest: newLatestReadings()}
	targets := a.buildTargets()
	// Collectors holding sessions or connections (Redfish sessions, IPMI
	// sessions, MQTT subscriptions) release them when the agent stops.
	defer closeCollectors(log, targets)
	if len(targets) == 0 {
		return fmt.Errorf("none of the %d targets could be started", len(cfg.Targets))
	}
	poller, err := collectors.NewPoller(targets, collectors.PollerOptions{Logger: log})
	if err != nil {
		return err
	}
	a.poller = poller

	if cfg.Server.Pushes() {
		if err := a.openPush(); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(a.latest, poller.Metrics(), agentSelfMetrics{a})

	var srv *http.Server
	srvDone := make(chan error, 1)
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			a.closePush(context.Background())
			return fmt.Errorf("listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}}))
		mux.HandleFunc("GET /healthz", a.healthz)
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { srvDone <- srv.Serve(ln) }()
		log.Info("agent listening", "addr", ln.Addr().String())
		if agentTestHooks.listening != nil {
			agentTestHooks.listening(ln.Addr().String())
		}
	}

	var self *selfPusher
	selfCtx, selfCancel := context.WithCancel(ctx)
	defer selfCancel()
	if a.q != nil {
		self = a.startSelfPush(selfCtx, cfg.Server.URL, a.token)
	}

	log.Info("agent started", "site", cfg.Site, "targets", len(targets), "push", cfg.Server.Pushes())
	runErr := poller.Run(ctx, a.emit)
	log.Info("agent stopping: polling stopped")

	sctx, cancel := context.WithTimeout(context.Background(), agentShutdownTimeout)
	defer cancel()
	selfCancel()
	pushErr := a.closePush(sctx)
	if self != nil {
		self.stop(sctx) // the last self-metrics, with the final counts
	}
	if srv != nil {
		_ = srv.Shutdown(sctx)
		if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}
	log.Info("agent stopped")
	return errors.Join(runErr, pushErr)
}

// agent is one running `greenloop agent`.
type agent struct {
	cfg     *config.Agent
	log     *slog.Logger
	poller  *collectors.Poller
	latest  *latestReadings
	targets map[string]config.Target // by name, the targets that run

	// Push, when server.url is set.
	q         *queue.Queue
	fwd       *forwarder.Forwarder
	fwdCancel context.CancelFunc
	fwdDone   chan error
	appendMu  sync.Mutex // the queue takes one producer at a time
	appendErr uint64     // failed appends, under appendMu
	// Readings waiting to be queued, under appendMu: the poll batches of every
	// target go out together, as one record of at most agentBatchSamples
	// samples, at least every agentBatchDelay.
	pending        []sample.Series
	pendingSamples int
	flushStop      chan struct{}
	flushDone      chan struct{}
	token          string // the bearer token; never logged
}

// buildTargets builds the collector of every configured target; a target
// that cannot be built is logged and left out.
func (a *agent) buildTargets() []collectors.Target {
	a.targets = map[string]config.Target{}
	var out []collectors.Target
	for _, t := range a.cfg.Targets {
		interval := a.cfg.TargetInterval(t)
		timeout := interval - interval/5
		tc, err := targetConfig(t, timeout)
		if err == nil {
			var c collectors.Collector
			c, err = collectors.New(tc, collectors.Deps{Logger: a.log.With("target", t.Name)})
			if err == nil {
				out = append(out, collectors.Target{Name: t.Name, Type: t.Type, Collector: c, Interval: interval, Timeout: timeout})
				a.targets[t.Name] = t
				continue
			}
		}
		if errors.Is(err, collectors.ErrUnknownType) {
			err = fmt.Errorf("type %s is not available in this build yet (this build has: %s)", t.Type, strings.Join(collectors.Types(), ", "))
		}
		a.log.Error("target not started", "target", t.Name, "type", t.Type, "err", oneLine(err.Error()))
	}
	return out
}

// openPush opens the disk queue and starts the forwarder.
func (a *agent) openPush() error {
	s := a.cfg.Server
	token, err := secret(s.TokenFile, s.TokenEnv, "server.token")
	if err != nil {
		return err
	}
	q, err := queue.Open(s.QueueDir, queue.Options{MaxBytes: int64(s.QueueMaxBytes), Logger: a.log.With("component", "queue")})
	if err != nil {
		return fmt.Errorf("server.queue_dir: %w", err)
	}
	fwd, err := forwarder.New(q, forwarder.Options{URL: s.URL, Token: token, Logger: a.log.With("component", "forwarder")})
	if err != nil {
		q.Close()
		return fmt.Errorf("server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.q, a.fwd, a.fwdCancel, a.fwdDone, a.token = q, fwd, cancel, make(chan error, 1), token
	go func() { a.fwdDone <- fwd.Run(ctx) }()
	a.flushStop, a.flushDone = make(chan struct{}), make(chan struct{})
	go a.flushLoop()
	st := q.Stats()
	shown := "(unparsable)"
	if u, err := url.Parse(s.URL); err == nil {
		shown = u.Redacted() // a password in the URL is never logged
	}
	a.log.Info("pushing to server", "url", shown, "queue_pending_records", st.PendingRecords)
	return nil
}

// closePush stops the forwarder and closes the queue, which syncs it.
// Polling has stopped; the readings still pending are queued first. When the
// server was answering (a delivery in the last second, or no failed attempt
// yet), the forwarder first gets up to agentDrainGrace to deliver
// what is pending, so that the request in flight finishes; it stops at the
// first failed attempt. During an outage it is stopped at once. A record
// whose request was cut short was not acknowledged and is sent again after
// a restart (the server keeps one sample per series and timestamp, so
// nothing is counted twice).
func (a *agent) closePush(ctx context.Context) error {
	if a.q == nil {
		return nil
	}
	// Polling has stopped: queue what is still pending, then drain.
	close(a.flushStop)
	<-a.flushDone
	a.appendMu.Lock()
	a.flushLocked()
	a.appendMu.Unlock()
	// The server is taken to be answering when a delivery succeeded in the
	// last second, or when no attempt has failed yet.
	if st := a.fwd.Stats(); time.Since(st.LastSuccess) < time.Second || (st.Retries == 0 && st.LastError == "") {
		grace := time.NewTimer(agentDrainGrace)
		defer grace.Stop()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
	drain:
		for a.q.Stats().PendingRecords > 0 && a.fwd.Stats().Retries == st.Retries {
			select {
			case <-grace.C:
				break drain
			case <-ctx.Done():
				break drain
			case <-tick.C:
			}
		}
	}
	a.fwdCancel()
	var err error
	select {
	case ferr := <-a.fwdDone:
		if ferr != nil && !errors.Is(ferr, context.Canceled) {
			err = fmt.Errorf("forwarder: %w", ferr)
		}
	case <-ctx.Done():
		a.log.Warn("forwarder did not stop in time; closing the queue anyway")
	}
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	if cerr := a.q.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	st := a.fwd.Stats()
	a.log.Info("forwarder stopped", "sent_records", st.SentRecords, "retries", st.Retries, "refused_records", st.RefusedRecords)
	return err
}

// emit receives one poll's batch of one target: it labels the readings as
// `collect` prints them, keeps them for /metrics and queues them for the server.
func (a *agent) emit(_ context.Context, batch []collectors.Reading) {
	name := batchTarget(batch)
	t, ok := a.targets[name]
	if !ok {
		return
	}
	outs := labelled(a.cfg, t, batch)
	a.latest.set(name, outs)
	if a.q == nil {
		return
	}
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	for _, o := range outs {
		ls := make([]sample.Label, 0, len(o.labels)+1)
		ls = append(append(ls, sample.Label{Name: "__name__", Value: o.Metric}), o.labels...)
		a.pending = append(a.pending, sample.Series{Labels: ls, Points: []sample.Point{o.Point()}})
	}
	a.pendingSamples += len(outs)
	if a.pendingSamples >= agentBatchSamples {
		a.flushLocked()
	}
}

// Batching of the readings into queue records (one remote_write request each).
const (
	// agentBatchSamples is the most samples one record gathers before it is
	// queued (Prometheus' own remote_write sends 2,000 per request).
	agentBatchSamples = 2000
	// agentBatchDelay is the longest a reading waits to be queued.
	agentBatchDelay = time.Second
)

// flushLocked queues the pending readings as one record; appendMu is held.
func (a *agent) flushLocked() {
	if len(a.pending) == 0 {
		return
	}
	n := len(a.pending)
	rec, err := forwarder.Encode(a.pending)
	if err == nil {
		err = a.q.Append(rec)
	}
	a.pending, a.pendingSamples = nil, 0
	if err == nil {
		a.fwd.Notify()
		return
	}
	a.appendErr++
	a.log.Error("queueing readings failed; this batch is lost", "readings", n, "err", err)
}

// flushLoop queues whatever is pending every agentBatchDelay until stopped.
func (a *agent) flushLoop() {
	defer close(a.flushDone)
	t := time.NewTicker(agentBatchDelay)
	defer t.Stop()
	for {
		select {
		case <-a.flushStop:
			return
		case <-t.C:
			a.appendMu.Lock()
			a.flushLocked()
			a.appendMu.Unlock()
		}
	}
}

// batchTarget returns the target a poll's batch belongs to, from the target
// label of the self-metrics the poller appends to every batch.
func batchTarget(batch []collectors.Reading) string {
	for i := len(batch) - 1; i >= 0; i-- {
		r := batch[i]
		if r.Metric != collectors.MetricCollectorUp {
			continue
		}
		for _, l := range r.Labels {
			if l.Name == collectors.LabelTarget {
				return l.Value
			}
		}
	}
	return ""
}

// targetHealth is one target in /healthz.
type targetHealth struct {
	Name      string     `json:"name"`
	Type      string     `json:"type"`
	State     string     `json:"state"`
	LastPoll  *time.Time `json:"last_poll,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Readings  int        `json:"readings"`
	Errors    uint64     `json:"errors"`
}

func (a *agent) healthz(w http.ResponseWriter, _ *http.Request) {
	type queueHealth struct {
		PendingRecords int64  `json:"pending_records"`
		PendingBytes   int64  `json:"pending_bytes"`
		DroppedRecords int64  `json:"dropped_records"`
		SentRecords    uint64 `json:"sent_records"`
		LastError      string `json:"last_error,omitempty"`
	}
	body := struct {
		Status  string         `json:"status"`
		Site    string         `json:"site"`
		Targets []targetHealth `json:"targets"`
		Queue   *queueHealth   `json:"queue,omitempty"`
	}{Status: "ok", Site: a.cfg.Site, Targets: []targetHealth{}}
	for _, st := range a.poller.Stats() {
		th := targetHealth{Name: st.Name, Type: st.Type, State: st.State.String(), Readings: st.Readings, Errors: st.Errors}
		if !st.LastPoll.IsZero() {
			lp := st.LastPoll.UTC()
			th.LastPoll = &lp
		}
		if st.LastError != nil {
			th.LastError = st.LastError.Error()
		}
		body.Targets = append(body.Targets, th)
	}
	if a.q != nil {
		qs, fs := a.q.Stats(), a.fwd.Stats()
		body.Queue = &queueHealth{PendingRecords: qs.PendingRecords, PendingBytes: qs.PendingBytes,
			DroppedRecords: qs.DroppedRecords, SentRecords: fs.SentRecords, LastError: fs.LastError}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// latestReadings is a prometheus.Collector of the last batch of every
// target: each reading as a gauge (a counter for *_total metrics) with its
// own timestamp. The poller's self-metrics are left to Poller.Metrics.
type latestReadings struct {
	mu       sync.Mutex
	byTarget map[string][]output
}

func newLatestReadings() *latestReadings {
	return &latestReadings{byTarget: map[string][]output{}}
}

func (l *latestReadings) set(target string, outs []output) {
	keep := make([]output, 0, len(outs))
	for _, o := range outs {
		if !isSelfMetric(o.Metric) {
			keep = append(keep, o)
		}
	}
	l.mu.Lock()
	l.byTarget[target] = keep
	l.mu.Unlock()
}

func isSelfMetric(m string) bool {
	switch m {
	case collectors.MetricCollectorUp, collectors.MetricCollectorDuration,
		collectors.MetricCollectorErrors, collectors.MetricCollectorSkipped:
		return true
	}
	return false
}

// Describe sends nothing: the metrics depend on what the targets read, so
// the collector is unchecked.
func (l *latestReadings) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (l *latestReadings) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	var all []output
	for _, outs := range l.byTarget {
		all = append(all, outs...)
	}
	l.mu.Unlock()
	seen := make(map[string]bool, len(all))
	for _, o := range all {
		key := sample.FormatLabels(append([]sample.Label{{Name: "__name__", Value: o.Metric}}, o.labels...))
		if seen[key] {
			continue // two targets with the same labels: the first wins
		}
		seen[key] = true
		names := make([]string, len(o.labels))
		values := make([]string, len(o.labels))
		for i, lb := range o.labels {
			names[i], values[i] = lb.Name, lb.Value
		}
		vt := prometheus.GaugeValue
		if strings.HasSuffix(o.Metric, "_total") {
			vt = prometheus.CounterValue
		}
		desc := prometheus.NewDesc(o.Metric, "Latest reading of "+o.Metric+".", names, nil)
		m, err := prometheus.NewConstMetric(desc, vt, o.Value, values...)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(desc, err)
			continue
		}
		ch <- prometheus.NewMetricWithTimestamp(o.Time, m)
	}
}

// Names of the agent's queue and forwarder metrics on /metrics.
const (
	metricQueuePending     = "greenloop_agent_queue_pending_records"
	metricQueuePendingB    = "greenloop_agent_queue_pending_bytes"
	metricQueueOldestAge   = "greenloop_agent_queue_oldest_age_seconds"
	metricQueueDropped     = "greenloop_agent_queue_dropped_records_total"
	metricSentRecords      = "greenloop_agent_sent_records_total"
	metricRetries          = "greenloop_agent_retries_total"
	metricRefusedRecords   = "greenloop_agent_refused_records_total"
	metricQueueAppendFails = "greenloop_agent_queue_append_errors_total"
)

var (
	descQueuePending   = prometheus.NewDesc(metricQueuePending, "Records in the disk queue not yet acknowledged by the server.", nil, nil)
	descQueuePendingB  = prometheus.NewDesc(metricQueuePendingB, "Bytes on disk of the records not yet acknowledged.", nil, nil)
	descQueueOldestAge = prometheus.NewDesc(metricQueueOldestAge, "Age of the oldest record not yet acknowledged; 0 when none is pending.", nil, nil)
	descQueueDropped   = prometheus.NewDesc(metricQueueDropped, "Records dropped from the disk queue to stay within queue_max_bytes.", nil, nil)
	descSent           = prometheus.NewDesc(metricSentRecords, "Records the server acknowledged.", nil, nil)
	descRetries        = prometheus.NewDesc(metricRetries, "Push attempts retried after a failure.", nil, nil)
	descRefused        = prometheus.NewDesc(metricRefusedRecords, "Records the server refused for good (not retried).", nil, nil)
	descAppendFails    = prometheus.NewDesc(metricQueueAppendFails, "Batches that could not be written to the disk queue.", nil, nil)
)

// agentSelfMetrics exposes the queue and forwarder statistics; nothing
// when the agent is pull-only.
type agentSelfMetrics struct{ a *agent }

func (m agentSelfMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueuePending, descQueuePendingB, descQueueOldestAge, descQueueDropped, descSent, descRetries, descRefused, descAppendFails} {
		ch <- d
	}
}

func (m agentSelfMetrics) Collect(ch chan<- prometheus.Metric) {
	a := m.a
	if a.q == nil {
		return
	}
	qs, fs := a.q.Stats(), a.fwd.Stats()
	age := 0.0
	if !qs.OldestAppended.IsZero() {
		age = max(0, time.Since(qs.OldestAppended).Seconds())
	}
	a.appendMu.Lock()
	appendErr := a.appendErr
	a.appendMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descQueuePending, prometheus.GaugeValue, float64(qs.PendingRecords))
	ch <- prometheus.MustNewConstMetric(descQueuePendingB, prometheus.GaugeValue, float64(qs.PendingBytes))
	ch <- prometheus.MustNewConstMetric(descQueueOldestAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descQueueDropped, prometheus.CounterValue, float64(qs.DroppedRecords))
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(fs.SentRecords))
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(fs.Retries))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(fs.RefusedRecords))
	ch <- prometheus.MustNewConstMetric(descAppendFails, prometheus.CounterValue, float64(appendErr))
}

// slogPrinter adapts a slog.Logger to promhttp's ErrorLog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Error("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
