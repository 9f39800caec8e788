package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(i int) []byte { return fmt.Appendf(nil, "record-%06d", i) }

func recNum(t *testing.T, b []byte) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(b), "record-%06d", &i); err != nil {
		t.Fatalf("bad record %q: %v", b, err)
	}
	return i
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func open(t *testing.T, dir string, opts Options) (*Queue, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	opts.Logger = slog.New(slog.NewTextHandler(lb, nil))
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q, lb
}

func appendN(t *testing.T, q *Queue, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := q.Append(rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// drain reads and acknowledges everything, returning record numbers.
func drain(t *testing.T, q *Queue, batch int) []int {
	t.Helper()
	var got []int
	for {
		rs, err := q.Next(batch, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return got
		}
		for _, r := range rs {
			got = append(got, recNum(t, r.Data))
		}
		if err := q.Ack(rs[len(rs)-1].ID); err != nil {
			t.Fatal(err)
		}
	}
}

func nums(t *testing.T, rs []Record) []int {
	t.Helper()
	var out []int
	for _, r := range rs {
		out = append(out, recNum(t, r.Data))
	}
	return out
}

func wantRange(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d records, want %d (first %v)", len(got), to-from, got[:min(len(got), 5)])
	}
	for i, n := range got {
		if n != from+i {
			t.Fatalf("record %d is %d, want %d", i, n, from+i)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	q, _ := open(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	in := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{0xff}, 3000), []byte("last")}
	for _, r := range in {
		if err := q.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	st := q.Stats()
	if st.PendingRecords != 4 || !st.OldestAppended.Equal(now) {
		t.Fatalf("stats %+v", st)
	}
	for range 2 { // Next without Ack returns the same records
		rs, err := q.Next(10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(in) {
			t.Fatalf("got %d records", len(rs))
		}
		for i, r := range rs {
			if !bytes.Equal(r.Data, in[i]) || !r.Appended.Equal(now) || r.ID.Index != i {
				t.Fatalf("record %d: %q %v %v", i, r.Data, r.Appended, r.ID)
			}
		}
	}
	rs, _ := q.Next(2, 0)
	if err := q.Ack(rs[1].ID); err != nil {
		t.Fatal(err)
	}
	rs, _ = q.Next(10, 0)
	if len(rs) != 2 || string(rs[1].Data) != "last" {
		t.Fatalf("after ack: %v", rs)
	}
	if err := q.Ack(rs[1].ID); err != nil {
		t.Fatal(err)
	}
	if rs, _ := q.Next(10, 0); len(rs) != 0 {
		t.Fatalf("empty queue returned %d", len(rs))
	}
	if st := q.Stats(); st.PendingRecords != 0 || st.PendingBytes != 0 || !st.OldestAppended.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if err := q.Ack(ID{Segment: 99, Index: 0, End: 100}); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("ack of unknown ID: %v", err)
	}
}

func TestNextBounds(t *testing.T) {
	q, _ := open(t, t.TempDir(), Options{SegmentBytes: 4096})
	for i := range 20 {
		if err := q.Append(bytes.Repeat([]byte{byte(i)}, 100*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		max, maxBytes, want int
	}{
		{max: 3, want: 3},
		{max: 100, want: 20},
		{max: 100, maxBytes: 100, want: 1},
		{max: 100, maxBytes: 50, want: 1}, // one record always comes
		{max: 100, maxBytes: 600, want: 3},
		{max: 2, maxBytes: 600, want: 2},
		{max: 100, maxBytes: 599, want: 2},
	} {
		rs, err := q.Next(tc.max, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != tc.want {
			t.Errorf("Next(%d, %d) = %d records, want %d", tc.max, tc.maxBytes, len(rs), tc.want)
		}
	}
	if _, err := q.Next(0, 0); err == nil {
		t.Error("Next(0) should fail")
	}
}

func TestRestartResumesAfterAck(t *testing.T) {
	const total = 10000
	for _, mode := range []SyncMode{SyncInterval, SyncEveryAppend, SyncNever} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 16 << 10, Sync: SyncPolicy{Mode: mode}}
			if mode == SyncEveryAppend && testing.Short() {
				t.Skip("fsync per record")
			}
			var got []int
			next := 0
			for round := 0; len(got) < total; round++ {
				q, _ := open(t, dir, opts)
				// Append some, deliver some, and "crash" after Next
				// without Ack: those records must come again.
				appendN(t, q, next, min(next+1500, total))
				next = min(next+1500, total)
				for range 3 {
					rs, err := q.Next(97, 0)
					if err != nil {
						t.Fatal(err)
					}
					if len(rs) == 0 {
						break
					}
					for _, r := range rs {
						got = append(got, recNum(t, r.Data))
					}
					if err := q.Ack(rs[len(rs)-1].ID); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := q.Next(50, 0); err != nil { // unacknowledged
					t.Fatal(err)
				}
				if round%2 == 1 {
					got = append(got, drain(t, q, 200)...)
				}
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				if round > 50 {
					t.Fatal("not converging")
				}
			}
			wantRange(t, got, 0, total)
			q, _ := open(t, dir, opts)
			if st := q.Stats(); st.PendingRecords != 0 || st.Segments > 1 {
				t.Fatalf("stats after drain %+v", st)
			}
		})
	}
}

func TestRestartManySegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 8 << 10}
	q, _ := open(t, dir, opts)
	appendN(t, q, 0, 10000)
	if n := len(segFiles(t, dir)); n < 10 {
		t.Fatalf("only %d segments", n)
	}
	rs, err := q.Next(4321, 0) // spans several segments
	if err != nil || len(rs) != 4321 {
		t.Fatalf("Next = %d records, %v", len(rs), err)
	}
	wantRange(t, nums(t, rs), 0, 4321)
	last := rs[len(rs)-1].ID
	if err := q.Ack(last); err != nil {
		t.Fatal(err)
	}
	q.Close()

	q, _ = open(t, dir, opts)
	if st := q.Stats(); st.PendingRecords != 10000-4321 {
		t.Fatalf("pending %d after restart", st.PendingRecords)
	}
	if err := q.Ack(last); err != nil { // acknowledging again is a no-op
		t.Fatal(err)
	}
	appendN(t, q, 10000, 10010)
	wantRange(t, drain(t, q, 777), 4321, 10010)
	q.Close()
	q, _ = open(t, dir, opts)
	if rs, _ := q.Next(1, 0); len(rs) != 0 {
		t.Fatalf("record %q returned after a full ack", rs[0].Data)
	}
	if n := len(segFiles(t, dir)); n > 1 {
		t.Fatalf("%d segments left after a full ack", n)
	}
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		{"truncated mid-record", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-7); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated mid-header", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-int64(len(rec(0)))-5); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage appended", func(t *testing.T, path string, size int64) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("\x05\x00\x00\x00garbage-after-a-crash"))
			f.Close()
		}},
		{"zeros appended", func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 4096))
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 4 << 10}
			q, _ := open(t, dir, opts)
			appendN(t, q, 0, 1000)
			q.Close()
			segs := segFiles(t, dir)
			last := segs[len(segs)-1]
			fi, _ := os.Stat(last)
			tc.damage(t, last, fi.Size())
			intact := 1000
			if strings.HasPrefix(tc.name, "truncated") {
				intact = 999
			}
			q, lb := open(t, dir, opts)
			if !strings.Contains(lb.String(), "truncating") {
				t.Errorf("repair not logged: %s", lb)
			}
			if q.Stats().CorruptBytes == 0 {
				t.Error("CorruptBytes not counted")
			}
			appendN(t, q, intact, 1100) // the queue stays usable
			q.Close()
			q, lb = open(t, dir, opts)
			if lb.String() != "" {
				t.Errorf("second open logged: %s", lb)
			}
			wantRange(t, drain(t, q, 100), 0, 1100)
		})
	}
}

