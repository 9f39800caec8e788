package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
)

// findRejection looks through a decoded JSON error body, wherever the server
// put its list of rejections, for an object naming line and giving a reason.
func findRejection(v any, line int) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if l, ok := x["line"].(float64); ok && int(l) == line {
			if r, ok := x["reason"].(string); ok && r != "" {
				return x, true
			}
		}
		for _, e := range x {
			if m, ok := findRejection(e, line); ok {
				return m, true
			}
		}
	case []any:
		for _, e := range x {
			if m, ok := findRejection(e, line); ok {
				return m, true
			}
		}
	}
	return nil, false
}

// TestBadInputIsRejectedClearly sends malformed input over HTTP: the server
// answers 400 saying what was wrong and where, and keeps the good part.
func TestBadInputIsRejectedClearly(t *testing.T) {
	gl := startServer(t, "greenloop", t.TempDir())

	t.Run("text import with a bad metric name", func(t *testing.T) {
		body := "e2e_badinput_good_watts{site=\"fra1\"} 42\n" +
			"bad-metric-name{site=\"fra1\"} 1\n"
		code, resp := gl.importText(t, "", body)
		t.Logf("HTTP %d: %s", code, resp)
		if code != http.StatusBadRequest {
			t.Fatalf("import with a bad line: HTTP %d, want 400: %s", code, resp)
		}
		var decoded any
		if err := json.Unmarshal(resp, &decoded); err != nil {
			t.Fatalf("400 body is not JSON: %v: %s", err, resp)
		}
		rej, ok := findRejection(decoded, 2)
		if !ok {
			t.Fatalf("400 body names no rejection with \"line\": 2 and a \"reason\": %s", resp)
		}
		switch rej["reason"] {
		case "invalid_metric_name", "malformed":
		default:
			t.Errorf("rejection of line 2: reason %q, want invalid_metric_name or malformed", rej["reason"])
		}
		if _, ok := findRejection(decoded, 1); ok {
			t.Errorf("400 body also rejects the good line 1: %s", resp)
		}

		got := gl.queryVector(t, "", `e2e_badinput_good_watts{site="fra1"}`)
		if len(got) != 1 || got[0].Value.V != 42 {
			t.Errorf("good line of a partly bad import: query = %+v, want one series = 42", got)
		}
		if got := gl.queryVector(t, "", `{__name__=~"bad.*"}`); len(got) != 0 {
			t.Errorf("bad line was stored: %+v", got)
		}
	})

	t.Run("remote_write that is not snappy protobuf", func(t *testing.T) {
		code, resp := do(t, http.MethodPost, gl.url+"/api/v1/write", "", "application/x-protobuf", []byte("this is not snappy"))
		t.Logf("HTTP %d: %s", code, resp)
		if code != http.StatusBadRequest {
			t.Errorf("garbage remote_write: HTTP %d, want 400: %s", code, resp)
		}
		var e map[string]any
		if err := json.Unmarshal(resp, &e); err != nil || e["error"] == nil {
			t.Errorf("garbage remote_write: body is not a JSON error: %s", resp)
		}
	})

	// The server is still serving after the bad requests.
	if code, body := do(t, http.MethodGet, gl.url+"/readyz", "", "", nil); code != http.StatusOK {
		t.Errorf("/readyz after bad input: HTTP %d: %s", code, body)
	}
}
