package redfish

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/greenloop/greenloop/collectors"
)

// BenchmarkCollect is one whole collection of the rackmount1 mockup over a
// session, expanded collections, no latency (the fake BMC is in-process, so
// its cost is included).
func BenchmarkCollect(b *testing.B) {
	for _, expand := range []bool{true, false} {
		name := "expand"
		if !expand {
			name = "no-expand"
		}
		b.Run(name, func(b *testing.B) {
			bmc := &fakeBMC{tree: "dmtf-public-rackmount1", expand: expand}
			srv := serveB(b, bmc)
			c, err := New(Config{Endpoint: srv.URL, Username: testUser, Password: testPass, MinInterval: -1}, collectors.Deps{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			emit := collectors.EmitterFunc(func(collectors.Reading) {})
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Collect(context.Background(), emit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadings is the precedence logic alone over rackmount1's chassis.
func BenchmarkReadings(b *testing.B) {
	var d chassisData
	d.id = "1U"
	load := func(p string, v any) {
		body, err := os.ReadFile("testdata/dmtf-public-rackmount1/Chassis/1U/" + p + "/index.json")
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(body, v); err != nil {
			b.Fatal(err)
		}
	}
	d.env, d.power, d.thermal, d.thermalMetrics = &environmentMetrics{}, &power{}, &thermal{}, &thermalMetrics{}
	load("EnvironmentMetrics", d.env)
	load("Power", d.power)
	load("Thermal", d.thermal)
	load("ThermalSubsystem/ThermalMetrics", d.thermalMetrics)
	var pm powerSupplyMetrics
	load("PowerSubsystem/PowerSupplies/Bay1/Metrics", &pm)
	d.psus = []psuData{{id: "Bay1", metrics: &pm}}
	entries, err := os.ReadDir("testdata/dmtf-public-rackmount1/Chassis/1U/Sensors")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			var s sensor
			load("Sensors/"+e.Name(), &s)
			s.ref = "/redfish/v1/Chassis/1U/Sensors/" + e.Name()
			d.sensors = append(d.sensors, s)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(d.readings()) == 0 {
			b.Fatal("no readings")
		}
	}
}
