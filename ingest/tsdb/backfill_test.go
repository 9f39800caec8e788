package tsdb

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// A year-old meter export goes in as blocks, far behind the out-of-order
// window, and reads back exactly; data given twice is read once.
func TestBackfillOldData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Retention: 3 * 365 * 24 * time.Hour, OutOfOrderWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().Truncate(time.Hour)
	// Live data first, so the head's window is now.
	app := s.Appender(context.Background())
	live := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "facility")
	if _, err := app.Append(0, live, now.UnixMilli(), 1e9); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	// A plain append a year back is refused (out of the window)...
	yearAgo := now.AddDate(-1, 0, 0)
	app = s.Appender(context.Background())
	if _, err := app.Append(0, live, yearAgo.UnixMilli(), 1); err == nil {
		t.Fatal("a sample a year old was appended to the head")
	}
	_ = app.Rollback()

	// ...and a backfill of 30 days at 15 min, across several windows, takes it.
	w, err := ingest.NewWriter(s.Backfill(), ingest.WriterOptions{MaxAge: 2 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var pts []sample.Point
	var want float64
	for ts := yearAgo; ts.Before(yearAgo.AddDate(0, 0, 30)); ts = ts.Add(15 * time.Minute) {
		want += 125e3 * 900 // 125 kW for 15 min
		pts = append(pts, sample.Point{T: ts.UnixMilli(), V: want})
	}
	series := []sample.Series{{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
		{Name: "site", Value: "fra1"}, {Name: "component", Value: "facility"}}, Points: pts}}
	for round := range 2 { // the second import is the same file again
		res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, series)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res.Accepted != len(pts) || len(res.Rejected) != 0 {
			t.Fatalf("round %d: %d samples stored, %d rejected: %+v", round, res.Accepted, len(res.Rejected), res.Rejected)
		}
	}
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "site", "fra1"))
	if !ss.Next() {
		t.Fatal("no series")
	}
	it := ss.At().Iterator(nil)
	n, last := 0, 0.0
	for it.Next() == chunkenc.ValFloat {
		ts, v := it.At()
		if ts >= now.UnixMilli() {
			break
		}
		if ts != pts[n].T || v != pts[n].V {
			t.Fatalf("sample %d: got %d %v, want %d %v", n, ts, v, pts[n].T, pts[n].V)
		}
		n++
		last = v
	}
	if n != len(pts) || last != want {
		t.Fatalf("read %d samples (last %v), want %d (last %v)", n, last, len(pts), want)
	}

	// Too old for the retention: rejected by the writer with the reason.
	res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, []sample.Series{{Labels: series[0].Labels,
		Points: []sample.Point{{T: now.AddDate(-3, 0, 0).UnixMilli(), V: 1}}}})
	if err != nil || len(res.Rejected) != 1 || res.Rejected[0].Reason != sample.ReasonTooOld {
		t.Fatalf("a sample older than the retention: err %v, rejected %+v", err, res.Rejected)
	}
}

// A rolled-back backfill leaves no block behind.
func TestBackfillRollback(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Retention: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before, _ := os.ReadDir(dir)
	app := s.Backfill().Appender(context.Background())
	if _, err := app.Append(0, labels.FromStrings("__name__", "x"), time.Now().AddDate(0, -2, 0).UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Rollback(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Fatalf("directory went from %d to %d entries after a rollback", len(before), len(after))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "01*")); len(m) != 0 {
		t.Fatalf("blocks left: %v", m)
	}
}

// A backfill reaching into the head's range must not cost the head its
// samples when the write-ahead log is replayed after a restart.
func TestBackfillIntoHeadSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Retention: 365 * 24 * time.Hour}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute)
	live := labels.FromStrings("__name__", "live_total")
	app := s.Appender(context.Background())
	for i := range 60 { // the last hour, in the head
		if _, err := app.Append(0, live, now.Add(time.Duration(i-60)*time.Minute).UnixMilli(), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	// A meter export from 20 days ago up to a minute ago.
	meter := labels.FromStrings("__name__", "meter_total")
	bf := s.Backfill().Appender(context.Background())
	n := 0
	for ts := now.Add(-20 * 24 * time.Hour); ts.Before(now); ts = ts.Add(15 * time.Minute) {
		if _, err := bf.Append(0, meter, ts.UnixMilli(), float64(n)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := bf.Commit(); err != nil {
		t.Fatal(err)
	}
	count := func(s *Store, name string) int {
		q, err := s.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
		c := 0
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				c++
			}
		}
		return c
	}
	if got := count(s, "live_total"); got != 60 {
		t.Fatalf("before the restart: %d live samples, want 60", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := count(s, "live_total"); got != 60 {
		t.Errorf("after the restart: %d live samples, want 60 (the WAL replay dropped some)", got)
	}
	if got := count(s, "meter_total"); got != n {
		t.Errorf("after the restart: %d meter samples, want %d", got, n)
	}
}
