package ui

import (
	"fmt"
	"math"
	"strings"
)

// The page's number formats. static/app.js formats the same way when it
// refreshes the page; keep the two in step.

const none = "—"

func fmtPower(w *float64) string {
	if w == nil {
		return none
	}
	switch a := math.Abs(*w); {
	case a >= 1e6:
		return fmt.Sprintf("%.2f MW", *w/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.1f kW", *w/1e3)
	default:
		return fmt.Sprintf("%.0f W", *w)
	}
}

func fmtPUE(p *float64) string {
	if p == nil {
		return none
	}
	return fmt.Sprintf("%.2f", *p)
}

func fmtTemp(c *float64) string {
	if c == nil {
		return none
	}
	return fmt.Sprintf("%.1f °C", *c)
}

func fmtIntensity(g *float64) string {
	if g == nil {
		return none
	}
	return fmt.Sprintf("%.0f g/kWh", *g)
}

func fmtEnergy(kwh *float64) string {
	if kwh == nil {
		return none
	}
	if math.Abs(*kwh) >= 1000 {
		return fmt.Sprintf("%.2f MWh", *kwh/1000)
	}
	return fmt.Sprintf("%.1f kWh", *kwh)
}

func fmtCO2e(kg *float64) string {
	if kg == nil {
		return none
	}
	if math.Abs(*kg) >= 1000 {
		return fmt.Sprintf("%.2f t", *kg/1000)
	}
	return fmt.Sprintf("%.1f kg", *kg)
}

// fmtLoad is IT power as a share of IT capacity, e.g. "81 % of 900 kW".
func fmtLoad(w *float64, capacityKW float64) string {
	if w == nil || capacityKW <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f %% of %s kW", *w/(capacityKW*10), trimFloat(capacityKW))
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

// providerBadge is the short note shown beside a carbon intensity that is not live data.
func providerBadge(provider string) string {
	switch {
	case strings.Contains(provider, "replay"):
		return "2022 replay"
	case provider == "static":
		return "static"
	}
	return ""
}
