package rollup

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzRollupMatchers: any selector a caller passes either fails to parse or
// becomes matchers on the roll-ups with no metric-name matcher left, one per
// matcher of the selector, the metric-name ones moved to source_metric.
func FuzzRollupMatchers(f *testing.F) {
	for _, s := range []string{
		`greenloop_energy_joules_total{site="fra1",component="it"}`,
		`{__name__=~"greenloop_(energy_joules_total|power_watts)",node!="x"}`,
		`greenloop_power_watts`,
		`{site="fra1"}`,
		`x{a=~"(", b="c"}`,
	} {
		f.Add(s)
	}
	p := parser.NewParser(parser.Options{})
	f.Fuzz(func(t *testing.T, sel string) {
		ms, err := rollupMatchers(p, sel)
		if err != nil {
			return
		}
		orig, err := p.ParseMetricSelector(sel)
		if err != nil {
			t.Fatalf("rollupMatchers accepted %q, the parser refuses it: %v", sel, err)
		}
		if len(ms) != len(orig) {
			t.Fatalf("%q: %d matchers, want %d", sel, len(ms), len(orig))
		}
		for i, m := range ms {
			if m.Name == model.MetricNameLabel {
				t.Fatalf("%q: metric-name matcher left: %v", sel, m)
			}
			o := orig[i]
			if o.Name == model.MetricNameLabel && (m.Name != SourceMetricLabel || m.Type != o.Type || m.Value != o.Value) {
				t.Fatalf("%q: %v became %v", sel, o, m)
			}
			if o.Name != model.MetricNameLabel && (m.Name != o.Name || m.Type != o.Type || m.Value != o.Value) {
				t.Fatalf("%q: %v changed to %v", sel, o, m)
			}
		}
	})
}
