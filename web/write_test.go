package web

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang/snappy"

	"github.com/greenloop/greenloop/internal/sample"
)

func TestRemoteWriteRoundTrip(t *testing.T) {
	e := newEnv(t)
	body := remoteWriteBody(t,
		tsIn{labels: []string{"__name__", "greenloop_power_watts", "site", "fra1", "node", "n1"},
			pts: []sample.Point{{T: nowMs - 120_000, V: 100}, {T: nowMs - 60_000, V: 150.5}, {T: nowMs, V: 212.5}}},
		tsIn{labels: []string{"__name__", "greenloop_power_watts", "site", "fra1", "node", "n2"},
			pts: []sample.Point{{T: nowMs, V: 7}}},
	)
	rec := e.do(req{method: http.MethodPost, target: "/api/v1/write?extra_label=room=r1", body: body, header: rwHeaders})
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204; body %s", rec.Code, rec.Body)
	}
	if rec.Body.Len() != 0 {
		t.Errorf("204 with a body: %s", rec.Body)
	}
	got := e.instant(`greenloop_power_watts`, "")
	want := map[string]string{
		"map[__name__:greenloop_power_watts node:n1 room:r1 site:fra1]": "212.5",
		"map[__name__:greenloop_power_watts node:n2 room:r1 site:fra1]": "7",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	b := e.get("/api/v1/query_range?query=greenloop_power_watts%7Bnode%3D%22n1%22%7D&start=1699999880&end=1700000000&step=60s", "", 200)
	wantJSON := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"greenloop_power_watts","node":"n1","room":"r1","site":"fra1"},"values":[[1699999880,"100"],[1699999940,"150.5"],[1700000000,"212.5"]]}]}}`
	if string(b) != wantJSON {
		t.Errorf("query_range:\n got %s\nwant %s", b, wantJSON)
	}

	// Retrying the same request is idempotent: same series and timestamps.
	if rec := e.do(req{method: http.MethodPost, target: "/api/v1/write?extra_label=room=r1", body: body, header: rwHeaders}); rec.Code != http.StatusNoContent {
		t.Fatalf("retry: status %d; body %s", rec.Code, rec.Body)
	}
}

// snappyBomb is a snappy block whose header claims n decoded bytes but which carries almost nothing.
func snappyBomb(n uint64) []byte {
	b := binary.AppendUvarint(nil, n)
	return append(b, 0x00, 'x') // one literal byte
}

func TestRemoteWriteRefusals(t *testing.T) {
	e := newEnv(t, withIngest(4<<10, 64<<10))
	valid := remoteWriteBody(t, tsIn{labels: []string{"__name__", "up"}, pts: []sample.Point{{T: nowMs, V: 1}}})
	noise := noiseBytes(t, 8<<10)
	garbage := snappy.Encode(nil, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})
	tests := []struct {
		name    string
		target  string
		body    []byte
		header  map[string]string
		chunked bool
		code    int
		msg     string
	}{
		{"bomb", "/api/v1/write", snappyBomb(1 << 30), rwHeaders, false, 413, "max_decoded_bytes"},
		{"bomb at the format's 4GiB maximum", "/api/v1/write", snappyBomb(1<<32 - 1), rwHeaders, false, 413, "max_decoded_bytes"},
		{"length beyond the snappy format", "/api/v1/write", snappyBomb(1 << 40), rwHeaders, false, 400, "snappy"},
		{"bomb just over the limit", "/api/v1/write", snappyBomb(64<<10 + 1), rwHeaders, false, 413, "exceeds ingest.max_decoded_bytes"},
		{"oversize body", "/api/v1/write", snappy.Encode(nil, noise), rwHeaders, false, 413, "max_body_bytes"},
		{"oversize chunked body", "/api/v1/write", noise, rwHeaders, true, 413, "max_body_bytes"},
		{"gzip encoding", "/api/v1/write", valid, map[string]string{"Content-Encoding": "gzip"}, false, 415, "Content-Encoding"},
		{"zstd encoding", "/api/v1/write", valid, map[string]string{"Content-Encoding": "zstd"}, false, 415, "Content-Encoding"},
		{"remote write 2.0", "/api/v1/write", valid, map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, false, 415, "remote_write 1.0"},
		{"json content type", "/api/v1/write", valid, map[string]string{"Content-Type": "application/json"}, false, 415, "Content-Type"},
		{"not snappy", "/api/v1/write", []byte("hello, world"), rwHeaders, false, 400, "snappy"},
		{"not protobuf", "/api/v1/write", garbage, rwHeaders, false, 400, "malformed"},
		{"bad extra_label", "/api/v1/write?extra_label=9x=1", valid, rwHeaders, false, 400, "extra_label"},
		{"extra_label without value", "/api/v1/write?extra_label=site", valid, rwHeaders, false, 400, "extra_label"},
		{"extra_label tenant", "/api/v1/write?extra_label=tenant=x", valid, rwHeaders, false, 400, "tenant"},
		{"extra_label twice", "/api/v1/write?extra_label=site=a&extra_label=site=b", valid, rwHeaders, false, 400, "twice"},
		{"extra_label reserved", "/api/v1/write?extra_label=__name__=x", valid, rwHeaders, false, 400, "extra_label"},
		{"GET", "/api/v1/write", nil, nil, false, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPost
			if tc.name == "GET" {
				method = http.MethodGet
			}
			hr := httptest.NewRequest(method, tc.target, bytes.NewReader(tc.body))
			if tc.chunked {
				hr.ContentLength = -1
			}
			for k, v := range tc.header {
				hr.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, hr)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Fatalf("want a JSON error, got %q (%v)", rec.Body, err)
			}
			if !strings.Contains(body.Error, tc.msg) {
				t.Errorf("error %q does not mention %q", body.Error, tc.msg)
			}
		})
	}
	// None of it stored anything.
	if got := e.instant(`up`, ""); len(got) != 0 {
		t.Errorf("refused writes stored %v", got)
	}
}

type rejectedBody struct {
	Error  string `json:"error"`
	Detail struct {
		Accepted   int                `json:"accepted"`
		Rejected   int                `json:"rejected"`
		Rejections []sample.Rejection `json:"rejections"`
	} `json:"detail"`
}

func TestRemoteWritePartialRejection(t *testing.T) {
	e := newEnv(t)
	body := remoteWriteBody(t,
		tsIn{labels: []string{"__name__", "good_metric", "site", "fra1"}, pts: []sample.Point{{T: nowMs, V: 1}, {T: nowMs - 1000, V: 2}}},
		tsIn{labels: []string{"__name__", "bad metric", "site", "fra1"}, pts: []sample.Point{{T: nowMs, V: 1}}},
		tsIn{labels: []string{"__name__", "future_metric"}, pts: []sample.Point{{T: nowMs + 3600_000, V: 1}}},
	)
	rec := e.do(req{method: http.MethodPost, target: "/api/v1/write", body: body, header: rwHeaders})
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
	}
	rb := decode[rejectedBody](t, rec.Body.Bytes())
	if rb.Error != "2 of 4 samples rejected" || rb.Detail.Accepted != 2 || rb.Detail.Rejected != 2 || len(rb.Detail.Rejections) != 2 {
		t.Fatalf("body %s", rec.Body)
	}
	if r := rb.Detail.Rejections[0]; r.Index != 1 || r.Reason != sample.ReasonInvalidMetricName {
		t.Errorf("first rejection %+v", r)
	}
	if r := rb.Detail.Rejections[1]; r.Index != 2 || r.Reason != sample.ReasonTooFarInFuture || r.TimestampMs != nowMs+3600_000 {
		t.Errorf("second rejection %+v", r)
	}
	if got := e.instant(`good_metric`, ""); got["map[__name__:good_metric site:fra1]"] != "1" {
		t.Errorf("valid samples not stored: %v", got)
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportWithABadLine(t *testing.T) {
	text := []byte(strings.Join([]string{
		`# HELP greenloop_temperature_celsius Inlet temperature.`,
		`greenloop_temperature_celsius{site="fra1",sensor="inlet"} 21.5`,
		`this line is { broken`,
		`greenloop_temperature_celsius{site="fra1",sensor="outlet"} 35 1699999999000`,
	}, "\n"))
	nd := []byte(strings.Join([]string{
		`{"metric":"greenloop_temperature_celsius","labels":{"site":"fra1","sensor":"inlet"},"value":21.5}`,
		``,
		`{"metric":"greenloop_temperature_celsius","labels":{"site":"fra1"},"value":"warm"}`,
		`{"metric":"greenloop_temperature_celsius","labels":{"site":"fra1","sensor":"outlet"},"value":35,"timestamp_ms":1699999999000}`,
	}, "\n"))
	for _, tc := range []struct {
		name   string
		target string
		body   []byte
		header map[string]string
	}{
		{"text", "/api/v1/import/prometheus", text, nil},
		{"text gzip", "/api/v1/import/prometheus", gz(t, text), map[string]string{"Content-Encoding": "gzip"}},
		{"ndjson", "/api/v1/import/ndjson", nd, nil},
		{"ndjson gzip", "/api/v1/import/ndjson", gz(t, nd), map[string]string{"Content-Encoding": "gzip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.do(req{method: http.MethodPost, target: tc.target + "?extra_label=room=r2", body: tc.body, header: tc.header})
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			rb := decode[rejectedBody](t, rec.Body.Bytes())
			if rb.Error != "1 of 3 samples rejected" || rb.Detail.Accepted != 2 || len(rb.Detail.Rejections) != 1 || rb.Detail.Rejections[0].Line != 3 {
				t.Fatalf("body %s", rec.Body)
			}
			got := e.instant(`greenloop_temperature_celsius`, "")
			want := map[string]string{
				"map[__name__:greenloop_temperature_celsius room:r2 sensor:inlet site:fra1]":  "21.5",
				"map[__name__:greenloop_temperature_celsius room:r2 sensor:outlet site:fra1]": "35",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestImportRefusals(t *testing.T) {
	e := newEnv(t, withIngest(1<<10, 4<<10))
	huge := bytes.Repeat([]byte("greenloop_power_watts{site=\"fra1\"} 1\n"), 1000) // 37 kB, compresses to ~200 B
	tests := []struct {
		name   string
		target string
		body   []byte
		header map[string]string
		code   int
		msg    string
	}{
		{"ok", "/api/v1/import/prometheus", []byte("up 1\n"), nil, 204, ""},
		{"ok ndjson", "/api/v1/import/ndjson", []byte(`{"metric":"up","labels":{"site":"fra1"},"value":1}` + "\n"), nil, 204, ""},
		{"ok with timestamp", "/api/v1/import/prometheus?timestamp=1699999990", []byte("up 1\n"), nil, 204, ""},
		{"empty", "/api/v1/import/prometheus", nil, nil, 204, ""},
		{"oversize body", "/api/v1/import/prometheus", huge, nil, 413, "max_body_bytes"},
		{"gzip bomb", "/api/v1/import/prometheus", gz(t, huge), map[string]string{"Content-Encoding": "gzip"}, 413, "max_decoded_bytes"},
		{"oversize gzip body", "/api/v1/import/prometheus", gz(t, noiseBytes(t, 8<<10)), map[string]string{"Content-Encoding": "gzip"}, 413, "max_body_bytes"},
		{"not gzip", "/api/v1/import/prometheus", []byte("up 1\n"), map[string]string{"Content-Encoding": "gzip"}, 400, "gzip"},
		{"snappy", "/api/v1/import/prometheus", []byte("up 1\n"), map[string]string{"Content-Encoding": "snappy"}, 415, "Content-Encoding"},
		{"bad timestamp", "/api/v1/import/prometheus?timestamp=yesterday", []byte("up 1\n"), nil, 400, "timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(req{method: http.MethodPost, target: tc.target, body: tc.body, header: tc.header})
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 204 {
				return
			}
			if b := decode[errorBody](t, rec.Body.Bytes()); !strings.Contains(b.Error, tc.msg) {
				t.Errorf("error %q does not mention %q", b.Error, tc.msg)
			}
		})
	}
}

// noiseBytes returns n bytes that do not compress.
func noiseBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
