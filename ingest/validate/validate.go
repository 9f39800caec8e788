// Package validate checks one series (its labels and its samples) against
// Prometheus' naming rules and greenloop's own rules before it is stored. It
// is pure: no I/O, no state, and no allocation on the path of a valid sample.
//
// Names follow the classic Prometheus rules, not the UTF-8 names Prometheus 3
// can opt into: metric names match [a-zA-Z_:][a-zA-Z0-9_:]* and label names
// [a-zA-Z_][a-zA-Z0-9_]*. Label names beginning with "__" are reserved for
// Prometheus' internal use; only "__name__" (the metric name) is accepted.
package validate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greenloop/greenloop/internal/sample"
	"github.com/prometheus/prometheus/model/value"
)

// MetricNameLabel is the label that carries a series' metric name.
const MetricNameLabel = "__name__"

// CanonicalPrefix starts the names of greenloop's own (canonical) metrics,
// to which the stricter value rules of Point apply.
const CanonicalPrefix = "greenloop_"

// Limits bounds what a series may look like. A zero (or negative) field
// disables its check.
type Limits struct {
	// MaxLabels is the most labels a series may have, "__name__" included,
	// counted after labels with empty values are dropped. 0 means no limit.
	MaxLabels int
	// MaxFutureSkew is how far ahead of the server's clock a sample's
	// timestamp may be. 0 means no limit.
	MaxFutureSkew time.Duration
	// MaxAge is how far behind the server's clock a sample's timestamp may
	// be. 0 means no limit.
	MaxAge time.Duration
}

// DefaultLimits are the limits the server applies unless configured otherwise:
// 32 labels (Prometheus sets none; greenloop's canonical series use 7), 10
// minutes of clock skew, and 7 days of age, so that an agent's disk queue can
// drain after a week-long WAN outage. The store may refuse older samples on
// its own account (e.g. outside the TSDB's out-of-order window).
func DefaultLimits() Limits {
	return Limits{MaxLabels: 32, MaxFutureSkew: 10 * time.Minute, MaxAge: 7 * 24 * time.Hour}
}

// ValidMetricName reports whether s is a valid metric name:
// non-empty and matching [a-zA-Z_:][a-zA-Z0-9_:]*.
func ValidMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// ValidLabelName reports whether s is a valid label name:
// non-empty and matching [a-zA-Z_][a-zA-Z0-9_]*. It does not treat reserved
// names (those starting with "__") specially; Labels does.
func ValidLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// maxQuoted is how many bytes of offending input a detail message quotes.
const maxQuoted = 64

