package loadgen

import (
	"bytes"
	"slices"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func decode(t *testing.T, r Request) prompb.WriteRequest {
	t.Helper()
	pb, err := snappy.Decode(nil, r.Body)
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(pb); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return wr
}

func TestEncodeAllCoversEverySampleInOrder(t *testing.T) {
	for _, tc := range []struct {
		kind                  Kind
		stepsPerReq, requests int
	}{
		{Power, 0, 5 * 4}, {Energy, 1, 5 * 4},
		// 4 steps in windows of 3: a window of 3 steps, then one of 1.
		{Power, 3, 5 * 2}, {Energy, 3, 5 * 2},
	} {
		kind := tc.kind
		l := Load{Kind: kind, Fleet: Fleet{Series: 250, Sites: 3}, Start: 1_700_000_000_000, Step: 15_000, Steps: 4, Batch: 60, StepsPerRequest: tc.stepsPerReq}
		if l.Requests() != tc.requests {
			t.Fatalf("steps per request %d: Requests() = %d, want %d", tc.stepsPerReq, l.Requests(), tc.requests)
		}
		out, err := l.EncodeAll(3)
		if err != nil {
			t.Fatal(err)
		}
		last := map[string]prompb.Sample{}
		var samples, requests int
		for s, reqs := range out {
			requests += len(reqs)
			for _, r := range reqs {
				wr := decode(t, r)
				if len(wr.Timeseries) != r.Samples || r.Samples > l.Batch*r.Steps || r.Steps < 1 || r.Steps > max(tc.stepsPerReq, 1) {
					t.Fatalf("request has %d series, says %d samples over %d steps (batch %d)", len(wr.Timeseries), r.Samples, r.Steps, l.Batch)
				}
				var prevT int64
				for _, ts := range wr.Timeseries {
					if len(ts.Labels) != 7 || ts.Labels[0].Value != kind.Metric() {
						t.Fatalf("labels %v", ts.Labels)
					}
					if !slices.IsSortedFunc(ts.Labels, func(a, b prompb.Label) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) }) {
						t.Fatalf("labels not sorted: %v", ts.Labels)
					}
					k := ""
					for _, lb := range ts.Labels {
						k += lb.Name + "=" + lb.Value + ","
					}
					if len(ts.Samples) != 1 {
						t.Fatalf("a time series entry with %d samples, want one per entry as Prometheus sends", len(ts.Samples))
					}
					sm := ts.Samples[0]
					if sm.Timestamp < l.Start+int64(r.Step)*l.Step || sm.Timestamp >= l.Start+int64(r.Step+r.Steps)*l.Step {
						t.Fatalf("sender %d: sample at %d in a request of steps %d+%d", s, sm.Timestamp, r.Step, r.Steps)
					}
					if sm.Timestamp < prevT {
						t.Fatalf("sender %d: request goes back in time: %d after %d", s, sm.Timestamp, prevT)
					}
					prevT = sm.Timestamp
					if prev, ok := last[k]; ok {
						if sm.Timestamp <= prev.Timestamp {
							t.Fatalf("series %s out of order: %d after %d", k, sm.Timestamp, prev.Timestamp)
						}
						if kind == Energy && sm.Value <= prev.Value {
							t.Fatalf("counter %s went from %v to %v", k, prev.Value, sm.Value)
						}
					}
					last[k] = sm
					samples++
				}
			}
		}
		if int64(samples) != l.Samples() || requests != l.Requests() || len(last) != l.Fleet.Series {
			t.Fatalf("%d samples in %d requests over %d series; want %d in %d over %d",
				samples, requests, len(last), l.Samples(), l.Requests(), l.Fleet.Series)
		}
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	l := Load{Kind: Energy, Fleet: Fleet{Series: 100, Sites: 20}, Start: 1_700_000_000_000, Step: 60_000, Steps: 3, Batch: 40}
	a, err := l.EncodeAll(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.EncodeAll(2)
	if err != nil {
		t.Fatal(err)
	}
	for s := range a {
		for i := range a[s] {
			if !bytes.Equal(a[s][i].Body, b[s][i].Body) {
				t.Fatalf("sender %d request %d differs between two encodings", s, i)
			}
		}
	}
}

func TestEncodeRefusesStepsOutOfOrder(t *testing.T) {
	l := Load{Fleet: Fleet{Series: 10, Sites: 1}, Start: 0, Step: 1000, Steps: 2, Batch: 10}
	e := l.NewEncoders(1)[0]
	if _, err := e.Encode(0, 1); err == nil {
		t.Fatal("encoding step 1 before step 0 succeeded")
	}
	for w := range 2 {
		if _, err := e.Encode(0, w); err != nil {
			t.Fatalf("window %d: %v", w, err)
		}
	}
	if _, err := e.Encode(0, 2); err == nil {
		t.Fatal("encoding past the last step succeeded")
	}
}

func TestFleetLabels(t *testing.T) {
	f := Fleet{Series: 10_000, Sites: 20}
	if f.SitesUsed() != 20 {
		t.Fatalf("SitesUsed = %d", f.SitesUsed())
	}
	seen := map[string]bool{}
	sites := map[string]bool{}
	for i := range f.Series {
		ls := f.Labels(Power, i)
		k := ""
		for _, lb := range ls {
			k += lb.Value + "/"
		}
		if seen[k] {
			t.Fatalf("series %d duplicates labels %s", i, k)
		}
		seen[k] = true
		sites[ls[5].Value] = true
	}
	if len(sites) != 20 {
		t.Fatalf("%d sites", len(sites))
	}
	if (Fleet{Series: 30, Sites: 20}).SitesUsed() != 3 {
		t.Fatal("3 nodes cover at most 3 sites")
	}
}

func TestWattsResolution(t *testing.T) {
	for i := range SensorsPerNode {
		v := Watts(i, 1_700_000_000_000)
		if v <= 0 || v > 2000 {
			t.Fatalf("sensor %d: %v W", i, v)
		}
	}
	if v := Watts(8, 123_000); v != float64(int64(v)) {
		t.Fatalf("redfish PSU reading %v is not whole watts", v)
	}
}
