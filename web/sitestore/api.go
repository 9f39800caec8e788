package sitestore

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/adminapi"
)

// The admin API's routes.
const (
	PathSites = "/api/v1/admin/sites"
	PathSite  = "/api/v1/admin/sites/:id"
)

// OpenAPI describes the admin API: an OpenAPI 3.0 document whose paths and
// components.schemas belong in the server's /api/v1/openapi.json
// (web.Server.AddOpenAPI); its other $refs point at that document's
// components (Error, Unauthorized, Forbidden).
//
//go:embed openapi.json
var OpenAPI []byte

// APIDeps are what RegisterAPI needs: the site Store; Applied, when set,
// is called after a put or delete so that this server's Registry applies it
// at once (Syncer.Refresh), the others on their next refresh.
type APIDeps = adminapi.Deps[*Store]

// RegisterAPI mounts the admin API on e, for admins only, each confined to
// its own tenant (without auth, the tenant "default"): list its sites (the
// configuration file's, read-only, and ClickHouse's), put one, delete one.
// e must be a web.Server's, whose guard has authenticated the caller.
func RegisterAPI(e *echo.Echo, d APIDeps) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &api{d: d}
	e.GET(PathSites, h.list)
	e.PUT(PathSite, h.put)
	e.DELETE(PathSite, h.delete)
}

type api struct{ d APIDeps }

// apiSite is a site as the admin API shows it.
type apiSite struct {
	Source string `json:"source"`
	// Site is the site in the YAML shape of the configuration's sites (EncodeSite).
	Site      json.RawMessage `json:"site,omitempty"`
	ID        string          `json:"id"`
	Tenant    string          `json:"tenant"`
	UpdatedAt *time.Time      `json:"updated_at,omitempty"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	// Problem says why a live row is not in force (a hand-written bad row).
	Problem string `json:"problem,omitempty"`
}

// Problem is one validation problem of a site, as the 400 answer's detail lists them.
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"msg"`
}

// caller returns the caller's tenant (without auth, the tenant of sites
// without one, "default") and an audit name, or 403 unless admin.
func caller(c echo.Context) (tenant, by string, err error) {
	tenant, name, err := adminapi.Caller(c, "sites", false)
	if err != nil {
		return "", "", err
	}
	tenant = config.Site{Tenant: tenant}.SiteTenant()
	return tenant, adminapi.By(name, tenant), nil
}

func unavailable(err error) error { return adminapi.Unavailable("site", err) }

// invalid is the 400 answer listing every problem of err by field path.
func invalid(err error) error {
	var probs []Problem
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*config.FieldError); ok {
			probs = append(probs, Problem{Path: fe.Path, Msg: fe.Msg})
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return &web.Error{Code: http.StatusBadRequest, Msg: "invalid site: " + err.Error(), Detail: map[string]any{"problems": probs}}
}

func (h *api) list(c echo.Context) error {
	tenant, _, err := caller(c)
	if err != nil {
		return err
	}
	out := []apiSite{}
	for _, s := range h.d.Store.FileSites() {
		if s.SiteTenant() != tenant {
			continue
		}
		s.Tenant = tenant
		doc, err := EncodeSite(s)
		if err != nil {
			return err
		}
		out = append(out, apiSite{Source: SourceFile, Site: doc, ID: s.ID, Tenant: tenant})
	}
	entries, err := h.d.Store.Entries(c.Request().Context(), tenant)
	if err != nil {
		return unavailable(err)
	}
	for _, e := range entries {
		if e.Deleted || e.Tenant != tenant {
			continue
		}
		at := e.UpdatedAt
		a := apiSite{Source: SourceClickHouse, ID: e.ID, Tenant: e.Tenant, UpdatedAt: &at, UpdatedBy: e.UpdatedBy}
		switch {
		case e.Problem != nil:
			a.Problem = e.Problem.Error()
		case h.d.Store.fileSite(e.Tenant, e.ID):
			a.Problem = ErrFileSite.Error() + ": not in force"
		default:
			a.Site = json.RawMessage(e.JSON)
		}
		out = append(out, a)
	}
	return c.JSON(http.StatusOK, map[string]any{"sites": out})
}

func (h *api) put(c echo.Context) error {
	tenant, by, err := caller(c)
	if err != nil {
		return err
	}
	body, err := adminapi.ReadBody(c, MaxDoc)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return &web.Error{Code: http.StatusBadRequest, Msg: "the body is not JSON (a site, in the shape of an entry of the configuration's sites)"}
	}
	site, err := ParseSite(body)
	if err != nil {
		return &web.Error{Code: http.StatusBadRequest, Msg: err.Error()}
	}
	id := c.Param("id")
	switch {
	case site.ID == "":
		site.ID = id
	case site.ID != id:
		return invalid(&config.FieldError{Path: "id", Msg: fmt.Sprintf("%q differs from the path's %q", site.ID, id)})
	}
	if site.Tenant != "" && site.Tenant != tenant {
		return &web.Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("tenant: %q is not the caller's tenant %q", site.Tenant, tenant)}
	}
	site.Tenant = tenant
	created, err := h.d.Store.Put(c.Request().Context(), site, by)
	switch {
	case errors.Is(err, ErrInvalid):
		return invalid(err)
	case errors.Is(err, ErrFileSite):
		return &web.Error{Code: http.StatusConflict, Msg: err.Error()}
	case err != nil:
		return unavailable(err)
	}
	h.d.Changed(c)
	doc, err := EncodeSite(site)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return c.JSON(code, apiSite{Source: SourceClickHouse, Site: doc, ID: site.ID, Tenant: tenant, UpdatedBy: by})
}

func (h *api) delete(c echo.Context) error {
	tenant, by, err := caller(c)
	if err != nil {
		return err
	}
	err = h.d.Store.Delete(c.Request().Context(), tenant, c.Param("id"), by)
	switch {
	case errors.Is(err, ErrNotFound):
		return &web.Error{Code: http.StatusNotFound, Msg: err.Error()}
	case errors.Is(err, ErrFileSite):
		return &web.Error{Code: http.StatusConflict, Msg: err.Error()}
	case err != nil:
		return unavailable(err)
	}
	h.d.Changed(c)
	return c.NoContent(http.StatusNoContent)
}
