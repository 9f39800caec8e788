package report

import "strconv"

// KPI ids.
const (
	KPIPUE   = "pue"
	KPIWUE   = "wue"
	KPIERF   = "erf"
	KPIREF   = "ref"
	KPICUELB = "cue_lb"
	KPICUEMB = "cue_mb"
)

// KPIOrder is the order KPIs are listed in.
var KPIOrder = []string{KPIPUE, KPIWUE, KPIERF, KPIREF, KPICUELB, KPICUEMB}

// KPI is one indicator over the period: a ratio of annual sums, never a
// mean of instantaneous ratios.
type KPI struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Value   *float64 `json:"value"` // nil: not available
	Display string   `json:"display"`
	Unit    string   `json:"unit"`
	Formula string   `json:"formula"`
	// Reason says why the value is not available.
	Reason            string   `json:"reason,omitempty"`
	Period            string   `json:"period,omitempty"`
	Category          string   `json:"category,omitempty"`
	MeterIDs          []string `json:"meter_ids,omitempty"`
	CompletenessPct   *float64 `json:"completeness_pct,omitempty"`
	EstimatedSharePct *float64 `json:"estimated_share_pct,omitempty"`
}

// AnnualSums are the inputs of the KPIs. Nil means not available.
type AnnualSums struct {
	EDC        *KWh
	EIT        *KWh
	Water      *CubicMetres // WIN
	HeatReused *KWh         // EREUSE
	Renewable  *KWh         // ERES-TOT
	// Scope1 is counted as zero when nil; the CUEs need their Scope 2.
	Scope1   *KgCO2e
	Scope2LB *KgCO2e
	Scope2MB *KgCO2e
}

// KPIs are the report's indicators by id.
type KPIs map[string]KPI

// ComputeKPIs computes PUE, WUE, ERF, REF (DR 2024/1364 Annex III) and CUE
// location- and market-based (ISO/IEC 30134-8) from annual sums, shown with
// the given decimals per KPI id (nil: DefaultOptions().Decimals). It is pure.
func ComputeKPIs(s AnnualSums, decimals map[string]int) KPIs {
	if decimals == nil {
		decimals = DefaultOptions().Decimals
	}
	out := KPIs{}
	set := func(id, name, unit, formula string, num, den *float64, scale float64, why string) {
		k := KPI{ID: id, Name: name, Unit: unit, Formula: formula}
		switch {
		case num == nil || den == nil:
			k.Reason = why
		case *den <= 0:
			k.Reason = "denominator is zero"
		default:
			v := *num / (*den * scale)
			k.Value = &v
			d, ok := decimals[id]
			if !ok {
				d = 3
			}
			k.Display = strconv.FormatFloat(v, 'f', d, 64)
		}
		if k.Value == nil {
			k.Display = "n/a"
		}
		out[id] = k
	}
	f := func(p *KWh) *float64 {
		if p == nil {
			return nil
		}
		v := float64(*p)
		return &v
	}
	var water *float64
	if s.Water != nil {
		v := float64(*s.Water) * 1000 // litres
		water = &v
	}
	set(KPIPUE, "Power usage effectiveness", "", "EDC / EIT", f(s.EDC), f(s.EIT), 1, "needs EDC and EIT")
	set(KPIWUE, "Water usage effectiveness", "L/kWh", "WIN / EIT (m³/MWh)", water, f(s.EIT), 1, "needs WIN and EIT")
	set(KPIERF, "Energy reuse factor", "", "EREUSE / EDC", f(s.HeatReused), f(s.EDC), 1, "needs EREUSE and EDC")
	set(KPIREF, "Renewable energy factor", "", "ERES-TOT / EDC", f(s.Renewable), f(s.EDC), 1, "needs ERES-TOT and EDC")
	cue := func(s2 *KgCO2e) *float64 {
		if s2 == nil {
			return nil
		}
		v := float64(*s2)
		if s.Scope1 != nil {
			v += float64(*s.Scope1)
		}
		return &v
	}
	set(KPICUELB, "Carbon usage effectiveness, location-based", "kgCO2e/kWh", "(Scope 1 + Scope 2 LB) / EIT", cue(s.Scope2LB), f(s.EIT), 1, "needs Scope 2 location-based and EIT")
	set(KPICUEMB, "Carbon usage effectiveness, market-based", "kgCO2e/kWh", "(Scope 1 + Scope 2 MB) / EIT", cue(s.Scope2MB), f(s.EIT), 1, "needs Scope 2 market-based and EIT")
	return out
}

// Ptr returns a pointer to v, for AnnualSums and the like.
func Ptr[T any](v T) *T { return &v }
