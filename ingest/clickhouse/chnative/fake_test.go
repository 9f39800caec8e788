package chnative_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
)

// fakeRevision is the revision the fake server announces (that of
// ClickHouse 18.16), and so the revision of the session.
const fakeRevision = 54412

// fakeServer is a loopback listener that answers each connection with a
// server hello and then a canned answer, whatever the client sends. It
// drains what the client writes and closes a connection only after the
// client has, so the client always reads the whole answer (a close with
// unread data would reset the connection instead).
type fakeServer struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	hello    []byte
	answers  [][]byte // the answer of the i-th connection; the last one repeats
	accepted int
	silent   bool // keep connections open after the answer, as a slow server would
	open     map[net.Conn]struct{}
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{addr: ln.Addr().String(), ln: ln, hello: hello(fakeRevision), open: map[net.Conn]struct{}{}}
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		// A client that panicked never closes its connection.
		s.mu.Lock()
		for nc := range s.open {
			_ = nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// set replaces the answers and the hello (nil keeps it), and zeroes the
// count of connections.
func (s *fakeServer) set(hello []byte, answers ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hello != nil {
		s.hello = hello
	}
	s.answers, s.accepted, s.silent = answers, 0, false
}

// setSilent makes the server keep each connection open after its answer.
func (s *fakeServer) setSilent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = true
}

// connections returns how many connections were accepted since set.
func (s *fakeServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

func (s *fakeServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		var answer []byte
		if n := len(s.answers); n > 0 {
			answer = s.answers[min(s.accepted, n-1)]
		}
		s.accepted++
		s.open[nc] = struct{}{}
		out := append(slices.Clone(s.hello), answer...)
		silent := s.silent
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.open, nc)
				s.mu.Unlock()
				_ = nc.Close()
			}()
			drained := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, nc)
				close(drained)
			}()
			_, _ = nc.Write(out)
			if !silent {
				_ = nc.(*net.TCPConn).CloseWrite()
			}
			select {
			case <-drained:
			case <-time.After(10 * time.Second): // a client that never closes: give up
				_ = nc.Close()
				<-drained
			}
		})
	}
}

// hello is a server hello for rev: name, version 18.16, then the fields
// that rev has.
func hello(rev int) []byte { return helloFields(rev, rev) }

