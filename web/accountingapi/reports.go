package accountingapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/web"
)

// Reports serves the EU data-centre report: operator entries kept in
// Service.Inputs, measured values from the Accountant.
type Reports struct {
	Service *report.Service
}

// yearParam reads a calendar year (the year the report covers).
func yearParam(name, v string) (int, error) {
	y, err := strconv.Atoi(v)
	if err != nil || y < 2000 || y > 2100 {
		return 0, badParam(name, "want a calendar year such as 2025, got %q", v)
	}
	return y, nil
}

// putReportInputs serves PUT /api/v1/sites/{id}/report-inputs/{year}: a JSON
// object of field id → value (bare, null to clear, or {"value","quality",
// "omission_reason"}), stored all or nothing.
func (h *handler) putReportInputs(c echo.Context) error {
	if err := requireRole(c, "enter report fields", web.RoleAdmin, web.RoleOfficer); err != nil {
		return err
	}
	tenant, role := caller(c)
	site, err := h.d.Accountant.Site(tenant, c.Param("id"))
	if err != nil {
		return toHTTP(err)
	}
	year, err := yearParam("year", c.Param("year"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, h.d.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &web.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", h.d.MaxBodyBytes)}
		}
		return &web.Error{Code: http.StatusBadRequest, Msg: "reading the body failed", Err: err}
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return &web.Error{Code: http.StatusBadRequest, Msg: "want a JSON object of field id to value; nothing stored",
			Detail: map[string]string{"parse_error": fmt.Sprint(err)}}
	}
	if len(fields) == 0 {
		return &web.Error{Code: http.StatusBadRequest, Msg: "no fields given; nothing stored"}
	}
	// Who: the token's name, with its role and tenant; "role ..." alone when auth is off.
	who := "role " + role
	if name, _ := c.Get(web.ContextKeyName).(string); name != "" {
		who = name + " (" + who + ")"
	}
	if tenant != "" {
		who += " of tenant " + tenant
	}
	ctx := c.Request().Context()
	// Entries are kept under the site's tenant ("default" in single-tenant mode).
	if err := h.d.Reports.Service.Inputs.Put(ctx, site.SiteTenant(), site.ID, year, fields, who); err != nil {
		return inputError(err)
	}
	in, err := h.d.Reports.Service.Inputs.Get(ctx, site.SiteTenant(), site.ID, year)
	if err != nil {
		return err
	}
	h.log.Info("report inputs entered", "tenant", tenant, "site", site.ID, "year", year, "fields", len(fields))
	return c.JSON(http.StatusOK, in)
}

// getReportInputs serves GET /api/v1/sites/{id}/report-inputs/{year}: every entry with its history.
func (h *handler) getReportInputs(c echo.Context) error {
	tenant, _ := caller(c)
	site, err := h.d.Accountant.Site(tenant, c.Param("id"))
	if err != nil {
		return toHTTP(err)
	}
	year, err := yearParam("year", c.Param("year"))
	if err != nil {
		return err
	}
	in, err := h.d.Reports.Service.Inputs.Get(c.Request().Context(), site.SiteTenant(), site.ID, year)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, in)
}

// inputError maps the input store's refusals to a 400 naming each field.
func inputError(err error) error {
	var fields []map[string]string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *report.FieldError
		if errors.As(e, &fe) {
			fields = append(fields, map[string]string{"field": fe.Field, "error": fe.Err.Error()})
		}
	}
	walk(err)
	if len(fields) == 0 && !errors.Is(err, report.ErrUnknownField) && !errors.Is(err, report.ErrNotEnterable) {
		return err
	}
	return &web.Error{Code: http.StatusBadRequest, Msg: "invalid report fields; nothing stored: " + err.Error(), Detail: map[string]any{"fields": fields}}
}

