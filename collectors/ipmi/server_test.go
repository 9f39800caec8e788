package ipmi

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/collectors"
)

// serverSDRs is the sensor set of the ipmi_sim BMC: names, entities, units
// and readings of real servers, from the ipmitool captures in testdata/
// (see testdata/NOTICE): an Intel board's verbose `sdr -v` (OpenStack
// Ceilometer) and `sdr elist` / `sdr` dumps (Telegraf). The conversion
// factors are chosen so that the raw byte gives the captured value.
var serverSDRs = []sdrSpec{
	// Temperatures. "Inlet Temp" 25 °C on the system board (Telegraf elist):
	// inlet by name; its value is polled from a file the test rewrites.
	{num: 0x04, name: "Inlet Temp", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1,
		file: "inlet.val", raw: 25,
		wantLabel: "Inlet Temp", wantComponent: componentInlet, wantMetric: collectors.MetricTemperature, wantValue: 25},
	// Air inlet entity (37h): inlet by entity, whatever the name.
	{num: 0x05, name: "Front Panel Temp", stype: 0x01, evtype: 0x01, entity: 0x37, inst: 1, base: 1, m: 1, raw: 23,
		wantLabel: "Front Panel Temp", wantComponent: componentInlet, wantMetric: collectors.MetricTemperature, wantValue: 23},
	{num: 0x06, name: "Exhaust Temp", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1, raw: 38,
		wantLabel: "Exhaust Temp", wantComponent: componentOutlet, wantMetric: collectors.MetricTemperature, wantValue: 38},
	{num: 0x07, name: "Ambient Temp", stype: 0x01, evtype: 0x01, entity: 0x17, inst: 1, base: 1, m: 1, raw: 20,
		wantLabel: "Ambient Temp", wantComponent: componentAmbient, wantMetric: collectors.MetricTemperature, wantValue: 20},
	{num: 0x20, name: "BB P1 VR Temp", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1, raw: 25,
		wantLabel: "BB P1 VR Temp", wantMetric: collectors.MetricTemperature, wantValue: 25},
	// Dell names both CPU temperatures "Temp".
	{num: 0x0e, name: "Temp", stype: 0x01, evtype: 0x01, entity: 3, inst: 1, base: 1, m: 1, raw: 40,
		wantLabel: "Temp/3.1", wantMetric: collectors.MetricTemperature, wantValue: 40},
	{num: 0x0f, name: "Temp", stype: 0x01, evtype: 0x01, entity: 3, inst: 2, base: 1, m: 1, raw: 42,
		wantLabel: "Temp/3.2", wantMetric: collectors.MetricTemperature, wantValue: 42},
	// An SDR whose sensor the BMC does not have (an empty CPU socket): "No
	// Reading" in ipmitool.
	{num: 0x21, name: "CPU2 Temp", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1, notInSim: true,
		wantMetric: collectors.MetricTemperature, ipmitoolAbsent: true},

	// Fans 1 and 4, 4704 and 4606 RPM (Ceilometer): M = 98.
	{num: 0x30, name: "System Fan 1", stype: 0x04, evtype: 0x01, entity: 29, inst: 1, base: 18, m: 98,
		file: "fan1.val", raw: 48,
		wantLabel: "System Fan 1", wantMetric: MetricFanSpeed, wantValue: 4704},
	{num: 0x36, name: "System Fan 4", stype: 0x04, evtype: 0x01, entity: 29, inst: 4, base: 18, m: 98, raw: 47,
		wantLabel: "System Fan 4", wantMetric: MetricFanSpeed, wantValue: 4606},

	// Voltages (Ceilometer): 11.831 V = (59 × 200 + 31) × 10⁻³; 4.959 V = 29 × 171 × 10⁻³.
	{num: 0xd0, name: "BB +12.0V", stype: 0x02, evtype: 0x01, entity: 7, inst: 1, base: 4, m: 59, b: 31, rexp: -3, raw: 200,
		wantLabel: "BB +12.0V", wantMetric: collectors.MetricVoltage, wantValue: 11.831},
	{num: 0xd1, name: "BB +5.0V", stype: 0x02, evtype: 0x01, entity: 7, inst: 1, base: 4, m: 29, rexp: -3, raw: 171,
		wantLabel: "BB +5.0V", wantMetric: collectors.MetricVoltage, wantValue: 4.959},
	// "Disabled" in the capture: scanning off, so absent (not 0 V).
	{num: 0xe4, name: "BB +1.35 P1LV AB", stype: 0x02, evtype: 0x01, entity: 7, inst: 1, base: 4, m: 10, rexp: -3, raw: 135,
		scanDisabled: true, wantMetric: collectors.MetricVoltage, ipmitoolAbsent: true},

	// Currents. "Current 1" 7.20 A on power supply 10.1 (Telegraf): M = 4, R = -2.
	{num: 0x6a, name: "Current 1", stype: 0x03, evtype: 0x01, entity: 10, inst: 1, base: 5, m: 4, rexp: -2, raw: 180,
		wantLabel: "Current 1", wantComponent: componentPSU, wantMetric: collectors.MetricCurrent, wantValue: 7.2},
	// "PS1 Curr Out %": a Current sensor whose unit is a percentage, not amperes.
	{num: 0x58, name: "PS1 Curr Out %", stype: 0x03, evtype: 0x01, entity: 10, inst: 1, unit1: 0x01, base: 0, m: 1, raw: 11},

	// Power. "Pwr Consumption" is a Current-type sensor in Watts on the
	// system board (Ceilometer): power, no component. M = 2.
	{num: 0x76, name: "Pwr Consumption", stype: 0x03, evtype: 0x01, entity: 7, inst: 1, base: 6, m: 2, raw: 77,
		wantLabel: "Pwr Consumption", wantMetric: collectors.MetricPower, wantValue: 154},
	// "Power Supply 1": a discrete (sensor-specific) sensor carrying a
	// Watts reading, 110 W (Telegraf elist).
	{num: 0x03, name: "Power Supply 1", stype: 0x08, evtype: 0x6f, entity: 10, inst: 1, base: 6, m: 1, raw: 110,
		wantLabel: "Power Supply 1", wantComponent: componentPSU, wantMetric: collectors.MetricPower, wantValue: 110},
	// A threshold PSU input power sensor, M = 4 (RECIPES.md).
	{num: 0x02, name: "PSU2 Power", stype: 0x0b, evtype: 0x01, entity: 10, inst: 2, base: 6, m: 4, raw: 80,
		wantLabel: "PSU2 Power", wantComponent: componentPSU, wantMetric: collectors.MetricPower, wantValue: 320},
}

