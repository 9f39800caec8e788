//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 holds a space and a parenthesis; utime=250, stime=50 ticks.
	stat := "1234 (node exp) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 {
		t.Errorf("parseStatCPU = %v, want 3", got)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("parseStatCPU(garbage): no error")
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tnode_exporter\nVmPeak:\t 2000000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n"
	m, err := parseStatusMem(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 10240<<10 || m.HWM != 20480<<10 {
		t.Errorf("parseStatusMem = %+v", m)
	}
	if _, err := parseStatusMem(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
	// Our own process has both lines.
	if m, err := procMem(os.Getpid()); err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("procMem(self) = %+v, %v", m, err)
	}
}

func TestCountSeries(t *testing.T) {
	body := `# HELP node_rapl_package_joules_total Current RAPL package value in joules
# TYPE node_rapl_package_joules_total counter
node_rapl_package_joules_total{index="0",path="x"} 1
node_rapl_core_joules_total{index="0",path="y"} 2
node_hwmon_chip_names{chip="c",chip_name="n"} 1
node_hwmon_temp_celsius{chip="c",sensor="temp1"} 55
node_hwmon_temp_max_celsius{chip="c",sensor="temp1"} 90
node_hwmon_in_volts{chip="c",sensor="in0"} 0.8
node_exporter_build_info{version="1"} 1
`
	var ov Overhead
	ov.countSeries(body)
	if ov.RAPLReadings != 2 || ov.RAPLZones != 2 || ov.HwmonReadings != 4 || ov.HwmonSensors != 2 {
		t.Errorf("countSeries = %+v", ov)
	}
}

// TestDriverCollect builds the combined fixture tree and runs the driver's
// collection loop on it: both collectors must read something.
func TestDriverCollect(t *testing.T) {
	root, err := findModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(t.TempDir(), "sys")
	for _, tree := range fixtureTrees {
		if err := copyTree(filepath.Join(root, tree), sys); err != nil {
			t.Fatal(err)
		}
	}
	// Symlinks survive the copy (hwmon class entries point into devices).
	if fi, err := os.Lstat(filepath.Join(sys, "class/hwmon/hwmon0")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("class/hwmon/hwmon0 is not a link: %v", err)
	}
	ov, err := driveCollect(sys, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ov.RAPLZones == 0 || ov.HwmonSensors == 0 || ov.Collections != 10 || ov.Mem.HWM <= 0 {
		t.Errorf("driveCollect = %+v", ov)
	}
}

func TestMockGPU(t *testing.T) {
	c, n, err := mockGPU()
	if err != nil {
		t.Skip(err) // built without cgo
	}
	if n != 8 {
		t.Errorf("mock has %d GPUs, want 8", n)
	}
	var readings int
	if err := c.Collect(context.Background(), emitCounter(&readings)); err != nil {
		t.Fatal(err)
	}
	if readings < 8 {
		t.Errorf("gpu collector emitted %d readings", readings)
	}
}

func TestCountAgentSeries(t *testing.T) {
	body := `# TYPE greenloop_power_watts gauge
greenloop_power_watts{component="package",node="n",sensor="intel-rapl:0",site="bench",source="rapl"} 1 1
greenloop_energy_joules_total{component="package",node="n",sensor="intel-rapl:0",site="bench",source="rapl"} 1 1
greenloop_temperature_celsius{node="n",sensor="coretemp/Core 0",site="bench",source="hwmon"} 54 1
greenloop_collector_up{target="hwmon",type="hwmon"} 1
`
	var ov Overhead
	ov.countAgentSeries(body)
	if ov.RAPLReadings != 2 || ov.RAPLZones != 1 || ov.HwmonReadings != 1 || ov.HwmonSensors != 1 {
		t.Errorf("countAgentSeries = %+v", ov)
	}
}
