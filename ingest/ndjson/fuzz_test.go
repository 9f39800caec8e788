package ndjson

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(designExample+"\n"), int64(0))
	f.Add([]byte(`{"metric":"m","labels":{"a":"1","a":"2"},"value":1}`+"\n"+`{"metric":"m","value":"NaN"}`), int64(5))
	f.Add([]byte("{\"metric\":\"up\",\"value\":1,\"timestamp_ms\":1e3}\r\n\n[]\n{"), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, ts int64) {
		series, rejs := Parse(data, ts)
		want, lines := 0, 0
		for rest := data; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			lines++
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) > MaxLineBytes || len(bytes.Trim(line, " \t\r")) > 0 {
				want++
			}
		}
		got := len(rejs)
		for _, s := range series {
			got += len(s.Points)
			if len(s.Points) == 0 || len(s.Labels) == 0 || s.Labels[0].Name != "__name__" || s.Labels[0].Value == "" {
				t.Fatalf("bad series %+v", s)
			}
			for _, p := range s.Points {
				if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
					t.Fatalf("JSON cannot carry %v", p.V)
				}
			}
		}
		if got != want {
			t.Fatalf("%d points and rejections for %d non-blank lines", got, want)
		}
		prev := 0
		for _, r := range rejs {
			if r.Line < 1 || r.Line > lines || r.Line <= prev || r.Index != -1 || r.Detail == "" {
				t.Fatalf("bad rejection %+v", r)
			}
			prev = r.Line
			switch r.Field {
			case "line", "metric", "label", "value", "timestamp":
			default:
				t.Fatalf("bad field in %+v", r)
			}
			switch r.Reason {
			case sample.ReasonMalformed, sample.ReasonMissingMetricName, sample.ReasonInvalidMetricName,
				sample.ReasonInvalidLabelName, sample.ReasonInvalidLabelValue, sample.ReasonDuplicateLabel, sample.ReasonInvalidValue:
			default:
				t.Fatalf("bad reason in %+v", r)
			}
		}
		// What was read, written back with encoding/json, reads the same.
		var buf bytes.Buffer
		for _, s := range series {
			labels := map[string]string{}
			for _, l := range s.Labels[1:] {
				labels[l.Name] = l.Value
			}
			for _, p := range s.Points {
				line, err := json.Marshal(map[string]any{"metric": s.Labels[0].Value, "labels": labels, "value": p.V, "timestamp_ms": p.T})
				if err != nil {
					t.Fatal(err)
				}
				buf.Write(append(line, '\n'))
			}
		}
		again, rejs2 := Parse(buf.Bytes(), 0)
		if len(rejs2) != 0 || len(again) != len(series) {
			t.Fatalf("round trip: %d series and %+v, want %d series", len(again), rejs2, len(series))
		}
		for i := range series {
			a, b := series[i], again[i]
			if len(a.Labels) != len(b.Labels) || len(a.Points) != len(b.Points) {
				t.Fatalf("round trip: %+v != %+v", a, b)
			}
			for j := range a.Points {
				if a.Points[j].T != b.Points[j].T || math.Float64bits(a.Points[j].V) != math.Float64bits(b.Points[j].V) {
					t.Fatalf("round trip: %+v != %+v", a.Points[j], b.Points[j])
				}
			}
		}
	})
}
