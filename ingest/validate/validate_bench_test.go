package validate

import (
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

func BenchmarkPoint(b *testing.B) {
	lim := DefaultLimits()
	p := sample.Point{T: now.UnixMilli(), V: 212.5}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := Point("greenloop_energy_joules_total", p, now, lim); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkLabels(b *testing.B) {
	in := ls("__name__", "greenloop_power_watts", "site", "fra1", "node", "bmc-12", "source", "redfish",
		"component", "psu", "sensor", "PSU1")
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := Labels(in, 32); rej != nil {
			b.Fatal(rej)
		}
	}
}

func BenchmarkValidMetricName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !ValidMetricName("node_hwmon_power_average_watt") {
			b.Fatal("invalid")
		}
	}
}