// helloFields is a server hello announcing revision announced, with the
// optional fields of revision rev.
func helloFields(announced, rev int) []byte {
	var b proto.Buffer
	proto.ServerCodeHello.Encode(&b)
	b.PutString("ClickHouse")
	b.PutUVarInt(18)
	b.PutUVarInt(16)
	b.PutUVarInt(uint64(announced))
	if proto.FeatureTimezone.In(rev) {
		b.PutString("UTC")
	}
	if proto.FeatureDisplayName.In(rev) {
		b.PutString("fake")
	}
	if proto.FeatureVersionPatch.In(rev) {
		b.PutUVarInt(1)
	}
	return b.Buf
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Packets of a server's answer at fakeRevision, built with ch-go's encoders.

func packets(ps ...[]byte) []byte { return slices.Concat(ps...) }

func blockPacket(code proto.ServerCode, cols ...proto.InputColumn) []byte {
	var b proto.Buffer
	code.Encode(&b)
	b.PutString("") // table name
	blk := proto.Block{Info: proto.BlockInfo{BucketNum: -1}, Columns: len(cols)}
	if len(cols) > 0 {
		blk.Rows = cols[0].Data.Rows()
	}
	if err := blk.EncodeBlock(&b, fakeRevision, cols); err != nil {
		panic(err)
	}
	return b.Buf
}

func uint64s(name string, v ...uint64) proto.InputColumn {
	c := proto.ColUInt64(v)
	return proto.InputColumn{Name: name, Data: &c}
}

func data(v ...uint64) []byte { return blockPacket(proto.ServerCodeData, uint64s("number", v...)) }

func exception(code int32, nested ...int32) []byte {
	var b proto.Buffer
	proto.ServerCodeException.Encode(&b)
	for i, c := range append([]int32{code}, nested...) {
		b.PutInt32(c)
		b.PutString("DB::Exception")
		b.PutString("DB::Exception: fake failure")
		b.PutString("") // stack trace
		b.PutBool(i < len(nested))
	}
	return b.Buf
}

func progress(rows uint64) []byte {
	var b proto.Buffer
	proto.ServerCodeProgress.Encode(&b)
	proto.Progress{Rows: rows, Bytes: 8 * rows, TotalRows: 1000}.EncodeAware(&b, fakeRevision)
	return b.Buf
}

func profile() []byte {
	var b proto.Buffer
	proto.Profile{Rows: 3, Blocks: 1, Bytes: 24, AppliedLimit: true, RowsBeforeLimit: 3}.EncodeAware(&b, fakeRevision)
	return b.Buf
}

func logPacket() []byte {
	var (
		tm   = proto.ColDateTime{Data: []proto.DateTime{1700000000}}
		us   = proto.ColUInt32{123}
		tid  = proto.ColUInt64{42}
		prio = proto.ColInt8{6}
	)
	str := func(s string) *proto.ColStr {
		var c proto.ColStr
		c.Append(s)
		return &c
	}
	var b proto.Buffer
	proto.ServerCodeLog.Encode(&b)
	b.PutString("")
	cols := []proto.InputColumn{
		{Name: "event_time", Data: &tm},
		{Name: "event_time_microseconds", Data: &us},
		{Name: "host_name", Data: str("fake")},
		{Name: "query_id", Data: str("q")},
		{Name: "thread_id", Data: &tid},
		{Name: "priority", Data: &prio},
		{Name: "source", Data: str("executeQuery")},
		{Name: "text", Data: str("a log line")},
	}
	if err := (proto.Block{Info: proto.BlockInfo{BucketNum: -1}, Columns: len(cols), Rows: 1}).EncodeBlock(&b, fakeRevision, cols); err != nil {
		panic(err)
	}
	return b.Buf
}

func code(c proto.ServerCode) []byte { return []byte{byte(c)} }

var endOfStream = code(proto.ServerCodeEndOfStream)

// header is the empty block a server sends first, naming the columns.
var header = data()

// errInconsistent is what selectFake's onBlock returns when the rows it is
// given are not the number of values decoded.
var errInconsistent = errors.New("rows and values differ")

// selectFake runs a SELECT of one UInt64 column "number" on c and returns the
// values of every block.
func selectFake(ctx context.Context, c *chnative.Client) ([]uint64, error) {
	var n chnative.Fixed[uint64]
	var got []uint64
	err := c.Select(ctx, "SELECT number FROM fake", nil, proto.Results{{Name: "number", Data: &n}}, func(rows int) error {
		if rows != len(n.V) {
			return fmt.Errorf("%w: onBlock(%d) with %d values", errInconsistent, rows, len(n.V))
		}
		got = append(got, n.V...)
		return nil
	})
	return got, err
}

// streamCase is an answer to a query and what the client makes of it.
type streamCase struct {
	name   string
	answer []byte
	want   []uint64
	code   int32  // of the *clickhouse.Exception, if not 0
	errHas string // in the error, if not ""
	errIs  error
}

func streamCases() []streamCase {
	two := data(1, 2, 3)
	return []streamCase{
		{name: "data", answer: packets(header, progress(3), data(1, 2, 3), profile(), progress(0), endOfStream), want: []uint64{1, 2, 3}},
		{name: "blocks", answer: packets(header, data(1, 2), data(), data(3), endOfStream), want: []uint64{1, 2, 3}},
		{name: "empty", answer: packets(header, progress(0), endOfStream)},
		{name: "nothing", answer: endOfStream},
		// Logs come only to clients that ask for them (send_logs_level).
		{name: "log", answer: packets(header, data(5), logPacket(), endOfStream), want: []uint64{5}, errHas: "unexpected packet 10"},
		{name: "totals", answer: packets(header, data(1, 2), blockPacket(proto.ServerCodeTotals, uint64s("number", 3)), endOfStream), want: []uint64{1, 2}},
		{name: "extremes", answer: packets(header, data(1, 2), blockPacket(proto.ServerCodeExtremes, uint64s("number", 1, 2)), endOfStream), want: []uint64{1, 2}},
		{name: "exception", answer: packets(header, exception(60)), code: 60, errHas: "fake failure"},
		{name: "exception after data", answer: packets(header, data(7), exception(395)), want: []uint64{7}, code: 395},
		{name: "nested exception", answer: exception(60, 81), code: 60},
		{name: "truncated block", answer: packets(header, two[:len(two)-5]), errIs: io.ErrUnexpectedEOF},
		// ch-go wraps the EOF before binary.ReadUvarint can tell it is
		// unexpected.
		{name: "truncated packet code", answer: packets(header, []byte{0x80}), errIs: io.EOF},
		{name: "no end of stream", answer: packets(header, data(1)), want: []uint64{1}, errIs: io.EOF},
		{name: "unknown packet", answer: packets(header, []byte{99}), errHas: "unexpected packet 99"},
		{name: "pong", answer: packets(header, code(proto.ServerCodePong)), errHas: "unexpected packet 4"},
		{name: "wrong type", answer: packets(blockPacket(proto.ServerCodeData, proto.InputColumn{Name: "number", Data: &proto.ColInt64{-1}}), endOfStream), errHas: "Int64"},
		{name: "wrong name", answer: packets(blockPacket(proto.ServerCodeData, uint64s("other", 1)), endOfStream), errHas: "other"},
		{name: "two columns", answer: packets(blockPacket(proto.ServerCodeData, uint64s("number", 1), uint64s("b", 2)), endOfStream), errHas: "columns"},
	}
}

// checkStream checks the outcome of a streamCase.
func checkStream(t *testing.T, tt streamCase, got []uint64, err error) {
	t.Helper()
	wantErr := tt.code != 0 || tt.errHas != "" || tt.errIs != nil
	switch {
	case !wantErr && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case wantErr && err == nil:
		t.Fatalf("no error; got values %v", got)
	}
	if tt.code != 0 {
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != tt.code {
			t.Errorf("got error %v, want a *clickhouse.Exception with code %d", err, tt.code)
		}
	}
	if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
		t.Errorf("got error %v, want one with %q", err, tt.errHas)
	}
	if tt.errIs != nil && !errors.Is(err, tt.errIs) {
		t.Errorf("got error %v, want one wrapping %v", err, tt.errIs)
	}
	if !slices.Equal(got, tt.want) {
		t.Errorf("values: got %v, want %v", got, tt.want)
	}
}

