package sample

import (
	"encoding/json"
	"testing"
)

func TestRejectionJSON(t *testing.T) {
	for _, tc := range []struct {
		r    Rejection
		want string
	}{
		{Rejection{Index: 0, Field: "metric", Reason: ReasonInvalidMetricName, Detail: "d"},
			`{"field":"metric","reason":"invalid_metric_name","detail":"d","index":0}`},
		{Rejection{Line: 3, Index: -1, Field: "line", Reason: ReasonMalformed, Detail: "d"},
			`{"line":3,"field":"line","reason":"malformed","detail":"d"}`},
		{Rejection{Index: -1, Series: `m{a="b"}`, TimestampMs: 5, Field: "timestamp", Reason: ReasonTooOld, Detail: "d"},
			`{"series":"m{a=\"b\"}","timestamp_ms":5,"field":"timestamp","reason":"too_old","detail":"d"}`},
	} {
		b, err := json.Marshal(tc.r)
		if err != nil || string(b) != tc.want {
			t.Errorf("got %s (%v), want %s", b, err, tc.want)
		}
		var back Rejection
		if err := json.Unmarshal(b, &back); err != nil || back != tc.r {
			t.Errorf("round trip of %s: %+v (%v), want %+v", b, back, err, tc.r)
		}
	}
}

func TestFormatLabels(t *testing.T) {
	s := Series{Labels: []Label{{"site", "fra\"1"}, {"__name__", "m"}, {"node", "n"}}}
	if got, want := s.String(), `m{site="fra\"1",node="n"}`; got != want {
		t.Errorf("got %s want %s", got, want)
	}
	if s.Get("node") != "n" || s.Get("nope") != "" {
		t.Error("Get")
	}
}
