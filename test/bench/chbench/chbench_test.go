package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/test/bench/loadgen"
)

func TestLoadRows(t *testing.T) {
	l := loadgen.Load{Kind: loadgen.Power, Fleet: loadgen.Fleet{Series: 25, Sites: 3}, Start: 1_700_000_000_000, Step: 15_000, Steps: 4, Batch: 10}
	r, err := loadRows(l)
	if err != nil {
		t.Fatal(err)
	}
	if r.len() != 100 || len(r.ts) != 100 || len(r.vals) != 100 {
		t.Fatalf("got %d rows, want 100", r.len())
	}
	// Row 3*25+7 is series 7 at step 3.
	i := 3*25 + 7
	want := clickhouse.SeriesID(labels.FromStrings("__name__", loadgen.PowerMetric, "component", "gpu", "node", "s00-r000-n00",
		"rack", "s00-r000", "sensor", "gpu3", "site", "site-00", "source", "nvml"))
	if r.ids[i] != want {
		t.Errorf("series id of row %d = %x, want %x (SeriesID of series 7's labels)", i, r.ids[i], want)
	}
	if r.ts[i] != l.Start+3*l.Step || r.vals[i] != loadgen.Watts(7, l.Start+3*l.Step) {
		t.Errorf("row %d = (%d, %v), want (%d, %v)", i, r.ts[i], r.vals[i], l.Start+3*l.Step, loadgen.Watts(7, l.Start+3*l.Step))
	}
	// Every (series, ts) pair once, 25 distinct series.
	type key struct {
		id uint64
		ts int64
	}
	seen := map[key]bool{}
	ids := map[uint64]bool{}
	for j := range r.len() {
		k := key{r.ids[j], r.ts[j]}
		if seen[k] {
			t.Fatalf("row %d repeats %v", j, k)
		}
		seen[k], ids[r.ids[j]] = true, true
	}
	if len(ids) != 25 {
		t.Errorf("%d distinct series ids, want 25", len(ids))
	}
	if _, err := loadRows(loadgen.Load{Kind: loadgen.Energy, Fleet: loadgen.Fleet{Series: 1}, Steps: 1, Batch: 1}); err == nil {
		t.Error("energy load accepted")
	}
}

