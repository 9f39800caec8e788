//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// agentPollInterval is the agent's poll interval during the pull benchmark:
// its /metrics serves the latest readings, so scrapes measure the exposition
// path, with a background poll every agentPollInterval.
const agentPollInterval = 5 * time.Second

// benchAgentPull builds `greenloop agent` (pull-only: no server.url) with rapl
// and hwmon targets on sysfs, scrapes its /metrics n times and measures the
// agent's CPU time and memory.
func benchAgentPull(ctx context.Context, root, sysfs string, n int) (*Overhead, error) {
	dir, err := os.MkdirTemp("", "agentbench-agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "greenloop")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/greenloop")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/greenloop: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf("site: bench\ninterval: %s\nlisten: %q\ntargets:\n"+
		"  - {name: rapl, type: rapl, sysfs: %q}\n  - {name: hwmon, type: hwmon, sysfs: %q}\n",
		agentPollInterval, addr, sysfs, sysfs)
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "agent", "--config", cfgPath, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	url := "http://" + addr + "/metrics"
	client := &http.Client{Timeout: 10 * time.Second}
	// Wait until both targets have been polled twice (RAPL power needs two).
	deadline := time.Now().Add(4*agentPollInterval + 10*time.Second)
	var body []byte
	for {
		body, err = scrape(client, url)
		if err == nil && strings.Contains(string(body), `greenloop_power_watts{`) &&
			strings.Contains(string(body), `greenloop_temperature_celsius{`) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("agent has no readings on /metrics: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ov := &Overhead{Name: "greenloop agent", Collections: n,
		Note: fmt.Sprintf("HTTP scrape of the agent's /metrics (latest readings; poller every %s in the background)", agentPollInterval)}
	ov.countAgentSeries(string(body))
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
	ov.Mem, err = procMem(pid)
	return ov, err
}

// countAgentSeries counts the agent's rapl and hwmon readings on /metrics
// (label source) and their distinct sensors.
func (ov *Overhead) countAgentSeries(body string) {
	zones, sensors := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "greenloop_") {
			continue
		}
		_, sensor, _ := strings.Cut(line, `sensor="`)
		sensor, _, _ = strings.Cut(sensor, `"`)
		switch {
		case strings.Contains(line, `source="rapl"`):
			ov.RAPLReadings++
			zones[sensor] = true
		case strings.Contains(line, `source="hwmon"`):
			ov.HwmonReadings++
			sensors[sensor] = true
		}
	}
	ov.RAPLZones, ov.HwmonSensors = len(zones), len(sensors)
}
