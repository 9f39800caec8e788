package chnative_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
)

// Exception codes of ClickHouse 18.16.
const (
	codeUnknownTable  = 60
	codeThrowIf       = 395
	codeUnknownUser   = 192
	codeWrongPassword = 193
	codeAuthFailed    = 516 // what later servers answer for both
)

// countOne runs SELECT count() FROM system.one and checks it says 1.
func countOne(ctx context.Context, t *testing.T, c *chnative.Client) {
	t.Helper()
	var n chnative.Fixed[uint64]
	calls := 0
	err := c.Select(ctx, "SELECT count() AS n FROM system.one", nil,
		proto.Results{{Name: "n", Data: &n}}, func(rows int) error {
			calls++
			if rows != 1 || len(n.V) != 1 || n.V[0] != 1 {
				return fmt.Errorf("rows %d, values %v; want 1 row of 1", rows, n.V)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("SELECT count() FROM system.one: %v", err)
	}
	if calls != 1 {
		t.Fatalf("SELECT count() FROM system.one: onBlock called %d times, want 1", calls)
	}
}

func TestSelectNumbers(t *testing.T) {
	const total = 200000
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		var (
			u      chnative.Fixed[uint64]
			i      chnative.Fixed[int64]
			f      chnative.Fixed[float64]
			seen   int
			blocks int
		)
		// A reused buffer must not leak values of an earlier block.
		u.V = make([]uint64, 0, 100)
		err := c.Select(testCtx(t),
			fmt.Sprintf("SELECT number, toInt64(number) - 5 AS i, toFloat64(number) / 4 AS f FROM system.numbers LIMIT %d", total),
			nil,
			proto.Results{{Name: "number", Data: &u}, {Name: "i", Data: &i}, {Name: "f", Data: &f}},
			func(rows int) error {
				blocks++
				if len(u.V) != rows || len(i.V) != rows || len(f.V) != rows {
					return fmt.Errorf("block %d: %d rows but columns of %d, %d, %d values", blocks, rows, len(u.V), len(i.V), len(f.V))
				}
				for k := range rows {
					n := uint64(seen + k)
					if u.V[k] != n || i.V[k] != int64(n)-5 || f.V[k] != float64(n)/4 {
						return fmt.Errorf("row %d: got (%d, %d, %g), want (%d, %d, %g)", n, u.V[k], i.V[k], f.V[k], n, int64(n)-5, float64(n)/4)
					}
				}
				seen += rows
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if seen != total {
			t.Errorf("rows: got %d, want %d", seen, total)
		}
		// max_block_size is 65536: 200000 rows are 4 blocks.
		if blocks < 2 {
			t.Errorf("blocks: got %d, want more than one", blocks)
		}
	})
}

func TestSelectExternalTable(t *testing.T) {
	tests := []struct {
		name string
		ids  []uint64
		want []uint64
	}{
		{"some", []uint64{199999, 3, 70000, 3, 250000, 0}, []uint64{0, 3, 70000, 199999}},
		{"one", []uint64{65536}, []uint64{65536}},
		{"none match", []uint64{200000, 1 << 40}, nil},
		{"empty table", nil, nil},
	}
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ids := proto.ColUInt64(slices.Clone(tt.ids))
				var got []uint64
				var n chnative.Fixed[uint64]
				err := c.Select(testCtx(t),
					"SELECT number FROM numbers(200000) WHERE number IN ids ORDER BY number",
					[]chnative.Table{{Name: "ids", Columns: []proto.InputColumn{{Name: "id", Data: &ids}}}},
					proto.Results{{Name: "number", Data: &n}},
					func(rows int) error {
						if rows == 0 || rows != len(n.V) {
							return fmt.Errorf("onBlock(%d) with %d values", rows, len(n.V))
						}
						got = append(got, n.V...)
						return nil
					})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	})
}

