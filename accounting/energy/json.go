package energy

import (
	"encoding/json"
	"time"
)

type jsonBucket struct {
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	EnergyKWh    float64   `json:"energy_kwh"`
	EstimatedKWh float64   `json:"estimated_kwh"`
	Completeness float64   `json:"completeness"`
}

// MarshalJSON writes {"start","end","energy_kwh","estimated_kwh","completeness"}.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonBucket{b.Start, b.End, b.Energy.KWh(), b.Estimated.KWh(), b.Completeness})
}

// MarshalJSON writes {"from","to","selector","series","total_kwh",
// "estimated_kwh","completeness","buckets","gaps","gaps_omitted","resets","wraps"}.
func (r *Result) MarshalJSON() ([]byte, error) {
	gaps := r.Gaps
	if gaps == nil {
		gaps = []Gap{}
	}
	return json.Marshal(struct {
		From         time.Time `json:"from"`
		To           time.Time `json:"to"`
		Selector     string    `json:"selector"`
		Series       int       `json:"series"`
		TotalKWh     float64   `json:"total_kwh"`
		EstimatedKWh float64   `json:"estimated_kwh"`
		Completeness float64   `json:"completeness"`
		Buckets      []Bucket  `json:"buckets"`
		Gaps         []Gap     `json:"gaps"`
		GapsOmitted  int       `json:"gaps_omitted"`
		Resets       int       `json:"resets"`
		Wraps        int       `json:"wraps"`
	}{r.From, r.To, r.Selector, r.Series, r.Total.KWh(), r.Estimated.KWh(), r.Completeness, r.Buckets, gaps, r.GapsOmitted, r.Resets, r.Wraps})
}
