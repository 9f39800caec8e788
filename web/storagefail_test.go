package web

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
)

// downStore refuses every commit, as a ClickHouse that is down does.
type downStore struct{ *tsdb.Store }

type downAppender struct{ storage.Appender }

func (d downStore) Appender(ctx context.Context) storage.Appender {
	return downAppender{d.Store.Appender(ctx)}
}

func (a downAppender) Commit() error {
	_ = a.Appender.Rollback()
	return errors.New("dial tcp 127.0.0.1:9000: connection refused")
}

// A write the store could not take answers 503 with Retry-After, so that an
// agent keeps the batch in its queue and sends it again later.
func TestWriteStoreDown(t *testing.T) {
	st, err := tsdb.Open(filepath.Join(t.TempDir(), "data"), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := ingest.NewWriter(downStore{st}, ingest.WriterOptions{Clock: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: downStore{st}, Writer: w, Clock: func() time.Time { return testNow },
		Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute})}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, srv: s, h: s.Handler()}
	for _, target := range []string{"/api/v1/import/prometheus", "/api/v1/write"} {
		body := []byte("up{site=\"fra1\"} 1\n")
		hdr := map[string]string{}
		if target == "/api/v1/write" {
			body = remoteWriteBody(t, tsIn{labels: []string{"__name__", "up", "site", "fra1"}, pts: []sample.Point{{T: testNow.UnixMilli(), V: 1}}})
			hdr = rwHeaders
		}
		rec := e.do(req{method: http.MethodPost, target: target, body: body, header: hdr})
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
			t.Errorf("%s: %d Retry-After %q, want 503 and 5: %s", target, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		if strings.Contains(rec.Body.String(), "connection refused") {
			t.Errorf("%s: the cause leaks to the client: %s", target, rec.Body)
		}
	}
}