// Quote renders s for an error detail: Go-quoted, cut to at most 64 bytes of
// input (on a UTF-8 boundary) with "..." appended when cut. Decoders use it
// too, so all details quote input the same way.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// Labels checks a series' labels, in this order: the label count against
// maxLabels (0 = no limit); that "__name__" is present with a non-empty,
// valid metric name; that every label name is valid and not reserved; that
// no name appears twice; that every value is valid UTF-8.
//
// A label with an empty value is not an error: in Prometheus an empty value
// means the label is absent, so such labels are dropped from the result (and
// not counted against maxLabels). The result is ls itself when nothing is
// dropped (no allocation), otherwise a new slice; ls is never modified.
//
// On failure it returns nil and a Rejection with Series, Field ("metric" or
// "label"), Reason and Detail set; the caller fills Line, Index and
// TimestampMs.
func Labels(ls []sample.Label, maxLabels int) ([]sample.Label, *sample.Rejection) {
	empty := 0
	name, haveName := "", false
	for i := range ls {
		if ls[i].Value == "" {
			empty++
		}
		if ls[i].Name == MetricNameLabel {
			name, haveName = ls[i].Value, true
		}
	}
	if n := len(ls) - empty; maxLabels > 0 && n > maxLabels {
		return nil, reject(ls, "label", sample.ReasonTooManyLabels,
			fmt.Sprintf("series has %d labels, more than the limit of %d", n, maxLabels))
	}
	if !haveName || name == "" {
		return nil, reject(ls, "metric", sample.ReasonMissingMetricName, "series has no metric name (__name__)")
	}
	if !ValidMetricName(name) {
		return nil, reject(ls, "metric", sample.ReasonInvalidMetricName,
			fmt.Sprintf("metric name %s does not match [a-zA-Z_:][a-zA-Z0-9_:]*", Quote(name)))
	}
	for i := range ls {
		n := ls[i].Name
		if n == MetricNameLabel {
			continue
		}
		if !ValidLabelName(n) {
			return nil, reject(ls, "label", sample.ReasonInvalidLabelName,
				fmt.Sprintf("label name %s does not match [a-zA-Z_][a-zA-Z0-9_]*", Quote(n)))
		}
		if strings.HasPrefix(n, "__") {
			return nil, reject(ls, "label", sample.ReasonInvalidLabelName,
				fmt.Sprintf("label name %s is reserved: names starting with \"__\" are for Prometheus' internal use", Quote(n)))
		}
	}
	if dup, ok := duplicateName(ls); ok {
		return nil, reject(ls, "label", sample.ReasonDuplicateLabel,
			fmt.Sprintf("label name %s appears more than once", Quote(dup)))
	}
	for i := range ls {
		if !utf8.ValidString(ls[i].Value) {
			return nil, reject(ls, "label", sample.ReasonInvalidLabelValue,
				fmt.Sprintf("value of label %s is not valid UTF-8: %s", Quote(ls[i].Name), Quote(ls[i].Value)))
		}
	}
	if empty == 0 {
		return ls, nil
	}
	out := make([]sample.Label, 0, len(ls)-empty)
	for _, l := range ls {
		if l.Value != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// duplicateName returns a label name that appears twice in ls, if any.
func duplicateName(ls []sample.Label) (string, bool) {
	if len(ls) <= 32 {
		for i := 1; i < len(ls); i++ {
			for j := 0; j < i; j++ {
				if ls[i].Name == ls[j].Name {
					return ls[i].Name, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(ls))
	for _, l := range ls {
		if _, ok := seen[l.Name]; ok {
			return l.Name, true
		}
		seen[l.Name] = struct{}{}
	}
	return "", false
}

func reject(ls []sample.Label, field, reason, detail string) *sample.Rejection {
	return &sample.Rejection{Series: sample.FormatLabels(ls), Index: -1, Field: field, Reason: reason, Detail: detail}
}

// Point checks one sample of the series named metric against the clock now
// and the limits, and returns ok, or the reason and a detail on failure.
//
// Timestamp rules: more than lim.MaxFutureSkew ahead of now is
// sample.ReasonTooFarInFuture; more than lim.MaxAge behind now is
// sample.ReasonTooOld (a sample exactly at either bound is accepted).
//
// Value rules, applied after the timestamp rules: the Prometheus staleness
// marker (value.StaleNaN) is always accepted. For greenloop's canonical
// metrics (names starting "greenloop_") any other NaN and ±Inf are
// sample.ReasonInvalidValue, and so is a negative value of a counter (a name
// ending "_total"). Other series follow Prometheus semantics: any float is
// accepted.
//
// Point does not allocate when the sample is accepted.
func Point(metric string, p sample.Point, now time.Time, lim Limits) (reason, detail string, ok bool) {
	return PointOf(KindOf(metric), metric, p, now, lim)
}

// Kind classifies a metric name for the value rules of Point.
type Kind uint8

// Kinds of metric.
const (
	// Foreign is any series that is not greenloop's own: every float is accepted.
	Foreign Kind = iota
	// Canonical is a greenloop_ gauge: finite values only.
	Canonical
	// CanonicalCounter is a greenloop_ counter (name ending _total): finite and not negative.
	CanonicalCounter
)

// KindOf classifies a metric name once, so a caller checking many samples of
// one series need not look at the name for each.
func KindOf(metric string) Kind {
	switch {
	case !strings.HasPrefix(metric, CanonicalPrefix):
		return Foreign
	case strings.HasSuffix(metric, "_total"):
		return CanonicalCounter
	default:
		return Canonical
	}
}

// PointOf is Point for a metric already classified by KindOf; metric is used
// only in the detail of a refusal.
func PointOf(kind Kind, metric string, p sample.Point, now time.Time, lim Limits) (reason, detail string, ok bool) {
	nowMs := now.UnixMilli()
	if lim.MaxFutureSkew > 0 && p.T > nowMs && uint64(p.T)-uint64(nowMs) > uint64(lim.MaxFutureSkew.Milliseconds()) {
		return sample.ReasonTooFarInFuture, fmt.Sprintf("timestamp %d is %s ahead of the server clock (%d), more than the allowed %s",
			p.T, msString(uint64(p.T)-uint64(nowMs)), nowMs, lim.MaxFutureSkew), false
	}
	if lim.MaxAge > 0 && p.T < nowMs && uint64(nowMs)-uint64(p.T) > uint64(lim.MaxAge.Milliseconds()) {
		return sample.ReasonTooOld, fmt.Sprintf("timestamp %d is %s behind the server clock (%d), more than the allowed %s",
			p.T, msString(uint64(nowMs)-uint64(p.T)), nowMs, lim.MaxAge), false
	}
	v := p.V
	if kind == Foreign || value.IsStaleNaN(v) {
		return "", "", true
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return sample.ReasonInvalidValue, fmt.Sprintf("value %v is not allowed for greenloop's own metric %s", v, Quote(metric)), false
	}
	if v < 0 && kind == CanonicalCounter {
		return sample.ReasonInvalidValue, fmt.Sprintf("counter %s has negative value %v", Quote(metric), v), false
	}
	return "", "", true
}

// msString renders a difference in milliseconds as a duration when it fits one.
func msString(ms uint64) string {
	if ms <= uint64(math.MaxInt64/int64(time.Millisecond)) {
		return (time.Duration(ms) * time.Millisecond).String()
	}
	return strconv.FormatUint(ms, 10) + "ms"
}