func TestSelectTwoExternalTables(t *testing.T) {
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		ids := proto.ColUInt64{1, 2, 3, 4, 5}
		skip := proto.ColUInt64{2, 4}
		names := proto.ColStr{}
		for _, s := range []string{"a", "b", "c", "d", "e"} {
			names.Append(s)
		}
		var n chnative.Fixed[uint64]
		var got []uint64
		sel := func() error {
			return c.Select(testCtx(t),
				"SELECT number FROM numbers(10) WHERE number IN ids AND number NOT IN (SELECT id FROM skip) ORDER BY number",
				[]chnative.Table{
					{Name: "ids", Columns: []proto.InputColumn{{Name: "id", Data: &ids}}},
					{Name: "skip", Columns: []proto.InputColumn{{Name: "id", Data: &skip}, {Name: "name", Data: &names}}},
				},
				proto.Results{{Name: "number", Data: &n}},
				func(int) error { got = append(got, n.V...); return nil })
		}
		err := sel()
		if err == nil || !strings.Contains(err.Error(), "rows") {
			// skip's columns differ in length: the client must refuse to send it.
			t.Fatalf("tables with columns of 2 and 5 rows: got error %v, want one about rows", err)
		}
		names = proto.ColStr{}
		names.Append("b")
		names.Append("d")
		err = sel()
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{1, 3, 5}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestSelectServerException(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		code       int32
		wantBlocks bool // the exception comes after some data
	}{
		{"unknown table", "SELECT number FROM no_such_table", codeUnknownTable, false},
		{"throwIf", "SELECT toUInt64(throwIf(1)) AS number", codeThrowIf, false},
		{"after data", "SELECT number FROM numbers(1000000) WHERE throwIf(number = 300000) = 0", codeThrowIf, true},
	}
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var n chnative.Fixed[uint64]
				var rows int
				err := c.Select(testCtx(t), tt.query, nil, proto.Results{{Name: "number", Data: &n}},
					func(r int) error { rows += r; return nil })
				var ex *clickhouse.Exception
				if !errors.As(err, &ex) {
					t.Fatalf("got error %v (%T), want a *clickhouse.Exception", err, err)
				}
				if ex.Code != tt.code {
					t.Errorf("code: got %d (%s), want %d", ex.Code, ex.Message, tt.code)
				}
				if ex.Message == "" || ex.Name == "" {
					t.Errorf("exception without name or message: %+v", ex)
				}
				if tt.wantBlocks != (rows > 0) {
					t.Errorf("rows before the exception: got %d, want some: %v", rows, tt.wantBlocks)
				}
				countOne(testCtx(t), t, c)
			})
		}
	})
}

func TestSelectResultMismatch(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		result func() proto.Results
		want   string // in the error
	}{
		{"type", "SELECT number FROM numbers(10)",
			func() proto.Results { return proto.Results{{Name: "number", Data: &chnative.Fixed[int64]{}}} }, "UInt64"},
		{"type float", "SELECT toFloat64(number) AS number FROM numbers(10)",
			func() proto.Results { return proto.Results{{Name: "number", Data: &chnative.Fixed[uint64]{}}} }, "Float64"},
		{"name", "SELECT number FROM numbers(10)",
			func() proto.Results { return proto.Results{{Name: "n", Data: &chnative.Fixed[uint64]{}}} }, "number"},
		{"too few columns", "SELECT number, number AS b FROM numbers(10)",
			func() proto.Results { return proto.Results{{Name: "number", Data: &chnative.Fixed[uint64]{}}} }, "columns"},
		{"too many columns", "SELECT number FROM numbers(10)",
			func() proto.Results {
				return proto.Results{{Name: "number", Data: &chnative.Fixed[uint64]{}}, {Name: "b", Data: &chnative.Fixed[uint64]{}}}
			}, "columns"},
	}
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				calls := 0
				err := c.Select(testCtx(t), tt.query, nil, tt.result(), func(int) error { calls++; return nil })
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got error %v, want one naming %q", err, tt.want)
				}
				var ex *clickhouse.Exception
				if errors.As(err, &ex) {
					t.Errorf("a client-side mismatch reported as a server exception: %v", err)
				}
				if calls != 0 {
					t.Errorf("onBlock called %d times on a mismatched result", calls)
				}
				countOne(testCtx(t), t, c)
			})
		}
	})
}

func TestSelectOnBlockError(t *testing.T) {
	errStop := errors.New("stop here")
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		var n chnative.Fixed[uint64]
		calls := 0
		start := time.Now()
		// No LIMIT: the query ends only because onBlock says so.
		err := c.Select(testCtx(t), "SELECT number FROM system.numbers", nil, proto.Results{{Name: "number", Data: &n}},
			func(int) error { calls++; return errStop })
		if err != errStop { //nolint:errorlint // returned as is, not wrapped
			t.Fatalf("got error %v, want errStop as is", err)
		}
		if calls != 1 {
			t.Errorf("onBlock called %d times after returning an error", calls)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		countOne(testCtx(t), t, c)
	})
}

