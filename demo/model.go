package demo

import (
	"math"
	"time"
)

// siteSpec describes one simulated site. The climate figures are rounded
// climate normals of the city (annual mean, half the July–January spread, half
// the typical day–night spread); they set a plausible level per latitude, not
// a weather record.
type siteSpec struct {
	id, name, zone string
	lat, lon       float64
	itKW           float64 // IT capacity: the sum of every rack's maximum draw
	rooms          int
	cpuRacks       int // racks of CPU nodes with node-level telemetry
	gpuRacks       int // racks of GPU nodes with node-level telemetry
	climate        climate
	pue            pueModel
	load           loadModel
	supplyC        float64 // cold-aisle supply air setpoint, °C
	// staticCI, when non-zero, is the constant carbon intensity used instead
	// of replayed Electricity Maps data (for a zone that has none embedded).
	staticCI float64
}

type climate struct {
	meanC, seasonC, diurnalC float64
}

// pueModel: PUE is base while outside air cools for free (below freeC), then
// rises as base + span·x^1.5 with x = (T−freeC)/(35−freeC), so it reaches
// base+span at 35 °C. A fixed overhead of 1.2 % of capacity (lighting,
// offices, UPS no-load losses) comes on top, so PUE is also a little higher
// at low load, as on real sites.
type pueModel struct {
	base, span, freeC float64
}

// loadModel: the share of capacity in use follows office hours (local time,
// peak 14:00), lower at weekends, with a night-time batch bump.
type loadModel struct {
	base, amp float64
}

// SwedenStaticCI is the carbon intensity given to the Stockholm site, in
// gCO2e/kWh. It is NOT measured data: no hourly data for a Nordic zone is
// embedded, so the demo uses one constant, round, illustrative annual figure
// of the order of published life-cycle estimates for the Swedish grid (almost
// all hydro, nuclear and wind). It is labelled provider="static" and never
// varies.
const SwedenStaticCI = 40

// specs is the demo fleet: six sites in six EU grid zones, 150–900 kW of IT.
var specs = []siteSpec{
	{id: "fra1", name: "Frankfurt 1", zone: "DE", lat: 50.11, lon: 8.68, itKW: 900, rooms: 2, cpuRacks: 2, gpuRacks: 1,
		climate: climate{10.5, 9.3, 4.5}, pue: pueModel{1.20, 0.32, 8}, load: loadModel{0.50, 0.22}, supplyC: 22},
	{id: "ams1", name: "Amsterdam 1", zone: "NL", lat: 52.37, lon: 4.90, itKW: 750, rooms: 2, cpuRacks: 1, gpuRacks: 1,
		climate: climate{10.5, 7.0, 3.5}, pue: pueModel{1.15, 0.30, 8}, load: loadModel{0.52, 0.20}, supplyC: 23},
	{id: "par1", name: "Paris 1", zone: "FR", lat: 48.86, lon: 2.35, itKW: 600, rooms: 2, cpuRacks: 1, gpuRacks: 1,
		climate: climate{12.5, 8.0, 4.0}, pue: pueModel{1.22, 0.35, 9}, load: loadModel{0.48, 0.24}, supplyC: 22},
	{id: "mad1", name: "Madrid 1", zone: "ES", lat: 40.42, lon: -3.70, itKW: 450, rooms: 1, cpuRacks: 1, gpuRacks: 1,
		climate: climate{15.0, 10.0, 6.5}, pue: pueModel{1.18, 0.38, 12}, load: loadModel{0.45, 0.25}, supplyC: 24},
	{id: "waw1", name: "Warsaw 1", zone: "PL", lat: 52.23, lon: 21.01, itKW: 300, rooms: 1, cpuRacks: 1, gpuRacks: 1,
		climate: climate{8.5, 10.5, 4.5}, pue: pueModel{1.28, 0.40, 6}, load: loadModel{0.55, 0.18}, supplyC: 21},
	{id: "sto1", name: "Stockholm 1 (static carbon figure)", zone: "SE", lat: 59.33, lon: 18.07, itKW: 150, rooms: 1, cpuRacks: 1,
		climate: climate{7.5, 10.0, 3.5}, pue: pueModel{1.08, 0.22, 10}, load: loadModel{0.50, 0.20}, supplyC: 22,
		staticCI: SwedenStaticCI},
}

