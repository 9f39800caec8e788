package mapping

import (
	"fmt"
	"sort"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

func lbl(kv ...string) []sample.Label {
	out := make([]sample.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, sample.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestMap(t *testing.T) {
	cases := []struct {
		name  string
		in    []sample.Label
		want  []sample.Label
		scale float64
	}{
		// node_exporter rapl
		{"rapl package",
			lbl("__name__", "node_rapl_package_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:0", "site", "fra1", "instance", "host1:9100", "job", "node"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "package", "node", "host1", "sensor", "intel-rapl:0", "site", "fra1", "source", "rapl"), 1},
		{"rapl core",
			lbl("__name__", "node_rapl_core_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:0:0", "site", "fra1", "instance", "host1:9100"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "core", "node", "host1", "sensor", "intel-rapl:0:0", "site", "fra1", "source", "rapl"), 1},
		{"rapl dram, second socket",
			lbl("__name__", "node_rapl_dram_joules_total", "index", "1", "path", "/sys/class/powercap/intel-rapl:1:1", "site", "fra1", "node", "n7"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "dram", "node", "n7", "sensor", "intel-rapl:1:1", "site", "fra1", "source", "rapl"), 1},
		{"rapl uncore",
			lbl("__name__", "node_rapl_uncore_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:0:1", "site", "fra1", "node", "n7"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "uncore", "node", "n7", "sensor", "intel-rapl:0:1", "site", "fra1", "source", "rapl"), 1},
		{"rapl psys",
			lbl("__name__", "node_rapl_psys_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:1", "site", "fra1", "node", "n7"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "psys", "node", "n7", "sensor", "intel-rapl:1", "site", "fra1", "source", "rapl"), 1},
		{"rapl without path (old node_exporter)",
			lbl("__name__", "node_rapl_package_joules_total", "index", "1", "site", "fra1", "node", "n7"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "package", "node", "n7", "sensor", "intel-rapl:1", "site", "fra1", "source", "rapl"), 1},
		{"rapl zone label",
			lbl("__name__", "node_rapl_joules_total", "rapl_zone", "dram", "index", "0", "path", "/sys/class/powercap/intel-rapl:0:2", "site", "fra1", "node", "n7"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "dram", "node", "n7", "sensor", "intel-rapl:0:2", "site", "fra1", "source", "rapl"), 1},

		// node_exporter hwmon
		{"hwmon temp",
			lbl("__name__", "node_hwmon_temp_celsius", "chip", "platform_coretemp_0", "sensor", "temp1", "site", "fra1", "instance", "10.0.0.5:9100"),
			lbl("__name__", "greenloop_temperature_celsius", "node", "10.0.0.5", "sensor", "platform_coretemp_0/temp1", "site", "fra1", "source", "hwmon"), 1},
		{"hwmon power input",
			lbl("__name__", "node_hwmon_power_watt", "chip", "platform_pnp0c0b:00", "sensor", "power1", "site", "fra1", "node", "n1"),
			lbl("__name__", "greenloop_power_watts", "node", "n1", "sensor", "platform_pnp0c0b:00/power1", "site", "fra1", "source", "hwmon"), 1},
		{"hwmon power average",
			lbl("__name__", "node_hwmon_power_average_watt", "chip", "0000:03:00_0_amdgpu", "sensor", "power1", "site", "fra1", "node", "n1"),
			lbl("__name__", "greenloop_power_watts", "node", "n1", "sensor", "0000:03:00_0_amdgpu/power1/average", "site", "fra1", "source", "hwmon"), 1},
		{"hwmon energy",
			lbl("__name__", "node_hwmon_energy_joule_total", "chip", "hwmon_ina3221", "sensor", "energy1", "site", "edge2", "node", "board"),
			lbl("__name__", "greenloop_energy_joules_total", "node", "board", "sensor", "hwmon_ina3221/energy1", "site", "edge2", "source", "hwmon"), 1},

		// DCGM exporter
		{"dcgm power",
			lbl("__name__", "DCGM_FI_DEV_POWER_USAGE", "gpu", "0", "UUID", "GPU-aaa", "device", "nvidia0", "modelName", "NVIDIA H100 80GB HBM3", "Hostname", "gpu-node-1", "site", "fra1", "instance", "10.1.2.3:9400", "pod", "trainer-0"),
			lbl("__name__", "greenloop_power_watts", "component", "gpu", "node", "gpu-node-1", "sensor", "gpu0", "site", "fra1", "source", "nvml"), 1},
		{"dcgm energy in mJ",
			lbl("__name__", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "gpu", "3", "UUID", "GPU-ddd", "Hostname", "gpu-node-1", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "gpu", "node", "gpu-node-1", "sensor", "gpu3", "site", "fra1", "source", "nvml"), 1e-3},
		{"dcgm gpu temp, node label beats Hostname",
			lbl("__name__", "DCGM_FI_DEV_GPU_TEMP", "gpu", "1", "Hostname", "dcgm-pod-x", "node", "gpu-node-1", "site", "fra1"),
			lbl("__name__", "greenloop_temperature_celsius", "component", "gpu", "node", "gpu-node-1", "sensor", "gpu1", "site", "fra1", "source", "nvml"), 1},
		{"dcgm memory temp, UUID when no gpu index",
			lbl("__name__", "DCGM_FI_DEV_MEMORY_TEMP", "UUID", "GPU-bbb", "site", "fra1", "instance", "gpu-node-2:9400"),
			lbl("__name__", "greenloop_temperature_celsius", "component", "gpu_memory", "node", "gpu-node-2", "sensor", "GPU-bbb", "site", "fra1", "source", "nvml"), 1},

		// ipmi_exporter
		{"ipmi dcmi",
			lbl("__name__", "ipmi_dcmi_power_consumption_watts", "site", "fra1", "instance", "bmc-13.example:623", "job", "ipmi"),
			lbl("__name__", "greenloop_power_watts", "component", "chassis", "node", "bmc-13.example", "site", "fra1", "source", "ipmi"), 1},
		{"ipmi temperature",
			lbl("__name__", "ipmi_temperature_celsius", "id", "12", "name", "Inlet Temp", "site", "fra1", "node", "bmc-13"),
			lbl("__name__", "greenloop_temperature_celsius", "node", "bmc-13", "sensor", "Inlet Temp", "site", "fra1", "source", "ipmi"), 1},
		{"ipmi temperature without name",
			lbl("__name__", "ipmi_temperature_celsius", "id", "12", "site", "fra1", "node", "bmc-13"),
			lbl("__name__", "greenloop_temperature_celsius", "node", "bmc-13", "sensor", "12", "site", "fra1", "source", "ipmi"), 1},
		{"ipmi psu power",
			lbl("__name__", "ipmi_power_watts", "id", "40", "name", "PSU1 Input", "site", "fra1", "node", "bmc-13"),
			lbl("__name__", "greenloop_power_watts", "component", "psu", "node", "bmc-13", "sensor", "PSU1 Input", "site", "fra1", "source", "ipmi"), 1},
		{"ipmi ps2 power",
			lbl("__name__", "ipmi_power_watts", "id", "41", "name", "PS2 Power", "site", "fra1", "node", "bmc-13"),
			lbl("__name__", "greenloop_power_watts", "component", "psu", "node", "bmc-13", "sensor", "PS2 Power", "site", "fra1", "source", "ipmi"), 1},
		{"ipmi system power",
			lbl("__name__", "ipmi_power_watts", "id", "7", "name", "Pwr Consumption", "site", "fra1", "node", "bmc-13"),
			lbl("__name__", "greenloop_power_watts", "component", "chassis", "node", "bmc-13", "sensor", "Pwr Consumption", "site", "fra1", "source", "ipmi"), 1},

		// Kepler up to 0.7
		{"kepler platform dynamic",
			lbl("__name__", "kepler_node_platform_joules_total", "instance", "worker-1", "mode", "dynamic", "package", "0", "source", "acpi", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "psys", "node", "worker-1", "sensor", "0/dynamic", "site", "fra1", "source", "kepler"), 1},
		{"kepler package idle, exported_instance",
			lbl("__name__", "kepler_node_package_joules_total", "exported_instance", "worker-1", "instance", "10.244.1.5:9102", "mode", "idle", "package", "0", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "package", "node", "worker-1", "sensor", "0/idle", "site", "fra1", "source", "kepler"), 1},
		{"kepler dram, no package label",
			lbl("__name__", "kepler_node_dram_joules_total", "instance", "worker-1", "mode", "dynamic", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "dram", "node", "worker-1", "sensor", "dynamic", "site", "fra1", "source", "kepler"), 1},
		{"kepler core, no mode",
			lbl("__name__", "kepler_node_core_joules_total", "instance", "worker-1", "package", "1", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "core", "node", "worker-1", "sensor", "1", "site", "fra1", "source", "kepler"), 1},
		{"kepler uncore",
			lbl("__name__", "kepler_node_uncore_joules_total", "instance", "worker-1", "mode", "idle", "package", "0", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "uncore", "node", "worker-1", "sensor", "0/idle", "site", "fra1", "source", "kepler"), 1},

		// Kepler 0.10+
		{"kepler cpu joules",
			lbl("__name__", "kepler_node_cpu_joules_total", "zone", "package", "path", "/sys/class/powercap/intel-rapl:0", "node_name", "worker-1", "instance", "10.244.1.5:28282", "site", "fra1"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "package", "node", "worker-1", "sensor", "intel-rapl:0", "site", "fra1", "source", "kepler"), 1},
		{"kepler cpu watts, upper-case zone",
			lbl("__name__", "kepler_node_cpu_watts", "zone", "DRAM", "path", "/sys/class/powercap/intel-rapl:0:0", "node_name", "worker-1", "site", "fra1"),
			lbl("__name__", "greenloop_power_watts", "component", "dram", "node", "worker-1", "sensor", "intel-rapl:0:0", "site", "fra1", "source", "kepler"), 1},
		{"kepler cpu psys without path",
			lbl("__name__", "kepler_node_cpu_watts", "zone", "psys", "node_name", "worker-1", "site", "fra1"),
			lbl("__name__", "greenloop_power_watts", "component", "psys", "node", "worker-1", "site", "fra1", "source", "kepler"), 1},

		// Scaphandre
		{"scaphandre power",
			lbl("__name__", "scaph_host_power_microwatts", "site", "ams1", "instance", "[2001:db8::7]:8080"),
			lbl("__name__", "greenloop_power_watts", "component", "psys", "node", "2001:db8::7", "site", "ams1", "source", "scaphandre"), 1e-6},
		{"scaphandre energy",
			lbl("__name__", "scaph_host_energy_microjoules", "site", "ams1", "node", "h9"),
			lbl("__name__", "greenloop_energy_joules_total", "component", "psys", "node", "h9", "site", "ams1", "source", "scaphandre"), 1e-6},

		// tenant is kept, everything else dropped
		{"tenant kept",
			lbl("tenant", "acme", "__name__", "ipmi_dcmi_power_consumption_watts", "site", "fra1", "node", "bmc-1", "rack", "r4", "job", "ipmi"),
			lbl("__name__", "greenloop_power_watts", "component", "chassis", "node", "bmc-1", "site", "fra1", "source", "ipmi", "tenant", "acme"), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, scale, ok := Map(c.in)
			if !ok {
				_, _, st := MapStatus(c.in)
				t.Fatalf("not mapped: %v", st)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
			if scale != c.scale {
				t.Errorf("scale %v, want %v", scale, c.scale)
			}
			if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Name < got[j].Name }) {
				t.Errorf("labels not sorted: %v", got)
			}
		})
	}
}

// TestEveryRuleTested keeps the table above honest as rules are added.
func TestEveryRuleTested(t *testing.T) {
	want := []string{
		"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
		"ipmi_dcmi_power_consumption_watts", "ipmi_power_watts", "ipmi_temperature_celsius",
		"kepler_node_core_joules_total", "kepler_node_cpu_joules_total", "kepler_node_cpu_watts", "kepler_node_dram_joules_total",
		"kepler_node_package_joules_total", "kepler_node_platform_joules_total", "kepler_node_uncore_joules_total",
		"node_hwmon_energy_joule_total", "node_hwmon_power_average_watt", "node_hwmon_power_watt", "node_hwmon_temp_celsius",
		"node_rapl_core_joules_total", "node_rapl_dram_joules_total", "node_rapl_joules_total", "node_rapl_package_joules_total",
		"node_rapl_psys_joules_total", "node_rapl_uncore_joules_total",
		"scaph_host_energy_microjoules", "scaph_host_power_microwatts",
	}
	var got []string
	for name := range rules {
		got = append(got, name)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rules for\n%v\nwant\n%v", got, want)
	}
}

func TestNotMapped(t *testing.T) {
	cases := []struct {
		name string
		in   []sample.Label
		want Status
	}{
		{"no site", lbl("__name__", "node_rapl_package_joules_total", "index", "0", "node", "n1"), NoSite},
		{"empty site", lbl("__name__", "DCGM_FI_DEV_POWER_USAGE", "gpu", "0", "site", "", "node", "n1"), NoSite},
		{"no node at all", lbl("__name__", "scaph_host_power_microwatts", "site", "fra1"), NoNode},
		{"instance without host", lbl("__name__", "scaph_host_power_microwatts", "site", "fra1", "instance", ":8080"), NoNode},
		{"greenloop power", lbl("__name__", "greenloop_power_watts", "site", "fra1", "node", "n1"), NoRule},
		{"greenloop energy", lbl("__name__", "greenloop_energy_joules_total", "site", "fra1", "node", "n1", "source", "rapl"), NoRule},
		{"unknown metric", lbl("__name__", "node_cpu_seconds_total", "site", "fra1", "node", "n1"), NoRule},
		{"hwmon temp threshold", lbl("__name__", "node_hwmon_temp_crit_celsius", "chip", "c", "sensor", "temp1", "site", "fra1", "node", "n1"), NoRule},
		{"no metric name", lbl("site", "fra1", "node", "n1"), NoRule},
		{"nil labels", nil, NoRule},
		{"rapl unknown zone", lbl("__name__", "node_rapl_joules_total", "rapl_zone", "gpu", "site", "fra1", "node", "n1"), Unusable},
		{"rapl zone label missing", lbl("__name__", "node_rapl_joules_total", "site", "fra1", "node", "n1"), Unusable},
		{"rapl mmio", lbl("__name__", "node_rapl_package_joules_total", "index", "1", "path", "/sys/class/powercap/intel-rapl-mmio:0", "site", "fra1", "node", "n1"), Unusable},
		{"hwmon without chip", lbl("__name__", "node_hwmon_temp_celsius", "sensor", "temp1", "site", "fra1", "node", "n1"), Unusable},
		{"dcgm without gpu or UUID", lbl("__name__", "DCGM_FI_DEV_GPU_TEMP", "site", "fra1", "node", "n1"), Unusable},
		{"ipmi power without name or id", lbl("__name__", "ipmi_power_watts", "site", "fra1", "node", "n1"), Unusable},
		{"kepler 0.10 other zone", lbl("__name__", "kepler_node_cpu_watts", "zone", "gpu", "site", "fra1", "node", "n1"), Unusable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, scale, st := MapStatus(c.in)
			if st != c.want || got != nil || scale != 0 {
				t.Fatalf("MapStatus = %v, %v, %v; want nil, 0, %v", got, scale, st, c.want)
			}
			if _, _, ok := Map(c.in); ok {
				t.Fatal("Map says ok")
			}
		})
	}
}

