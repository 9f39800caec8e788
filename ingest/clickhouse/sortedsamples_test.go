package clickhouse

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The rows of one series come part by part: sortSamples puts them in
// time order and keeps one sample per timestamp (the last one read).
func TestSortedSamples(t *testing.T) {
	for _, tc := range []struct {
		ts   []int64
		vs   []float64
		want string
	}{
		{nil, nil, "[]"},
		{[]int64{1, 2, 3}, []float64{10, 20, 30}, "[{1 10} {2 20} {3 30}]"},
		{[]int64{3, 4, 1, 2}, []float64{30, 40, 10, 20}, "[{1 10} {2 20} {3 30} {4 40}]"}, // two parts
		{[]int64{1, 2, 2, 3}, []float64{10, 20, 21, 30}, "[{1 10} {2 21} {3 30}]"},        // a resent sample
		{[]int64{2, 3, 1, 2, 3}, []float64{20, 30, 10, 22, 33}, "[{1 10} {2 22} {3 33}]"}, // resent, in another part
		{[]int64{5, 1, 5, 1}, []float64{50, 10, 55, 11}, "[{1 11} {5 55}]"},
	} {
		ts, vs := sortSamples(slices.Clone(tc.ts), slices.Clone(tc.vs))
		var got []string
		for i := range ts {
			got = append(got, fmt.Sprintf("{%d %g}", ts[i], vs[i]))
		}
		if got := "[" + strings.Join(got, " ") + "]"; got != tc.want {
			t.Errorf("sortSamples(%v, %v) = %s, want %s", tc.ts, tc.vs, got, tc.want)
		}
	}
}

// Blocks travel LZ4-compressed only to and from servers that are not on this
// machine, unless told.
func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		addrs []string
		want  bool
		err   bool
	}{
		{"", []string{"127.0.0.1:9000"}, false, false},
		{"auto", []string{"localhost:9000", "[::1]:9000", "127.0.0.2:9000"}, false, false},
		{"auto", []string{"127.0.0.1:9000", "ch2.example:9000"}, true, false},
		{"", []string{"10.0.0.5:9000"}, true, false},
		{"lz4", []string{"127.0.0.1:9000"}, true, false},
		{"none", []string{"10.0.0.5:9000"}, false, false},
		{"zstd", []string{"127.0.0.1:9000"}, false, true},
	} {
		got, err := compression(tc.mode, tc.addrs)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("compression(%q, %v) = %v, %v; want %v, error %v", tc.mode, tc.addrs, got, err, tc.want, tc.err)
		}
	}
}
