package clickhouse

import (
	"fmt"
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
		var in samples
		for i := range tc.ts {
			in = append(in, sample{tc.ts[i], tc.vs[i]})
		}
		if got := fmt.Sprint(sortSamples(in)); got != tc.want {
			t.Errorf("sortSamples(%v, %v) = %s, want %s", tc.ts, tc.vs, got, tc.want)
		}
	}
}
