package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	handler  http.Handler
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenloop_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "greenloop_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "greenloop_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	var err error
	if m.requests, err = registerOrGet(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = registerOrGet(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = registerOrGet(reg, m.inFlight); err != nil {
		return nil, err
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m, nil
}

// registerOrGet registers c, or returns the identical collector already
// registered (a second Server on the same registry, as in tests).
func registerOrGet[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register HTTP metrics: %w", err)
	}
	return c, nil
}

// routeLabel is the route pattern a request matched: bounded cardinality, unlike the raw path.
func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

func codeLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 413:
		return "413"
	case 422:
		return "422"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// observe is the outermost middleware: it recovers panics, hands errors to the
// error handler, then counts, times and (at debug level) logs every request.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		if err := s.safeCall(next, c); err != nil {
			c.Error(err)
		}
		code := c.Response().Status
		route := routeLabel(c)
		d := time.Since(start)
		cl := codeLabel(code)
		method := c.Request().Method
		s.metrics.requests.WithLabelValues(route, method, cl).Inc()
		s.metrics.duration.WithLabelValues(route, cl).Observe(d.Seconds())
		if ctx := c.Request().Context(); s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.LogAttrs(ctx, slog.LevelDebug, "request",
				slog.String("method", method), slog.String("route", route), slog.String("path", c.Request().URL.Path),
				slog.Int("code", code), slog.Duration("took", d), slog.Int64("bytes_out", c.Response().Size),
				slog.String("remote", c.Request().RemoteAddr))
		}
		return nil
	}
}

// safeCall runs a handler, turning a panic into a 500 (http.ErrAbortHandler
// still aborts the connection, as net/http intends).
func (s *Server) safeCall(h echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		s.log.Error("handler panicked", "route", routeLabel(c), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		err = &Error{Code: http.StatusInternalServerError, Msg: "internal server error", Err: fmt.Errorf("panic: %v", r)}
	}()
	return h(c)
}

func (s *Server) healthz(c echo.Context, _ Identity) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context, _ Identity) error {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(); err != nil {
			return &Error{Code: http.StatusServiceUnavailable, Msg: "not ready: " + err.Error()}
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) serveMetrics(c echo.Context, _ Identity) error {
	s.metrics.handler.ServeHTTP(c.Response(), c.Request())
	return nil
}

func goVersion() string { return runtime.Version() }

// prometheusVersion is the Prometheus release whose PromQL engine and API this
// binary links: module version v0.MMP.x is Prometheus M.P.x (v0.316.0 = 3.16.0).
func prometheusVersion() string {
	const fallback = "3.16.0"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fallback
	}
	for _, m := range bi.Deps {
		if m.Path != "github.com/prometheus/prometheus" {
			continue
		}
		v := m.Version
		if m.Replace != nil {
			v = m.Replace.Version
		}
		parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		if len(parts) < 3 || parts[0] != "0" {
			return fallback
		}
		mm, err := strconv.Atoi(parts[1])
		if err != nil || mm < 100 {
			return fallback
		}
		patch, _, _ := strings.Cut(parts[2], "-")
		return fmt.Sprintf("%d.%d.%s", mm/100, mm%100, patch)
	}
	return fallback
}
