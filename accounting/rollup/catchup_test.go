package rollup

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// A catch-up's progress and duration show in Stats and in the log.
func TestCatchUpTimeVisible(t *testing.T) {
	e := newEnv(t, t0.Add(10*time.Hour))
	ts, vs := counterData(t0, t0.Add(10*time.Hour), wave(300, 20), time.Time{}, nil)
	appendSamples(t, e.store, labels.FromStrings("__name__", counterName, "site", "fra1"), ts, vs)
	var logs bytes.Buffer
	j := e.job(t, Options{Metrics: []string{counterName}, MaxHoursPerRun: 4, BatchHours: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var runs []Stats
	for range 5 {
		more, err := j.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, j.Stats())
		if !more {
			break
		}
	}
	// 9 complete hours (00:00 to 09:00, settled), at most 4 per run, and
	// their re-computations (the job's own writes count as late here).
	if len(runs) < 3 {
		t.Fatalf("%d runs, want at least 3: %+v", len(runs), runs)
	}
	for i, st := range runs {
		last := i == len(runs)-1
		if st.CatchingUp == last || st.CatchUpHours != st.HoursComputed || st.CatchUpTook <= 0 || st.LastRunTook <= 0 {
			t.Errorf("run %d: catching up %v, %d hours (of %d computed) in %s (last run %s); want %v, all hours, positive durations",
				i+1, st.CatchingUp, st.CatchUpHours, st.HoursComputed, st.CatchUpTook, st.LastRunTook, !last)
		}
		if i > 0 && (st.CatchUpTook < runs[i-1].CatchUpTook || st.CatchUpHours <= runs[i-1].CatchUpHours) {
			t.Errorf("run %d: catch-up went back: %d hours in %s after %d in %s", i+1, st.CatchUpHours, st.CatchUpTook, runs[i-1].CatchUpHours, runs[i-1].CatchUpTook)
		}
	}
	final := runs[len(runs)-1]
	if !final.Next.Equal(t0.Add(9 * time.Hour)) {
		t.Errorf("next %s, want 09:00", final.Next)
	}
	for _, want := range []string{"rollup: catching up", "rollup: catch-up progress", "rollup: caught up", "hours=" + strconv.FormatInt(final.CatchUpHours, 10), "took="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