// reportEU serves GET /api/v1/reports/eu?site=&year=&format=: a preview of
// the site's report for the calendar year, built from its meters now.
func (h *handler) reportEU(c echo.Context) error {
	siteID, err := siteParam(c)
	if err != nil {
		return err
	}
	year, err := yearParam("year", c.QueryParam("year"))
	if err != nil {
		return err
	}
	f := report.FormatJSON
	if v := c.QueryParam("format"); v != "" {
		if f, err = report.ParseFormat(v); err != nil {
			return badParam("format", "want json, csv, xlsx or pdf, got %q", v)
		}
	}
	tenant, _ := caller(c)
	site, err := h.d.Accountant.Site(tenant, siteID)
	if err != nil {
		return toHTTP(err)
	}
	var buf bytes.Buffer
	if _, err := h.d.Accountant.EUReport(c.Request().Context(), h.d.Reports.Service, tenant, site.ID, year, f, &buf); err != nil {
		return toHTTP(err)
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%d-eu-report.%s"`, site.ID, year, strings.ToLower(string(f))))
	return c.Blob(http.StatusOK, f.ContentType(), buf.Bytes())
}

// snapshotTenant is the tenant the report stores key a caller's entries and
// snapshots by: the caller's, or "default" in single-tenant mode (as
// config.Site.SiteTenant names it).
func snapshotTenant(tenant string) string {
	if tenant == "" {
		return "default"
	}
	return tenant
}

// snapshotJSON is a snapshot's metadata as the API shows it.
type snapshotJSON struct {
	ID        string    `json:"id"`
	SHA256    string    `json:"sha256"`
	Site      string    `json:"site"`
	Year      int       `json:"year"`
	Status    string    `json:"status"`
	By        string    `json:"by"`
	CreatedAt time.Time `json:"created_at"`
}

func toSnapshotJSON(s report.Snapshot) snapshotJSON {
	return snapshotJSON{ID: s.ID, SHA256: s.SHA256, Site: s.Site, Year: s.Year, Status: s.Status, By: s.By, CreatedAt: s.CreatedAt}
}

// freezeReport serves POST /api/v1/reports/eu/snapshots?site=&year=[&draft=true]:
// builds the report now and freezes it with its content hash. A final
// snapshot of a report with blocking validation errors is refused (422,
// listing them); draft=true freezes it anyway, marked draft.
func (h *handler) freezeReport(c echo.Context) error {
	if err := requireRole(c, "freeze reports", web.RoleAdmin, web.RoleOfficer); err != nil {
		return err
	}
	siteID, err := siteParam(c)
	if err != nil {
		return err
	}
	year, err := yearParam("year", c.QueryParam("year"))
	if err != nil {
		return err
	}
	draft := false
	if v := c.QueryParam("draft"); v != "" {
		if draft, err = strconv.ParseBool(v); err != nil {
			return badParam("draft", "want true or false, got %q", v)
		}
	}
	tenant, role := caller(c)
	who := "role " + role
	if name, _ := c.Get(web.ContextKeyName).(string); name != "" {
		who = name + " (" + who + ")"
	}
	snap, r, err := h.d.Accountant.FreezeEUReport(c.Request().Context(), h.d.Reports.Service, tenant, siteID, year, draft, who)
	if errors.Is(err, report.ErrBlocking) && r != nil {
		return &web.Error{Code: http.StatusUnprocessableEntity,
			Msg:    "the report has blocking validation errors: fix them, or freeze it with draft=true; nothing stored",
			Detail: map[string]any{"reason": "blocking_errors", "errors": r.Validation.Errors}}
	}
	if err != nil {
		return toHTTP(err)
	}
	c.Response().Header().Set(echo.HeaderLocation, strings.Replace(PathReportSnapshot, ":id", snap.ID, 1))
	return c.JSON(http.StatusCreated, toSnapshotJSON(snap))
}

// listSnapshots serves GET /api/v1/reports/eu/snapshots?site=[&year=].
func (h *handler) listSnapshots(c echo.Context) error {
	siteID, err := siteParam(c)
	if err != nil {
		return err
	}
	year := 0
	if v := c.QueryParam("year"); v != "" {
		if year, err = yearParam("year", v); err != nil {
			return err
		}
	}
	tenant, _ := caller(c)
	site, err := h.d.Accountant.Site(tenant, siteID)
	if err != nil {
		return toHTTP(err)
	}
	list, err := h.d.Reports.Service.Snapshots.List(c.Request().Context(), site.SiteTenant(), site.ID, year)
	if err != nil {
		return err
	}
	out := struct {
		Snapshots []snapshotJSON `json:"snapshots"`
	}{Snapshots: []snapshotJSON{}}
	for _, s := range list {
		out.Snapshots = append(out.Snapshots, toSnapshotJSON(s))
	}
	return c.JSON(http.StatusOK, out)
}

// getSnapshot serves GET /api/v1/reports/eu/snapshots/{id}?format=: the frozen
// report, byte for byte in JSON (its SHA-256 is the snapshot's hash), or
// rendered from it in another format.
func (h *handler) getSnapshot(c echo.Context) error {
	f := report.FormatJSON
	if v := c.QueryParam("format"); v != "" {
		var err error
		if f, err = report.ParseFormat(v); err != nil {
			return badParam("format", "want json, csv, xlsx or pdf, got %q", v)
		}
	}
	tenant, _ := caller(c)
	snap, err := h.d.Reports.Service.Snapshots.Get(c.Request().Context(), snapshotTenant(tenant), c.Param("id"))
	if err != nil {
		if errors.Is(err, report.ErrSnapshotNotFound) {
			return &web.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("no snapshot %q", c.Param("id"))}
		}
		return err
	}
	if _, err := h.d.Accountant.Site(tenant, snap.Site); err != nil {
		return &web.Error{Code: http.StatusNotFound, Msg: fmt.Sprintf("no snapshot %q", c.Param("id"))}
	}
	var buf bytes.Buffer
	if err := report.ExportSnapshot(&buf, snap, f); err != nil {
		return err
	}
	c.Response().Header().Set("X-Content-SHA256", snap.SHA256)
	c.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%d-%s.%s"`, snap.Site, snap.Year, snap.ID, strings.ToLower(string(f))))
	return c.Blob(http.StatusOK, f.ContentType(), buf.Bytes())
}
