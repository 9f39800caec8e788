package tokenstore

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/adminapi"
)

// The admin API's routes.
const (
	PathTokens = "/api/v1/admin/tokens"
	PathRevoke = "/api/v1/admin/tokens/revoke"
)

// OpenAPI describes the admin API: an OpenAPI 3.0 document whose paths and
// components.schemas belong in the server's /api/v1/openapi.json
// (web.Server.AddOpenAPI); its other $refs point at that document's
// components (Error, Unauthorized, Forbidden).
//
//go:embed openapi.json
var OpenAPI []byte

// APIDeps are what the token admin API needs (adminapi.Deps): the Store,
// Applied to call after a change (the Syncer's Refresh, so that this
// server applies it at once), a Logger.
type APIDeps = adminapi.Deps[*Store]

// maxBody bounds a request body: a role, a name, a selector.
const maxBody = 16 << 10

// RegisterAPI mounts the admin API on e, for admins only, each confined to
// its own tenant: list its tokens (hash prefixes only), add one (the token
// is in the answer, once), revoke some. e must be a web.Server's, whose
// guard has authenticated the caller.
func RegisterAPI(e *echo.Echo, d APIDeps) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &api{d: d}
	e.GET(PathTokens, h.list)
	e.POST(PathTokens, h.add)
	e.POST(PathRevoke, h.revoke)
}

type api struct{ d APIDeps }

// apiToken is a token as the API shows it: never the hash whole.
type apiToken struct {
	HashPrefix string     `json:"hash_prefix"`
	Tenant     string     `json:"tenant"`
	Role       string     `json:"role"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	Revoked    bool       `json:"revoked"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	// Problem says why a live row is not in force (a hand-written bad row).
	Problem string `json:"problem,omitempty"`
}

func toAPI(e Entry) apiToken {
	t := apiToken{HashPrefix: e.Prefix(), Tenant: e.Tenant, Role: string(e.Role), Name: e.Name,
		CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy, Revoked: e.Revoked, RevokedBy: e.RevokedBy}
	if e.Revoked {
		at := e.RevokedAt
		t.RevokedAt = &at
	} else if _, err := e.Token(); err != nil {
		t.Problem = err.Error()
	}
	return t
}

// caller returns the caller's tenant and an audit name, or 403 unless an
// admin of a tenant.
func caller(c echo.Context) (tenant, by string, err error) {
	tenant, name, err := adminapi.Caller(c, "tokens", true)
	if err != nil {
		return "", "", err
	}
	return tenant, adminapi.By(name, tenant), nil
}

func unavailable(err error) error { return adminapi.Unavailable("token", err) }

// decode reads a JSON body of at most maxBody bytes into v, unknown fields refused.
func decode(c echo.Context, v any) error { return adminapi.DecodeJSON(c, v, maxBody) }

func (h *api) list(c echo.Context) error {
	tenant, _, err := caller(c)
	if err != nil {
		return err
	}
	revoked := c.QueryParam("revoked") == "true"
	entries, err := h.d.Store.matching(c.Request().Context(), "tenant = ?", []any{tenant})
	if err != nil {
		return unavailable(err)
	}
	out := []apiToken{}
	for _, e := range entries {
		if e.Tenant == tenant && (revoked || !e.Revoked) {
			out = append(out, toAPI(e))
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": out})
}

func (h *api) add(c echo.Context) error {
	tenant, by, err := caller(c)
	if err != nil {
		return err
	}
	var in struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	id := web.Identity{Tenant: tenant, Role: web.Role(in.Role), Name: in.Name}
	if err := CheckIdentity(id); err != nil {
		return &web.Error{Code: http.StatusBadRequest, Msg: err.Error()}
	}
	secret, hash := NewToken()
	switch err := h.d.Store.Add(c.Request().Context(), web.Token{Hash: hash, Identity: id}, by); {
	case errors.Is(err, ErrNameTaken), errors.Is(err, ErrExists):
		return &web.Error{Code: http.StatusConflict, Msg: err.Error()}
	case err != nil:
		return unavailable(err)
	}
	h.d.Changed(c)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, map[string]any{
		"token": secret, "hash_prefix": fmt.Sprintf("%x", hash[:4]), "tenant": id.Tenant, "role": id.Role, "name": id.Name,
	})
}

func (h *api) revoke(c echo.Context) error {
	tenant, by, err := caller(c)
	if err != nil {
		return err
	}
	var in struct {
		Name       string `json:"name"`
		HashPrefix string `json:"hash_prefix"`
		All        bool   `json:"all"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	hit, err := h.d.Store.Revoke(c.Request().Context(), Selector{Name: in.Name, HashPrefix: in.HashPrefix, Tenant: tenant, All: in.All}, by)
	switch {
	case errors.Is(err, ErrNoMatch):
		return &web.Error{Code: http.StatusNotFound, Msg: err.Error()}
	case errors.Is(err, ErrAmbiguous):
		return &web.Error{Code: http.StatusConflict, Msg: err.Error()}
	case errors.Is(err, ErrBadSelector):
		return &web.Error{Code: http.StatusBadRequest, Msg: err.Error()}
	case err != nil:
		return unavailable(err)
	}
	h.d.Changed(c)
	out := make([]apiToken, len(hit))
	for i, e := range hit {
		out[i] = toAPI(e)
	}
	return c.JSON(http.StatusOK, map[string]any{"revoked": out})
}