func TestSelectCancel(t *testing.T) {
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		t.Run("after first block", func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var n chnative.Fixed[uint64]
			calls := 0
			var cancelled time.Time
			err := c.Select(ctx, "SELECT number FROM system.numbers", nil, proto.Results{{Name: "number", Data: &n}},
				func(int) error {
					calls++
					if calls == 1 {
						cancel()
						cancelled = time.Now()
					}
					return nil
				})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got error %v, want one wrapping context.Canceled", err)
			}
			if d := time.Since(cancelled); d > 2*time.Second {
				t.Errorf("returned %v after the cancel", d)
			}
			countOne(testCtx(t), t, c)
		})
		// A query the server is still working on (sleep) ends soon after
		// the context does, with the context's error.
		for _, tc := range []struct {
			name string
			ctx  func(context.Context) (context.Context, context.CancelFunc)
			want error
		}{
			{"while waiting", func(parent context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(parent)
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			}, context.Canceled},
			{"deadline", func(parent context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(parent, 200*time.Millisecond)
			}, context.DeadlineExceeded},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := tc.ctx(testCtx(t))
				defer cancel()
				start := time.Now()
				var n chnative.Fixed[uint64]
				err := c.Select(ctx, "SELECT toUInt64(sleep(3)) AS number", nil, proto.Results{{Name: "number", Data: &n}},
					func(int) error { return nil })
				if !errors.Is(err, tc.want) {
					t.Fatalf("got error %v, want one wrapping %v", err, tc.want)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("returned after %v, want soon after the context ended at 200ms", d)
				}
				countOne(testCtx(t), t, c)
			})
		}
		t.Run("before", func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			cancel()
			calls := 0
			var n chnative.Fixed[uint64]
			err := c.Select(ctx, "SELECT number FROM numbers(10)", nil, proto.Results{{Name: "number", Data: &n}},
				func(int) error { calls++; return nil })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got error %v, want one wrapping context.Canceled", err)
			}
			if calls != 0 {
				t.Errorf("onBlock called %d times on a cancelled context", calls)
			}
		})
	})
}

// clientPort returns the client port of the connection that runs the query,
// as system.processes sees it.
func clientPort(ctx context.Context, t *testing.T, c *chnative.Client) uint16 {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	var port proto.ColUInt16
	var got []uint16
	err := c.Select(ctx, "SELECT port FROM system.processes WHERE query LIKE '%"+marker+"%'", nil,
		proto.Results{{Name: "port", Data: &port}}, func(int) error { got = append(got, port...); return nil })
	if err != nil {
		t.Fatalf("query system.processes: %v", err)
	}
	if len(got) != 1 || got[0] == 0 {
		t.Fatalf("system.processes: got ports %v for the query itself, want one", got)
	}
	return got[0]
}

// TestSelectReuseAndRestart kills and restarts the shared server: it must
// not run in parallel with other tests. Kill rather than Stop: a server
// stopped cleanly waits seconds for the client's idle connections.
func TestSelectReuseAndRestart(t *testing.T) {
	srv := server(t)
	restart := func(t *testing.T) {
		t.Helper()
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		p1 := clientPort(testCtx(t), t, c)
		countOne(testCtx(t), t, c)
		if p2 := clientPort(testCtx(t), t, c); p2 != p1 {
			t.Fatalf("sequential queries ran on ports %d and %d, want one kept connection", p1, p2)
		}

		// The kept connection is stale after a restart: the query is retried
		// on a new one.
		restart(t)
		countOne(testCtx(t), t, c)
		p3 := clientPort(testCtx(t), t, c)
		if p3 == p1 {
			t.Errorf("after a restart the query ran on port %d again", p3)
		}

		// With the server down the query fails (once the stale connection
		// is dropped, on the dial) and the client recovers when it is back.
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		var n chnative.Fixed[uint64]
		err := c.Select(testCtx(t), "SELECT count() AS n FROM system.one", nil, proto.Results{{Name: "n", Data: &n}},
			func(int) error { return nil })
		if restartErr := srv.Restart(); restartErr != nil {
			t.Fatal(restartErr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("server down: got error %v, want connection refused", err)
		}
		countOne(testCtx(t), t, c)
	})
}

// TestSelectRestartTwoIdle restarts the server under a client that keeps
// two connections (MaxIdle's default): the first query after it must not
// fail. See TestFakeServerStalePool.
func TestSelectRestartTwoIdle(t *testing.T) {
	srv := server(t)
	c := newClient(t, false)
	// Two queries at once leave two kept connections.
	var wg sync.WaitGroup
	hold := make(chan struct{})
	errs := make(chan error, 2)
	var started sync.WaitGroup
	started.Add(2)
	for range 2 {
		wg.Go(func() {
			var n chnative.Fixed[uint64]
			first := true
			errs <- c.Select(testCtx(t), "SELECT count() AS n FROM system.one", nil, proto.Results{{Name: "n", Data: &n}}, func(int) error {
				if first {
					first = false
					started.Done()
					<-hold
				}
				return nil
			})
		})
	}
	started.Wait()
	close(hold)
	wg.Wait()
	firstErr(t, errs)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	countOne(testCtx(t), t, c)
}

