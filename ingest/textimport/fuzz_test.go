package textimport

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

// countSampleLines counts the lines Parse must answer for: neither blank nor comments.
func countSampleLines(data []byte) (samples, lines int) {
	for len(data) > 0 {
		lines++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		t := bytes.TrimLeft(line, " \t")
		if len(line) > MaxLineBytes || (len(t) > 0 && t[0] != '#') {
			samples++
		}
	}
	return samples, lines
}

// format writes series back in the exposition format, one line per point.
func format(series []sample.Series) []byte {
	var b strings.Builder
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	for _, s := range series {
		for _, p := range s.Points {
			b.WriteString(s.Labels[0].Value)
			b.WriteByte('{')
			for i, l := range s.Labels[1:] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(l.Name + `="` + esc.Replace(l.Value) + `"`)
			}
			b.WriteString("} " + strconv.FormatFloat(p.V, 'g', -1, 64) + " " + strconv.FormatInt(p.T, 10) + "\n")
		}
	}
	return []byte(b.String())
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("# TYPE up gauge\nup{job=\"node\"} 1 1763800000000\nup 0\n"), int64(1763800000000))
	f.Add([]byte("m{a=\"x\\\"y\\\\z\\n\",b=\"\"} NaN\r\nm{b=\"\",a=\"x\\\"y\\\\z\\n\"} -Inf 5\n"), int64(0))
	f.Add([]byte("bad{ 1\n{a=\"b\"} 2\nm 1_0\nm 1 2 3\n"), int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, ts int64) {
		series, rejs := Parse(data, ts)
		want, lines := countSampleLines(data)
		got := len(rejs)
		for _, s := range series {
			got += len(s.Points)
			if len(s.Points) == 0 || len(s.Labels) == 0 || s.Labels[0].Name != "__name__" || s.Labels[0].Value == "" {
				t.Fatalf("bad series %+v", s)
			}
		}
		if got != want {
			t.Fatalf("%d points and rejections for %d sample lines", got, want)
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
			case sample.ReasonMalformed, sample.ReasonMissingMetricName, sample.ReasonInvalidValue:
			default:
				t.Fatalf("bad reason in %+v", r)
			}
		}
		// What was read, written back, reads the same.
		again, rejs2 := Parse(format(series), 0)
		if len(rejs2) != 0 {
			t.Fatalf("round trip refused %+v\n%q", rejs2, format(series))
		}
		if len(again) != len(series) {
			t.Fatalf("round trip: %d series, want %d", len(again), len(series))
		}
		for i := range series {
			a, b := series[i], again[i]
			if len(a.Labels) != len(b.Labels) || len(a.Points) != len(b.Points) {
				t.Fatalf("round trip: %+v != %+v", a, b)
			}
			for j := range a.Labels {
				if a.Labels[j] != b.Labels[j] {
					t.Fatalf("round trip: %+v != %+v", a.Labels, b.Labels)
				}
			}
			for j := range a.Points {
				if a.Points[j].T != b.Points[j].T || math.Float64bits(a.Points[j].V) != math.Float64bits(b.Points[j].V) {
					if !(math.IsNaN(a.Points[j].V) && math.IsNaN(b.Points[j].V)) {
						t.Fatalf("round trip: %+v != %+v", a.Points[j], b.Points[j])
					}
				}
			}
		}
	})
}
