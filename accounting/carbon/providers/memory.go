package providers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is a provider over points held in memory: a CSV file loaded at
// start-up, or values imported with PUT /api/v1/carbon-intensity.
// Intensity returns the Actual and Estimate points, Forecast the Forecast
// ones, Latest the newest non-forecast point not after now.
type Memory struct {
	name  string
	clock Clock

	mu     sync.RWMutex
	series map[memKey][]Point // sorted by time, one point per time
}

type memKey struct {
	zone     string
	signal   Signal
	forecast bool
}

// NewMemory returns a provider called name (e.g. "csv") holding pts; a nil
// clock is the system clock.
func NewMemory(name string, clock Clock, pts []Point) *Memory {
	if clock == nil {
		clock = SystemClock{}
	}
	m := &Memory{name: name, clock: clock, series: map[memKey][]Point{}}
	m.Add(pts)
	return m
}

// Name returns the name given to NewMemory.
func (m *Memory) Name() string { return m.name }

// Add merges pts in; a point replaces the one of the same zone, signal,
// forecast-or-not and time.
func (m *Memory) Add(pts []Point) {
	m.mu.Lock()
	defer m.mu.Unlock()
	touched := map[memKey]bool{}
	for _, p := range pts {
		k := memKey{p.Zone, p.Signal, p.Kind == Forecast}
		m.series[k] = append(m.series[k], p)
		touched[k] = true
	}
	for k := range touched {
		s := m.series[k]
		sortPoints(s) // stable: among equal times the last added is last
		out := s[:0]
		for i, p := range s {
			if i+1 < len(s) && s[i+1].Time.Equal(p.Time) {
				continue
			}
			out = append(out, p)
		}
		m.series[k] = slices.Clip(out)
	}
}

// Zones lists the zones that have points.
func (m *Memory) Zones() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	set := map[string]bool{}
	for k := range m.series {
		set[k.zone] = true
	}
	out := make([]string, 0, len(set))
	for z := range set {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}

func (m *Memory) slice(k memKey, from, to time.Time) ([]Point, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.series[k]
	if !ok && !m.hasZone(k.zone) {
		return nil, fmt.Errorf("%s: zone %q: %w", m.name, k.zone, ErrUnknownZone)
	}
	i, _ := slices.BinarySearchFunc(s, from, func(p Point, t time.Time) int { return p.Time.Compare(t) })
	j, _ := slices.BinarySearchFunc(s, to, func(p Point, t time.Time) int { return p.Time.Compare(t) })
	return slices.Clone(s[i:j]), nil
}

func (m *Memory) hasZone(zone string) bool {
	for k := range m.series {
		if k.zone == zone {
			return true
		}
	}
	return false
}

// Intensity returns the non-forecast points of zone in [from, to).
func (m *Memory) Intensity(_ context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	return m.slice(memKey{zone, signal, false}, from, to)
}

// Forecast returns the forecast points of zone in [from, to).
func (m *Memory) Forecast(_ context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	return m.slice(memKey{zone, signal, true}, from, to)
}

// Latest returns the newest non-forecast point not after now.
func (m *Memory) Latest(_ context.Context, zone string, signal Signal) (Point, error) {
	now := m.clock.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := m.series[memKey{zone, signal, false}]
	i, _ := slices.BinarySearchFunc(s, now, func(p Point, t time.Time) int { return p.Time.Compare(t) })
	if i < len(s) && s[i].Time.Equal(now) {
		return s[i], nil
	}
	if i == 0 {
		if !m.hasZone(zone) {
			return Point{}, fmt.Errorf("%s: zone %q: %w", m.name, zone, ErrUnknownZone)
		}
		return Point{}, fmt.Errorf("%s: latest %s of zone %q: %w", m.name, signal, zone, ErrNoData)
	}
	return s[i-1], nil
}