// dcmiWatts is the DCMI power reading the simulator starts with; Telegraf's
// capture says 167 W. The simulator's module reports min = w-20, max = w+30,
// average = w and a 1 s sampling period.
const dcmiWatts = 167

// captureLine finds a sensor's reading in the captures: `sdr elist` lines
// (name | id | status | entity | reading), `sdr` lines (name | reading |
// status) and `sdr -v` blocks (Sensor ID / Sensor Reading).
var (
	captureElist   = regexp.MustCompile(`(?m)^([^|\n]+?)\s*\|\s*[0-9A-F]+h\s*\|\s*\w+\s*\|\s*[0-9.]+\s*\|\s*(.*)$`)
	captureList    = regexp.MustCompile(`(?m)^([^|\n]+?)\s*\|\s*([^|\n]+?)\s*\|\s*\w+\s*$`)
	captureVerbose = regexp.MustCompile(`(?m)^Sensor ID\s*:\s*(.+?) \(0x[0-9a-f]+\)\n(?:.*\n)*?\s*Sensor Reading\s*:\s*(.+)$`)
	captureNumber  = regexp.MustCompile(`^(-?[0-9.]+)(?: \(\+/- \d+\))? (degrees C|Volts|Amps|Watts|RPM)`)
)

// TestServerSDRsMatchCaptures checks the simulated server against the real
// ipmitool captures it was made from: each sensor found there has the
// captured value, or is disabled there when the collector must skip it.
func TestServerSDRsMatchCaptures(t *testing.T) {
	captured := map[string][]string{} // the same name is in several captures
	files, err := filepath.Glob("testdata/captures/*/ipmitool_sdr*.txt")
	if err != nil || len(files) != 6 {
		t.Fatalf("captures: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []*regexp.Regexp{captureElist, captureList, captureVerbose} {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				name := strings.TrimSpace(m[1])
				captured[name] = append(captured[name], strings.TrimSpace(m[2]))
			}
		}
	}
	if v := captured["System Fan 1"]; len(v) != 1 || v[0] != "4704 (+/- 0) RPM" {
		t.Fatalf("capture parser: System Fan 1 = %q", v)
	}
	matched := 0
	for _, s := range serverSDRs {
		readings, ok := captured[s.name]
		if !ok {
			continue
		}
		matched++
		var values []float64
		for _, r := range readings {
			if m := captureNumber.FindStringSubmatch(r); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				values = append(values, v)
			}
		}
		switch {
		case s.wantLabel == "" && len(values) > 0:
			t.Errorf("%s: captured %q, but the test expects no reading", s.name, readings)
		case s.wantLabel != "" && !slices.Contains(values, s.wantValue):
			t.Errorf("%s: captured %q, the test expects %v", s.name, readings, s.wantValue)
		}
	}
	if matched < 10 {
		t.Fatalf("only %d simulated sensors found in the captures", matched)
	}
	b, err := os.ReadFile("testdata/captures/telegraf/ipmitool_dcmi_power_reading.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), fmt.Sprintf("Instantaneous power reading:                   %d Watts", dcmiWatts)) {
		t.Fatalf("dcmiWatts %d is not the captured DCMI reading:\n%s", dcmiWatts, b)
	}
}
