package csvimport

import (
	"math"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte("timestamp,greenloop_energy_joules_total{site=\"fra1\"} [kWh]\n2025-01-01T00:00:00Z,1.5\n"))
	f.Add([]byte("timestamp,x [W],y\n1,2,\n,3,4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		series, rej := Parse(data, 0)
		for _, s := range series {
			if len(s.Labels) == 0 || s.Labels[0].Name != "__name__" || len(s.Points) == 0 {
				t.Fatalf("bad series %+v", s)
			}
			for _, p := range s.Points {
				if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
					t.Fatalf("non-finite value %v", p.V)
				}
			}
		}
		for _, r := range rej {
			if r.Reason == "" || r.Field == "" || r.Detail == "" {
				t.Fatalf("incomplete rejection %+v", r)
			}
		}
	})
}
