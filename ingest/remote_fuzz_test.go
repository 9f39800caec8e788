package ingest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// recordingStore keeps appended samples in memory; queries are not needed here.
type recordingStore struct {
	storage.Queryable
	got []recorded
}

type recorded struct {
	lset labels.Labels
	t    int64
	v    float64
}

type recordingAppender struct {
	storage.Appender
	s       *recordingStore
	pending []recorded
}

func (s *recordingStore) Appender(context.Context) storage.Appender {
	return &recordingAppender{s: s}
}
func (s *recordingStore) Stats(context.Context) (Stats, error) { return Stats{}, nil }
func (s *recordingStore) Close() error                         { return nil }

func (a *recordingAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	a.pending = append(a.pending, recorded{l, t, v})
	return storage.SeriesRef(len(a.pending)), nil
}
func (a *recordingAppender) Commit() error   { a.s.got = append(a.s.got, a.pending...); return nil }
func (a *recordingAppender) Rollback() error { a.pending = nil; return nil }

// FuzzWriteRemote checks the one-pass decoder against the generated protobuf
// code: whatever the reference decoder accepts, ours must accept with the same
// series and samples; what ours accepts must never panic, and a malformed
// body stores nothing.
func FuzzWriteRemote(f *testing.F) {
	now := time.UnixMilli(1_763_800_000_000)
	seed := func(req *prompb.WriteRequest) {
		b, err := req.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "greenloop_power_watts"}, {Name: "site", Value: "fra1"}},
		Samples: []prompb.Sample{{Value: 212.5, Timestamp: now.UnixMilli()}, {Value: 213, Timestamp: now.UnixMilli() + 1000}},
	}}})
	seed(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "bad-name"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Value: math.NaN(), Timestamp: now.UnixMilli()}}},
	}, Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Help: "h"}}})
	// A Prometheus shard that is behind: one entry per sample; a negative
	// timestamp (a ten-byte varint) and a zero one (omitted on the wire).
	seed(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "greenloop_power_watts"}, {Name: "site", Value: "fra1"}}, Samples: []prompb.Sample{{Value: 212.5, Timestamp: now.UnixMilli()}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "greenloop_power_watts"}, {Name: "site", Value: "fra1"}}, Samples: []prompb.Sample{{Value: 213, Timestamp: -1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "greenloop_power_watts"}, {Name: "site", Value: "fra1"}}, Samples: []prompb.Sample{{Value: 0, Timestamp: 0}}},
	}})
	// A sample with a field after its timestamp (field 3, varint 1), then
	// the series' label.
	f.Add([]byte{0x0a, 0x1b, 0x12, 0x0d, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01, 0x18, 0x01,
		0x0a, 0x0a, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_'})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		st := &recordingStore{}
		w, err := NewWriter(st, WriterOptions{Clock: func() time.Time { return now }, MaxAge: 100 * 365 * 24 * time.Hour, MaxFutureSkew: 100 * 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.WriteRemote(context.Background(), WriteOptions{}, body)
		var ref prompb.WriteRequest
		refErr := ref.Unmarshal(body)
		if err != nil {
			if len(st.got) != 0 {
				t.Fatalf("malformed body stored %d samples", len(st.got))
			}
			if refErr == nil && len(ref.Timeseries) > 0 {
				// The reference decoder is laxer about unknown fields' wire types only.
				t.Logf("we refused what the reference accepted: %v", err)
			}
			return
		}
		if refErr != nil {
			return // e.g. invalid UTF-8 in a string, which proto3 rejects and we refuse per series
		}
		// Same number of samples seen: stored + refused.
		want := 0
		for _, ts := range ref.Timeseries {
			want += len(ts.Samples) + len(ts.Histograms)
		}
		if res.Accepted+res.RejectedCount != want {
			t.Fatalf("accepted %d + rejected %d != %d samples in the request", res.Accepted, res.RejectedCount, want)
		}
		if len(st.got) != res.Accepted {
			t.Fatalf("stored %d, reported %d", len(st.got), res.Accepted)
		}
		// Every stored sample is one of the request's, timestamp and value bits alike.
		type tv struct {
			t int64
			v uint64
		}
		left := map[tv]int{}
		for _, ts := range ref.Timeseries {
			for _, s := range ts.Samples {
				left[tv{s.Timestamp, math.Float64bits(s.Value)}]++
			}
		}
		for _, g := range st.got {
			k := tv{g.t, math.Float64bits(g.v)}
			if left[k] == 0 {
				t.Fatalf("stored %s %d %v, which the request does not hold (or holds fewer times)", g.lset, g.t, g.v)
			}
			left[k]--
		}
	})
}