// readNative decodes what writeNative writes (the test's own reader of the format).
func readNative(t *testing.T, b []byte) (blocks []int, r rows) {
	t.Helper()
	rd := bytes.NewReader(b)
	uv := func() uint64 {
		v, err := binary.ReadUvarint(rd)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	str := func() string {
		n := uv()
		s := make([]byte, n)
		if _, err := io.ReadFull(rd, s); err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	u64 := func() uint64 {
		var x [8]byte
		if _, err := io.ReadFull(rd, x[:]); err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(x[:])
	}
	for rd.Len() > 0 {
		if nc := uv(); nc != 3 {
			t.Fatalf("block with %d columns", nc)
		}
		n := int(uv())
		blocks = append(blocks, n)
		for c, col := range nativeColumns {
			if name, typ := str(), str(); name != col.name || typ != col.typ {
				t.Fatalf("column %d is %s %s, want %s %s", c, name, typ, col.name, col.typ)
			}
			for range n {
				v := u64()
				switch c {
				case 0:
					r.ids = append(r.ids, v)
				case 1:
					r.ts = append(r.ts, int64(v))
				case 2:
					r.vals = append(r.vals, math.Float64frombits(v))
				}
			}
		}
	}
	return blocks, r
}

func TestWriteNative(t *testing.T) {
	// Golden bytes of one row: a block header, then each column's name, type and value.
	var buf bytes.Buffer
	if err := writeNative(&buf, rows{ids: []uint64{0x0102030405060708}, ts: []int64{-2}, vals: []float64{1.5}}, 10); err != nil {
		t.Fatal(err)
	}
	want := []byte{3, 1,
		9, 's', 'e', 'r', 'i', 'e', 's', '_', 'i', 'd', 6, 'U', 'I', 'n', 't', '6', '4', 8, 7, 6, 5, 4, 3, 2, 1,
		2, 't', 's', 5, 'I', 'n', 't', '6', '4', 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		5, 'v', 'a', 'l', 'u', 'e', 7, 'F', 'l', 'o', 'a', 't', '6', '4', 0, 0, 0, 0, 0, 0, 0xf8, 0x3f}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("native bytes\n got % x\nwant % x", buf.Bytes(), want)
	}

	// Blocks split at blockRows and every float's bits survive (NaN, -0, subnormals).
	in := rows{}
	specials := []float64{math.NaN(), math.Copysign(0, -1), math.SmallestNonzeroFloat64, math.MaxFloat64, 0.1 + 0.2, math.Inf(-1)}
	for i := range 7 {
		in.ids = append(in.ids, uint64(i)*0x9e3779b97f4a7c15)
		in.ts = append(in.ts, int64(i)*15_000-1)
		in.vals = append(in.vals, specials[i%len(specials)])
	}
	buf.Reset()
	if err := writeNative(&buf, in, 3); err != nil {
		t.Fatal(err)
	}
	blocks, out := readNative(t, buf.Bytes())
	if !slices.Equal(blocks, []int{3, 3, 1}) {
		t.Errorf("blocks of %v rows, want [3 3 1]", blocks)
	}
	if !slices.Equal(out.ids, in.ids) || !slices.Equal(out.ts, in.ts) {
		t.Errorf("ids/ts changed: %v %v", out.ids, out.ts)
	}
	for i := range in.vals {
		if math.Float64bits(out.vals[i]) != math.Float64bits(in.vals[i]) {
			t.Errorf("value %d: bits %x, want %x", i, math.Float64bits(out.vals[i]), math.Float64bits(in.vals[i]))
		}
	}
	if err := writeNative(io.Discard, in, 0); err == nil {
		t.Error("block size 0 accepted")
	}
}

func TestParseUints(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want []uint64
		err  string
	}{
		{"2000000\t2000000\n", 2, []uint64{2000000, 2000000}, ""},
		{"18446744073709551615", 1, []uint64{math.MaxUint64}, ""},
		{"5\n", 2, nil, "want 2 columns, got 1"},
		{"1\n2\n", 1, nil, "want one line"},
		{"-1\n", 1, nil, "column 1"},
		{"1\tx\n", 2, nil, "column 2"},
		{"", 1, nil, "column 1"},
	} {
		got, err := parseUints([]byte(tc.in), tc.n)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseUints(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseUints(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseEvents(t *testing.T) {
	ev, err := parseEvents([]byte("InsertQuery\t252\nInsertedRows\t2020000\nMerge\t31\n"))
	if err != nil || len(ev) != 3 || ev["InsertQuery"] != 252 || ev["InsertedRows"] != 2020000 || ev["Merge"] != 31 {
		t.Errorf("parseEvents = %v, %v", ev, err)
	}
	if ev, err := parseEvents(nil); err != nil || len(ev) != 0 {
		t.Errorf("parseEvents(empty) = %v, %v", ev, err)
	}
	for _, bad := range []string{"InsertQuery 252\n", "InsertQuery\t-1\n", "\t5\n"} {
		if _, err := parseEvents([]byte(bad)); err == nil {
			t.Errorf("parseEvents(%q) accepted", bad)
		}
	}
}

func TestCmdlineHas(t *testing.T) {
	arg := "--config-file=/tmp/x/config.xml"
	if !cmdlineHas([]byte("/usr/sbin/clickhouse-server\x00"+arg+"\x00"), arg) {
		t.Error("cmdlineHas missed the argument")
	}
	if cmdlineHas([]byte("/usr/sbin/clickhouse-server\x00"+arg+"x\x00"), arg) {
		t.Error("cmdlineHas matched a longer argument")
	}
}

func TestSpreadAndSummary(t *testing.T) {
	if got := spreadOf([]float64{3, 1, 2}); got != (spread{2, 1, 3}) {
		t.Errorf("spreadOf odd = %+v", got)
	}
	if got := spreadOf([]float64{4, 1, 2, 10}); got != (spread{3, 1, 10}) {
		t.Errorf("spreadOf even = %+v", got)
	}
	sm := summarize([]round{
		{Client: side{RowsPerSec: 1e6}, Greenloop: side{RowsPerSec: 8e5}, Ratio: 0.8},
		{Client: side{RowsPerSec: 2e6}, Greenloop: side{RowsPerSec: 1e6}, Ratio: 0.5},
		{Client: side{RowsPerSec: 1.5e6}, Greenloop: side{RowsPerSec: 1.1e6}, Ratio: 0.73},
	})
	if sm.Ratio.Median != 0.73 || !sm.TargetMet || sm.ClientRowsPerSec.Median != 1.5e6 || sm.GreenloopRowsPerSec.Max != 1.1e6 {
		t.Errorf("summary = %+v", sm)
	}
	if sm := summarize([]round{{Ratio: 0.69}}); sm.TargetMet || sm.DurableRatio != nil {
		t.Errorf("ratio 0.69: %+v", sm)
	}
	sm = summarize([]round{{Ratio: 0.9, DurableRatio: 0.5}, {Ratio: 0.8, DurableRatio: 0.4}, {Ratio: 0.7, DurableRatio: 0.6}})
	if !sm.TargetMet || sm.Ratio.Median != 0.8 || sm.DurableRatio == nil || sm.DurableRatio.Median != 0.5 || sm.DurableRatio.Min != 0.4 {
		t.Errorf("buffer rounds: %+v %+v", sm, sm.DurableRatio)
	}
}

func TestGreenloopConfig(t *testing.T) {
	got := greenloopConfig("127.0.0.1:8080", "127.0.0.1:9000", "chbench_greenloop_r1", settings{BatchSize: 50_000, FlushInterval: 10 * time.Millisecond,
		AsyncInsert: "off", Buffer: bufferSettings{Enabled: true, Layers: 2, MaxTime: time.Minute, MinRows: 200_000}})
	for _, want := range []string{"backend: clickhouse", `addrs: ["127.0.0.1:9000"]`, "database: chbench_greenloop_r1", "batch_size: 50000", "flush_interval: 10ms",
		`async_insert: "off"`, "    buffer:\n      enabled: true\n      layers: 2\n      min_rows: 200000\n      max_time: 1m0s\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if got := greenloopConfig("a:1", "b:2", "d", settings{Buffer: bufferSettings{MaxTime: time.Minute}}); strings.Contains(got, "batch_size") ||
		strings.Contains(got, "async_insert") || strings.Contains(got, "buffer") {
		t.Errorf("unset keys written:\n%s", got)
	}
}

func TestParseFlags(t *testing.T) {
	s, err := parseFlags(nil, io.Discard)
	// One Prometheus at its default queue_config: 50 shards of 2,000 samples.
	if err != nil || s.Series != 10_000 || s.Samples != 200 || s.Rounds != 3 || s.Senders != 50 || s.Batch != 2000 || s.StepsPerReq != 10 {
		t.Fatalf("defaults = %+v, %v", s, err)
	}
	if _, err := parseFlags([]string{"-batch", "2000", "-steps-per-request", "3"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-batch (2000) must be a multiple of -steps-per-request (3)") {
		t.Errorf("-steps-per-request 3: %v", err)
	}
	if _, err := parseFlags([]string{"-series", "0", "-interval", "0s", "-ch-async-insert", "yes", "-ch-buffer-max-rows", "-1"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-series") || !strings.Contains(err.Error(), "-interval") ||
		!strings.Contains(err.Error(), `-ch-async-insert: want auto, on or off, got "yes"`) || !strings.Contains(err.Error(), "-ch-buffer-*") {
		t.Errorf("bad flags: %v", err)
	}
	s, err = parseFlags([]string{"-ch-buffer", "-ch-buffer-max-time", "45s", "-rollup-views", "1h"}, io.Discard)
	if err != nil || !s.Buffer.Enabled || s.Buffer.MaxTime != 45*time.Second || s.RollupViews != "1h" {
		t.Errorf("buffer flags: %+v, %v", s, err)
	}
	if s, _ := parseFlags(nil, io.Discard); s.RollupViews != "all" || s.Buffer.Enabled || s.AsyncInsert != "" {
		t.Errorf("defaults: %+v", s)
	}
	if _, err := parseFlags([]string{"-rollup-views", "false"}, io.Discard); err == nil || !strings.Contains(err.Error(), `-rollup-views: want all, none, 1m or 1h, got "false"`) {
		t.Errorf("-rollup-views false: %v", err)
	}
	for keep, want := range map[string]string{"all": "[]", "none": "[samples_1m_mv samples_1h_mv]", "1m": "[samples_1h_mv]", "1h": "[samples_1m_mv]"} {
		if drop, ok := viewsToDrop(keep); !ok || fmt.Sprint(drop) != want {
			t.Errorf("viewsToDrop(%q) = %v, %v; want %s", keep, drop, ok, want)
		}
	}
}

func FuzzParseUints(f *testing.F) {
	f.Add([]byte("2000000\t2000000\n"), 2)
	f.Add([]byte("1\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		vs, err := parseUints(b, n)
		if err == nil && len(vs) != n {
			t.Fatalf("%d values for %d columns", len(vs), n)
		}
	})
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte("InsertQuery\t252\nInsertedRows\t2020000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parseEvents(b)
		if err == nil && len(ev) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%d events from %d lines", len(ev), strings.Count(string(b), "\n")+1)
		}
	})
}
