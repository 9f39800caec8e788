package validate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/greenloop/greenloop/internal/sample"
)

// FuzzNames checks the hand-written name checks against the regular
// expressions they replace.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"", "up", "greenloop_power_watts", "1a", "a:b", "__name__", "ä", "a-b", "_", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidMetricName(s), metricNameRE.MatchString(s); got != want {
			t.Errorf("ValidMetricName(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := ValidLabelName(s), labelNameRE.MatchString(s); got != want {
			t.Errorf("ValidLabelName(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

// FuzzLabels builds a label set from "name=value" pairs separated by ';' and
// checks that an accepted set really satisfies every rule, and that a refused
// one gets a known reason.
func FuzzLabels(f *testing.F) {
	f.Add("__name__=up;job=node", 3)
	f.Add("__name__=m;a=;b=2", 1)
	f.Add("__name__=m;a=1;a=2", 0)
	f.Add("a=1", 5)
	f.Add("__name__=1x;__y=2", 2)
	f.Fuzz(func(t *testing.T, spec string, max int) {
		var in []sample.Label
		for _, kv := range strings.Split(spec, ";") {
			name, val, _ := strings.Cut(kv, "=")
			in = append(in, sample.Label{Name: name, Value: val})
		}
		out, rej := Labels(in, max)
		if rej != nil {
			switch rej.Reason {
			case sample.ReasonTooManyLabels, sample.ReasonMissingMetricName, sample.ReasonInvalidMetricName,
				sample.ReasonInvalidLabelName, sample.ReasonDuplicateLabel, sample.ReasonInvalidLabelValue:
			default:
				t.Fatalf("unknown reason %q", rej.Reason)
			}
			if out != nil || rej.Detail == "" || (rej.Field != "label" && rej.Field != "metric") {
				t.Fatalf("bad rejection %+v (out %v)", *rej, out)
			}
			return
		}
		if max > 0 && len(out) > max {
			t.Fatalf("%d labels accepted over limit %d", len(out), max)
		}
		seen := map[string]bool{}
		haveName := false
		for _, l := range out {
			if l.Value == "" {
				t.Fatalf("empty value kept: %v", out)
			}
			if seen[l.Name] {
				t.Fatalf("duplicate %q accepted", l.Name)
			}
			seen[l.Name] = true
			if !utf8.ValidString(l.Value) {
				t.Fatalf("invalid UTF-8 accepted")
			}
			if l.Name == MetricNameLabel {
				haveName = true
				if !ValidMetricName(l.Value) {
					t.Fatalf("bad metric name %q accepted", l.Value)
				}
				continue
			}
			if !ValidLabelName(l.Name) || strings.HasPrefix(l.Name, "__") {
				t.Fatalf("bad label name %q accepted", l.Name)
			}
		}
		if !haveName {
			t.Fatal("accepted without a metric name")
		}
	})
}