func TestCorruptMiddle(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10}
	q, _ := open(t, dir, opts)
	appendN(t, q, 0, 1000)
	q.Close()
	segs := segFiles(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	// Flip one data byte of the 11th record of the second segment.
	b, _ := os.ReadFile(segs[1])
	perSeg := 0
	for off := segHdr; off < int64(len(b)); perSeg++ {
		_, _, n, err := decodeFrame(b[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += int64(n)
	}
	frame := frameHdr + len(rec(0))
	b[int(segHdr)+10*frame+frameHdr+3] ^= 0x01
	if err := os.WriteFile(segs[1], b, 0o640); err != nil {
		t.Fatal(err)
	}
	q, lb := open(t, dir, opts)
	if !strings.Contains(lb.String(), "corrupt record") {
		t.Errorf("corruption not logged: %s", lb)
	}
	if got, want := q.Stats().CorruptBytes, int64((perSeg-10)*frame); got != want {
		t.Errorf("CorruptBytes = %d, want %d", got, want)
	}
	got := drain(t, q, 64)
	var want []int
	for i := range 1000 {
		if i < perSeg+10 || i >= 2*perSeg {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
}

func TestCorruptWhileRunning(t *testing.T) {
	dir := t.TempDir()
	q, lb := open(t, dir, Options{SegmentBytes: 4 << 10})
	appendN(t, q, 0, 500)
	segs := segFiles(t, dir)
	f, _ := os.OpenFile(segs[0], os.O_WRONLY, 0)
	f.WriteAt([]byte{0xde, 0xad}, segHdr+5)
	f.Close()
	got := drain(t, q, 50)
	if len(got) == 0 || got[0] == 0 || got[len(got)-1] != 499 {
		t.Fatalf("got %v...", got[:min(5, len(got))])
	}
	if !strings.Contains(lb.String(), "corrupt record while reading") {
		t.Errorf("not logged: %s", lb)
	}
}

func TestOverflowDropsOldest(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 64 << 10
	q, lb := open(t, dir, Options{MaxBytes: maxBytes, SegmentBytes: 4 << 10})
	frame := int64(frameHdr + len(rec(0)))
	perSeg := (4<<10 - segHdr) / frame
	n := 10000
	appendN(t, q, 0, n)
	st := q.Stats()
	if st.PendingRecords+st.DroppedRecords != int64(n) {
		t.Fatalf("pending %d + dropped %d != %d", st.PendingRecords, st.DroppedRecords, n)
	}
	if st.DroppedBytes != st.DroppedRecords*frame || st.DroppedRecords%perSeg != 0 {
		t.Fatalf("dropped %d records, %d bytes (%d per segment)", st.DroppedRecords, st.DroppedBytes, perSeg)
	}
	var du int64
	for _, p := range segFiles(t, dir) {
		fi, _ := os.Stat(p)
		du += fi.Size()
	}
	if du > maxBytes {
		t.Fatalf("%d bytes on disk > %d", du, maxBytes)
	}
	if c := strings.Count(lb.String(), "dropped the oldest"); c != 1 {
		t.Fatalf("%d warnings, want 1 (throttled): %s", c, lb)
	}
	wantRange(t, drain(t, q, 500), int(st.DroppedRecords), n)

	// Pending but partly acknowledged head: only unacknowledged records
	// count as dropped.
	q2, _ := open(t, t.TempDir(), Options{MaxBytes: maxBytes, SegmentBytes: 4 << 10})
	appendN(t, q2, 0, 10)
	rs, _ := q2.Next(4, 0)
	q2.Ack(rs[3].ID)
	appendN(t, q2, 10, 10000)
	st = q2.Stats()
	if st.PendingRecords+st.DroppedRecords != 10000-4 {
		t.Fatalf("pending %d + dropped %d", st.PendingRecords, st.DroppedRecords)
	}
}

func TestTooLarge(t *testing.T) {
	q, _ := open(t, t.TempDir(), Options{MaxBytes: 1 << 20})
	for _, tc := range []struct {
		size int
		ok   bool
	}{
		{0, true}, {512 << 10, true}, {512<<10 + 1, false}, {1 << 20, false}, {4 << 20, false},
	} {
		err := q.Append(make([]byte, tc.size))
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrRecordTooLarge)) {
			t.Errorf("Append(%d bytes) = %v", tc.size, err)
		}
	}
	rs, err := q.Next(10, 0)
	if err != nil || len(rs) != 2 || len(rs[1].Data) != 512<<10 {
		t.Fatalf("Next = %d records, %v", len(rs), err)
	}
}

func TestAckFileAtomic(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, Options{})
	appendN(t, q, 0, 10)
	rs, _ := q.Next(3, 0)
	q.Ack(rs[2].ID)
	q.Close()
	// A crash while writing the next ack leaves a temp file that must not
	// be taken for the ack file.
	if err := os.WriteFile(filepath.Join(dir, ackTmpName), []byte("1 999999 999"), 0o640); err != nil {
		t.Fatal(err)
	}
	q, _ = open(t, dir, Options{})
	if _, err := os.Stat(filepath.Join(dir, ackTmpName)); !os.IsNotExist(err) {
		t.Error("temp ack file not removed")
	}
	wantRange(t, drain(t, q, 4), 3, 10)

	// A malformed ack file means resending everything (at least once).
	q.Close()
	q, _ = open(t, t.TempDir(), Options{})
	appendN(t, q, 0, 5)
	q.Close()
	os.WriteFile(filepath.Join(q.dir, ackName), []byte("junk"), 0o640)
	q, lb := open(t, q.dir, Options{})
	wantRange(t, drain(t, q, 4), 0, 5)
	if !strings.Contains(lb.String(), "malformed ack file") {
		t.Errorf("not logged: %s", lb)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{},
		{MaxBytes: -1},
		{MaxBytes: 1 << 20, SegmentBytes: -1},
		{MaxBytes: 1 << 20, Sync: SyncPolicy{Mode: 7}},
		{MaxBytes: 1 << 20, Sync: SyncPolicy{Interval: -time.Second}},
	} {
		if q, err := Open(dir, o); err == nil {
			q.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	q, _ := open(t, dir, Options{})
	q.Close()
	if err := q.Append(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := q.Next(1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

func TestConcurrentProducerConsumer(t *testing.T) {
	const n = 20000
	dir := t.TempDir()
	q, _ := open(t, dir, Options{SegmentBytes: 16 << 10, Sync: SyncPolicy{Interval: 5 * time.Millisecond}})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := q.Append(rec(i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	next := 0
	deadline := time.Now().Add(time.Minute)
	for next < n && time.Now().Before(deadline) {
		rs, err := q.Next(128, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		for _, r := range rs {
			if got := recNum(t, r.Data); got != next {
				t.Fatalf("got record %d, want %d", got, next)
			}
			next++
		}
		_ = q.Stats()
		if err := q.Ack(rs[len(rs)-1].ID); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if next != n {
		t.Fatalf("delivered %d of %d", next, n)
	}
	if st := q.Stats(); st.PendingRecords != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFrameLayout(t *testing.T) {
	b := appendFrame(nil, []byte("xyz"), 42)
	if len(b) != frameHdr+3 || binary.LittleEndian.Uint32(b) != 3 {
		t.Fatalf("frame %x", b)
	}
	data, at, n, err := decodeFrame(b)
	if err != nil || string(data) != "xyz" || at != 42 || n != len(b) {
		t.Fatalf("decode: %q %d %d %v", data, at, n, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x80
		if _, _, _, err := decodeFrame(c); err == nil {
			t.Errorf("flipped byte %d not detected", i)
		}
	}
	if _, _, _, err := decodeFrame(b[:len(b)-1]); !errors.Is(err, errShortFrame) {
		t.Errorf("short frame: %v", err)
	}
}

func TestAckCrashWindows(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10}
	q, _ := open(t, dir, opts)
	appendN(t, q, 0, 600)
	segs := segFiles(t, dir)
	rs, _ := q.Next(300, 0)
	keep := map[string][]byte{}
	for _, p := range segs {
		b, _ := os.ReadFile(p)
		keep[p] = b
	}
	if err := q.Ack(rs[299].ID); err != nil {
		t.Fatal(err)
	}
	q.Close()
	// A crash after the ack file was renamed but before the acknowledged
	// segments were deleted: they come back, and Open must delete them
	// instead of sending them again.
	for p, b := range keep {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			os.WriteFile(p, b, 0o640)
		}
	}
	q, _ = open(t, dir, opts)
	wantRange(t, drain(t, q, 1000), 300, 600)
	q.Close()

	// The acknowledged segment itself is gone (dropped on overflow or
	// fully acknowledged): reading resumes at the next segment, and new
	// segments are numbered after it.
	q, _ = open(t, dir, opts)
	appendN(t, q, 600, 700)
	q.Close()
	os.WriteFile(filepath.Join(dir, ackName), []byte("1 8 0\n"), 0o640)
	os.Remove(segs[0])
	q, _ = open(t, dir, opts)
	appendN(t, q, 700, 710)
	wantRange(t, drain(t, q, 1000), 600, 710)
}

func TestOverflowWarningThrottled(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	q, lb := open(t, t.TempDir(), Options{MaxBytes: 16 << 10, SegmentBytes: 1 << 10, Now: clock})
	appendN(t, q, 0, 2000)
	now = now.Add(30 * time.Second)
	appendN(t, q, 0, 2000)
	if c := strings.Count(lb.String(), "dropped the oldest"); c != 1 {
		t.Fatalf("%d warnings within a minute", c)
	}
	now = now.Add(31 * time.Second)
	appendN(t, q, 0, 100)
	if c := strings.Count(lb.String(), "dropped the oldest"); c != 2 {
		t.Fatalf("%d warnings after a minute, want 2", c)
	}
	st := q.Stats()
	if st.PendingRecords+st.DroppedRecords != 4100 {
		t.Fatalf("pending %d + dropped %d != 4100", st.PendingRecords, st.DroppedRecords)
	}
	if !st.OldestAppended.Equal(now) && !st.OldestAppended.Before(now) {
		t.Fatalf("oldest %v", st.OldestAppended)
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{MaxBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	q2.Close()
}
