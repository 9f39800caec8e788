package sitestore_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

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
	return chtest.Dial(t, shared.Server(t).Addr)
}

func dialAddr(t testing.TB, addr string) driver.Conn { t.Helper(); return chtest.Dial(t, addr) }
