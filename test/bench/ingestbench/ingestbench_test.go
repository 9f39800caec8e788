package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMemStatus(t *testing.T) {
	status := "Name:\tprometheus\nVmPeak:\t 2000000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\nThreads:\t12\n"
	m, err := parseMemStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.HWM != 512<<20 || m.RSS != 256<<20 {
		t.Fatalf("got %+v", m)
	}
	if _, err := parseMemStatus([]byte("Name:\tx\n")); err == nil {
		t.Fatal("status without VmRSS parsed")
	}
}

// The parsing is package procstat's (tested there); this is the wiring.
func TestOwnCPUAndMemory(t *testing.T) {
	self, err := cpuSeconds(os.Getpid())
	if err != nil || self < 0 {
		t.Fatalf("own cpu: %v %v", self, err)
	}
	if _, err := readMemStatus(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestListBlocks(t *testing.T) {
	dir := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	block := func(ulid, meta string, chunk, index int) {
		write(filepath.Join(dir, ulid, "meta.json"), meta)
		write(filepath.Join(dir, ulid, "chunks", "000001"), strings.Repeat("c", chunk))
		write(filepath.Join(dir, ulid, "index"), strings.Repeat("i", index))
	}
	const (
		a = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
		b = "01BX5ZZKBKACTAV9WEVGEMMVRZ"
		c = "01BX5ZZKBKACTAV9WEVGEMMVS0"
	)
	block(a, `{"ulid":"`+a+`","minTime":0,"maxTime":7200000,"stats":{"numSamples":100,"numSeries":10},"compaction":{"level":1}}`, 300, 50)
	block(b, `{"ulid":"`+b+`","minTime":7200000,"maxTime":14400000,"stats":{"numSamples":200,"numSeries":10},"compaction":{"level":1}}`, 500, 50)
	// c was compacted from b, which is still on disk awaiting deletion: b must not be counted.
	block(c, `{"ulid":"`+c+`","minTime":7200000,"maxTime":14400000,"stats":{"numSamples":200,"numSeries":10},"compaction":{"level":2,"parents":[{"ulid":"`+b+`"}]}}`, 400, 50)
	write(filepath.Join(dir, a+".tmp-for-creation", "meta.json"), "{}")
	write(filepath.Join(dir, "wal", "00000000"), "w")
	write(filepath.Join(dir, "chunks_head", "000001"), "h")
	write(filepath.Join(dir, "01ARZ3NDEKTSV4RRFFQ69G5FAW", "index"), "no meta yet")
	blocks, err := listBlocks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks: %+v", len(blocks), blocks)
	}
	var samples uint64
	var bytes, chunks int64
	for _, bl := range blocks {
		samples += bl.Samples
		bytes += bl.Bytes
		chunks += bl.ChunkBytes
	}
	metaA := int64(len(`{"ulid":"` + a + `","minTime":0,"maxTime":7200000,"stats":{"numSamples":100,"numSeries":10},"compaction":{"level":1}}`))
	metaC := int64(len(`{"ulid":"` + c + `","minTime":7200000,"maxTime":14400000,"stats":{"numSamples":200,"numSeries":10},"compaction":{"level":2,"parents":[{"ulid":"` + b + `"}]}}`))
	if samples != 300 || chunks != 700 || bytes != 700+100+metaA+metaC {
		t.Fatalf("samples %d chunk bytes %d bytes %d", samples, chunks, bytes)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCompareMatrices(t *testing.T) {
	a := matrix{`{"site":"a"}`: {1000: 1, 2000: 2}, `{"site":"b"}`: {1000: 5}}
	b := matrix{`{"site":"a"}`: {1000: 1 + 1e-12, 2000: 2.5}, `{"site":"c"}`: {1000: 5}}
	d := compareMatrices(a, b, 1e-9)
	// a/2000 differs, b/1000 is missing from b, c/1000 is missing from a.
	if d.Compared != 2 || d.Differing != 1 || d.OnlyInOne != 2 || d.MaxRelDiff != 0.2 {
		t.Fatalf("%+v", d)
	}
}

func TestParseMatrix(t *testing.T) {
	d := queryData{ResultType: "matrix", Result: []byte(`[{"metric":{"site":"site-01"},"values":[[1700000000,"1.5"],[1700000060.5,"2"]]}]`)}
	m, points, err := parseMatrix(d)
	if err != nil {
		t.Fatal(err)
	}
	if points != 2 || m[`{"site":"site-01"}`][1700000060500] != 2 {
		t.Fatalf("%d points: %v", points, m)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel([]byte(info)); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Fatalf("got %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	s, err := parseFlags([]string{"-rounds", "1", "-phases", "ingest,query"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rounds != 1 || !s.has("ingest") || s.has("disk") || s.Series != 100_000 || s.Batch != 2000 || s.Senders != 4 {
		t.Fatalf("%+v", s)
	}
	if _, err := parseFlags([]string{"-phases", "ingest,nope"}, io.Discard); err == nil {
		t.Fatal("unknown phase accepted")
	}
	if _, err := parseFlags([]string{"-senders", "0"}, io.Discard); err == nil {
		t.Fatal("zero senders accepted")
	}
}

func TestOrderAlternates(t *testing.T) {
	if order(0)[0] != nameGreenloop || order(1)[0] != namePrometheus || order(2)[0] != nameGreenloop {
		t.Fatal("rounds must alternate which server goes first")
	}
}

func TestIsULID(t *testing.T) {
	for name, want := range map[string]bool{"01ARZ3NDEKTSV4RRFFQ69G5FAV": true, "wal": false, "01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp-for-deletion": false, "01ARZ3NDEKTSV4RRFFQ69G5FAU": false} {
		if isULID(name) != want {
			t.Errorf("isULID(%q) != %v", name, want)
		}
	}
}

func TestMachineBusy(t *testing.T) {
	if _, err := machineBusySeconds(); err != nil {
		t.Fatal(err)
	}
}

func TestFullRange(t *testing.T) {
	for _, c := range []struct {
		min, max int64
		want     bool
	}{{7_200_000 * 5, 7_200_000 * 6, true}, {7_200_000*5 + 15_000, 7_200_000 * 6, false}, {7_200_000 * 3, 7_200_000 * 6, false}} {
		if got := (blockInfo{MinTime: c.min, MaxTime: c.max}).fullRange(); got != c.want {
			t.Errorf("[%d, %d): %v", c.min, c.max, got)
		}
	}
}
