package clickhouse

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// FuzzMatchersSQL checks the translation of PromQL matchers (outside input)
// into SQL: the text of the SQL never carries the user's strings (they travel
// as bind arguments, one per placeholder), and the anchored pattern handed to
// ClickHouse's RE2 matches exactly what the Prometheus matcher matches.
func FuzzMatchersSQL(f *testing.F) {
	f.Add(uint8(0), "site", "fra1", "fra1")
	f.Add(uint8(1), "__name__", "x", "y")
	f.Add(uint8(2), "site", "fra|par", "fra")
	f.Add(uint8(3), "zone", `a\.b`, "a.b")
	f.Add(uint8(2), "site", "(?i)FRA.*", "fra\n1")
	f.Add(uint8(2), "x", "", "")
	f.Add(uint8(0), "q", "it's", "a') OR 1=1 --")
	f.Fuzz(func(t *testing.T, typ uint8, name, value, probe string) {
		if !utf8.ValidString(value) {
			return // PromQL's lexer rejects strings that are not UTF-8
		}
		mt := labels.MatchType(typ % 4)
		m, err := labels.NewMatcher(mt, name, value)
		if err != nil {
			return // not a valid regexp: the PromQL parser rejects it first
		}
		sql, args := matchersSQL([]*labels.Matcher{m})
		if got := strings.Count(sql, "?"); got != len(args) {
			t.Fatalf("%q: %d placeholders, %d args", sql, got, len(args))
		}
		expr := "metric"
		if name != model.MetricNameLabel {
			expr = "label_values[indexOf(label_names, ?)]"
			if args[0] != name {
				t.Fatalf("first arg %q, want the label name %q", args[0], name)
			}
		}
		want := map[labels.MatchType]string{
			labels.MatchEqual:     expr + " = ?",
			labels.MatchNotEqual:  expr + " != ?",
			labels.MatchRegexp:    "match(" + expr + ", ?)",
			labels.MatchNotRegexp: "NOT match(" + expr + ", ?)",
		}[mt]
		if sql != want {
			t.Fatalf("sql %q, want %q", sql, want)
		}
		if mt == labels.MatchEqual || mt == labels.MatchNotEqual {
			if args[len(args)-1] != value {
				t.Fatalf("value arg %q, want %q", args[len(args)-1], value)
			}
			return
		}
		re, err := regexp.Compile(args[len(args)-1].(string))
		if err != nil {
			t.Fatalf("anchored pattern of %q does not compile: %v", value, err)
		}
		for _, s := range []string{probe, value, "", probe + "\n" + probe} {
			sqlSays := re.MatchString(s) != (mt == labels.MatchNotRegexp) // NOT match() for !~
			if sqlSays != m.Matches(s) {
				t.Fatalf("pattern %q on %q: %v, Prometheus matcher %s says %v", args[len(args)-1], s, re.MatchString(s), m, m.Matches(s))
			}
		}
	})
}