func TestFakeServerStreams(t *testing.T) {
	srv := newFakeServer(t)
	for _, tt := range streamCases() {
		t.Run(tt.name, func(t *testing.T) {
			srv.set(nil, tt.answer)
			c := chnative.New(chnative.Options{Addrs: []string{srv.addr}})
			defer c.Close()
			got, err := selectFake(testCtx(t), c)
			checkStream(t, tt, got, err)
			if n := srv.connections(); n != 1 {
				t.Errorf("connections: got %d, want 1", n)
			}
		})
	}
}

func TestFakeServerHandshake(t *testing.T) {
	okAnswer := packets(header, data(4), endOfStream)
	tests := []struct {
		name   string
		hello  []byte
		errHas string
		code   int32
	}{
		{name: "revision 54032", hello: hello(54032)},
		{name: "revision 54058", hello: hello(54058)},
		{name: "revision 54401", hello: hello(54401)},
		{name: "revision 54429", hello: hello(54429)},
		// A newer server answers with the fields of the client's revision.
		{name: "newer server", hello: helloFields(54460, 54429)},
		{name: "too old", hello: hello(54031), errHas: "older than 54032"},
		{name: "exception", hello: exception(193), code: 193},
		{name: "data instead of hello", hello: data(1), errHas: "unexpected packet 1 instead of hello"},
		{name: "truncated", hello: hello(fakeRevision)[:5], errHas: "decode hello"},
		{name: "empty", hello: []byte{}, errHas: "read hello"},
	}
	srv := newFakeServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.errHas == "" && tt.code == 0 {
				srv.set(tt.hello, okAnswer)
			} else {
				srv.set(tt.hello) // nothing after the hello
			}
			c := chnative.New(chnative.Options{Addrs: []string{srv.addr}})
			defer c.Close()
			got, err := selectFake(testCtx(t), c)
			if tt.errHas == "" && tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, []uint64{4}) {
					t.Errorf("got %v, want [4]", got)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "handshake with "+srv.addr) {
				t.Errorf("error %q does not name the handshake and the address", err)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("got error %v, want one with %q", err, tt.errHas)
			}
			var ex *clickhouse.Exception
			if tt.code != 0 && (!errors.As(err, &ex) || ex.Code != tt.code) {
				t.Errorf("got error %v, want a *clickhouse.Exception with code %d", err, tt.code)
			}
		})
	}
}

