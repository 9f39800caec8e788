package web

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/greenloop/greenloop/ingest"
)

// The handlers in this file follow Prometheus' HTTP API (/api/v1/query and
// friends): the same parameters (query string or form body), the same JSON
// and the same error types and status codes, so Prometheus' own clients,
// promtool and Grafana work unchanged. Every read is confined to the
// caller's tenant.

const checkContextEvery = 128

var errTruncated = errors.New("results truncated due to limit")

// queryable is the store, merged with the overlay (Deps.Overlay), as the
// caller's tenant sees it.
func (s *Server) queryable(id Identity) storage.Queryable {
	if s.deps.Overlay == nil {
		return ingest.TenantQueryable(s.deps.Store, id.Tenant)
	}
	return ingest.TenantQueryable(overlaid{store: s.deps.Store, overlay: s.deps.Overlay}, id.Tenant)
}

// overlaid reads the store and the overlay as one: series in both (the
// forecast points already archived in the store) are merged sample by
// sample. The store is the primary: its failure fails the read, while the
// overlay's becomes a warning.
type overlaid struct{ store, overlay storage.Queryable }

func (o overlaid) Querier(mint, maxt int64) (storage.Querier, error) {
	sq, err := o.store.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	oq, err := o.overlay.Querier(mint, maxt)
	if err != nil {
		sq.Close()
		return nil, err
	}
	return storage.NewMergeQuerier([]storage.Querier{sq}, []storage.Querier{oq}, storage.ChainedSeriesMerge), nil
}

// rangeQueryable is what a range query reads, and whether its answer may
// come from and go to the results cache. A query whose selectors match no
// series of the overlay reads the store alone and may be cached: the
// store's chunks stay visible to the one-pass evaluation (package fastrate)
// and the answer depends on stored data only. One that matches overlay
// series (forecasts, replaced at every fetch) reads both and is never
// cached. Package fastrate takes only selectors naming a counter
// (*_total, ...), which the forecast overlay never holds; were an overlay
// to hold one, fastrate would read the merged samples through the
// iterators (the engine's arithmetic), never the store's chunks alone.
func (s *Server) rangeQueryable(ctx context.Context, id Identity, qs string) (q storage.Queryable, cacheable bool) {
	store := ingest.TenantQueryable(s.deps.Store, id.Tenant)
	if s.deps.Overlay == nil {
		return store, true
	}
	expr, err := s.parser.ParseExpr(qs)
	if err != nil {
		return s.queryable(id), false // the engine reports the error
	}
	ov, err := ingest.TenantQueryable(s.deps.Overlay, id.Tenant).Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return s.queryable(id), false
	}
	defer ov.Close()
	for _, ms := range parser.ExtractSelectors(expr) {
		set := ov.Select(ctx, false, &storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, Func: "series", Limit: 1}, ms...)
		if set.Next() || set.Err() != nil {
			return s.queryable(id), false
		}
	}
	return store, true
}

func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return badData("error parsing form values: %v", err)
	}
	return nil
}

// queryContext applies the "timeout" parameter, capped by query.timeout.
func (s *Server) queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	timeout := s.opts.Query.Timeout.D()
	if v := r.Form.Get("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, nil, invalidParam("timeout", err)
		}
		if d <= 0 {
			return nil, nil, badData("invalid parameter %q: timeout must be positive, got %s", "timeout", d)
		}
		if timeout <= 0 || d < timeout {
			timeout = d
		}
	}
	if timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithCancel(r.Context())
	return ctx, cancel, nil
}

// queryOpts applies the "lookback_delta" parameter; nil leaves the engine's default.
func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	v := r.Form.Get("lookback_delta")
	if v == "" {
		return nil, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return nil, badData("error parsing lookback delta duration: %v", err)
	}
	return promql.NewPrometheusQueryOpts(false, d, nil), nil
}

// constructionError maps a failure to build a query, as Prometheus does.
func constructionError(err error) error {
	if _, ok := errors.AsType[promql.ErrLimitAboveCeiling](err); ok {
		return badData("%v", err)
	}
	if _, ok := errors.AsType[promql.ErrQueryTimeout](err); ok {
		return execError(err)
	}
	if _, ok := errors.AsType[promql.ErrQueryCanceled](err); ok {
		return execError(err)
	}
	return invalidParam("query", err)
}

// execError maps a query's failure to the Prometheus error type and status.
func execError(err error) error {
	msg := err.Error()
	switch {
	case errors.As(err, new(promql.ErrQueryCanceled)), errors.Is(err, context.Canceled):
		return &Error{Code: statusClientClosedRequest, Type: errCanceled, Msg: msg, Err: err}
	case errors.As(err, new(promql.ErrQueryTimeout)), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: http.StatusServiceUnavailable, Type: errTimeout, Msg: msg, Err: err}
	case errors.As(err, new(promql.ErrTooManySeries)), errors.As(err, new(promql.ErrTooManySamplesRead)):
		return &Error{Code: http.StatusUnprocessableEntity, Type: errCostLimit, Msg: msg, Err: err}
	case errors.As(err, new(promql.ErrStorage)):
		return &Error{Code: http.StatusInternalServerError, Type: errInternal, Msg: msg, Err: err}
	}
	return &Error{Code: http.StatusUnprocessableEntity, Type: errExec, Msg: msg, Err: err}
}

