package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Self-metrics push.
//
// When server.url is set, the agent also pushes its own health (the queue's
// depth and age, records sent, dropped, retried and refused) to the server's
// text import endpoint, <server.url>/api/v1/import/prometheus, every
// agentSelfPushInterval (30 s), with the agent's bearer token. These go out
// directly, not through the disk queue, so they describe the agent now even
// while the queue is backed up; a push that fails is not retried (the next one
// carries the current values). Every series carries site (the agent's site)
// and agent (the host name, or the site when it cannot be read). One last push
// is made when the agent stops. Per-target collector health
// (greenloop_collector_up and friends) already reaches the server through the
// queue with every poll, so it is not pushed again here.
//
// These metrics live in their own metrics.Set, not in the library's default
// set, and are not written to /metrics: /metrics carries the same values,
// without the site and agent labels, through client_golang (agentSelfMetrics).

// selfPushPath is the server's Prometheus text import endpoint, relative to
// server.url.
const selfPushPath = "/api/v1/import/prometheus"

// agentSelfPushInterval is how often the self-metrics are pushed; tests
// shorten it.
var agentSelfPushInterval = 30 * time.Second

// agentSelfPushTimeout bounds one push request.
const agentSelfPushTimeout = 10 * time.Second

// selfMetricsAgentLabel is the value of the agent label: the host name, or
// the site when the host name cannot be read.
func selfMetricsAgentLabel(site string) string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return site
}

// promLabelValue escapes a label value for the text exposition format.
func promLabelValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// newSelfMetricsSet returns the set of the agent's self-metrics, gauges
// reading the queue's and the forwarder's statistics when written. The agent
// must push (a.q and a.fwd set).
func (a *agent) newSelfMetricsSet() *metrics.Set {
	labels := `{agent="` + promLabelValue(selfMetricsAgentLabel(a.cfg.Site)) + `",site="` + promLabelValue(a.cfg.Site) + `"}`
	set := metrics.NewSet()
	gauge := func(name string, f func() float64) { set.NewGauge(name+labels, f) }
	gauge(metricQueuePending, func() float64 { return float64(a.q.Stats().PendingRecords) })
	gauge(metricQueuePendingB, func() float64 { return float64(a.q.Stats().PendingBytes) })
	gauge(metricQueueOldestAge, func() float64 {
		if t := a.q.Stats().OldestAppended; !t.IsZero() {
			return max(0, time.Since(t).Seconds())
		}
		return 0
	})
	gauge(metricQueueDropped, func() float64 { return float64(a.q.Stats().DroppedRecords) })
	gauge(metricSentRecords, func() float64 { return float64(a.fwd.Stats().SentRecords) })
	gauge(metricRetries, func() float64 { return float64(a.fwd.Stats().Retries) })
	gauge(metricRefusedRecords, func() float64 { return float64(a.fwd.Stats().RefusedRecords) })
	gauge(metricQueueAppendFails, func() float64 {
		a.appendMu.Lock()
		defer a.appendMu.Unlock()
		return float64(a.appendErr)
	})
	return set
}

// selfPusher pushes the self-metrics set on a schedule.
type selfPusher struct {
	a    *agent
	set  *metrics.Set
	url  string // never logged: see shown
	opts *metrics.PushOptions
	done chan struct{}

	failing bool // the last push failed; only the pusher's goroutine, then stop, use it
}

// startSelfPush starts pushing the self-metrics until ctx is done. token may
// be empty (no Authorization header).
func (a *agent) startSelfPush(ctx context.Context, baseURL, token string) *selfPusher {
	opts := &metrics.PushOptions{Method: http.MethodPost}
	if token != "" {
		opts.Headers = []string{"Authorization: Bearer " + token}
	}
	p := &selfPusher{
		a:    a,
		set:  a.newSelfMetricsSet(),
		url:  strings.TrimSuffix(baseURL, "/") + selfPushPath,
		opts: opts,
		done: make(chan struct{}),
	}
	go p.run(ctx)
	return p
}

func (p *selfPusher) run(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(agentSelfPushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.push(ctx)
		}
	}
}

// push pushes once and logs the first failure of a run of failures at warn
// level (the rest at debug) and the recovery at info.
func (p *selfPusher) push(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, agentSelfPushTimeout)
	defer cancel()
	err := p.set.PushMetrics(pctx, p.url, p.opts)
	if ctx.Err() != nil {
		return // stopping: a cut-short push is not an error
	}
	log := p.a.log.With("component", "selfmetrics")
	switch {
	case err != nil && !p.failing:
		p.failing = true
		log.Warn("pushing self-metrics failed; retrying every interval", "interval", agentSelfPushInterval, "err", oneLine(err.Error()))
	case err != nil:
		log.Debug("pushing self-metrics failed", "err", oneLine(err.Error()))
	case p.failing:
		p.failing = false
		log.Info("pushing self-metrics again")
	}
}

// stop waits for the pusher to end (ctx, given to startSelfPush, is done)
// and makes one last push, within ctx, unless the last one failed.
func (p *selfPusher) stop(ctx context.Context) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return
	}
	if p.failing {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p.push(fctx)
}
