package chnative_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// The ClickHouse server is started on first use rather than in TestMain:
// fuzzing runs this binary once per worker, and the fuzz test needs no
// server.
var shared struct {
	once sync.Once
	dir  string
	srv  *chtest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		_ = shared.srv.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// server returns the package's ClickHouse server, starting it on first use;
// without clickhouse-server it skips (fails in CI).
func server(t *testing.T) *chtest.Server {
	t.Helper()
	chtest.Require(t)
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "greenloop-chnative-"); shared.err != nil {
			return
		}
		shared.srv, shared.err = chtest.Start(shared.dir, 0)
	})
	if shared.err != nil {
		t.Fatalf("start clickhouse-server: %v", shared.err)
	}
	return shared.srv
}

// newClient returns a client of the shared server, closed at the end of t.
func newClient(t *testing.T, compress bool) *chnative.Client {
	t.Helper()
	c := chnative.New(chnative.Options{Addrs: []string{server(t).Addr}, Compress: compress, DialTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// forCompress runs f as two subtests, without and with compression.
func forCompress(t *testing.T, f func(t *testing.T, compress bool)) {
	t.Helper()
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) { f(t, compress) })
	}
}

// testCtx is a context that ends well before the test binary's timeout, so
// that a hung query fails the test instead of the binary.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
