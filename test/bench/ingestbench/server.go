package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/greenloop/greenloop/test/bench/internal/procstat"
)

// Server names, as they appear in the report.
const (
	nameGreenloop  = "greenloop"
	namePrometheus = "prometheus"
)

// server is one server process under test, with its own data directory.
type server struct {
	name    string
	url     string // http://127.0.0.1:PORT
	dataDir string
	logPath string
	cmd     *exec.Cmd
	done    chan error // receives the process' exit
	logFile *os.File
}

// serverSpec says how to start one kind of server.
type serverSpec struct {
	name string
	bin  string
	// promOOOWindow, for Prometheus, is the out_of_order_time_window of its config file ("" for none).
	promOOOWindow string
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start launches a fresh server in a new directory under work and waits until it is ready.
func (sp serverSpec) start(work string) (*server, error) {
	dir, err := os.MkdirTemp(work, sp.name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &server{name: sp.name, url: "http://" + addr, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "server.log")}
	if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
		return nil, err
	}
	var args []string
	readyPath := "/readyz"
	switch sp.name {
	case nameGreenloop:
		args = []string{"serve", "--listen", addr, "--data-dir", s.dataDir}
	case namePrometheus:
		cfg := filepath.Join(dir, "prometheus.yml")
		// No scrape jobs: the server stores only what the benchmark writes.
		text := "global: {}\nscrape_configs: []\n"
		if sp.promOOOWindow != "" {
			text += "storage:\n  tsdb:\n    out_of_order_time_window: " + sp.promOOOWindow + "\n"
		}
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, err
		}
		args = []string{"--config.file=" + cfg, "--storage.tsdb.path=" + s.dataDir,
			"--web.listen-address=" + addr, "--web.enable-remote-write-receiver"}
		readyPath = "/-/ready"
	default:
		return nil, fmt.Errorf("unknown server %q", sp.name)
	}
	if s.logFile, err = os.Create(s.logPath); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(sp.bin, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := s.cmd.Start(); err != nil {
		s.logFile.Close()
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitReady(readyPath, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) waitReady(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", s.name, err, s.logTail(20))
		default:
		}
		resp, err := c.Get(s.url + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s:\n%s", s.name, timeout, s.logTail(20))
}

// stop ends the server (SIGTERM, then SIGKILL after 60 s) and returns how the process ended.
func (s *server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	defer s.logFile.Close()
	select {
	case err := <-s.done:
		return fmt.Errorf("%s had already exited: %v", s.name, err)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 60s of SIGTERM; killed", s.name)
	}
}

// alive reports an error when the process has exited.
func (s *server) alive() error {
	select {
	case err := <-s.done:
		s.done <- err
		return fmt.Errorf("%s exited (%v):\n%s", s.name, err, s.logTail(20))
	default:
		return nil
	}
}

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// memStatus is what /proc/PID/status says about a process' memory, in bytes.
type memStatus struct {
	HWM int64 // peak resident set (VmHWM)
	RSS int64 // resident set now (VmRSS)
}

func readMemStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseMemStatus(b)
}

func parseMemStatus(b []byte) (memStatus, error) {
	var m memStatus
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmHWM":
			dst = &m.HWM
		case "VmRSS":
			dst = &m.RSS
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, err
		}
		*dst = n << 10
	}
	if m.HWM == 0 || m.RSS == 0 {
		return m, errors.New("no VmHWM/VmRSS in /proc status")
	}
	return m, nil
}

// cpuSeconds returns the CPU time (user + system) a process has used.
func cpuSeconds(pid int) (float64, error) {
	d, err := procstat.Process(pid)
	return d.Seconds(), err
}

// selfCPUSeconds is the CPU time this process (the load generator) has used.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// waitQuiet waits until the process has used under 3% of a core over each of
// 3 consecutive half-second intervals (background work such as compaction
// and garbage collection has finished), or until max has passed. It returns
// how long it waited and whether the process went quiet.
func waitQuiet(ctx context.Context, pid int, max time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	const interval = 500 * time.Millisecond
	prev, err := cpuSeconds(pid)
	if err != nil {
		return 0, false, err
	}
	calm := 0
	for time.Since(start) < max {
		select {
		case <-ctx.Done():
			return time.Since(start), false, ctx.Err()
		case <-time.After(interval):
		}
		cur, err := cpuSeconds(pid)
		if err != nil {
			return time.Since(start), false, err
		}
		if cur-prev <= 0.03*interval.Seconds() {
			calm++
			if calm >= 3 {
				return time.Since(start), true, nil
			}
		} else {
			calm = 0
		}
		prev = cur
	}
	return time.Since(start), false, nil
}

// machineBusySeconds is the CPU time all CPUs have spent not idle since boot.
func machineBusySeconds() (float64, error) {
	d, err := procstat.MachineBusy()
	return d.Seconds(), err
}

// otherLoad measures the CPU time used on the machine by everything but the
// server under test and this process, to flag timings disturbed by other work.
type otherLoad struct {
	pid                int
	t0                 time.Time
	busy0, srv0, self0 float64
}

func startOtherLoad(pid int) *otherLoad {
	o := &otherLoad{pid: pid, t0: time.Now(), self0: selfCPUSeconds()}
	o.busy0, _ = machineBusySeconds()
	o.srv0, _ = cpuSeconds(pid)
	return o
}

// cores returns the average number of cores other processes kept busy since start.
func (o *otherLoad) cores() float64 {
	busy, err1 := machineBusySeconds()
	srv, err2 := cpuSeconds(o.pid)
	if err1 != nil || err2 != nil {
		return 0
	}
	other := (busy - o.busy0) - (srv - o.srv0) - (selfCPUSeconds() - o.self0)
	return max(other, 0) / time.Since(o.t0).Seconds()
}
