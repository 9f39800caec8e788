package mapping

import (
	"strings"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

// FuzzMap builds a label set from "name=value" pairs separated by ';' and
// checks the invariants of every mapped series.
func FuzzMap(f *testing.F) {
	f.Add("__name__=node_rapl_package_joules_total;index=0;path=/sys/class/powercap/intel-rapl:0;site=fra1;instance=h:9100")
	f.Add("__name__=DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION;gpu=0;Hostname=g1;site=fra1;tenant=acme")
	f.Add("__name__=greenloop_power_watts;site=fra1;node=n1")
	f.Add("__name__=kepler_node_cpu_watts;zone=PACKAGE;node_name=w1;site=s")
	f.Fuzz(func(t *testing.T, spec string) {
		var in []sample.Label
		for _, kv := range strings.Split(spec, ";") {
			name, val, _ := strings.Cut(kv, "=")
			in = append(in, sample.Label{Name: name, Value: val})
		}
		got, scale, st := MapStatus(in)
		if st != Mapped {
			if got != nil || scale != 0 {
				t.Fatalf("status %v with labels %v scale %v", st, got, scale)
			}
			return
		}
		if strings.HasPrefix(get(in, "__name__"), "greenloop_") {
			t.Fatalf("greenloop series mapped: %v", in)
		}
		if scale != 1 && scale != 1e-3 && scale != 1e-6 {
			t.Fatalf("scale %v", scale)
		}
		switch get(got, "__name__") {
		case PowerWatts, EnergyJoulesTotal, TemperatureCelsius:
		default:
			t.Fatalf("bad canonical name in %v", got)
		}
		for i, l := range got {
			if l.Value == "" {
				t.Fatalf("empty label in %v", got)
			}
			if i > 0 && got[i-1].Name >= l.Name {
				t.Fatalf("not sorted or duplicate: %v", got)
			}
			switch l.Name {
			case "__name__", "site", "node", "source", "component", "sensor", "tenant":
			default:
				t.Fatalf("non-canonical label %q", l.Name)
			}
		}
		if get(got, "site") != get(in, "site") || get(got, "tenant") != get(in, "tenant") ||
			get(got, "node") == "" || get(got, "source") == "" {
			t.Fatalf("%v mapped to %v", in, got)
		}
	})
}