func TestFakeServerHandshakeTimeout(t *testing.T) {
	// A listener that accepts (in the kernel) but never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := chnative.New(chnative.Options{Addrs: []string{ln.Addr().String()}, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	start := time.Now()
	_, err = selectFake(testCtx(t), c)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("got error %v, want a timeout", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("took %v, want about the 200ms DialTimeout", d)
	}
}

func TestFakeServerReuse(t *testing.T) {
	answer := packets(header, data(1, 2), endOfStream)
	tests := []struct {
		name        string
		answers     [][]byte
		queries     int
		connections int
		failing     int // the query that fails, from 1; 0 for none
	}{
		// Both answers on one connection: the second query reuses it.
		{name: "reuse", answers: [][]byte{packets(answer, answer)}, queries: 2, connections: 1},
		{name: "reuse thrice", answers: [][]byte{packets(answer, answer, answer)}, queries: 3, connections: 1},
		// The server closes after one answer: the kept connection is stale,
		// and the second query is retried on a new one.
		{name: "stale", answers: [][]byte{answer, answer}, queries: 2, connections: 2},
		// A reused connection that fails after the answer began is not
		// retried: the query fails, and the next one dials.
		{name: "broken after start", answers: [][]byte{packets(answer, header[:3]), answer}, queries: 3, connections: 2, failing: 2},
		// An exception drops the connection.
		{name: "after exception", answers: [][]byte{exception(60), answer}, queries: 2, connections: 2, failing: 1},
	}
	srv := newFakeServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.set(nil, tt.answers...)
			c := chnative.New(chnative.Options{Addrs: []string{srv.addr}})
			defer c.Close()
			for q := 1; q <= tt.queries; q++ {
				got, err := selectFake(testCtx(t), c)
				if q == tt.failing {
					if err == nil {
						t.Errorf("query %d: no error", q)
					}
					continue
				}
				if err != nil {
					t.Fatalf("query %d: %v", q, err)
				}
				if !slices.Equal(got, []uint64{1, 2}) {
					t.Errorf("query %d: got %v, want [1 2]", q, got)
				}
			}
			if n := srv.connections(); n != tt.connections {
				t.Errorf("connections: got %d, want %d", n, tt.connections)
			}
		})
	}
}

