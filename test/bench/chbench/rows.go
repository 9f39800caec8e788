package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// rows are the (series_id, ts, value) rows of greenloop's samples table that a
// remote_write load stores, in the order the load sends them: time step by
// time step, the series of a step in index order.
type rows struct {
	ids  []uint64
	ts   []int64
	vals []float64
}

func (r rows) len() int { return len(r.ids) }

// seriesIDs returns the id greenloop's ClickHouse store gives each series of
// the load (clickhouse.SeriesID over its labels).
func seriesIDs(l loadgen.Load) []uint64 {
	ids := make([]uint64, l.Fleet.Series)
	b := labels.NewScratchBuilder(8)
	for i := range ids {
		b.Reset()
		for _, lb := range l.Fleet.Labels(l.Kind, i) {
			b.Add(lb.Name, lb.Value)
		}
		b.Sort()
		ids[i] = clickhouse.SeriesID(b.Labels())
	}
	return ids
}

// loadRows returns the rows greenloop stores for a Power load. Energy loads
// carry counters that depend on the encoders' state; the benchmark sends
// power readings only.
func loadRows(l loadgen.Load) (rows, error) {
	if l.Kind != loadgen.Power {
		return rows{}, errors.New("loadRows: only power loads are supported")
	}
	ids := seriesIDs(l)
	n := int(l.Samples())
	r := rows{ids: make([]uint64, 0, n), ts: make([]int64, 0, n), vals: make([]float64, 0, n)}
	for k := range l.Steps {
		t := l.Start + int64(k)*l.Step
		for i, id := range ids {
			r.ids = append(r.ids, id)
			r.ts = append(r.ts, t)
			r.vals = append(r.vals, loadgen.Watts(i, t))
		}
	}
	return r, nil
}

// Native-format column types of greenloop's samples table on 18.16 (no codecs).
var nativeColumns = [3]struct{ name, typ string }{{"series_id", "UInt64"}, {"ts", "Int64"}, {"value", "Float64"}}

// writeNative writes rows in ClickHouse's Native format, as `FORMAT Native`
// reads and writes it (no block info: that is only on the native protocol),
// in blocks of at most blockRows rows. Native carries the float64 bits as
// they are, where text formats would round-trip through decimal parsing.
func writeNative(w io.Writer, r rows, blockRows int) error {
	if blockRows <= 0 {
		return fmt.Errorf("writeNative: block rows must be positive, got %d", blockRows)
	}
	var buf []byte
	for lo := 0; lo < r.len(); lo += blockRows {
		hi := min(lo+blockRows, r.len())
		buf = binary.AppendUvarint(buf[:0], uint64(len(nativeColumns)))
		buf = binary.AppendUvarint(buf, uint64(hi-lo))
		for c, col := range nativeColumns {
			buf = appendString(buf, col.name)
			buf = appendString(buf, col.typ)
			for i := lo; i < hi; i++ {
				switch c {
				case 0:
					buf = binary.LittleEndian.AppendUint64(buf, r.ids[i])
				case 1:
					buf = binary.LittleEndian.AppendUint64(buf, uint64(r.ts[i]))
				case 2:
					buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(r.vals[i]))
				}
			}
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write native block of rows %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// parseUints parses one TabSeparated line of unsigned integers, as
// clickhouse-client prints the answer to a query like
// SELECT count(), uniqExact(series_id, ts); want is the number of columns.
func parseUints(out []byte, want int) ([]uint64, error) {
	line := string(bytes.TrimRight(out, "\n"))
	if strings.Contains(line, "\n") {
		return nil, fmt.Errorf("want one line, got %q", truncate(line, 80))
	}
	f := strings.Split(line, "\t")
	if len(f) != want {
		return nil, fmt.Errorf("want %d columns, got %d in %q", want, len(f), truncate(line, 80))
	}
	vs := make([]uint64, len(f))
	for i, s := range f {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", i+1, err)
		}
		vs[i] = v
	}
	return vs, nil
}

// parseEvents parses `SELECT event, value FROM system.events` as
// clickhouse-client prints it (TabSeparated, one event a line).
func parseEvents(out []byte) (map[string]uint64, error) {
	ev := map[string]uint64{}
	for i, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		name, v, ok := strings.Cut(line, "\t")
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: want event<TAB>value, got %q", i+1, truncate(line, 80))
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", i+1, name, err)
		}
		ev[name] = n
	}
	return ev, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// cmdlineHas reports whether a /proc/PID/cmdline (NUL-separated arguments) has arg among its arguments.
func cmdlineHas(cmdline []byte, arg string) bool {
	return slices.Contains(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), arg)
}

// spread is the median, minimum and maximum of a figure over rounds.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}
