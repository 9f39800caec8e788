//go:build linux

// Command agentbench measures the agent's collection overhead.
//
//  1. vs node_exporter: on one fixture sysfs tree (RAPL zones and hwmon chips
//     copied from the collectors' testdata), it scrapes node_exporter (only
//     its rapl and hwmon collectors) -n times and measures that process's CPU
//     time and memory; then it runs greenloop's rapl and hwmon collectors -n
//     times on the same tree, in a separate process (agentbench re-executing
//     itself in driver mode), which measures its own CPU time and memory.
//  2. footprint: the driver runs the Poller with rapl, hwmon and gpu (the
//     dgxh100 NVML mock, 8 GPUs) at a 1 s interval for -duration and reports
//     its CPU use (CPU time / wall time) and peak RSS.
//
// It prints a table and writes JSON with -out.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fixture trees copied into the combined sysfs tree, relative to the module root.
var fixtureTrees = []string{
	"collectors/rapl/testdata/node_exporter/sys",
	"collectors/hwmon/testdata/node_exporter/sys",
}

// Mem is a process's resident memory, in bytes.
type Mem struct {
	RSS int64 `json:"rss_bytes"`
	HWM int64 `json:"hwm_bytes"` // peak (VmHWM)
}

// Overhead is one side of the side-by-side comparison.
type Overhead struct {
	Name          string  `json:"name"`
	Collections   int     `json:"collections"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUMicrosPer  float64 `json:"cpu_us_per_collection"`
	WallSeconds   float64 `json:"wall_seconds"`
	RAPLReadings  int     `json:"rapl_readings"`  // per collection (node_exporter: node_rapl_* series)
	HwmonReadings int     `json:"hwmon_readings"` // per collection (node_exporter: node_hwmon_* series)
	RAPLZones     int     `json:"rapl_zones"`     // distinct zones read
	HwmonSensors  int     `json:"hwmon_sensors"`  // distinct sensor values read (temperature, voltage, current, power, energy, fan)
	Mem           Mem     `json:"mem"`
	Note          string  `json:"note,omitempty"`
	NodeExporterV string  `json:"version,omitempty"`
}

// Footprint is the result of the driver's footprint mode.
type Footprint struct {
	WallSeconds float64 `json:"wall_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CorePercent float64 `json:"core_percent"`
	Polls       int     `json:"polls"`
	Readings    int     `json:"readings"`
	GPUs        int     `json:"gpus"`
	Mem         Mem     `json:"mem"`
	TargetCPU   float64 `json:"target_core_percent"`
	TargetRSSMB float64 `json:"target_rss_mb"` // 10^6 bytes
}

// Results is what -out writes.
type Results struct {
	Date         string     `json:"date"`
	Host         string     `json:"host"`
	CPUs         int        `json:"cpus"`
	Load         string     `json:"loadavg"`
	NodeExporter *Overhead  `json:"node_exporter,omitempty"`
	Greenloop    *Overhead  `json:"greenloop,omitempty"`
	Agent        *Overhead  `json:"greenloop_agent_pull,omitempty"`
	CPURatio     float64    `json:"cpu_ratio_greenloop_over_node_exporter,omitempty"`
	RSSRatio     float64    `json:"rss_ratio_greenloop_over_node_exporter,omitempty"`
	Footprint    *Footprint `json:"footprint,omitempty"`
	Failures     []string   `json:"failures,omitempty"`
}