// respondValue writes a query result.
func (s *Server) respondValue(c echo.Context, qs string, v parser.Value, annos annotations.Annotations) error {
	warn, info := annos.AsStrings(qs, 10, 10)
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	*buf = appendSuccess(*buf, func(b []byte) []byte { return appendQueryData(b, v) }, warn, info)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, *buf)
}

// truncate cuts a vector or matrix to limit entries.
func truncate(v parser.Value, limit int) (parser.Value, bool) {
	if limit <= 0 {
		return v, false
	}
	switch x := v.(type) {
	case promql.Matrix:
		if len(x) > limit {
			return x[:limit], true
		}
	case promql.Vector:
		if len(x) > limit {
			return x[:limit], true
		}
	}
	return v, false
}

// runQuery executes a built query and writes its result.
func (s *Server) runQuery(c echo.Context, ctx context.Context, qry promql.Query, qs string, limit int) error {
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return execError(res.Err)
	}
	v, cut := truncate(res.Value, limit)
	warnings := res.Warnings
	if cut {
		warnings = warnings.Add(errTruncated)
	}
	return s.respondValue(c, qs, v, warnings)
}

// query evaluates an instant query: query, time (default now), timeout, limit, lookback_delta.
func (s *Server) query(c echo.Context, id Identity) error {
	r := c.Request()
	if err := parseForm(r); err != nil {
		return err
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	ts, err := timeParam(r, "time", s.now())
	if err != nil {
		return err
	}
	ctx, cancel, err := s.queryContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return err
	}
	qs := r.Form.Get("query")
	qry, err := s.deps.Engine.NewInstantQuery(ctx, s.queryable(id), opts, qs, ts)
	if err != nil {
		return constructionError(err)
	}
	return s.runQuery(c, ctx, qry, qs, limit)
}