// Node and rack figures, W. A CPU node is a 2-socket server (2 × 205 W TDP
// packages), a GPU node has 4 GPUs of 350 W; wall power includes the PSU loss.
const (
	pkgIdleW, pkgMaxW   = 40.0, 205.0
	cpuNodeBaseW        = 150.0 // memory, disks, fans, NICs
	cpuNodeDynW         = 60.0  // the part of that which follows load
	gpuNodeBaseW        = 250.0
	gpuIdleW, gpuMaxW   = 55.0, 350.0
	gpusPerNode         = 4
	psuEfficiency       = 0.94
	torSwitchW          = 250.0
	cpuNodesPerRack     = 12
	gpuNodesPerRack     = 4
	generalRackKW       = 26.0 // design draw of a rack metered only at its PDUs
	generalRackIdleFrac = 0.38 // servers idle at about 38 % of their peak
	fixedOverheadFrac   = 0.012
)

func cpuNodeMaxW() float64 { return (cpuNodeBaseW + cpuNodeDynW + 2*pkgMaxW) / psuEfficiency }
func gpuNodeMaxW() float64 {
	return (gpuNodeBaseW + cpuNodeDynW + 2*pkgMaxW + gpusPerNode*gpuMaxW) / psuEfficiency
}

// pue returns the site's PUE at outside temperature tempC, before the fixed overhead.
func (p pueModel) pue(tempC float64) float64 {
	x := math.Max(0, (tempC-p.freeC)/(35-p.freeC))
	return p.base + p.span*math.Pow(x, 1.5)
}

// PUE bounds: physical sanity for the simulation.
const minPUE, maxPUE = 1.05, 1.95

// outsideC is the outside air temperature: season, day–night cycle on solar
// time (warmest about 15:00, coldest about 03:00), and a few degrees of
// weather wandering over days.
func (s *site) outsideC(t time.Time, tms int64) float64 {
	c := s.spec.climate
	doy := float64(t.YearDay()-1) + float64(t.Hour())/24
	season := -math.Cos(2 * math.Pi * (doy - 20) / 365.25) // -1 on 20 January, +1 in late July
	solarH := float64(t.Hour()) + float64(t.Minute())/60 + s.spec.lon/15
	day := math.Cos(2 * math.Pi * (solarH - 15) / 24)
	weather := 3.0*noise(s.kWeather, tms, 40*hourMs) + 1.0*noise(sub(s.kWeather, 1), tms, 5*hourMs)
	return c.meanC + c.seasonC*season + c.diurnalC*(1+0.3*season)*day + weather
}

// loadFrac is the share of IT capacity the site's tenants use at t.
func (s *site) loadFrac(t time.Time, tms int64) float64 {
	lt := t.Add(cetOffset(t))
	h := float64(lt.Hour()) + float64(lt.Minute())/60
	dayF := 1.0
	switch lt.Weekday() {
	case time.Saturday:
		dayF = 0.4
	case time.Sunday:
		dayF = 0.3
	}
	business := math.Exp(-0.5 * sq((h-14)/3.8))
	batch := math.Exp(-0.5 * sq((h-3)/1.3))
	l := s.spec.load.base + s.spec.load.amp*business*dayF + 0.07*batch +
		0.04*noise(s.kLoad, tms, 3*hourMs) + 0.015*noise(sub(s.kLoad, 1), tms, 20*minuteMs)
	return clamp(l, 0.05, 1)
}

func sq(x float64) float64 { return x * x }

const (
	minuteMs = int64(time.Minute / time.Millisecond)
	hourMs   = int64(time.Hour / time.Millisecond)
)

// cetOffset is the offset of Central European (Summer) Time at t, the local
// time of every demo site: EU summer time runs from 01:00 UTC on the last
// Sunday of March to 01:00 UTC on the last Sunday of October.
func cetOffset(t time.Time) time.Duration {
	u := t.UTC()
	start := lastSunday(u.Year(), time.March).Add(time.Hour)
	end := lastSunday(u.Year(), time.October).Add(time.Hour)
	if !u.Before(start) && u.Before(end) {
		return 2 * time.Hour
	}
	return time.Hour
}

func lastSunday(year int, m time.Month) time.Time {
	d := time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC) // last day of m
	return d.AddDate(0, 0, -int(d.Weekday()))
}
