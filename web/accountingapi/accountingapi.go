// Package accountingapi serves greenloop's accounting over HTTP: a site's
// emissions (location- and market-based) and KPIs, the import of grid carbon
// intensity, and the EU data-centre report with its operator-entered inputs.
// Its routes are registered on the web server's echo instance, which
// authenticates them and puts the caller's tenant and role in the context;
// a site is visible to its own tenant only.
package accountingapi

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web"
)

// Routes this package registers.
const (
	PathEmissions       = "/api/v1/emissions"
	PathKPIs            = "/api/v1/kpis"
	PathCarbonIntensity = "/api/v1/carbon-intensity"
	PathReportInputs    = "/api/v1/sites/:id/report-inputs/:year"
	PathReportEU        = "/api/v1/reports/eu"
	// PathReportSnapshots freezes a report (POST) and lists a site's snapshots (GET).
	PathReportSnapshots = "/api/v1/reports/eu/snapshots"
	// PathReportSnapshot serves one frozen snapshot, byte for byte.
	PathReportSnapshot = "/api/v1/reports/eu/snapshots/:id"
)

// Deps is what the handlers need.
type Deps struct {
	// Accountant computes the figures; it knows the sites and their tenants.
	Accountant *service.Accountant
	// Writer stores imported intensity; Backfill the part older than Window
	// (the store's out-of-order window). Nil Writer: PUT answers 501.
	Writer, Backfill service.SeriesWriter
	Window           time.Duration
	// Retention: imported points older than this are refused; zero means 15 days.
	Retention time.Duration
	// MaxFutureSkew: imported points further ahead are refused; zero means 10 minutes.
	MaxFutureSkew time.Duration
	// MaxBodyBytes bounds a PUT body; zero means 32 MiB.
	MaxBodyBytes int64
	// Reports serves the EU report; nil leaves its two routes out.
	Reports *Reports
	// Clock is "now"; nil means time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

type handler struct {
	d   Deps
	log *slog.Logger
	now func() time.Time
}

// Register adds the routes to e.
func Register(e *echo.Echo, d Deps) {
	if d.Accountant == nil {
		panic("accountingapi: Deps.Accountant is nil")
	}
	h := &handler{d: d, log: d.Logger, now: d.Clock}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.d.Retention <= 0 {
		h.d.Retention = 15 * 24 * time.Hour
	}
	if h.d.MaxFutureSkew <= 0 {
		h.d.MaxFutureSkew = 10 * time.Minute
	}
	if h.d.MaxBodyBytes <= 0 {
		h.d.MaxBodyBytes = 32 << 20
	}
	if h.d.Window <= 0 {
		h.d.Window = 72 * time.Hour
	}
	e.GET(PathEmissions, h.emissions)
	e.GET(PathKPIs, h.kpis)
	e.PUT(PathCarbonIntensity, h.putIntensity)
	if d.Reports != nil {
		e.PUT(PathReportInputs, h.putReportInputs)
		e.GET(PathReportInputs, h.getReportInputs)
		e.GET(PathReportEU, h.reportEU)
		e.POST(PathReportSnapshots, h.freezeReport)
		e.GET(PathReportSnapshots, h.listSnapshots)
		e.GET(PathReportSnapshot, h.getSnapshot)
	}
}

// caller returns the tenant and role the web server put in the context.
func caller(c echo.Context) (tenant, role string) {
	tenant, _ = c.Get(web.ContextKeyTenant).(string)
	role, _ = c.Get(web.ContextKeyRole).(string)
	return tenant, role
}

func requireRole(c echo.Context, what string, roles ...web.Role) error {
	_, role := caller(c)
	if slices.Contains(roles, web.Role(role)) {
		return nil
	}
	return &web.Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("role %q may not %s", role, what)}
}

func badParam(name, format string, a ...any) *web.Error {
	return &web.Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid parameter %q: %s", name, fmt.Sprintf(format, a...)),
		Detail: map[string]string{"parameter": name}}
}

// toHTTP maps the accounting errors to their status.
func toHTTP(err error) error {
	var pe *service.ParamError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return badParam(pe.Param, "%s", pe.Msg)
	case errors.Is(err, clickhouse.ErrUnavailable):
		return &web.Error{Code: http.StatusServiceUnavailable, Msg: "the store is unavailable; retry later", Err: err, RetryAfter: 5 * time.Second}
	case errors.Is(err, service.ErrUnknownSite):
		return &web.Error{Code: http.StatusNotFound, Msg: err.Error()}
	case errors.Is(err, service.ErrNoData), errors.Is(err, service.ErrNoIntensity), errors.Is(err, service.ErrNotConfigured):
		reason := "no_data"
		switch {
		case errors.Is(err, service.ErrNoIntensity):
			reason = "no_carbon_intensity"
		case errors.Is(err, service.ErrNotConfigured):
			reason = "not_configured"
		}
		return &web.Error{Code: http.StatusUnprocessableEntity, Msg: err.Error(), Detail: map[string]string{"reason": reason}}
	}
	// Cancellation, timeouts and storage failures: the server's error handler maps them.
	return err
}

