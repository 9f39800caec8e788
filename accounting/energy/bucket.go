package energy

import (
	"errors"
	"fmt"
	"time"
)

// Calendar is a calendar period that buckets follow in a time zone.
type Calendar uint8

// Calendar periods. CalendarNone means fixed steps (Bucketing.Step), or one
// bucket for the whole range when the step is zero too.
const (
	CalendarNone Calendar = iota
	Hour
	Day
	Month
	Year
)

var calendarNames = [...]string{"", "hour", "day", "month", "year"}

// String returns "hour", "day", "month", "year", or "" for CalendarNone.
func (c Calendar) String() string {
	if int(c) < len(calendarNames) {
		return calendarNames[c]
	}
	return fmt.Sprintf("Calendar(%d)", c)
}

// ParseCalendar reads "hour", "day", "month" or "year" ("" is CalendarNone).
func ParseCalendar(s string) (Calendar, error) {
	for i, n := range calendarNames {
		if n == s {
			return Calendar(i), nil
		}
	}
	return 0, fmt.Errorf("unknown calendar period %q (want hour, day, month or year)", s)
}

// MaxBuckets bounds the number of buckets of one computation.
const MaxBuckets = 1_000_000

// ErrTooManyBuckets is returned when a range would be cut into more than MaxBuckets buckets.
var ErrTooManyBuckets = errors.New("too many buckets")

// Bucketing says how a time range is cut into buckets: calendar periods in
// Location (days of 23 or 25 hours where daylight saving time changes), or
// fixed steps of Step from the range's start. The first and the last bucket
// are clipped to the range: a range that does not start on a period boundary
// starts with a partial bucket.
type Bucketing struct {
	Calendar Calendar
	// Step is the fixed bucket length when Calendar is CalendarNone; zero
	// means one bucket for the whole range.
	Step time.Duration
	// Location is the time zone of calendar periods; nil means UTC.
	Location *time.Location
}

// Edges returns the bucket boundaries of [from, to): from, every period
// boundary strictly between from and to, then to.
func (b Bucketing) Edges(from, to time.Time) ([]time.Time, error) {
	if !to.After(from) {
		return nil, fmt.Errorf("empty range: to %s is not after from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	edges := []time.Time{from}
	push := func(t time.Time) error {
		if len(edges) > MaxBuckets {
			return fmt.Errorf("%w: more than %d from %s to %s", ErrTooManyBuckets, MaxBuckets, from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		edges = append(edges, t)
		return nil
	}
	switch b.Calendar {
	case CalendarNone:
		if b.Step < 0 {
			return nil, fmt.Errorf("negative bucket step %s", b.Step)
		}
		if b.Step > 0 {
			if n := to.Sub(from) / b.Step; n > MaxBuckets {
				return nil, fmt.Errorf("%w: %d steps of %s", ErrTooManyBuckets, n, b.Step)
			}
			for t := from.Add(b.Step); t.Before(to); t = t.Add(b.Step) {
				edges = append(edges, t)
			}
		}
	case Hour, Day, Month, Year:
		l := from.In(loc)
		var start time.Time
		switch b.Calendar {
		case Hour:
			start = time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), 0, 0, 0, loc)
		case Day:
			start = time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
		case Month:
			start = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
		case Year:
			start = time.Date(l.Year(), 1, 1, 0, 0, 0, 0, loc)
		}
		for k := 1; ; k++ {
			var t time.Time
			switch b.Calendar {
			case Hour:
				// Absolute hours: the repeated hour of an autumn DST change is its own bucket.
				t = start.Add(time.Duration(k) * time.Hour)
			case Day:
				t = time.Date(start.Year(), start.Month(), start.Day()+k, 0, 0, 0, 0, loc)
			case Month:
				t = time.Date(start.Year(), start.Month()+time.Month(k), 1, 0, 0, 0, 0, loc)
			case Year:
				t = time.Date(start.Year()+k, 1, 1, 0, 0, 0, 0, loc)
			}
			if !t.Before(to) {
				break
			}
			if t.After(from) {
				if err := push(t); err != nil {
					return nil, err
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown calendar period %d", b.Calendar)
	}
	return append(edges, to), nil
}
