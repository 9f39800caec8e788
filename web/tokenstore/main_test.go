package tokenstore_test

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
	shared = chtest.StartShared("greenloop-tokenstore-")
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// newDB returns a fresh database name.
func newDB() string { return fmt.Sprintf("tokenstore_t%d", dbCount.Add(1)) }

// dial opens a connection of its own to the shared server, as a second
// greenloop server would, closed at the end of the test; it skips (or fails
// in CI) without a server.
func dial(t testing.TB) driver.Conn {
	t.Helper()
	return chtest.Dial(t, shared.Server(t).Addr)
}
