package clickhouse_test

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// ClickHouse's match() with the anchored pattern agrees with Prometheus'
// matcher, \Q…\E quoting included (an unterminated \Q once swallowed the
// anchoring).
func TestAnchoredRegexpOnClickHouse(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	for _, tc := range []struct {
		re  string
		in  []string
		out []string
	}{
		{`\Q`, []string{""}, []string{"Q", ")$"}},
		{`a\Q.b`, []string{"a.b"}, []string{"axb", "a.b)$"}},
		{`a\Q.*\Eb+`, []string{"a.*b", "a.*bbb"}, []string{"axxb", "a.*"}},
		{`fra[0-9]|ams1`, []string{"fra1", "ams1"}, []string{"fra12", "xams1"}},
		{`.*`, []string{"", "a\nb"}, nil},
	} {
		m := labels.MustNewMatcher(labels.MatchRegexp, "site", tc.re)
		pattern := clickhouse.AnchoredRegexp(tc.re)
		for want, list := range map[bool][]string{true: tc.in, false: tc.out} {
			for _, s := range list {
				var got uint8
				if err := st.Conn().QueryRow(context.Background(), "SELECT match(?, ?)", s, pattern).Scan(&got); err != nil {
					t.Fatalf("%q on %q: %v", pattern, s, err)
				}
				if (got == 1) != want || m.Matches(s) != want {
					t.Errorf("=~%q on %q: ClickHouse %d, Prometheus %v, want %v", tc.re, s, got, m.Matches(s), want)
				}
			}
		}
	}
}
