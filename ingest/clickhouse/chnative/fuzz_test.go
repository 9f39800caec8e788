package chnative_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzServerStream from streamCases")

const seedDir = "testdata/fuzz/FuzzServerStream"

// seedFile is the name of a streamCase's file in the seed corpus.
func seedFile(name string) string { return strings.ReplaceAll(name, " ", "-") }

// corpusEntry is the go fuzz file format of one []byte argument.
func corpusEntry(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
}

// TestSeedCorpus checks that the checked-in seeds are the streams of
// streamCases (go test -run TestSeedCorpus -update-seeds rewrites them).
func TestSeedCorpus(t *testing.T) {
	for _, tt := range streamCases() {
		path := filepath.Join(seedDir, seedFile(tt.name))
		want := corpusEntry(tt.answer)
		if *updateSeeds {
			if err := os.MkdirAll(seedDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %q: %v (run with -update-seeds)", tt.name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed %s differs from the stream of case %q (run with -update-seeds)", path, tt.name)
		}
	}
}

// FuzzServerStream feeds arbitrary bytes to the client as a server's answer
// to a query (after a valid hello): it must not panic or hang, and it either
// fails or hands over consistent blocks.
func FuzzServerStream(f *testing.F) {
	srv := newFakeServer(f)
	f.Fuzz(func(t *testing.T, answer []byte) {
		srv.set(nil, answer)
		start := time.Now()
		got, err := fuzzSelect(t, srv.addr)
		// The server closes its side after the answer: the client has all it
		// will get at once. (Time, not only the error: a deadline does not
		// always show as context.DeadlineExceeded, see
		// TestFakeServerContextEnd.)
		if d := time.Since(start); d > time.Second || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no outcome after %v though the server closed the connection: %v", d, err)
		}
		if errors.Is(err, errInconsistent) {
			t.Fatal(err)
		}
		if err == nil && !hasEndOfStream(answer) {
			t.Fatalf("success without an end-of-stream packet; values %v", got)
		}
	})
}

// fuzzSelect runs one query on a fake server, turning a panic into a test
// failure so that the fuzzer records the input and the other tests still
// run.
func fuzzSelect(t *testing.T, addr string) (got []uint64, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := chnative.New(chnative.Options{Addrs: []string{addr}, DialTimeout: time.Second})
	defer c.Close()
	return selectFake(ctx, c)
}

// TestServerStreamHugeLengths feeds answers whose length prefixes promise
// far more bytes than follow: the client must fail with an error, not
// allocate what the prefix says. Found by FuzzServerStream. Each case runs
// in a child process, since an allocation the machine cannot back ends the
// process with a fatal error no recover catches.
func TestServerStreamHugeLengths(t *testing.T) {
	// A column whose name is n bytes long.
	name := func(n uint64) []byte {
		var b proto.Buffer
		proto.ServerCodeData.Encode(&b)
		b.PutString("")
		proto.BlockInfo{BucketNum: -1}.Encode(&b)
		b.PutInt(1) // columns
		b.PutInt(1) // rows
		b.PutUVarInt(n)
		b.PutRaw([]byte("number"))
		return b.Buf
	}
	// A data packet whose table name is n bytes long.
	table := func(n uint64) []byte {
		var b proto.Buffer
		proto.ServerCodeData.Encode(&b)
		b.PutUVarInt(n)
		return b.Buf
	}
	// An exception whose name is n bytes long.
	exceptionName := func(n uint64) []byte {
		var b proto.Buffer
		proto.ServerCodeException.Encode(&b)
		b.PutInt32(60)
		b.PutUVarInt(n)
		b.PutRaw([]byte("DB::Exception"))
		return b.Buf
	}
	tests := []struct {
		name   string
		answer []byte
	}{
		{"table name of 32 TiB", table(1 << 45)},
		{"column name of 32 TiB", name(1 << 45)}, // fatal error: runtime: out of memory
		{"column name of 1 PiB", name(1 << 50)},  // panic: makeslice: len out of range
		{"exception name of 32 TiB", exceptionName(1 << 45)},
		{"exception name of 1 PiB", exceptionName(1 << 50)},
	}
	if i, err := strconv.Atoi(os.Getenv("CHNATIVE_HUGE_CASE")); err == nil {
		srv := newFakeServer(t)
		srv.set(nil, packets(header, tests[i].answer))
		_, err := fuzzSelect(t, srv.addr)
		if err == nil {
			t.Fatal("no error")
		}
		t.Logf("error: %v", err)
		return
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestServerStreamHugeLengths$", "-test.v")
			cmd.Env = append(os.Environ(), "CHNATIVE_HUGE_CASE="+strconv.Itoa(i))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("the client crashed (%v):\n%s", err, firstLines(out, 12))
			}
		})
	}
}

// firstLines returns the first n lines of out.
func firstLines(out []byte, n int) string {
	lines := strings.SplitN(string(out), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// hasEndOfStream reports whether some position of answer reads as the
// end-of-stream packet code, 5, as a varint: ClickHouse's varints, like
// Go's, accept the longer encodings of a value ("\x85\x00").
func hasEndOfStream(answer []byte) bool {
	for i := range answer {
		if v, n := binary.Uvarint(answer[i:]); n > 0 && v == uint64(proto.ServerCodeEndOfStream) {
			return true
		}
	}
	return false
}
