// Package mapping maps the series of well-known exporters (node_exporter,
// NVIDIA DCGM exporter, ipmi_exporter, Kepler, Scaphandre) onto greenloop's
// canonical series, so that readings greenloop did not collect itself still
// count in its dashboards and accounting. The caller stores the original
// series unchanged and, when Map succeeds, a canonical copy beside it.
//
// Rules only map metrics whose quantity and unit match the canonical one
// (joules to joules, watts to watts, degrees Celsius to degrees Celsius);
// where an exporter uses a unit prefix (DCGM's millijoules, Scaphandre's
// microwatts and microjoules) the rule carries the factor the caller must
// multiply each value by. Counters stay counters and gauges stay gauges.
//
// A mapped series gets the canonical labels of DESIGN.md: "__name__",
// "site", "node", "source", "component", "sensor" and, when present,
// "tenant"; every other label of the original is dropped. Labels whose value
// would be empty are left out.
package mapping

import (
	"net"
	"path"
	"strings"

	"github.com/greenloop/greenloop/internal/sample"
)

// Canonical metric names that rules map onto.
const (
	PowerWatts         = "greenloop_power_watts"
	EnergyJoulesTotal  = "greenloop_energy_joules_total"
	TemperatureCelsius = "greenloop_temperature_celsius"
)

// Sources that mapped series are labelled with. Kepler and Scaphandre are
// not in DESIGN.md's list of sources (which names the sensor interfaces
// greenloop's own collectors use); they are estimators or aggregators on top
// of RAPL, so they keep their own names rather than pose as "rapl".
const (
	SourceRAPL       = "rapl"
	SourceHwmon      = "hwmon"
	SourceNVML       = "nvml" // the DCGM exporter reads NVML/DCGM
	SourceIPMI       = "ipmi"
	SourceKepler     = "kepler"
	SourceScaphandre = "scaphandre"
)

// Status says whether and why not Map mapped a series.
type Status int

const (
	// NoRule: the metric is not one a rule knows (greenloop's own metrics
	// included), or the series has no metric name.
	NoRule Status = iota
	// Mapped: the canonical labels and scale are valid.
	Mapped
	// NoSite: a rule matched but the series has no "site" label.
	NoSite
	// NoNode: a rule matched but neither a "node" label, nor the rule's
	// fallback labels, nor the host of "instance" give a node.
	NoNode
	// Unusable: a rule matched but the series cannot be mapped safely, e.g.
	// a RAPL zone greenloop does not know or that double-counts another.
	Unusable
)

// String returns a short snake_case name, suitable as a metric label value.
func (s Status) String() string {
	switch s {
	case Mapped:
		return "mapped"
	case NoSite:
		return "no_site"
	case NoNode:
		return "no_node"
	case Unusable:
		return "unusable"
	default:
		return "no_rule"
	}
}

// Map returns the labels of the canonical copy of the series with labels ls
// and the factor to multiply its values by, or ok=false when no rule maps it
// (see MapStatus for why). ls need not be sorted; the result is sorted by
// label name and shares nothing with ls.
func Map(ls []sample.Label) (canonical []sample.Label, scale float64, ok bool) {
	canonical, scale, st := MapStatus(ls)
	return canonical, scale, st == Mapped
}

// MapStatus is Map with the reason a series was not mapped. canonical is nil
// and scale 0 unless the status is Mapped.
func MapStatus(ls []sample.Label) (canonical []sample.Label, scale float64, st Status) {
	name := get(ls, "__name__")
	r, found := rules[name]
	if !found {
		return nil, 0, NoRule
	}
	component, sensor, usable := r.describe(ls)
	if !usable {
		return nil, 0, Unusable
	}
	site := get(ls, "site")
	if site == "" {
		return nil, 0, NoSite
	}
	node := get(ls, "node")
	for _, n := range r.nodeLabels {
		if node != "" {
			break
		}
		node = get(ls, n)
	}
	if node == "" {
		node = hostOf(get(ls, "instance"))
	}
	if node == "" {
		return nil, 0, NoNode
	}
	out := make([]sample.Label, 0, 7)
	// Appended in label-name order.
	out = append(out, sample.Label{Name: "__name__", Value: r.metric})
	if component != "" {
		out = append(out, sample.Label{Name: "component", Value: component})
	}
	out = append(out, sample.Label{Name: "node", Value: node})
	if sensor != "" {
		out = append(out, sample.Label{Name: "sensor", Value: sensor})
	}
	out = append(out, sample.Label{Name: "site", Value: site}, sample.Label{Name: "source", Value: r.source})
	if tenant := get(ls, "tenant"); tenant != "" {
		out = append(out, sample.Label{Name: "tenant", Value: tenant})
	}
	return out, r.scale, Mapped
}

