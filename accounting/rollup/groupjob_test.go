package rollup

import (
	"reflect"
	"testing"
)

func TestSignatures(t *testing.T) {
	h := hourMs
	cases := []struct {
		name     string
		counts   map[int64]uint64
		from, to int64
		want     map[int64]uint64
	}{
		{"empty", nil, 0, 3 * h, map[int64]uint64{}},
		// A bucket (start, start+1h] counts for the hour before it, its own and the next.
		{"one bucket", map[int64]uint64{5 * h: 7}, 0, 10 * h, map[int64]uint64{4 * h: 7, 5 * h: 7, 6 * h: 7}},
		{"sums", map[int64]uint64{0: 1, h: 10, 2 * h: 100}, 0, 4 * h, map[int64]uint64{0: 11, h: 111, 2 * h: 110, 3 * h: 100}},
		{"range cut", map[int64]uint64{0: 1, h: 10, 2 * h: 100}, h, 2 * h, map[int64]uint64{h: 111}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Signatures(c.counts, c.from, c.to); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
