package energy

import (
	"context"
	"encoding/binary"
	"math"
	"reflect"
	"testing"
	"time"
)

// FuzzCompute feeds arbitrary sample streams (4 bytes a sample: seconds since
// the previous sample, value) as a counter or a gauge and checks the
// invariants: no error or panic, completeness within [0, 1], no negative
// energy from non-negative readings, buckets that sum to the total, and the
// batch path equal to the sample-by-sample path.
func FuzzCompute(f *testing.F) {
	f.Add([]byte{60, 0, 10, 0, 60, 0, 20, 0, 60, 0, 5, 0, 0, 2, 9, 0}, true, uint16(60))
	f.Add([]byte{15, 0, 100, 0, 15, 0, 100, 0, 200, 0, 100, 0}, false, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, counter bool, intervalS uint16) {
		name := "greenloop_power_watts"
		if counter {
			name = "greenloop_energy_joules_total"
		}
		from := time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC)
		s := StaticSeries{Labels: map[string]string{"__name__": name}}
		ts := from.Add(-5 * time.Minute)
		for i := 0; i+4 <= len(data); i += 4 {
			ts = ts.Add(time.Duration(binary.LittleEndian.Uint16(data[i:])) * time.Second)
			s.T = append(s.T, ts.UnixMilli())
			s.V = append(s.V, float64(binary.LittleEndian.Uint16(data[i+2:])))
		}
		src := StaticSource{"s": {s}}
		q := Query{Selectors: []string{"s"}, From: from, To: from.Add(6 * time.Hour), Buckets: Bucketing{Calendar: Hour},
			Interval: time.Duration(intervalS) * time.Second}
		r, err := Compute(context.Background(), src, q)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := Compute(context.Background(), oneByOne{src}, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, r1) {
			t.Fatalf("batch and one-by-one differ:\n%+v\n%+v", r, r1)
		}
		if r.Completeness < 0 || r.Completeness > 1+1e-12 || r.Total < 0 || r.Estimated < 0 || r.Estimated > r.Total*(1+1e-12) {
			t.Fatalf("completeness %v total %v estimated %v", r.Completeness, r.Total, r.Estimated)
		}
		var sum float64
		for _, b := range r.Buckets {
			if b.Completeness < 0 || b.Completeness > 1+1e-12 || b.Energy < 0 {
				t.Fatalf("bucket %+v", b)
			}
			sum += b.Energy.Joules()
		}
		if math.Abs(sum-r.Total.Joules()) > 1e-9*math.Max(1, sum) {
			t.Fatalf("buckets sum to %v, total %v", sum, r.Total)
		}
	})
}
