// Package sample holds the plain data model shared by decoders, collectors and
// stores: labelled series of timestamped float samples, and the record of a
// sample that was refused with the reason why.
package sample

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Label is one name/value pair of a series.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Point is one sample: a timestamp in milliseconds since the Unix epoch and a value.
type Point struct {
	T int64
	V float64
}

// Series is a set of labels (the metric name under "__name__") with its samples.
// Labels need not be sorted; stores sort them.
type Series struct {
	Labels []Label
	Points []Point
	// Lines, when set (line-oriented input formats), holds the 1-based input
	// line of each point, so a refusal can name the line.
	Lines []int
}

// Get returns the value of the label name, or "" when the series has none.
func (s *Series) Get(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// String renders the series as a Prometheus selector, e.g. up{job="x"}.
func (s *Series) String() string { return FormatLabels(s.Labels) }

// FormatLabels renders labels as metric{a="b",...}, the metric name taken from "__name__".
func FormatLabels(ls []Label) string {
	var b strings.Builder
	name := ""
	for _, l := range ls {
		if l.Name == "__name__" {
			name = l.Value
		}
	}
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	for _, l := range ls {
		if l.Name == "__name__" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Rejection says why one sample, series or input line was refused.
type Rejection struct {
	// Series is the series as a selector, when it could be decoded.
	Series string `json:"series,omitempty"`
	// Line is the 1-based input line for line-oriented formats, 0 otherwise.
	Line int `json:"line,omitempty"`
	// Index is the 0-based position of the series in a remote_write request, -1 when not applicable.
	Index int `json:"-"`
	// Timestamp of the refused sample in ms, 0 when the whole series or line was refused.
	TimestampMs int64 `json:"timestamp_ms,omitempty"`
	// Field names what was wrong: "metric", "label", "value", "timestamp", "line", ...
	Field string `json:"field"`
	// Reason is a stable machine-readable code, e.g. "invalid_metric_name".
	Reason string `json:"reason"`
	// Detail is a human-readable explanation.
	Detail string `json:"detail"`
}

// MarshalJSON writes "index" only for refusals that have one (remote_write
// series positions, where 0 is a real position), and "line" only for line formats.
func (r Rejection) MarshalJSON() ([]byte, error) {
	type plain Rejection
	out := struct {
		plain
		Index *int `json:"index,omitempty"`
	}{plain: plain(r)}
	if r.Line == 0 && r.Index >= 0 {
		out.Index = &r.Index
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes; an absent "index" reads as -1.
func (r *Rejection) UnmarshalJSON(b []byte) error {
	type plain Rejection
	var in struct {
		plain
		Index *int `json:"index"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*r = Rejection(in.plain)
	r.Index = -1
	if in.Index != nil {
		r.Index = *in.Index
	}
	return nil
}

// Reasons used in Rejection.Reason. They are also the "reason" label of the
// rejected-samples counter, so the set is small and fixed.
const (
	ReasonMalformed         = "malformed"
	ReasonInvalidMetricName = "invalid_metric_name"
	ReasonInvalidLabelName  = "invalid_label_name"
	ReasonInvalidLabelValue = "invalid_label_value"
	ReasonDuplicateLabel    = "duplicate_label"
	ReasonMissingMetricName = "missing_metric_name"
	ReasonInvalidValue      = "invalid_value"
	ReasonTooFarInFuture    = "too_far_in_future"
	ReasonTooOld            = "too_old"
	ReasonOutOfOrder        = "out_of_order"
	ReasonDuplicateSample   = "duplicate_sample"
	ReasonTooManyLabels     = "too_many_labels"
	ReasonStorage           = "storage_error"
)

// ReasonUnsupported marks data greenloop does not store yet (e.g. native histograms).
const ReasonUnsupported = "unsupported"