// rule maps one exporter metric.
type rule struct {
	metric string  // canonical metric name
	source string  // "source" label
	scale  float64 // value factor to the canonical unit
	// nodeLabels are tried, in order, when the series has no "node" label,
	// before the host part of "instance".
	nodeLabels []string
	// describe gives the "component" and "sensor" labels, or usable=false.
	describe func(ls []sample.Label) (component, sensor string, usable bool)
}

// fixed describes every series of a metric with the same component and
// with the sensor taken from the first non-empty of sensorLabels.
func fixed(component string, sensorLabels ...string) func([]sample.Label) (string, string, bool) {
	return func(ls []sample.Label) (string, string, bool) {
		for _, n := range sensorLabels {
			if v := get(ls, n); v != "" {
				return component, v, true
			}
		}
		return component, "", true
	}
}

var rules = map[string]rule{}

func add(exporterMetric string, r rule) {
	if r.scale == 0 {
		r.scale = 1
	}
	rules[exporterMetric] = r
}

func init() {
	// node_exporter, rapl collector: node_rapl_<zone>_joules_total{index, path},
	// or with --collector.rapl.enable-zone-label node_rapl_joules_total{index, path, rapl_zone}.
	for _, zone := range []string{"package", "core", "dram", "uncore", "psys"} {
		add("node_rapl_"+zone+"_joules_total", rule{metric: EnergyJoulesTotal, source: SourceRAPL,
			describe: func(ls []sample.Label) (string, string, bool) { return raplZone(zone, ls) }})
	}
	add("node_rapl_joules_total", rule{metric: EnergyJoulesTotal, source: SourceRAPL,
		describe: func(ls []sample.Label) (string, string, bool) { return raplZone(get(ls, "rapl_zone"), ls) }})

	// node_exporter, hwmon collector ({chip, sensor}). It names metrics after
	// the sysfs file: tempN_input -> node_hwmon_temp_celsius, powerN_input ->
	// node_hwmon_power_watt, powerN_average -> node_hwmon_power_average_watt,
	// energyN_input -> node_hwmon_energy_joule_total (singular "watt" and
	// "joule" are node_exporter's spelling). node_hwmon_power_input_watt only
	// appears when a bare powerN file exists too, and is not mapped.
	add("node_hwmon_temp_celsius", rule{metric: TemperatureCelsius, source: SourceHwmon, describe: hwmon("")})
	add("node_hwmon_power_watt", rule{metric: PowerWatts, source: SourceHwmon, describe: hwmon("")})
	// A chip may expose both powerN_input and powerN_average for one channel;
	// the average gets its own sensor id so the two series do not collide.
	add("node_hwmon_power_average_watt", rule{metric: PowerWatts, source: SourceHwmon, describe: hwmon("/average")})
	add("node_hwmon_energy_joule_total", rule{metric: EnergyJoulesTotal, source: SourceHwmon, describe: hwmon("")})

	// NVIDIA DCGM exporter: {gpu, UUID, device, modelName, Hostname, ...}.
	dcgm := func(metric, component string, scale float64) rule {
		return rule{metric: metric, source: SourceNVML, scale: scale, nodeLabels: []string{"Hostname"},
			describe: func(ls []sample.Label) (string, string, bool) {
				if g := get(ls, "gpu"); g != "" {
					return component, "gpu" + g, true
				}
				if u := get(ls, "UUID"); u != "" {
					return component, u, true
				}
				return "", "", false
			}}
	}
	add("DCGM_FI_DEV_POWER_USAGE", dcgm(PowerWatts, "gpu", 1))
	add("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", dcgm(EnergyJoulesTotal, "gpu", 1e-3)) // mJ since driver load
	add("DCGM_FI_DEV_GPU_TEMP", dcgm(TemperatureCelsius, "gpu", 1))
	add("DCGM_FI_DEV_MEMORY_TEMP", dcgm(TemperatureCelsius, "gpu_memory", 1))

	// prometheus-community/ipmi_exporter: sensors carry {id, name}.
	add("ipmi_dcmi_power_consumption_watts", rule{metric: PowerWatts, source: SourceIPMI, describe: fixed("chassis")})
	add("ipmi_temperature_celsius", rule{metric: TemperatureCelsius, source: SourceIPMI, describe: fixed("", "name", "id")})
	add("ipmi_power_watts", rule{metric: PowerWatts, source: SourceIPMI, describe: ipmiPower})

	// Kepler up to 0.7: kepler_node_<component>_joules_total{package, instance,
	// mode, source}, where mode is "dynamic" or "idle": the two halves of
	// the measured energy. They become two sensors that sum to the total.
	for exp, component := range map[string]string{"package": "package", "core": "core", "uncore": "uncore",
		"dram": "dram", "platform": "psys"} {
		add("kepler_node_"+exp+"_joules_total", rule{metric: EnergyJoulesTotal, source: SourceKepler,
			nodeLabels: []string{"exported_instance"},
			describe: func(ls []sample.Label) (string, string, bool) {
				pkg, mode := get(ls, "package"), get(ls, "mode")
				switch {
				case pkg != "" && mode != "":
					return component, pkg + "/" + mode, true
				case mode != "":
					return component, mode, true
				}
				return component, pkg, true
			}})
	}
	// Kepler 0.10 and later: kepler_node_cpu_{joules_total,watts}{zone, path, node_name}.
	add("kepler_node_cpu_joules_total", rule{metric: EnergyJoulesTotal, source: SourceKepler, nodeLabels: []string{"node_name"}, describe: keplerZone})
	add("kepler_node_cpu_watts", rule{metric: PowerWatts, source: SourceKepler, nodeLabels: []string{"node_name"}, describe: keplerZone})

	// Scaphandre: host totals in micro-units.
	add("scaph_host_power_microwatts", rule{metric: PowerWatts, source: SourceScaphandre, scale: 1e-6, describe: fixed("psys")})
	add("scaph_host_energy_microjoules", rule{metric: EnergyJoulesTotal, source: SourceScaphandre, scale: 1e-6, describe: fixed("psys")})
}

