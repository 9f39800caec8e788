// Package carbon holds grid carbon-intensity data: hourly series per grid zone,
// a parser for Electricity Maps hourly CSV exports, and real 2022 data for a
// few European zones embedded in the binary for the demo. Live and imported
// data come through the providers in the subpackage providers.
package carbon

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Intensity is a grid carbon intensity in grams of CO2-equivalent per kWh.
type Intensity float64

// GramsPerKWh returns the intensity as a plain number of gCO2e/kWh.
func (i Intensity) GramsPerKWh() float64 { return float64(i) }

func (i Intensity) String() string {
	return strconv.FormatFloat(float64(i), 'f', -1, 64) + " gCO2e/kWh"
}

// Point is the carbon intensity of one hour.
type Point struct {
	// Time is the start of the hour, in UTC.
	Time time.Time
	// Direct counts only the combustion emissions of generation.
	Direct Intensity
	// LCA is the life-cycle intensity (construction, fuel supply and
	// combustion); it is the figure location-based accounting uses here.
	LCA Intensity
	// Estimated is true when the data provider estimated the hour rather than
	// measured it (false when the input does not say).
	Estimated bool
}

// Series is one zone's hourly carbon intensity, sorted by time, one point per
// hour; each point covers [Time, Time+1h).
type Series struct {
	// Zone is the grid zone id, e.g. "DE" or "SE-SE3".
	Zone   string
	Points []Point
}

// At returns the point of the hour that contains t, and false when the series
// has no point for that hour.
func (s *Series) At(t time.Time) (Point, bool) {
	n := len(s.Points)
	if n == 0 {
		return Point{}, false
	}
	// Fast path: hourly data without gaps is indexed directly.
	if d := t.Sub(s.Points[0].Time); d >= 0 {
		if i := int(d / time.Hour); i < n && containsHour(s.Points[i], t) {
			return s.Points[i], true
		}
	}
	i := sort.Search(n, func(i int) bool { return s.Points[i].Time.After(t) }) - 1
	if i >= 0 && containsHour(s.Points[i], t) {
		return s.Points[i], true
	}
	return Point{}, false
}

func containsHour(p Point, t time.Time) bool {
	return !t.Before(p.Time) && t.Before(p.Time.Add(time.Hour))
}

// Replay maps t onto the calendar year of the series and returns the point
// there: the same month, day and hour (UTC), with 29 February falling back to
// 28 February when that year has no leap day. It is how the demo replays the
// embedded 2022 data onto current dates: the values are real, but they are
// another year's, and weekdays do not line up (1 January 2022 was a Saturday).
// The series must hold a single calendar year.
func (s *Series) Replay(t time.Time) (Point, bool) {
	if len(s.Points) == 0 {
		return Point{}, false
	}
	y := s.Points[0].Time.Year()
	u := t.UTC()
	m, d := u.Month(), u.Day()
	if m == time.February && d == 29 && !isLeap(y) {
		d = 28
	}
	return s.At(time.Date(y, m, d, u.Hour(), u.Minute(), u.Second(), u.Nanosecond(), time.UTC))
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// Mean returns the unweighted mean of the hourly direct and LCA intensities.
func (s *Series) Mean() (direct, lca Intensity) {
	if len(s.Points) == 0 {
		return 0, 0
	}
	var sd, sl float64
	for _, p := range s.Points {
		sd += float64(p.Direct)
		sl += float64(p.LCA)
	}
	n := float64(len(s.Points))
	return Intensity(sd / n), Intensity(sl / n)
}

// String describes the series briefly, e.g. "DE: 8760 hours from 2022-01-01T00:00:00Z".
func (s *Series) String() string {
	if len(s.Points) == 0 {
		return s.Zone + ": empty"
	}
	return fmt.Sprintf("%s: %d hours from %s", s.Zone, len(s.Points), s.Points[0].Time.Format(time.RFC3339))
}
