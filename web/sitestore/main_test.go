package sitestore_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// shared is the server every ClickHouse test of the package shares (each
// test has its own database).
var (
	shared  *chtest.Shared
	dbCount atomic.Int64
)

func TestMain(m *testing.M) {
	shared = chtest.StartShared("greenloop-sitestore-")
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// newDB returns a fresh database name.
func newDB() string { return fmt.Sprintf("sitestore_t%d", dbCount.Add(1)) }

// dial opens a connection of its own to the shared server, as a second
// greenloop server would, closed at the end of the test.
func dial(t testing.TB) driver.Conn {
	t.Helper()
	return dialAddr(t, shared.Server(t).Addr)
}

func dialAddr(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{
		Addr: []string{addr}, Protocol: ch.Native,
		Auth:        ch.Auth{Username: "default", Database: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