// raplZones are the powercap zone names greenloop knows as components.
var raplZones = map[string]bool{"package": true, "core": true, "dram": true, "uncore": true, "psys": true}

// raplZone describes a node_exporter RAPL series. The sensor is the powercap
// directory (the base of the "path" label, e.g. "intel-rapl:0:1"); without a
// path it is "intel-rapl:<index>", where index is node_exporter's per-name
// counter. MMIO zones are skipped: they measure the same package energy as
// the MSR zone of the same index, and summing both would count it twice.
func raplZone(zone string, ls []sample.Label) (string, string, bool) {
	if !raplZones[zone] {
		return "", "", false
	}
	sensor := ""
	if p := get(ls, "path"); p != "" {
		sensor = path.Base(p)
	} else if i := get(ls, "index"); i != "" {
		sensor = "intel-rapl:" + i
	}
	if strings.HasPrefix(sensor, "intel-rapl-mmio") {
		return "", "", false
	}
	return zone, sensor, true
}

// hwmon describes a node_exporter hwmon series: sensor "<chip>/<sensor>"
// plus suffix. There is no component: hwmon does not say what it measures.
func hwmon(suffix string) func([]sample.Label) (string, string, bool) {
	return func(ls []sample.Label) (string, string, bool) {
		chip, sensor := get(ls, "chip"), get(ls, "sensor")
		if chip == "" || sensor == "" {
			return "", "", false
		}
		return "", chip + "/" + sensor + suffix, true
	}
}

// ipmiPower describes an ipmi_exporter power sensor. A sensor that names a
// power supply ("PSU1 Input", "PS2 Power", "Power Supply 1") is component
// psu; any other (e.g. "Pwr Consumption", the usual whole-system sensor) is
// chassis, so that summing PSU readings never includes a system total.
func ipmiPower(ls []sample.Label) (string, string, bool) {
	name := get(ls, "name")
	if name == "" {
		name = get(ls, "id")
	}
	if name == "" {
		return "", "", false
	}
	if namesPSU(name) {
		return "psu", name, true
	}
	return "chassis", name, true
}

// namesPSU reports whether an IPMI sensor name refers to a power supply:
// it contains "psu" or "power supply", or "ps" followed by a digit
// (optionally after a space or '_'), case-insensitively.
func namesPSU(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "psu") || strings.Contains(n, "power supply") {
		return true
	}
	for i := 0; i+2 < len(n); i++ {
		if n[i] != 'p' || n[i+1] != 's' || (i > 0 && n[i-1] >= 'a' && n[i-1] <= 'z') {
			continue
		}
		j := i + 2
		if n[j] == ' ' || n[j] == '_' {
			j++
		}
		if j < len(n) && n[j] >= '0' && n[j] <= '9' {
			return true
		}
	}
	return false
}

// keplerZone describes a Kepler 0.10+ node CPU series: the component is the
// zone, lower-cased; the sensor the base of "path" when there is one.
func keplerZone(ls []sample.Label) (string, string, bool) {
	zone := strings.ToLower(get(ls, "zone"))
	if !raplZones[zone] {
		return "", "", false
	}
	sensor := ""
	if p := get(ls, "path"); p != "" {
		sensor = path.Base(p)
	}
	return zone, sensor, true
}

// hostOf returns the host part of a Prometheus "instance" label: "h:9100"
// gives "h", "[2001:db8::1]:9100" and "[2001:db8::1]" give "2001:db8::1",
// and a value without a port ("h", "2001:db8::1") is returned unchanged.
func hostOf(instance string) string {
	if instance == "" {
		return ""
	}
	if host, _, err := net.SplitHostPort(instance); err == nil {
		return host
	}
	if len(instance) >= 2 && instance[0] == '[' && instance[len(instance)-1] == ']' {
		return instance[1 : len(instance)-1]
	}
	return instance
}

func get(ls []sample.Label, name string) string {
	for i := range ls {
		if ls[i].Name == name {
			return ls[i].Value
		}
	}
	return ""
}
