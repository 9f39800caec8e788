package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/web/accountingapi"
)

// Each EU report request, and no other, reads its meters through a memo of its own.
func TestReportEnergyMemo(t *testing.T) {
	e := echo.New()
	e.Use(reportEnergyMemo)
	var got []*service.EnergyMemo
	h := func(c echo.Context) error {
		got = append(got, service.EnergyMemoFrom(c.Request().Context()))
		return c.NoContent(http.StatusNoContent)
	}
	e.GET(accountingapi.PathReportEU, h)
	e.GET(accountingapi.PathReportSnapshots, h)
	e.POST(accountingapi.PathReportSnapshots, h)
	e.GET(accountingapi.PathReportSnapshot, h)
	e.GET("/api/v1/emissions", h)
	cases := []struct {
		method, path string
		memo         bool
	}{
		{"GET", "/api/v1/reports/eu?site=fra1&year=2025", true},
		{"GET", "/api/v1/reports/eu?site=fra1&year=2025&format=pdf", true},
		{"POST", "/api/v1/reports/eu/snapshots?site=fra1&year=2025", true},
		{"GET", "/api/v1/reports/eu/snapshots?site=fra1", false},
		{"GET", "/api/v1/reports/eu/snapshots/abc", false},
		{"GET", "/api/v1/emissions?site=fra1", false},
	}
	for _, c := range cases {
		got = nil
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != http.StatusNoContent || len(got) != 1 {
			t.Fatalf("%s %s: %d, handler ran %d times", c.method, c.path, rec.Code, len(got))
		}
		if (got[0] != nil) != c.memo {
			t.Errorf("%s %s: memo %v, want %v", c.method, c.path, got[0] != nil, c.memo)
		}
	}
	// Two requests never share a memo.
	var memos []*service.EnergyMemo
	for range 2 {
		got = nil
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/reports/eu?site=fra1&year=2025", nil))
		memos = append(memos, got[0])
	}
	if memos[0] == memos[1] {
		t.Error("two report requests share a memo")
	}
}