// period reads the from and to parameters (RFC 3339).
func period(c echo.Context) (from, to time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		v := c.QueryParam(name)
		if v == "" {
			return time.Time{}, badParam(name, "required (RFC 3339, e.g. 2025-01-01T00:00:00Z)")
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, badParam(name, "want RFC 3339 such as 2025-01-01T00:00:00Z, got %q", v)
		}
		return t.UTC(), nil
	}
	if from, err = parse("from"); err != nil {
		return
	}
	if to, err = parse("to"); err != nil {
		return
	}
	if !to.After(from) {
		err = badParam("to", "must be after from")
	}
	return
}

func siteParam(c echo.Context) (string, error) {
	s := c.QueryParam("site")
	if s == "" {
		return "", badParam("site", "required (a site id)")
	}
	return s, nil
}

// emissions serves GET /api/v1/emissions?site=&from=&to=&method=[&step=].
func (h *handler) emissions(c echo.Context) error {
	site, err := siteParam(c)
	if err != nil {
		return err
	}
	from, to, err := period(c)
	if err != nil {
		return err
	}
	method := emissions.Method(c.QueryParam("method"))
	if method == "" {
		method = emissions.LocationBased
	}
	if method != emissions.LocationBased && method != emissions.MarketBased {
		return badParam("method", "want location or market, got %q", method)
	}
	var step time.Duration
	if s := c.QueryParam("step"); s != "" {
		d, err := config.ParseDuration(s)
		if err != nil || d.D() <= 0 || d.D()%time.Hour != 0 {
			return badParam("step", "want a whole number of hours such as 1h or 24h, got %q", s)
		}
		step = d.D()
	}
	tenant, _ := caller(c)
	res, err := h.d.Accountant.Emissions(c.Request().Context(), tenant, service.Request{Site: site, From: from, To: to, Method: method, Step: step})
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(http.StatusOK, res)
}

// kpis serves GET /api/v1/kpis?site=&from=&to=.
func (h *handler) kpis(c echo.Context) error {
	site, err := siteParam(c)
	if err != nil {
		return err
	}
	from, to, err := period(c)
	if err != nil {
		return err
	}
	tenant, _ := caller(c)
	res, err := h.d.Accountant.KPIs(c.Request().Context(), tenant, site, from, to)
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(http.StatusOK, res)
}

