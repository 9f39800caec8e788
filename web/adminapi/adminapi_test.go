package adminapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/adminapi"
)

// ctx returns an echo context of a request with body, authenticated as
// tenant, role and name (the guard's context keys; "" leaves a key unset).
func ctx(body, tenant, role, name string) echo.Context {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), httptest.NewRecorder())
	for k, v := range map[string]string{web.ContextKeyTenant: tenant, web.ContextKeyRole: role, web.ContextKeyName: name} {
		if v != "" {
			c.Set(k, v)
		}
	}
	return c
}

// code returns err's HTTP status (0: not a *web.Error, or nil).
func code(err error) int {
	var we *web.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

func TestCaller(t *testing.T) {
	for _, tc := range []struct {
		name               string
		tenant, role, who  string
		needTenant         bool
		wantTenant, wantBy string
		wantCode           int
		wantMsg            string
	}{
		{name: "admin of a tenant", tenant: "acme", role: "admin", who: "ops", needTenant: true, wantTenant: "acme", wantBy: "api:ops@acme"},
		{name: "admin without tenant, none needed", role: "admin", who: "ops", wantBy: "api:ops@"},
		{name: "admin without tenant, one needed", role: "admin", who: "ops", needTenant: true,
			wantCode: http.StatusForbidden, wantMsg: `role "admin" may not manage widgets (admin only)`},
		{name: "operator", tenant: "acme", role: "operator", who: "ops",
			wantCode: http.StatusForbidden, wantMsg: `role "operator" may not manage widgets (admin only)`},
		{name: "no role", tenant: "acme",
			wantCode: http.StatusForbidden, wantMsg: `role "" may not manage widgets (admin only)`},
	} {
		tenant, name, err := adminapi.Caller(ctx("", tc.tenant, tc.role, tc.who), "widgets", tc.needTenant)
		if code(err) != tc.wantCode || (err != nil && err.Error() != tc.wantMsg) {
			t.Errorf("%s: error %v (code %d), want %q (code %d)", tc.name, err, code(err), tc.wantMsg, tc.wantCode)
			continue
		}
		if err == nil && (tenant != tc.wantTenant || adminapi.By(name, tenant) != tc.wantBy) {
			t.Errorf("%s: tenant %q by %q, want %q by %q", tc.name, tenant, adminapi.By(name, tenant), tc.wantTenant, tc.wantBy)
		}
	}
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	err := adminapi.Unavailable("widget", cause)
	var we *web.Error
	if !errors.As(err, &we) {
		t.Fatalf("%T, want *web.Error", err)
	}
	if we.Code != http.StatusServiceUnavailable || we.RetryAfter != 5*time.Second || we.Msg != "the widget store is unavailable; retry later" {
		t.Errorf("got code %d, retry after %v, msg %q", we.Code, we.RetryAfter, we.Msg)
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not wrapped")
	}
}

func TestReadBodyAndDecodeJSON(t *testing.T) {
	type in struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		name     string
		body     string
		limit    int
		wantCode int // of DecodeJSON
		wantName string
		readCode int // of ReadBody
	}{
		{name: "fits", body: `{"name":"a"}`, limit: 64, wantName: "a"},
		{name: "exactly the limit", body: `{"name":"a"}`, limit: 12, wantName: "a"},
		{name: "one byte over", body: `{"name":"ab"}`, limit: 12, wantCode: http.StatusRequestEntityTooLarge, readCode: http.StatusRequestEntityTooLarge},
		{name: "unknown field", body: `{"name":"a","role":"admin"}`, limit: 64, wantCode: http.StatusBadRequest},
		{name: "not JSON", body: `name=a`, limit: 64, wantCode: http.StatusBadRequest},
		{name: "empty", body: ``, limit: 64, wantCode: http.StatusBadRequest},
	} {
		body, err := adminapi.ReadBody(ctx(tc.body, "", "", ""), tc.limit)
		if code(err) != tc.readCode || (err == nil && string(body) != tc.body) {
			t.Errorf("%s: ReadBody %q, %v; want code %d", tc.name, body, err, tc.readCode)
		}
		var v in
		err = adminapi.DecodeJSON(ctx(tc.body, "", "", ""), &v, tc.limit)
		if code(err) != tc.wantCode || (err == nil && v.Name != tc.wantName) {
			t.Errorf("%s: DecodeJSON %+v, %v (code %d); want name %q, code %d", tc.name, v, err, code(err), tc.wantName, tc.wantCode)
		}
	}
}

// Changed calls Applied with the request, and is a no-op without it.
func TestDepsChanged(t *testing.T) {
	c := ctx("", "acme", "admin", "ops")
	var got []*http.Request
	adminapi.Deps[int]{Applied: func(r *http.Request) { got = append(got, r) }}.Changed(c)
	if len(got) != 1 || got[0] != c.Request() {
		t.Errorf("Applied called with %v, want once with the request", got)
	}
	adminapi.Deps[int]{}.Changed(c) // must not panic
}
