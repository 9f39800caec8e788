package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/greenloop/greenloop/test/bench/internal/procstat"
	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// buildGreenloop builds ./cmd/greenloop of the module this command belongs to into dir.
func buildGreenloop(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the greenloop module: run from the repository, or pass -greenloop")
	}
	bin := filepath.Join(dir, "greenloop")
	logf("building greenloop (go build ./cmd/greenloop)")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/greenloop")
	cmd.Dir = filepath.Dir(gomod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/greenloop: %w\n%s", err, msg)
	}
	return bin, nil
}

// greenloopServer is a running `greenloop serve` writing to ClickHouse.
type greenloopServer struct {
	url     string
	logPath string
	cmd     *exec.Cmd
	done    chan error
	logFile *os.File
}

// greenloopConfig is the configuration file of a server on listen that
// stores into database db of the ClickHouse server at chAddr.
func greenloopConfig(listen, chAddr, db string, s settings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nlog: {level: warn}\nstorage:\n  backend: clickhouse\n  clickhouse:\n    addrs: [%q]\n    database: %s\n", listen, chAddr, db)
	if s.BatchSize > 0 {
		fmt.Fprintf(&b, "    batch_size: %d\n", s.BatchSize)
	}
	if s.FlushInterval != 0 {
		fmt.Fprintf(&b, "    flush_interval: %s\n", s.FlushInterval)
	}
	if s.AsyncInsert != "" {
		fmt.Fprintf(&b, "    async_insert: %q\n", s.AsyncInsert)
	}
	if bf := s.Buffer; bf.Enabled {
		fmt.Fprintf(&b, "    buffer:\n      enabled: true\n")
		for _, kv := range []struct {
			key string
			v   int64
		}{{"layers", int64(bf.Layers)}, {"min_rows", bf.MinRows}, {"max_rows", bf.MaxRows}} {
			if kv.v > 0 {
				fmt.Fprintf(&b, "      %s: %d\n", kv.key, kv.v)
			}
		}
		for _, kv := range []struct {
			key string
			v   time.Duration
		}{{"min_time", bf.MinTime}, {"max_time", bf.MaxTime}} {
			if kv.v > 0 {
				fmt.Fprintf(&b, "      %s: %s\n", kv.key, kv.v)
			}
		}
	}
	return b.String()
}

// startGreenloop starts `greenloop serve` in a new directory under work and waits until it is ready.
func startGreenloop(bin, work, chAddr, db string, s settings) (*greenloopServer, error) {
	dir, err := os.MkdirTemp(work, "greenloop-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "greenloop.yaml")
	if err := os.WriteFile(cfg, []byte(greenloopConfig(addr, chAddr, db, s)), 0o644); err != nil {
		return nil, err
	}
	g := &greenloopServer{url: "http://" + addr, logPath: filepath.Join(dir, "server.log")}
	if g.logFile, err = os.Create(g.logPath); err != nil {
		return nil, err
	}
	g.cmd = exec.Command(bin, "serve", "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	g.cmd.Dir = dir
	g.cmd.Stdout, g.cmd.Stderr = g.logFile, g.logFile
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := g.cmd.Start(); err != nil {
		g.logFile.Close()
		return nil, fmt.Errorf("start greenloop: %w", err)
	}
	g.done = make(chan error, 1)
	go func() { g.done <- g.cmd.Wait() }()
	if err := g.waitReady(60 * time.Second); err != nil {
		_ = g.stop()
		return nil, err
	}
	return g, nil
}

func (g *greenloopServer) pid() int { return g.cmd.Process.Pid }

func (g *greenloopServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-g.done:
			g.done <- err
			return fmt.Errorf("greenloop exited before it was ready (%v):\n%s", err, g.logTail(20))
		default:
		}
		resp, err := c.Get(g.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("greenloop not ready after %s:\n%s", timeout, g.logTail(20))
}

// stop ends the server (SIGTERM, then SIGKILL after 60 s).
func (g *greenloopServer) stop() error {
	defer g.logFile.Close()
	select {
	case err := <-g.done:
		return fmt.Errorf("greenloop had already exited (%v):\n%s", err, g.logTail(20))
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		return err
	case <-time.After(60 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
		return errors.New("greenloop did not stop within 60s of SIGTERM; killed")
	}
}

func (g *greenloopServer) logTail(n int) string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// newHTTPClient keeps one connection per sender alive.
func newHTTPClient(senders int) *http.Client {
	tr := &http.Transport{MaxIdleConns: senders * 2, MaxIdleConnsPerHost: senders * 2,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

// postWrite sends one remote_write 1.0 request.
func postWrite(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "greenloop-chbench")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("remote_write answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// sendResult counts what a load's senders got acknowledged.
type sendResult struct {
	Requests, Samples int64
	Elapsed           time.Duration
}

// sendEncoded sends pre-encoded requests, one goroutine per sender (reqs[s]
// in order), and times it until the last acknowledgement. The first failure
// stops every sender and is returned.
func sendEncoded(ctx context.Context, c *http.Client, url string, reqs [][]loadgen.Request) (sendResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var nreq, nsamp atomic.Int64
	start := time.Now()
	for _, rs := range reqs {
		wg.Go(func() {
			for _, r := range rs {
				if ctx.Err() != nil {
					return
				}
				if err := postWrite(ctx, c, url, r.Body); err != nil {
					cancel(err)
					return
				}
				nreq.Add(1)
				nsamp.Add(int64(r.Samples))
			}
		})
	}
	wg.Wait()
	return sendResult{Requests: nreq.Load(), Samples: nsamp.Load(), Elapsed: time.Since(start)}, context.Cause(ctx)
}

// cpuSeconds returns the CPU time (user + system) a process has used.
func cpuSeconds(pid int) (float64, error) {
	d, err := procstat.Process(pid)
	return d.Seconds(), err
}

// selfCPUSeconds is the CPU time this process has used.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// machineBusySeconds is the CPU time all CPUs have spent not idle since boot.
func machineBusySeconds() (float64, error) {
	d, err := procstat.MachineBusy()
	return d.Seconds(), err
}

// waitQuiet waits until the process has used under 3 % of a core over 3
// consecutive half-second intervals (ClickHouse's background merges are done),
// or until max has passed; it reports whether it went quiet.
func waitQuiet(ctx context.Context, pid int, max time.Duration) (bool, error) {
	start := time.Now()
	const interval = 500 * time.Millisecond
	prev, err := cpuSeconds(pid)
	if err != nil {
		return false, err
	}
	calm := 0
	for time.Since(start) < max {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(interval):
		}
		cur, err := cpuSeconds(pid)
		if err != nil {
			return false, err
		}
		if cur-prev <= 0.03*interval.Seconds() {
			if calm++; calm >= 3 {
				return true, nil
			}
		} else {
			calm = 0
		}
		prev = cur
	}
	return false, nil
}
