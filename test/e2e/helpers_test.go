// Package e2e holds end-to-end tests that run the real greenloop binary and the
// real peers it talks to (Prometheus, promtool) as separate processes on free
// loopback ports, and check what a user would see through HTTP.
//
// The binary is built once per test run from the module root; set
// GREENLOOP_E2E_BIN to test a binary built elsewhere instead.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary built for this run; TestMain removes it.
var binDir string

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// greenloopBinary returns the path of the greenloop binary, building it on
// first use. The build is lazy (once, shared by all tests) so that listing
// tests, running benchmarks or fuzzing other packages costs no build.
func greenloopBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("GREENLOOP_E2E_BIN"); p != "" {
			buildPath, buildErr = filepath.Abs(p)
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "greenloop-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(binDir, "greenloop")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", out, "./cmd/greenloop")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/greenloop: %w\n%s", err, msg)
			return
		}
		buildPath = out
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", out, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("greenloop binary: %v", buildErr)
	}
	return buildPath
}

// moduleRoot is the folder of the go.mod of the module under test.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// inCI reports whether the tests run in CI, where every peer must be installed
// and a missing one is a failure rather than a skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// requireTool returns the path of a program the test needs, failing in CI (and
// skipping elsewhere) with the install command when it is missing.
func requireTool(t *testing.T, name, fallback, debPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	msg := fmt.Sprintf("%s not found; install it with: apt-get update && apt-get install -y --no-install-recommends %s (or run scripts/test-deps.sh as root)", name, debPackage)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a program started by a test, its output going to a log file that
// is printed when the test fails.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

// startProcess starts bin with args, logging to a file in a temporary folder;
// the process is stopped (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("%s: start %s %s: %v", name, bin, strings.Join(args, " "), err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Logf("%s: started pid %d: %s %s", name, cmd.Process.Pid, bin, strings.Join(args, " "))
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end with SIGTERM and kills it after 15 s.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s: did not stop within 15s of SIGTERM; killing it", p.name)
		p.kill(t)
	}
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would, and waits for it.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("%s: kill: %v", p.name, err)
	}
	<-p.done
}

// dumpLog prints the process's log into the test output.
func (p *process) dumpLog(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Logf("%s: log unreadable: %v", p.name, err)
		return
	}
	const max = 64 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	t.Logf("----- %s log (%s) -----\n%s\n----- end of %s log -----", p.name, p.logPath, b, p.name)
}

// waitHTTP polls url until it answers 200, failing the test after timeout or
// when the process ends first.
func waitHTTP(t *testing.T, p *process, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before %s answered: %v", p.name, url, p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s not ready after %s; last answer: %s", p.name, url, timeout, last)
}

// server is a running greenloop serve process.
type server struct {
	*process
	addr    string // host:port
	url     string // http://host:port
	dataDir string
}

// startServer runs `greenloop serve` on a free loopback port over dataDir, with
// any extra flags, and waits until /readyz answers 200.
func startServer(t *testing.T, name, dataDir string, extra ...string) *server {
	t.Helper()
	bin := greenloopBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"serve", "--listen", addr, "--data-dir", dataDir}, extra...)
	p := startProcess(t, name, bin, args...)
	s := &server{process: p, addr: addr, url: "http://" + addr, dataDir: dataDir}
	waitHTTP(t, p, s.url+"/readyz", 60*time.Second)
	return s
}

// httpClient is shared by the helpers; every request has a deadline.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// do sends one request and returns the status and body; token "" sends no Authorization header.
func do(t *testing.T, method, url, token, contentType string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// importText posts Prometheus text exposition to /api/v1/import/prometheus.
func (s *server) importText(t *testing.T, token, text string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodPost, s.url+"/api/v1/import/prometheus", token, "text/plain; version=0.0.4", []byte(text))
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// queryResult is the data of /api/v1/query and /api/v1/query_range.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// vectorSample is one element of an instant vector.
type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  samplePair        `json:"value"`
}

// samplePair is the API's [unix seconds, "value"].
type samplePair struct {
	T float64
	V float64
}

func (p *samplePair) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.T); err != nil {
		return fmt.Errorf("sample timestamp: %w", err)
	}
	var s string
	if err := json.Unmarshal(raw[1], &s); err != nil {
		return fmt.Errorf("sample value: %w", err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("sample value: %w", err)
	}
	p.V = v
	return nil
}

// api sends GET path?params to the Prometheus API and returns the HTTP status
// and the decoded envelope (zero when the body is not JSON).
func (s *server) api(t *testing.T, token, path string, params url.Values) (int, apiResponse, []byte) {
	t.Helper()
	u := s.url + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	code, body := do(t, http.MethodGet, u, token, "", nil)
	var r apiResponse
	_ = json.Unmarshal(body, &r)
	return code, r, body
}

// tryQuery evaluates an instant query at ts (zero: now) and returns the result,
// or an error for anything but a successful answer.
func (s *server) tryQuery(t *testing.T, token, q string, ts time.Time) (queryResult, error) {
	t.Helper()
	params := url.Values{"query": {q}}
	if !ts.IsZero() {
		params.Set("time", strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64))
	}
	code, r, body := s.api(t, token, "/api/v1/query", params)
	if code != http.StatusOK || r.Status != "success" {
		return queryResult{}, fmt.Errorf("query %q: HTTP %d: %s", q, code, body)
	}
	var qr queryResult
	if err := json.Unmarshal(r.Data, &qr); err != nil {
		return queryResult{}, fmt.Errorf("query %q: data: %w: %s", q, err, body)
	}
	return qr, nil
}

// tryQueryVectorAt evaluates an instant query at ts (zero: now) that must return a vector.
func (s *server) tryQueryVectorAt(t *testing.T, token, q string, ts time.Time) ([]vectorSample, error) {
	t.Helper()
	qr, err := s.tryQuery(t, token, q, ts)
	if err != nil {
		return nil, err
	}
	if qr.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", q, qr.ResultType)
	}
	var v []vectorSample
	if err := json.Unmarshal(qr.Result, &v); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	return v, nil
}

// tryQueryVector evaluates an instant query now.
func (s *server) tryQueryVector(t *testing.T, token, q string) ([]vectorSample, error) {
	t.Helper()
	return s.tryQueryVectorAt(t, token, q, time.Time{})
}

// queryVectorAt is tryQueryVectorAt failing the test on error.
func (s *server) queryVectorAt(t *testing.T, token, q string, ts time.Time) []vectorSample {
	t.Helper()
	v, err := s.tryQueryVectorAt(t, token, q, ts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// queryVector is queryVectorAt now.
func (s *server) queryVector(t *testing.T, token, q string) []vectorSample {
	t.Helper()
	return s.queryVectorAt(t, token, q, time.Time{})
}

// series returns the label sets /api/v1/series finds for one matcher.
func (s *server) series(t *testing.T, token, match string) []map[string]string {
	t.Helper()
	code, r, body := s.api(t, token, "/api/v1/series", url.Values{"match[]": {match}})
	if code != http.StatusOK || r.Status != "success" {
		t.Fatalf("series %q: HTTP %d: %s", match, code, body)
	}
	var out []map[string]string
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("series %q: %v: %s", match, err, body)
	}
	return out
}

// eventually retries check every interval until it returns true or timeout passes.
func eventually(timeout, interval time.Duration, check func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if check() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
