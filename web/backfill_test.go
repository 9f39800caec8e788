package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An officer imports a meter export ten days old (beyond the 72 h
// out-of-order window) through the backfill path, and reads it back; the
// cached answer over that range is refreshed.
func TestBackfillCSV(t *testing.T) {
	e := newEnv(t, withBackfill(), withResultsCache(), withTokens(
		tokenLine("off", "acme", "officer", "olga"), tokenLine("sch", "acme", "scheduler", "sam"),
		tokenLine("agt", "acme", "agent", "a1"), tokenLine("other", "globex", "admin", "gus")))
	day := testNow.Add(-10 * 24 * time.Hour).Truncate(24 * time.Hour)
	var b strings.Builder
	b.WriteString("timestamp,\"greenloop_energy_joules_total{site=\"\"fra1\"\",component=\"\"facility\"\"} [kWh]\"\n")
	for i := 0; i <= 96; i++ {
		fmt.Fprintf(&b, "%s,%g\n", day.Add(time.Duration(i)*15*time.Minute).Format(time.RFC3339), 1000+float64(i)*125)
	}
	q := "/api/v1/query?query=" + urlEscape(`increase(greenloop_energy_joules_total{site="fra1"}[1d])`) + fmt.Sprintf("&time=%d", day.Add(24*time.Hour).Unix())
	rangeQ := "/api/v1/query_range?query=" + urlEscape(`sum(greenloop_energy_joules_total)`) +
		fmt.Sprintf("&start=%d&end=%d&step=3600", day.Add(-24*time.Hour).Unix(), day.Add(48*time.Hour).Unix())
	before := string(e.get(rangeQ, "off", http.StatusOK))

	for _, tc := range []struct {
		token, target string
		want          int
	}{
		{"sch", "/api/v1/import/backfill?format=csv", http.StatusForbidden},
		{"agt", "/api/v1/import/backfill?format=csv", http.StatusForbidden},
		{"off", "/api/v1/import/backfill?format=xml", http.StatusBadRequest},
		{"off", "/api/v1/import/ndjson", http.StatusForbidden}, // officers do not write live data
		{"off", "/api/v1/import/backfill?format=csv", http.StatusNoContent},
	} {
		rec := e.do(req{method: http.MethodPost, target: tc.target, body: []byte(b.String()), token: tc.token})
		if rec.Code != tc.want {
			t.Fatalf("%s %s: %d, want %d: %s", tc.token, tc.target, rec.Code, tc.want, rec.Body)
		}
	}
	// 96 quarter hours of 125 kWh: 12,000 kWh = 4.32e10 J.
	body := string(e.get(q, "off", http.StatusOK))
	if !strings.Contains(body, `"43200000000"`) {
		t.Errorf("increase over the backfilled day: %s, want 4.32e10 J", body)
	}
	if after := string(e.get(rangeQ, "off", http.StatusOK)); after == before || !strings.Contains(after, "fra1") && !strings.Contains(after, "3600000000") {
		t.Errorf("range answer unchanged after the backfill: %s", after)
	}
	// Another tenant does not see it.
	if body := string(e.get(q, "other", http.StatusOK)); strings.Contains(body, "43200000000") {
		t.Errorf("tenant globex sees acme's backfill: %s", body)
	}
	// A cell that is not a number is refused with its line and column, the rest stored.
	bad := "timestamp,greenloop_power_watts{site=\"fra1\"} [kW]\n" + day.Format(time.RFC3339) + ",abc\n" + day.Add(time.Hour).Format(time.RFC3339) + ",2\n"
	rec := e.do(req{method: http.MethodPost, target: "/api/v1/import/backfill?format=csv", body: []byte(bad), token: "off"})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"line":2`) || !strings.Contains(rec.Body.String(), "column 2") {
		t.Fatalf("bad cell: %d %s", rec.Code, rec.Body)
	}
}

func TestBackfillNotConfigured(t *testing.T) {
	e := newEnv(t)
	rec := e.do(req{method: http.MethodPost, target: "/api/v1/import/backfill", body: []byte("x 1 1\n")})
	if rec.Code != http.StatusNotImplemented {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