func TestHostOf(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"host1:9100", "host1"},
		{"host1", "host1"},
		{"10.0.0.5:9100", "10.0.0.5"},
		{"[2001:db8::1]:9100", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"[fe80::1%eth0]:9100", "fe80::1%eth0"},
		{"node.example.com:", "node.example.com"},
		{":9100", ""},
	}
	for _, c := range cases {
		if got := hostOf(c.in); got != c.want {
			t.Errorf("hostOf(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNamesPSU(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"PSU1 Input", true},
		{"PSU2_Power", true},
		{"PS1 Power", true},
		{"PS 2 Input Power", true},
		{"ps_3", true},
		{"Power Supply 1", true},
		{"Pwr Consumption", false},
		{"Total Power", false},
		{"CPU Power", false},
		{"GPS1", false}, // "ps" inside a word does not count
		{"PS", false},
		{"Chassis PS", false},
	}
	for _, c := range cases {
		if got := namesPSU(c.in); got != c.want {
			t.Errorf("namesPSU(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[Status]string{NoRule: "no_rule", Mapped: "mapped", NoSite: "no_site", NoNode: "no_node", Unusable: "unusable", Status(99): "no_rule"} {
		if got := st.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", st, got, want)
		}
	}
}

func TestMapDoesNotAlias(t *testing.T) {
	in := lbl("__name__", "ipmi_dcmi_power_consumption_watts", "site", "fra1", "node", "bmc-1")
	got, _, _ := Map(in)
	got[2].Value = "changed"
	if in[2].Value != "bmc-1" {
		t.Fatal("result aliases the input")
	}
}