func main() {
	var (
		driver   = flag.String("driver", "", "internal: run as the measured process (collect or footprint)")
		sysfs    = flag.String("sysfs", "", "sysfs root (default: a temporary copy of the fixture trees)")
		n        = flag.Int("n", 1000, "collections (scrapes) per side")
		duration = flag.Duration("duration", 60*time.Second, "footprint run time")
		interval = flag.Duration("interval", time.Second, "footprint poll interval")
		nodeExp  = flag.String("node-exporter", "prometheus-node-exporter", "node_exporter binary")
		phases   = flag.String("phases", "overhead,pull,footprint", "phases to run, comma-separated: overhead (node_exporter vs the collectors), pull (scrapes of greenloop agent /metrics), footprint")
		out      = flag.String("out", "", "write the results as JSON to this file")
	)
	flag.Parse()
	if *driver != "" {
		if err := runDriver(*driver, *sysfs, *n, *duration, *interval, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "agentbench driver:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(*sysfs, *n, *duration, *interval, *nodeExp, *phases)
	if res != nil {
		printTable(os.Stdout, res)
		if *out != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(*out, append(b, '\n'), 0o644); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
	if len(res.Failures) > 0 {
		os.Exit(1)
	}
}

func run(sysfs string, n int, duration, interval time.Duration, nodeExp, phases string) (*Results, error) {
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	res := &Results{Date: time.Now().UTC().Format(time.RFC3339), Host: host, CPUs: numCPU(), Load: strings.TrimSpace(string(load))}
	root, err := findModuleRoot()
	if err != nil {
		return res, err
	}
	if sysfs == "" {
		tmp, err := os.MkdirTemp("", "agentbench-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		sysfs = filepath.Join(tmp, "sys")
		for _, t := range fixtureTrees {
			if err := copyTree(filepath.Join(root, t), sysfs); err != nil {
				return res, err
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	if strings.Contains(phases, "overhead") {
		if ne, err := benchNodeExporter(nodeExp, sysfs, n); err != nil {
			res.Failures = append(res.Failures, "node_exporter: "+err.Error())
		} else {
			res.NodeExporter = ne
		}
		var gl Overhead
		if err := runSelf(self, &gl, "-driver", "collect", "-sysfs", sysfs, "-n", strconv.Itoa(n)); err != nil {
			res.Failures = append(res.Failures, "greenloop driver: "+err.Error())
		} else {
			res.Greenloop = &gl
		}
		if ne, gl := res.NodeExporter, res.Greenloop; ne != nil && gl != nil {
			res.CPURatio = gl.CPUMicrosPer / ne.CPUMicrosPer
			res.RSSRatio = float64(gl.Mem.HWM) / float64(ne.Mem.HWM)
			if gl.RAPLZones == 0 || gl.HwmonSensors == 0 || ne.RAPLZones == 0 || ne.HwmonSensors == 0 {
				res.Failures = append(res.Failures, fmt.Sprintf("nothing read: greenloop %d RAPL zones / %d hwmon sensors, node_exporter %d / %d",
					gl.RAPLZones, gl.HwmonSensors, ne.RAPLZones, ne.HwmonSensors))
			}
		}
	}
	if strings.Contains(phases, "pull") {
		if ag, err := benchAgentPull(context.Background(), root, sysfs, n); err != nil {
			res.Failures = append(res.Failures, "greenloop agent: "+err.Error())
		} else {
			res.Agent = ag
		}
	}
	if strings.Contains(phases, "footprint") {
		var fp Footprint
		if err := runSelf(self, &fp, "-driver", "footprint", "-sysfs", sysfs,
			"-duration", duration.String(), "-interval", interval.String()); err != nil {
			res.Failures = append(res.Failures, "footprint driver: "+err.Error())
		} else {
			res.Footprint = &fp
			if fp.CorePercent >= fp.TargetCPU || float64(fp.Mem.HWM) >= fp.TargetRSSMB*1e6 {
				res.Failures = append(res.Failures, "footprint over target")
			}
		}
	}
	return res, nil
}

// runSelf re-executes agentbench in driver mode and decodes its JSON output into v.
func runSelf(self string, v any, args ...string) error {
	cmd := exec.Command(self, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return json.Unmarshal(stdout.Bytes(), v)
}

// benchNodeExporter starts node_exporter with only its rapl and hwmon
// collectors on sysfs, scrapes it n times and measures its CPU time and memory.
func benchNodeExporter(bin, sysfs string, n int) (*Overhead, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%v (install the Debian package prometheus-node-exporter)", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(path, "--web.listen-address="+addr, "--path.sysfs="+sysfs,
		"--collector.disable-defaults", "--collector.rapl", "--collector.hwmon")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	url := "http://" + addr + "/metrics"
	client := &http.Client{Timeout: 10 * time.Second}
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err = scrape(client, url)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node_exporter did not answer: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ov := &Overhead{Name: "node_exporter", Collections: n}
	ov.NodeExporterV = firstLine(exec.Command(path, "--version"))
	ov.countSeries(string(body))
	cpu0, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := scrape(client, url); err != nil {
			return nil, fmt.Errorf("scrape %d: %v", i, err)
		}
	}
	ov.WallSeconds = time.Since(start).Seconds()
	cpu1, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	ov.CPUSeconds = cpu1 - cpu0
	ov.CPUMicrosPer = ov.CPUSeconds / float64(n) * 1e6
	if ov.Mem, err = procMem(pid); err != nil {
		return nil, err
	}
	ov.Note = "HTTP scrape: collection plus text exposition"
	return ov, nil
}

// hwmonValue matches node_exporter's hwmon series that carry a sensor's
// reading (its *_input file), as opposed to limits, alarms, labels and fan control.
var hwmonValue = regexp.MustCompile(`^node_hwmon_(temp_celsius|in_volts|curr_amps|power_watts|power_average_watts|energy_joules_total|fan_rpm)\{`)

// countSeries counts node_exporter's rapl and hwmon series in a scrape.
func (ov *Overhead) countSeries(body string) {
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "node_rapl_"):
			ov.RAPLReadings++
			if strings.Contains(line, "_joules_total{") {
				ov.RAPLZones++
			}
		case strings.HasPrefix(line, "node_hwmon_"):
			ov.HwmonReadings++
			if hwmonValue.MatchString(line) {
				ov.HwmonSensors++
			}
		}
	}
}

func scrape(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %s", resp.Status)
	}
	return b, err
}

func firstLine(cmd *exec.Cmd) string {
	b, _ := cmd.CombinedOutput()
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns utime+stime of process pid, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU returns utime+stime, in seconds, from the text of /proc/PID/stat.
func parseStatCPU(stat string) (float64, error) {
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted from the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// procMem returns VmRSS and VmHWM of process pid.
func procMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	return parseStatusMem(f)
}

// parseStatusMem reads VmRSS and VmHWM from the text of /proc/PID/status.
func parseStatusMem(r io.Reader) (Mem, error) {
	var m Mem
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("bad %s line %q", key, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, err
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		seen++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if seen != 2 {
		return m, errors.New("no VmRSS/VmHWM in /proc status")
	}
	return m, nil
}

// selfCPU returns the CPU time (user+system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// copyTree copies the tree at src into dst (merging with what dst holds),
// keeping symbolic links as links.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
}

// findModuleRoot walks up from the working directory to the directory holding go.mod.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run agentbench from the greenloop module, or pass -sysfs")
		}
		dir = parent
	}
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

func printTable(w io.Writer, r *Results) {
	fmt.Fprintf(w, "agentbench %s on %s (%d CPUs, loadavg %s)\n\n", r.Date, r.Host, r.CPUs, r.Load)
	if r.NodeExporter != nil || r.Greenloop != nil || r.Agent != nil {
		fmt.Fprintf(w, "%-14s %6s %12s %8s %8s %9s %11s %12s\n", "overhead", "n", "cpu µs/coll", "cpu s", "RSS MiB", "peak MiB", "rapl zones", "hwmon sens.")
		for _, o := range []*Overhead{r.NodeExporter, r.Greenloop, r.Agent} {
			if o == nil {
				continue
			}
			fmt.Fprintf(w, "%-14s %6d %12.1f %8.3f %8.1f %9.1f %11d %12d   (%d rapl + %d hwmon series/readings)\n", o.Name, o.Collections, o.CPUMicrosPer, o.CPUSeconds,
				mib(o.Mem.RSS), mib(o.Mem.HWM), o.RAPLZones, o.HwmonSensors, o.RAPLReadings, o.HwmonReadings)
		}
		if r.CPURatio > 0 {
			fmt.Fprintf(w, "greenloop / node_exporter: CPU %.3f×, peak RSS %.3f×\n", r.CPURatio, r.RSSRatio)
		}
		if ne, gl, ag := r.NodeExporter, r.Greenloop, r.Agent; ne != nil && gl != nil && ag != nil {
			fmt.Fprintf(w, "greenloop collection + agent scrape / node_exporter scrape: CPU %.3f×\n",
				(gl.CPUMicrosPer+ag.CPUMicrosPer)/ne.CPUMicrosPer)
		}
		fmt.Fprintln(w)
	}
	if f := r.Footprint; f != nil {
		fmt.Fprintf(w, "footprint: rapl + hwmon + %d GPUs (mock), %d polls, %d readings in %.0f s: %.3f %% of one core (target < %.0f %%), peak RSS %.1f MB (target < %.0f MB)\n",
			f.GPUs, f.Polls, f.Readings, f.WallSeconds, f.CorePercent, f.TargetCPU, float64(f.Mem.HWM)/1e6, f.TargetRSSMB)
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
