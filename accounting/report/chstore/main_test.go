package chstore_test

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

// srv is the server every test of the package shares (each test has its own database).
var (
	srv     *chtest.Server
	srvErr  error
	dbCount atomic.Int64
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "greenloop-chstore-")
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

// newDB returns a fresh database name.
func newDB() string { return fmt.Sprintf("chstore_t%d", dbCount.Add(1)) }

// dial opens a connection of its own to the shared server, as a second
// greenloop server would, closed at the end of the test.
func dial(t testing.TB) driver.Conn {
	t.Helper()
	s := server(t)
	conn, err := ch.Open(&ch.Options{
		Addr: []string{s.Addr}, Protocol: ch.Native,
		Auth:        ch.Auth{Username: "default", Database: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