// queryRange evaluates a range query: query, start, end, step, timeout, limit, lookback_delta.
func (s *Server) queryRange(c echo.Context, id Identity) error {
	r := c.Request()
	if err := parseForm(r); err != nil {
		return err
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	start, err := parseTime(r.Form.Get("start"))
	if err != nil {
		return invalidParam("start", err)
	}
	end, err := parseTime(r.Form.Get("end"))
	if err != nil {
		return invalidParam("end", err)
	}
	if end.Before(start) {
		return invalidParam("end", errors.New("end timestamp must not be before start time"))
	}
	step, err := parseDuration(r.Form.Get("step"))
	if err != nil {
		return invalidParam("step", err)
	}
	if step <= 0 {
		return invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		return badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	ctx, cancel, err := s.queryContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return err
	}
	qs := r.Form.Get("query")
	q, cacheable := s.rangeQueryable(ctx, id, qs)
	var (
		res    rangeResult
		cached bool
	)
	if cacheable {
		res, cached, err = s.cachedRange(ctx, id.Tenant, q, opts, qs, start, end, step)
	}
	if !cached {
		res, err = s.execRange(ctx, q, opts, qs, start, end, step)
	}
	if err != nil {
		return constructionError(err)
	}
	if res.err != nil {
		return execError(res.err)
	}
	v, cut := truncate(res.m, limit)
	warnings := res.annos
	if cut {
		warnings = warnings.Add(errTruncated)
	}
	return s.respondValue(c, qs, v, warnings)
}

// timeRange reads the optional start and end of a metadata request.
func timeRange(r *http.Request) (mint, maxt int64, err error) {
	start, err := timeParam(r, "start", minTime)
	if err != nil {
		return 0, 0, err
	}
	end, err := timeParam(r, "end", maxTime)
	if err != nil {
		return 0, 0, err
	}
	return timestamp.FromTime(start), timestamp.FromTime(end), nil
}

func hintLimit(limit int) int {
	if limit > 0 {
		return limit + 1 // one more, to know whether to warn about truncation
	}
	return 0
}

// series lists the series matching any match[] selector: match[] (required), start, end, limit.
func (s *Server) series(c echo.Context, id Identity) error {
	r := c.Request()
	if err := parseForm(r); err != nil {
		return err
	}
	if len(r.Form["match[]"]) == 0 {
		return badData("no match[] parameter provided")
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	mint, maxt, err := timeRange(r)
	if err != nil {
		return err
	}
	sets, err := s.matcherSets(r.Form["match[]"])
	if err != nil {
		return invalidParam("match[]", err)
	}
	q, err := s.queryable(id).Querier(mint, maxt)
	if err != nil {
		return execError(err)
	}
	defer q.Close()
	ctx := r.Context()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: hintLimit(limit)}
	var set storage.SeriesSet
	if len(sets) > 1 {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, false, hints, sets[0]...)
	}

	buf := s.bufs.get()
	defer s.bufs.put(buf)
	b := append(*buf, `{"status":"success","data":[`...)
	n := 0
	var warnings annotations.Annotations
	for set.Next() {
		if n%checkContextEvery == 0 {
			if err := ctx.Err(); err != nil {
				return execError(err)
			}
		}
		if limit > 0 && n == limit {
			warnings = warnings.Add(errTruncated)
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, set.At().Labels())
		n++
	}
	if err := set.Err(); err != nil {
		return execError(err)
	}
	warnings.Merge(set.Warnings())
	b = append(b, ']')
	b = appendAnnotations(b, warnings, "")
	*buf = b
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// appendAnnotations closes a success envelope with its warnings and infos.
func appendAnnotations(b []byte, annos annotations.Annotations, qs string) []byte {
	if len(annos) > 0 {
		warn, info := annos.AsStrings(qs, 10, 10)
		if len(warn) > 0 {
			b = append(b, `,"warnings":`...)
			b = appendStrings(b, warn)
		}
		if len(info) > 0 {
			b = append(b, `,"infos":`...)
			b = appendStrings(b, info)
		}
	}
	return append(b, '}')
}

// respondStrings writes a success envelope around a list of strings.
func (s *Server) respondStrings(c echo.Context, ss []string, annos annotations.Annotations) error {
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	b := append(*buf, `{"status":"success","data":`...)
	b = appendStrings(b, ss)
	b = appendAnnotations(b, annos, "")
	*buf = b
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// labelNames lists label names: match[] (optional), start, end, limit.
func (s *Server) labelNames(c echo.Context, id Identity) error {
	r := c.Request()
	if err := parseForm(r); err != nil {
		return err
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	mint, maxt, err := timeRange(r)
	if err != nil {
		return err
	}
	sets, err := s.matcherSets(r.Form["match[]"])
	if err != nil {
		return badData("%v", err)
	}
	q, err := s.queryable(id).Querier(mint, maxt)
	if err != nil {
		return execError(err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	names, warnings, err := labelsAcross(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
	if err != nil {
		return execError(err)
	}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		warnings = warnings.Add(errTruncated)
	}
	return s.respondStrings(c, names, warnings)
}

// labelValues lists one label's values: match[] (optional), start, end, limit.
func (s *Server) labelValues(c echo.Context, id Identity) error {
	r := c.Request()
	name, err := url.PathUnescape(c.Param("name"))
	if err != nil {
		return badData("invalid label name: %q", c.Param("name"))
	}
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData("invalid label name: %q", name)
	}
	if err := parseForm(r); err != nil {
		return err
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	mint, maxt, err := timeRange(r)
	if err != nil {
		return err
	}
	sets, err := s.matcherSets(r.Form["match[]"])
	if err != nil {
		return badData("%v", err)
	}
	q, err := s.queryable(id).Querier(mint, maxt)
	if err != nil {
		return execError(err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	vals, warnings, err := labelsAcross(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
	if err != nil {
		return execError(err)
	}
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings = warnings.Add(errTruncated)
	}
	return s.respondStrings(c, vals, warnings)
}

// labelsAcross calls get once per matcher set (once without matchers when
// there are none) and returns the sorted union.
func labelsAcross(sets [][]*labels.Matcher, get func([]*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	if len(sets) <= 1 {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		out, annos, err := get(ms)
		if err != nil {
			return nil, annos, err
		}
		out = slices.Clone(out) // a querier may return its own storage
		slices.Sort(out)
		return out, annos, nil
	}
	var all []string
	var annos annotations.Annotations
	for _, ms := range sets {
		out, a, err := get(ms)
		if err != nil {
			return nil, annos, err
		}
		annos.Merge(a)
		all = append(all, out...)
	}
	slices.Sort(all)
	return slices.Compact(all), annos, nil
}

// queryExemplars validates its parameters like Prometheus and answers an
// empty list: greenloop stores no exemplars.
func (s *Server) queryExemplars(c echo.Context, _ Identity) error {
	r := c.Request()
	if err := parseForm(r); err != nil {
		return err
	}
	start, err := timeParam(r, "start", minTime)
	if err != nil {
		return err
	}
	end, err := timeParam(r, "end", maxTime)
	if err != nil {
		return err
	}
	if end.Before(start) {
		return badData("end timestamp must not be before start timestamp")
	}
	if _, err := s.parser.ParseExpr(r.Form.Get("query")); err != nil {
		return badData("%v", err)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"status":"success","data":[]}`))
}

// metadata answers an empty metric metadata map: greenloop keeps none.
func (s *Server) metadata(c echo.Context, _ Identity) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"status":"success","data":{}}`))
}

// rules answers an empty rule list: greenloop evaluates no Prometheus rules.
// Served because Grafana's alerting pages ask every Prometheus data source.
func (s *Server) rules(c echo.Context, _ Identity) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"status":"success","data":{"groups":[]}}`))
}

// alerts answers an empty alert list, for the same reason as rules.
func (s *Server) alerts(c echo.Context, _ Identity) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"status":"success","data":{"alerts":[]}}`))
}

type promSuccess struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

// buildInfo answers like Prometheus; Grafana reads the version to pick features.
func (s *Server) buildInfo(c echo.Context, _ Identity) error {
	return c.JSON(http.StatusOK, promSuccess{Status: "success", Data: s.opts.BuildInfo})
}