func TestFakeServerIdleTimeout(t *testing.T) {
	answer := packets(header, data(1, 2), endOfStream)
	srv := newFakeServer(t)
	srv.set(nil, packets(answer, answer), answer)
	c := chnative.New(chnative.Options{Addrs: []string{srv.addr}, IdleTimeout: 50 * time.Millisecond})
	defer c.Close()
	for q := range 2 {
		if _, err := selectFake(testCtx(t), c); err != nil {
			t.Fatalf("query %d: %v", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The connection idle past IdleTimeout is dropped, not reused.
	if n := srv.connections(); n != 2 {
		t.Errorf("connections: got %d, want 2", n)
	}
}

func TestFakeServerMaxIdle(t *testing.T) {
	answer := packets(header, data(1, 2), endOfStream)
	srv := newFakeServer(t)
	srv.set(nil, packets(answer, answer))
	c := chnative.New(chnative.Options{Addrs: []string{srv.addr}, MaxIdle: 1})
	defer c.Close()
	// Three queries at once take three connections; one is kept.
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			<-start
			var n chnative.Fixed[uint64]
			errs <- c.Select(testCtx(t), "SELECT number", nil, proto.Results{{Name: "number", Data: &n}}, func(int) error {
				time.Sleep(100 * time.Millisecond) // hold the connection while the others dial
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	firstErr(t, errs)
	dialed := srv.connections()
	if dialed != 3 {
		t.Fatalf("connections: got %d, want 3 concurrent", dialed)
	}
	for q := range 3 {
		if _, err := selectFake(testCtx(t), c); err != nil {
			t.Fatalf("query %d: %v", q, err)
		}
	}
	// The one kept connection serves its second answer, then fails stale:
	// one new connection serves the other two queries. Had all three been
	// kept, the stale retries would have found the other two instead.
	if n := srv.connections() - dialed; n != 1 {
		t.Errorf("connections after the concurrent queries: got %d, want 1", n)
	}
}

func TestClosedClient(t *testing.T) {
	srv := newFakeServer(t)
	srv.set(nil, packets(header, data(1), endOfStream))
	c := chnative.New(chnative.Options{Addrs: []string{srv.addr}})
	if _, err := selectFake(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := selectFake(testCtx(t), c); !errors.Is(err, chnative.ErrClosed) {
		t.Errorf("after Close: got error %v, want ErrClosed", err)
	}
	if _, err := selectFake(testCtx(t), chnative.New(chnative.Options{})); err == nil || !strings.Contains(err.Error(), "no address") {
		t.Errorf("no address: got error %v", err)
	}
}

// TestFakeServerStalePool restarts the server (in effect) under a client
// that keeps two connections: the first query must not fail.
func TestFakeServerStalePool(t *testing.T) {
	answer := packets(header, data(1, 2), endOfStream)
	srv := newFakeServer(t)
	// Every connection answers one query and then is closed by the server.
	srv.set(nil, answer)
	c := chnative.New(chnative.Options{Addrs: []string{srv.addr}, MaxIdle: 2})
	defer c.Close()
	var wg sync.WaitGroup
	hold := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			var n chnative.Fixed[uint64]
			errs <- c.Select(testCtx(t), "SELECT number", nil, proto.Results{{Name: "number", Data: &n}}, func(int) error {
				<-hold // both queries hold a connection at once
				return nil
			})
		})
	}
	for srv.connections() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	firstErr(t, errs)
	// Both kept connections are now closed by the server.
	got, err := selectFake(testCtx(t), c)
	if err != nil {
		t.Fatalf("first query after the server closed both kept connections: %v", err)
	}
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("got %v, want [1 2]", got)
	}
}

// TestFakeServerContextEnd runs queries a silent server never answers and
// ends them by their context: the error must wrap the context's, every
// time. (A deadline also reaches the socket: when it fires before the
// context's own timer, the read fails first, while ctx.Err() is still nil.)
func TestFakeServerContextEnd(t *testing.T) {
	const runs = 40
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 5*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(5*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	srv := newFakeServer(t)
	srv.set(nil)
	srv.setSilent()
	c := chnative.New(chnative.Options{Addrs: []string{srv.addr}})
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := 0
			for i := range runs {
				ctx, cancel := tt.ctx()
				start := time.Now()
				_, err := selectFake(ctx, c)
				cancel()
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("run %d: returned after %v", i, d)
				}
				if !errors.Is(err, tt.want) {
					if bad == 0 {
						t.Errorf("run %d: got error %v, want one wrapping %v", i, err, tt.want)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d runs without %v", bad, runs, tt.want)
			}
		})
	}
}

// firstErr closes errs, which the test's goroutines have finished writing
// to, and fails the test on the first error in it.
func firstErr(t *testing.T, errs chan error) {
	t.Helper()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
