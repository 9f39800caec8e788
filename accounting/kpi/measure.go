package kpi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/internal/config"
)

// Meter keys of config.Site.Meters that Measure reads, each a PromQL series
// selector. Energy meters may be counters or power gauges; for facility and
// IT, a separate power key is tried when the energy key's series are absent.
const (
	MeterFacilityEnergy  = "facility_energy"
	MeterFacilityPower   = "facility_power"
	MeterITEnergy        = "it_energy"
	MeterITPower         = "it_power"
	MeterBackupGenerator = "backup_generator_energy"
	MeterWater           = "water"
	MeterPotableWater    = "water_potable"
	MeterHeatReused      = "heat_reused"
	MeterCoolingEnergy   = "cooling_energy"
	MeterHeatRemoved     = "heat_removed"
	MeterOnsiteRenewable = "renewable_onsite"
)

// DefaultSelector returns the canonical series of a site for a meter key
// that the site does not configure, or "" when there is none.
func DefaultSelector(siteID, key string) string {
	switch key {
	case MeterFacilityEnergy:
		return fmt.Sprintf(`greenloop_energy_joules_total{site=%q,component="facility"}`, siteID)
	case MeterFacilityPower:
		return fmt.Sprintf(`greenloop_power_watts{site=%q,component="facility"}`, siteID)
	case MeterITEnergy:
		return fmt.Sprintf(`greenloop_energy_joules_total{site=%q,component="it"}`, siteID)
	case MeterITPower:
		return fmt.Sprintf(`greenloop_power_watts{site=%q,component="it"}`, siteID)
	case MeterWater:
		return fmt.Sprintf(`greenloop_water_cubic_meters_total{site=%q}`, siteID)
	case MeterHeatReused:
		return fmt.Sprintf(`greenloop_heat_reused_joules_total{site=%q}`, siteID)
	}
	return ""
}

// MeasureOptions tune how Measure reads the meters.
type MeasureOptions struct {
	// ITMeterPoint is where the site's IT meter sits (sets the PUE category).
	ITMeterPoint ITMeterPoint
	// WUECategory is the category of the water meter (1 or 2).
	WUECategory int
	// Interval, GapFactor and WrapAt are passed to energy.Query.
	Interval  time.Duration
	GapFactor float64
	WrapAt    float64
	Logger    *slog.Logger
	// Energy, when set, computes the energy meters instead of
	// energy.Compute on src (e.g. from hourly rollups); water meters are
	// always read from src.
	Energy func(ctx context.Context, q energy.Query) (*energy.Result, error)
}

// Measure reads a site's meters over [from, to) into Inputs: facility and
// IT energy (required), and the optional meters the site configures (or
// whose canonical series exist). Operator-entered figures (certificates,
// PPAs, emissions, PDIT) are the caller's to add.
func Measure(ctx context.Context, src energy.Source, site config.Site, from, to time.Time, opt MeasureOptions) (Inputs, error) {
	in := Inputs{From: from, To: to, ITMeterPoint: opt.ITMeterPoint, WUECategory: opt.WUECategory}
	sel := func(key string) string {
		if s, ok := site.Meters[key]; ok {
			return s
		}
		return DefaultSelector(site.ID, key)
	}
	query := func(keys ...string) energy.Query {
		q := energy.Query{From: from, To: to, Interval: opt.Interval, GapFactor: opt.GapFactor, WrapAt: opt.WrapAt, Logger: opt.Logger}
		for _, k := range keys {
			if s := sel(k); s != "" {
				q.Selectors = append(q.Selectors, s)
			}
		}
		return q
	}
	readEnergy := func(required bool, keys ...string) (*Energy, error) {
		q := query(keys...)
		if len(q.Selectors) == 0 {
			return nil, nil
		}
		var r *energy.Result
		var err error
		if opt.Energy != nil {
			r, err = opt.Energy(ctx, q)
		} else {
			r, err = energy.Compute(ctx, src, q)
		}
		if errors.Is(err, energy.ErrNoSeries) && !required {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("site %q meter %s: %w", site.ID, keys[0], err)
		}
		e := EnergyOf(r, r.Selector)
		return &e, nil
	}
	fac, err := readEnergy(true, MeterFacilityEnergy, MeterFacilityPower)
	if err != nil {
		return in, err
	}
	it, err := readEnergy(true, MeterITEnergy, MeterITPower)
	if err != nil {
		return in, err
	}
	in.Facility, in.IT = *fac, *it
	for _, o := range []struct {
		key string
		dst **Energy
	}{
		{MeterBackupGenerator, &in.BackupGenerators}, {MeterHeatReused, &in.HeatReused},
		{MeterCoolingEnergy, &in.Cooling}, {MeterHeatRemoved, &in.HeatRemoved}, {MeterOnsiteRenewable, &in.RenewableOnsite},
	} {
		if *o.dst, err = readEnergy(false, o.key); err != nil {
			return in, err
		}
	}
	for _, o := range []struct {
		key string
		dst **Volume
	}{{MeterWater, &in.Water}, {MeterPotableWater, &in.PotableWater}} {
		q := query(o.key)
		if len(q.Selectors) == 0 {
			continue
		}
		r, err := energy.ComputeVolume(ctx, src, q)
		if errors.Is(err, energy.ErrNoSeries) {
			continue
		}
		if err != nil {
			return in, fmt.Errorf("site %q meter %s: %w", site.ID, o.key, err)
		}
		v := VolumeOf(r)
		*o.dst = &v
	}
	return in, nil
}
