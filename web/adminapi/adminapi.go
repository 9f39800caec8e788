// Package adminapi holds what the admin APIs of greenloop's ClickHouse-kept
// registries (web/tokenstore, web/sitestore) share: who the caller is, the
// 503 answer of an unavailable store, and bounded, strict reads of a
// request body.
package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/web"
)

// Deps are what an admin API over a store of type S needs.
type Deps[S any] struct {
	Store S
	// Applied, when set, is called after a change so that this server
	// applies it at once (Syncer.Refresh); the others do on their next refresh.
	Applied func(r *http.Request)
	Logger  *slog.Logger
}

// Changed tells Applied, if set, that c's request changed the store.
func (d Deps[S]) Changed(c echo.Context) {
	if d.Applied != nil {
		d.Applied(c.Request())
	}
}

// RetryAfter is what the 503 answer of an unavailable store asks clients to wait.
const RetryAfter = 5 * time.Second

// Caller returns the tenant and name of the caller that the web.Server's
// guard authenticated, or a 403 unless the caller is an admin (and, with
// needTenant, has a tenant). what names what the API manages ("tokens").
func Caller(c echo.Context, what string, needTenant bool) (tenant, name string, err error) {
	tenant, _ = c.Get(web.ContextKeyTenant).(string)
	role, _ := c.Get(web.ContextKeyRole).(string)
	name, _ = c.Get(web.ContextKeyName).(string)
	if web.Role(role) != web.RoleAdmin || (needTenant && tenant == "") {
		return "", "", &web.Error{Code: http.StatusForbidden, Msg: fmt.Sprintf("role %q may not manage %s (admin only)", role, what)}
	}
	return tenant, name, nil
}

// By is the audit name of a change through the API by name of tenant.
func By(name, tenant string) string { return fmt.Sprintf("api:%s@%s", name, tenant) }

// Unavailable is the 503 answer (Retry-After: RetryAfter) when the what
// store ("token") failed with err.
func Unavailable(what string, err error) error {
	return &web.Error{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("the %s store is unavailable; retry later", what), Err: err, RetryAfter: RetryAfter}
}

// ReadBody reads the request body of c, at most limit bytes: a 400 if the
// read fails, a 413 if it is longer.
func ReadBody(c echo.Context, limit int) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, int64(limit)+1))
	if err != nil {
		return nil, &web.Error{Code: http.StatusBadRequest, Msg: "reading the body failed", Err: err}
	}
	if len(body) > limit {
		return nil, &web.Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", limit)}
	}
	return body, nil
}

// DecodeJSON reads a JSON body of at most limit bytes (ReadBody) into v,
// unknown fields refused with a 400.
func DecodeJSON(c echo.Context, v any, limit int) error {
	body, err := ReadBody(c, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &web.Error{Code: http.StatusBadRequest, Msg: "invalid JSON body: " + err.Error()}
	}
	return nil
}