func TestSelectAuth(t *testing.T) {
	tests := []struct {
		name, user, password string
		codes                []int32
	}{
		{"wrong password", "default", "wrong", []int32{codeWrongPassword, codeAuthFailed}},
		{"unknown user", "nobody", "", []int32{codeUnknownUser, codeAuthFailed}},
	}
	addr := server(t).Addr
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chnative.New(chnative.Options{Addrs: []string{addr}, Username: tt.user, Password: tt.password})
			defer c.Close()
			var n chnative.Fixed[uint64]
			err := c.Select(testCtx(t), "SELECT count() AS n FROM system.one", nil, proto.Results{{Name: "n", Data: &n}},
				func(int) error { return nil })
			var ex *clickhouse.Exception
			if !errors.As(err, &ex) {
				t.Fatalf("got error %v (%T), want a *clickhouse.Exception", err, err)
			}
			if !slices.Contains(tt.codes, ex.Code) {
				t.Errorf("code: got %d (%s), want one of %v", ex.Code, ex.Message, tt.codes)
			}
			if !strings.Contains(err.Error(), "handshake") || !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q names neither the handshake nor the address", err)
			}
		})
	}
	t.Run("unknown database", func(t *testing.T) {
		c := chnative.New(chnative.Options{Addrs: []string{addr}, Database: "no_such_db"})
		defer c.Close()
		var n chnative.Fixed[uint64]
		err := c.Select(testCtx(t), "SELECT count() AS n FROM system.one", nil, proto.Results{{Name: "n", Data: &n}},
			func(int) error { return nil })
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != 81 { // UNKNOWN_DATABASE
			t.Fatalf("got error %v, want a *clickhouse.Exception with code 81", err)
		}
	})
}

func TestSelectAddrsFallback(t *testing.T) {
	// Nothing listens on a port that was free a moment ago.
	dead := deadAddr(t)
	c := chnative.New(chnative.Options{Addrs: []string{dead, server(t).Addr}})
	defer c.Close()
	countOne(testCtx(t), t, c)

	c2 := chnative.New(chnative.Options{Addrs: []string{dead}})
	defer c2.Close()
	var n chnative.Fixed[uint64]
	err := c2.Select(testCtx(t), "SELECT 1", nil, proto.Results{{Data: &n}}, func(int) error { return nil })
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), dead) {
		t.Fatalf("got error %v, want connection refused naming %s", err, dead)
	}
}

func TestSelectConcurrent(t *testing.T) {
	const (
		goroutines = 8
		queries    = 5
	)
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		ctx := testCtx(t)
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*queries)
		for g := range goroutines {
			wg.Go(func() {
				for q := range queries {
					lo := uint64(g*1000 + q*100)
					var n chnative.Fixed[uint64]
					var sum, rows uint64
					err := c.Select(ctx, fmt.Sprintf("SELECT number FROM numbers(%d, 50000)", lo), nil,
						proto.Results{{Name: "number", Data: &n}}, func(r int) error {
							for _, v := range n.V[:r] {
								sum += v
							}
							rows += uint64(r)
							return nil
						})
					// The sum of lo .. lo+49999.
					want := 50000*lo + 50000*49999/2
					switch {
					case err != nil:
						errs <- fmt.Errorf("goroutine %d query %d: %w", g, q, err)
					case rows != 50000 || sum != want:
						errs <- fmt.Errorf("goroutine %d query %d: %d rows summing to %d, want 50000 summing to %d", g, q, rows, sum, want)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestSelectWithTotals(t *testing.T) {
	// Totals are read past: only the grouped rows reach onBlock.
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		var k, n chnative.Fixed[uint64]
		var got [][2]uint64
		err := c.Select(testCtx(t), "SELECT toUInt64(number % 3) AS k, count() AS c FROM numbers(10) GROUP BY k WITH TOTALS ORDER BY k", nil,
			proto.Results{{Name: "k", Data: &k}, {Name: "c", Data: &n}}, func(rows int) error {
				for i := range rows {
					got = append(got, [2]uint64{k.V[i], n.V[i]})
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if want := [][2]uint64{{0, 4}, {1, 3}, {2, 3}}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestSelectWithExtremes(t *testing.T) {
	forCompress(t, func(t *testing.T, compress bool) {
		c := newClient(t, compress)
		var n chnative.Fixed[uint64]
		var got []uint64
		err := c.Select(testCtx(t), "SELECT number FROM numbers(5) SETTINGS extremes = 1", nil,
			proto.Results{{Name: "number", Data: &n}}, func(rows int) error {
				got = append(got, n.V[:rows]...)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}
