package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// fieldError is what the pure parsers return; the provider turns it into a
// *ResponseError naming itself and the endpoint.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.err.Error()
	}
	return "field " + e.field + ": " + e.err.Error()
}

func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// bad wraps a parser error into the provider's *ResponseError.
func (c *client) bad(endpoint string, err error) error {
	re := &ResponseError{Provider: c.name, Endpoint: endpoint, Err: err}
	var fe *fieldError
	if errors.As(err, &fe) {
		re.Field, re.Err = fe.field, fe.err
	}
	return re
}

// decodeJSON unmarshals body into v, naming the field of a type mismatch.
func decodeJSON(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &fieldError{field: te.Field, err: fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)}
	}
	return &fieldError{err: fmt.Errorf("invalid JSON: %w", err)}
}

// parseTime reads an RFC 3339 time (fractional seconds optional) as UTC.
func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fieldErr(field, "invalid time %q, want RFC 3339", v)
	}
	return t.UTC(), nil
}

// intensityValue checks a value in gCO2e/kWh: finite and not negative. Real
// grids stay far below 10 kg/kWh; more is a unit mistake.
func intensityValue(field string, v float64) (carbon.Intensity, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 10000 {
		return 0, fieldErr(field, "intensity %v out of range [0, 10000] gCO2e/kWh", v)
	}
	return carbon.Intensity(v), nil
}

// windows splits [from, to) into windows no longer than max.
func windows(from, to time.Time, max time.Duration) [][2]time.Time {
	var out [][2]time.Time
	for s := from; s.Before(to); s = s.Add(max) {
		e := s.Add(max)
		if e.After(to) {
			e = to
		}
		out = append(out, [2]time.Time{s, e})
	}
	return out
}

// jsonRaw is a JSON value kept for a second decoding step.
type jsonRaw = json.RawMessage
