package chsync_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/internal/chsync"
)

// shared is the ClickHouse server the tests of the package share.
var shared *chtest.Shared

func TestMain(m *testing.M) {
	shared = chtest.StartShared("greenloop-chsync-")
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func dial(t *testing.T) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{shared.Server(t).Addr}, Protocol: ch.Native,
		Auth: ch.Auth{Username: "default", Database: "default"}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestVersion(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ns := uint64(t0.UnixNano())
	for _, tc := range []struct {
		name string
		now  time.Time
		cur  uint64
		want uint64
	}{
		{name: "new row: the clock", now: t0, cur: 0, want: ns},
		{name: "older row: the clock", now: t0, cur: ns - 1, want: ns},
		{name: "same nanosecond: one above", now: t0, cur: ns, want: ns + 1},
		{name: "clock stepped back: one above", now: t0.Add(-time.Hour), cur: ns, want: ns + 1},
		{name: "clock before 1970: one above", now: time.Unix(-5, 0), cur: 0, want: 1},
	} {
		if got := chsync.Version(tc.now, tc.cur); got != tc.want {
			t.Errorf("%s: Version = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Engine picks the plain engine on a server without replicated samples,
// with or without arguments; Insert writes the rows in one batch.
func TestEngineAndInsert(t *testing.T) {
	conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const db = "chsync_t1"
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ family, args, want string }{
		{"MergeTree", "", "MergeTree"},
		{"ReplacingMergeTree", "version", "ReplacingMergeTree(version)"},
	} {
		got, err := chsync.Engine(ctx, conn, db, "rows", tc.family, tc.args)
		if err != nil || got != tc.want {
			t.Errorf("Engine(%s, %q) = %q, %v; want %q", tc.family, tc.args, got, err, tc.want)
		}
	}
	engine, err := chsync.Engine(ctx, conn, db, "rows", "ReplacingMergeTree", "version")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".rows (k String, v UInt64, version UInt64) ENGINE = "+engine+" ORDER BY k"); err != nil {
		t.Fatal(err)
	}
	// The existing table is of the kind wanted: accepted.
	if _, err := chsync.Engine(ctx, conn, db, "rows", "ReplacingMergeTree", "version"); err != nil {
		t.Errorf("Engine on the existing table: %v", err)
	}

	type row struct {
		k string
		v uint64
	}
	values := func(r row) []any { return []any{r.k, r.v, chsync.Version(time.Now(), 0)} }
	if err := chsync.Insert(ctx, conn, db+".rows", "k, v, version", []row(nil), values); err != nil {
		t.Fatalf("no rows: %v", err)
	}
	in := []row{{"a", 1}, {"b", 2}, {"c", 3}}
	if err := chsync.Insert(ctx, conn, db+".rows", "k, v, version", in, values); err != nil {
		t.Fatal(err)
	}
	got, err := chsync.Select(ctx, conn, db+".rows", "SELECT k, v FROM "+db+".rows ORDER BY k", nil, func(rows driver.Rows) (row, error) {
		var r row
		err := rows.Scan(&r.k, &r.v)
		return r, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(in) {
		t.Errorf("read back %v, want %v", got, in)
	}
	var parts uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'rows' AND active", db).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 1 {
		t.Errorf("%d parts, want 1 (one batch)", parts)
	}
	// Select: arguments bound; no rows is none; a failed scan or query
	// names the table.
	for _, tc := range []struct {
		name, query string
		args        []any
		want        int
		wantErr     string
	}{
		{name: "bound argument", query: "SELECT k, v FROM " + db + ".rows WHERE k = ?", args: []any{"b"}, want: 1},
		{name: "no rows", query: "SELECT k, v FROM " + db + ".rows WHERE k = ?", args: []any{"zz"}, want: 0},
		{name: "scan fails", query: "SELECT v, k FROM " + db + ".rows", wantErr: "read tbl: "},
		{name: "query fails", query: "SELECT nope FROM " + db + ".rows", wantErr: "read tbl: "},
	} {
		got, err := chsync.Select(ctx, conn, "tbl", tc.query, tc.args, func(rows driver.Rows) (row, error) {
			var r row
			err := rows.Scan(&r.k, &r.v)
			return r, err
		})
		switch {
		case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
			t.Errorf("Select %s: %v, want an error starting %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || len(got) != tc.want):
			t.Errorf("Select %s: %v, %v; want %d rows", tc.name, got, err, tc.want)
		}
	}
	// A bad row fails the insert, naming the table; nothing is written.
	bad := func(r row) []any { return []any{r.k, "not a number", uint64(1)} }
	if err := chsync.Insert(ctx, conn, db+".rows", "k, v, version", []row{{"d", 4}}, bad); err == nil {
		t.Error("bad row inserted without error")
	} else if want := "insert into " + db + ".rows: "; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestCreateDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Names that are not plain identifiers are refused before any query
	// (a nil connection would panic).
	for _, db := range []string{"", "1db", "gl-prod", "gl`; DROP TABLE x", "gl prod", "gl.db", "ü"} {
		if _, err := chsync.CreateDatabase(ctx, nil, db, "rows"); err == nil || err.Error() != fmt.Sprintf("database %q is not a plain identifier", db) {
			t.Errorf("CreateDatabase(%q): %v, want it refused", db, err)
		}
	}
	conn := dial(t)
	for _, db := range []string{"chsync_t2", "_chsync_T3"} {
		tbl, err := chsync.CreateDatabase(ctx, conn, db, "rows")
		if err != nil {
			t.Fatalf("CreateDatabase(%q): %v", db, err)
		}
		if want := "`" + db + "`.`rows`"; tbl != want {
			t.Errorf("CreateDatabase(%q) = %q, want %q", db, tbl, want)
		}
		// Again: the database exists, which is no error.
		if _, err := chsync.CreateDatabase(ctx, conn, db, "rows"); err != nil {
			t.Errorf("CreateDatabase(%q) again: %v", db, err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil || n != 1 {
			t.Errorf("database %q: %d found, %v", db, n, err)
		}
	}
}
