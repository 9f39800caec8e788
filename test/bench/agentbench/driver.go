//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/hwmon"
	"github.com/greenloop/greenloop/collectors/rapl"
)

// Footprint targets of issue 3.
const (
	targetCorePercent = 1.0
	targetRSSMB       = 40.0 // 10^6 bytes
)

// runDriver is the measured process: it writes one JSON result to w.
func runDriver(mode, sysfs string, n int, duration, interval time.Duration, w io.Writer) error {
	if sysfs == "" {
		return fmt.Errorf("driver needs -sysfs")
	}
	var v any
	var err error
	switch mode {
	case "collect":
		v, err = driveCollect(sysfs, n)
	case "footprint":
		v, err = driveFootprint(sysfs, duration, interval)
	default:
		return fmt.Errorf("unknown driver mode %q", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(v)
}

// driveCollect runs the rapl and hwmon collectors n times on sysfs, as the
// agent's poller would, and measures its own CPU time and memory.
func driveCollect(sysfs string, n int) (*Overhead, error) {
	ctx := context.Background()
	rc := rapl.New(sysfs, collectors.Deps{})
	hc := hwmon.New(sysfs, collectors.Deps{})
	var readings []collectors.Reading
	emit := collectors.EmitterFunc(func(r collectors.Reading) { readings = append(readings, r) })
	ov := &Overhead{Name: "greenloop", Collections: n, Note: "rapl + hwmon Collect, in-process (no exposition)"}
	// One warm-up collection, which also counts the readings: RAPL power
	// readings start with the second collection, so count on the second.
	for i := 0; i < 2; i++ {
		readings = readings[:0]
		if err := rc.Collect(ctx, emit); err != nil {
			return nil, fmt.Errorf("rapl: %w", err)
		}
		ov.RAPLReadings = len(readings)
		if err := hc.Collect(ctx, emit); err != nil {
			return nil, fmt.Errorf("hwmon: %w", err)
		}
		ov.HwmonReadings = len(readings) - ov.RAPLReadings
	}
	ov.RAPLZones = distinctSensors(readings[:ov.RAPLReadings])
	ov.HwmonSensors = distinctSensors(readings[ov.RAPLReadings:])
	cpu0, start := selfCPU(), time.Now()
	for i := 0; i < n; i++ {
		readings = readings[:0]
		if err := rc.Collect(ctx, emit); err != nil {
			return nil, fmt.Errorf("rapl: %w", err)
		}
		if err := hc.Collect(ctx, emit); err != nil {
			return nil, fmt.Errorf("hwmon: %w", err)
		}
	}
	ov.WallSeconds = time.Since(start).Seconds()
	ov.CPUSeconds = (selfCPU() - cpu0).Seconds()
	ov.CPUMicrosPer = ov.CPUSeconds / float64(n) * 1e6
	var err error
	ov.Mem, err = procMem(os.Getpid())
	return ov, err
}

// driveFootprint runs the Poller with rapl, hwmon and the 8-GPU NVML mock at
// interval for duration and measures its CPU use and peak memory.
func driveFootprint(sysfs string, duration, interval time.Duration) (*Footprint, error) {
	gc, gpus, err := mockGPU()
	if err != nil {
		return nil, err
	}
	targets := []collectors.Target{
		{Name: "rapl", Type: "rapl", Collector: rapl.New(sysfs, collectors.Deps{}), Interval: interval},
		{Name: "hwmon", Type: "hwmon", Collector: hwmon.New(sysfs, collectors.Deps{}), Interval: interval},
		{Name: "gpu", Type: "gpu", Collector: gc, Interval: interval},
	}
	p, err := collectors.NewPoller(targets, collectors.PollerOptions{})
	if err != nil {
		return nil, err
	}
	fp := &Footprint{GPUs: gpus, TargetCPU: targetCorePercent, TargetRSSMB: targetRSSMB}
	var mu sync.Mutex
	emit := func(_ context.Context, rs []collectors.Reading) {
		mu.Lock()
		fp.Polls++
		fp.Readings += len(rs)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	cpu0, start := selfCPU(), time.Now()
	if err := p.Run(ctx, emit); err != nil {
		return nil, err
	}
	fp.WallSeconds = time.Since(start).Seconds()
	fp.CPUSeconds = (selfCPU() - cpu0).Seconds()
	fp.CorePercent = fp.CPUSeconds / fp.WallSeconds * 100
	for _, s := range p.Stats() {
		if s.State != collectors.StateUp {
			return nil, fmt.Errorf("target %s is %v: %v", s.Name, s.State, s.LastError)
		}
	}
	fp.Mem, err = procMem(os.Getpid())
	return fp, err
}

// distinctSensors counts the distinct sensor labels of rs.
func distinctSensors(rs []collectors.Reading) int {
	seen := map[string]bool{}
	for _, r := range rs {
		for _, l := range r.Labels {
			if l.Name == "sensor" {
				seen[l.Value] = true
			}
		}
	}
	return len(seen)
}

// emitCounter returns an Emitter that counts the readings into *n.
func emitCounter(n *int) collectors.Emitter {
	return collectors.EmitterFunc(func(collectors.Reading) { *n++ })
}
