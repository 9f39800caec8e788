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

// shared is the server every test of the package shares (each test has its own database).
var (
	shared  *chtest.Shared
	dbCount atomic.Int64
)

func TestMain(m *testing.M) {
	shared = chtest.StartShared("greenloop-clickhouse-")
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// server returns the shared server, skipping (or failing in CI) without one.
func server(t testing.TB) *chtest.Server { return shared.Server(t) }

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
