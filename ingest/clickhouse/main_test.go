package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// srv is the server every test of the package shares (each test has its own database).
var (
	srv     *chtest.Server
	srvErr  error
	dbCount atomic.Int64
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "greenloop-clickhouse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := chtest.Binary(); err != nil {
		srvErr = err
	} else {
		srv, srvErr = chtest.Start(dir, 0)
	}
	code := m.Run()
	if srv != nil {
		_ = srv.Stop()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// server returns the shared server, skipping (or failing under CI=true) without one.
func server(t testing.TB) *chtest.Server {
	t.Helper()
	if srv == nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no ClickHouse server (Debian package %s): %v", chtest.DebianPackage, srvErr)
		}
		t.Skipf("no ClickHouse server (Debian package %s): %v", chtest.DebianPackage, srvErr)
	}
	return srv
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// newDB returns a fresh database name for t.
func newDB(t testing.TB) string {
	name := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t%d_%s", dbCount.Add(1), name)
}

// dbFor maps a storetest directory to a database (the same one on reopen).
func dbFor(dir string) string { return fmt.Sprintf("st_%016x", xxhash.Sum64String(dir)) }

// open opens a store on the shared server with test-friendly options.
func open(t testing.TB, db string, mod ...func(*clickhouse.Options)) *clickhouse.Store {
	t.Helper()
	s := server(t)
	o := clickhouse.Options{Addrs: []string{s.Addr}, Database: db, FlushInterval: -1}
	for _, f := range mod {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := clickhouse.Open(ctx, o)
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	return st
}