// intensityResult is the answer to a stored import.
type intensityResult struct {
	Provider string    `json:"provider"`
	Stored   int       `json:"stored"`
	Series   int       `json:"series"`
	Zones    []string  `json:"zones"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
}

// putIntensity serves PUT /api/v1/carbon-intensity: a CSV body of
// zone,timestamp,g_per_kwh[,signal][,kind] lines, stored all or nothing as
// provider="manual" in the caller's tenant.
func (h *handler) putIntensity(c echo.Context) error {
	if err := requireRole(c, "import carbon intensity", web.RoleAdmin, web.RoleOperator, web.RoleOfficer); err != nil {
		return err
	}
	if h.d.Writer == nil {
		return &web.Error{Code: http.StatusNotImplemented, Msg: "this server stores no imported carbon intensity"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, h.d.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &web.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", h.d.MaxBodyBytes)}
		}
		return &web.Error{Code: http.StatusBadRequest, Msg: "reading the body failed", Err: err}
	}
	pts, err := providers.ParseCSV(bytes.NewReader(body))
	if err != nil {
		return csvError(err)
	}
	if len(pts) == 0 {
		return &web.Error{Code: http.StatusBadRequest, Msg: "no data lines after the header; nothing stored"}
	}
	lines := dataLines(body)
	now := h.now()
	var rej []sample.Rejection
	for i, p := range pts {
		switch {
		case p.Time.After(now.Add(h.d.MaxFutureSkew)):
			rej = append(rej, sample.Rejection{Line: lines[i], Field: providers.CSVColumnTimestamp, Reason: sample.ReasonTooFarInFuture,
				Detail: fmt.Sprintf("%s is more than %s ahead of the server's clock; forecasts are not stored", p.Time.Format(time.RFC3339), h.d.MaxFutureSkew)})
		case p.Time.Before(now.Add(-h.d.Retention + time.Hour)):
			rej = append(rej, sample.Rejection{Line: lines[i], Field: providers.CSVColumnTimestamp, Reason: sample.ReasonTooOld,
				Detail: fmt.Sprintf("%s is older than the store's retention (%s)", p.Time.Format(time.RFC3339), h.d.Retention)})
		}
	}
	if len(rej) > 0 {
		return rejected(http.StatusBadRequest, len(rej), rej, false)
	}
	tenant, _ := caller(c)
	ctx := c.Request().Context()
	conf, err := service.Conflicts(ctx, h.d.Accountant.QueryableFor(tenant), service.ManualProvider, pts)
	if err != nil {
		return err
	}
	if len(conf) > 0 {
		for i := range pts {
			if v, ok := conf[i]; ok {
				rej = append(rej, sample.Rejection{Line: lines[i], Field: providers.CSVColumnValue, Reason: sample.ReasonDuplicateSample,
					Detail: fmt.Sprintf("zone %s at %s already has the value %v from an earlier import; a stored value cannot be changed",
						pts[i].Zone, pts[i].Time.Format(time.RFC3339), v)})
			}
		}
		return rejected(http.StatusConflict, len(rej), rej, false)
	}
	res, err := service.WriteIntensity(ctx, h.d.Writer, h.d.Backfill, h.d.Window, now, service.ManualProvider, tenant, pts)
	if err != nil {
		if errors.Is(err, service.ErrNoBackfill) {
			return &web.Error{Code: http.StatusNotImplemented, Msg: err.Error()}
		}
		return err
	}
	if res.RejectedCount > 0 {
		// Checked above, so unexpected: say plainly that part was stored.
		h.log.Error("carbon-intensity import partly refused by the store", "tenant", tenant, "refused", res.RejectedCount)
		return &web.Error{Code: http.StatusInternalServerError, Msg: fmt.Sprintf("the store refused %d of %d samples after validation; %d were stored",
			res.RejectedCount, len(pts), res.Accepted), Detail: map[string]any{"rejections": res.Rejected}}
	}
	out := intensityResult{Provider: service.ManualProvider, Stored: res.Accepted, From: pts[0].Time, To: pts[0].Time}
	series := map[string]bool{}
	for _, p := range pts {
		if !slices.Contains(out.Zones, p.Zone) {
			out.Zones = append(out.Zones, p.Zone)
		}
		series[p.Zone+"/"+string(p.Signal)+"/"+string(p.Kind)] = true
		out.From, out.To = minTime(out.From, p.Time), maxTime(out.To, p.Time)
	}
	slices.Sort(out.Zones)
	out.Series = len(series)
	h.log.Info("carbon intensity imported", "tenant", tenant, "points", res.Accepted, "zones", out.Zones)
	return c.JSON(http.StatusOK, out)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// csvError turns ParseCSV's errors into a 400 listing each bad line.
func csvError(err error) error {
	var ce *providers.CSVErrors
	var pe *carbon.ParseError
	switch {
	case errors.As(err, &ce):
		rej := make([]sample.Rejection, 0, len(ce.Lines))
		for _, l := range ce.Lines {
			rej = append(rej, parseRejection(l))
		}
		return rejected(http.StatusBadRequest, len(rej), rej, ce.Truncated)
	case errors.As(err, &pe):
		return rejected(http.StatusBadRequest, 1, []sample.Rejection{parseRejection(pe)}, false)
	}
	return &web.Error{Code: http.StatusBadRequest, Msg: "unreadable CSV; nothing stored", Err: err}
}

func parseRejection(e *carbon.ParseError) sample.Rejection {
	r := sample.Rejection{Line: e.Line, Field: e.Column, Reason: sample.ReasonInvalidValue, Detail: e.Error()}
	if e.Column == "" {
		r.Field, r.Reason = "line", sample.ReasonMalformed
	}
	return r
}

func rejected(code, n int, rej []sample.Rejection, truncated bool) error {
	return &web.Error{Code: code, Msg: fmt.Sprintf("%d bad line(s); nothing stored", n),
		Detail: map[string]any{"rejections": rej, "truncated": truncated}}
}

// dataLines returns the 1-based line of each data record of a CSV body
// that ParseCSV accepted whole, in order (blank lines skipped as it does).
func dataLines(body []byte) []int {
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var lines []int
	first := true
	for {
		_, err := cr.Read()
		if err != nil {
			break
		}
		if first {
			first = false
			continue
		}
		l, _ := cr.FieldPos(0)
		lines = append(lines, l)
	}
	return lines
}
