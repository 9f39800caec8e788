//go:build linux

// Command bmcbench measures one full refresh of many Redfish BMCs through the
// real redfish collector: a child process simulates the BMCs (one HTTPS
// listener each on 127.0.0.1, serving the DMTF rackmount1 mockup with a
// random 200 ms–2 s latency per request, session login, $expand, and a
// share of BMCs that accept connections but never answer), and this process
// refreshes them all with a bounded number of BMCs in flight, then prints the
// total time, per-BMC latency percentiles, timeouts, CPU time and peak RSS
// of the collecting side and of the simulator.
//
//	go run ./test/bench/bmcbench -n 1000
package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/redfish"
)

const (
	benchUser = "monitor"
	benchPass = "bench-Pa55"
)

func main() {
	var (
		n           = flag.Int("n", 1000, "simulated BMCs")
		concurrency = flag.Int("concurrency", 500, "BMCs refreshed at once (the global bound)")
		inFlight    = flag.Int("in-flight", redfish.DefaultMaxInFlight, "requests in flight per BMC")
		timeout     = flag.Duration("timeout", 15*time.Second, "per-BMC collection timeout")
		minLat      = flag.Duration("min-latency", 200*time.Millisecond, "shortest answer time of a request")
		maxLat      = flag.Duration("max-latency", 2*time.Second, "longest answer time of a request")
		hung        = flag.Float64("hung", 0.02, "share of BMCs that never answer")
		expand      = flag.Bool("expand", true, "simulated BMCs support $expand")
		refreshes   = flag.Int("refreshes", 2, "full refreshes (the first logs in, the next reuse the sessions)")
		tree        = flag.String("tree", "collectors/redfish/testdata/dmtf-public-rackmount1", "mockup tree served by every BMC")
		useTLS      = flag.Bool("tls", true, "serve HTTPS, as BMCs do (false: plain HTTP, to take TLS's CPU out of the figures)")
		serve       = flag.Bool("serve", false, "internal: run as the BMC simulator")
		seed        = flag.Uint64("seed", 1, "random seed of the simulator")
		cpuProfile  = flag.String("cpuprofile", "", "write the collecting side's CPU profile here")
	)
	flag.Parse()
	raiseNoFile()
	if *serve {
		if err := runSimulator(*n, *tree, *minLat, *maxLat, *hung, *expand, *useTLS, *seed); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(*n, *concurrency, *inFlight, *timeout, *refreshes, os.Args[1:]); err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

// raiseNoFile lifts the soft limit on open files to the hard one: every BMC
// holds up to in-flight connections, each a descriptor on both sides.
func raiseNoFile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// bmc is one simulated service.
type bmc struct {
	hung   bool
	expand bool
	files  map[string][]byte // path without trailing slash → body
	minLat time.Duration
	spread time.Duration

	mu       sync.Mutex
	rnd      *rand.Rand
	sessions map[string]string // token → session path
	nextID   int
}

func (b *bmc) latency() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.minLat + time.Duration(b.rnd.Int64N(int64(b.spread)+1))
}

func (b *bmc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.hung {
		<-r.Context().Done() // accepts the connection, never answers
		return
	}
	t := time.NewTimer(b.latency())
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	const sessions = "/redfish/v1/SessionService/Sessions"
	if p == sessions && r.Method == http.MethodPost {
		var creds struct{ UserName, Password string }
		if json.NewDecoder(r.Body).Decode(&creds) != nil || creds.UserName != benchUser || creds.Password != benchPass {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var raw [16]byte
		crand.Read(raw[:])
		tok := hex.EncodeToString(raw[:])
		b.mu.Lock()
		b.nextID++
		loc := fmt.Sprintf("%s/%d", sessions, b.nextID)
		b.sessions[tok] = loc
		b.mu.Unlock()
		w.Header().Set("X-Auth-Token", tok)
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"@odata.id":%q}`, loc)
		return
	}
	if p != "/redfish/v1" {
		b.mu.Lock()
		_, ok := b.sessions[r.Header.Get("X-Auth-Token")]
		b.mu.Unlock()
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	if r.Method == http.MethodDelete {
		b.mu.Lock()
		delete(b.sessions, r.Header.Get("X-Auth-Token"))
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body, ok := b.files[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if b.expand && r.URL.Query().Get("$expand") != "" {
		if e, ok := b.files[p+"?$expand"]; ok {
			body = e
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// addExpanded stores, under "<path>?$expand", each collection with its
// members inline, as a service that supports $expand=.($levels=1) answers:
// computed once, so that the simulator spends its CPU on serving, not on
// JSON.
func addExpanded(files map[string][]byte) {
	add := map[string][]byte{}
	for p, body := range files {
		if e := expanded(files, body); e != nil {
			add[p+"?$expand"] = e
		}
	}
	maps.Copy(files, add)
}

func expanded(files map[string][]byte, body []byte) []byte {
	var coll map[string]any
	if json.Unmarshal(body, &coll) != nil {
		return nil
	}
	ms, ok := coll["Members"].([]any)
	if !ok {
		return nil
	}
	for i, m := range ms {
		l, _ := m.(map[string]any)
		id, _ := l["@odata.id"].(string)
		if mb, ok := files[strings.TrimSuffix(id, "/")]; ok {
			var v any
			if json.Unmarshal(mb, &v) == nil {
				ms[i] = v
			}
		}
	}
	out, _ := json.Marshal(coll)
	return out
}

// loadTree reads a mockup tree: <dir>/<p>/index.json is /redfish/v1/<p>.
func loadTree(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "index.json" {
			return err
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(p))
		key := "/redfish/v1"
		if rel != "." {
			key += "/" + filepath.ToSlash(rel)
		}
		body, err := os.ReadFile(p)
		files[key] = body
		return err
	})
	if len(files) == 0 && err == nil {
		err = fmt.Errorf("no index.json under %s", dir)
	}
	addExpanded(files)
	return files, err
}

// runSimulator starts n BMCs, prints "ports p1,p2,..." and the CA
// certificate's path, and serves until stdin closes or SIGTERM.
func runSimulator(n int, tree string, minLat, maxLat time.Duration, hungShare float64, expand, useTLS bool, seed uint64) error {
	files, err := loadTree(tree)
	if err != nil {
		return err
	}
	rnd := rand.New(rand.NewPCG(seed, 0))
	ports := make([]string, n)
	cert, pemCert, err := newCert()
	if err != nil {
		return err
	}
	certFile := filepath.Join(os.TempDir(), fmt.Sprintf("bmcbench-ca-%d.pem", os.Getpid()))
	if err := writeCert(certFile, pemCert); err != nil {
		return err
	}
	defer os.Remove(certFile)
	for i := range n {
		b := &bmc{
			hung: rnd.Float64() < hungShare, expand: expand, files: files,
			minLat: minLat, spread: maxLat - minLat,
			rnd: rand.New(rand.NewPCG(seed, uint64(i)+1)), sessions: map[string]string{},
		}
		srv := httptest.NewUnstartedServer(b)
		srv.Config.ErrorLog = log.New(discard{}, "", 0)
		// BMC firmware TLS stacks offer X25519 and P-256, not the hybrid
		// post-quantum group Go prefers: negotiate what a BMC would.
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
		if useTLS {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		ports[i] = srv.URL
		if b.hung {
			ports[i] += "h"
		}
	}
	fmt.Printf("urls %s\nca %s\n", strings.Join(ports, ","), certFile)
	os.Stdout.Sync()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	done := make(chan struct{})
	go func() { bufio.NewReader(os.Stdin).ReadString('\n'); close(done) }()
	select {
	case <-sig:
	case <-done:
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// result is one BMC's collection.
type result struct {
	took     time.Duration
	readings int
	err      error
	hung     bool
}

func run(n, concurrency, inFlight int, timeout time.Duration, refreshes int, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sim := exec.Command(self, append([]string{"-serve"}, args...)...)
	sim.Stderr = os.Stderr
	stdin, err := sim.StdinPipe()
	if err != nil {
		return err
	}
	out, err := sim.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := sim.Start(); err != nil {
		return err
	}
	defer func() {
		if sim.ProcessState == nil {
			sim.Process.Kill()
			sim.Wait()
		}
	}()
	rd := bufio.NewReader(out)
	var ports []string
	var caFile string
	for ports == nil || caFile == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "urls "); ok {
			ports = strings.Split(v, ",")
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ca "); ok {
			caFile = v
		}
	}
	fmt.Printf("simulator: %d BMCs up in %v\n", len(ports), time.Since(start).Round(time.Millisecond))
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	fmt.Printf("RLIMIT_NOFILE %d, GOMAXPROCS-visible CPUs %d\n", lim.Cur, numCPU())

	cs := make([]*redfish.Collector, len(ports))
	hung := make([]bool, len(ports))
	for i, p := range ports {
		p, hung[i] = strings.CutSuffix(p, "h")
		c, err := redfish.New(redfish.Config{
			Endpoint: p, Username: benchUser, Password: benchPass,
			CAFile: caFile, Timeout: timeout, MinInterval: -1, MaxInFlight: inFlight,
		}, collectors.Deps{})
		if err != nil {
			return err
		}
		cs[i] = c
	}
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for k := range refreshes {
		label := "warm (sessions reused)"
		if k == 0 {
			label = "cold (logs in)"
		}
		var r0, r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		rs, total := refresh(cs, hung, concurrency)
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		report(fmt.Sprintf("refresh %d, %s", k+1, label), rs, total, cpu(r1)-cpu(r0))
	}
	closeStart := time.Now()
	var closeErrs atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for i, c := range cs {
		if hung[i] {
			continue // its session was never created
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if c.Close() != nil {
				closeErrs.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("logout of %d sessions: %v, %d errors\n", len(cs)-count(hung), time.Since(closeStart).Round(time.Millisecond), closeErrs.Load())
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("collector process: CPU %.2f s (user %.2f, sys %.2f) over all refreshes, peak RSS %d MiB\n",
		cpu(ru)-cpu(ru0), tv(ru.Utime)-tv(ru0.Utime), tv(ru.Stime)-tv(ru0.Stime), ru.Maxrss/1024)
	stdin.Close()
	sim.Process.Signal(syscall.SIGTERM)
	if err := sim.Wait(); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	if su, ok := sim.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Printf("simulator process: CPU %.2f s, peak RSS %d MiB\n", cpu(*su), su.Maxrss/1024)
	}
	return nil
}

func refresh(cs []*redfish.Collector, hung []bool, concurrency int) ([]result, time.Duration) {
	rs := make([]result, len(cs))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range cs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t := time.Now()
			var n int
			err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ }))
			rs[i] = result{took: time.Since(t), readings: n, err: err, hung: hung[i]}
		})
	}
	wg.Wait()
	return rs, time.Since(start)
}

func report(label string, rs []result, total time.Duration, cpuS float64) {
	var all, answered []time.Duration
	var timeouts, otherErrs, readings, hungTimeouts int
	var firstErr error
	for _, r := range rs {
		all = append(all, r.took)
		readings += r.readings
		switch {
		case errors.Is(r.err, context.DeadlineExceeded):
			timeouts++
			if r.hung {
				hungTimeouts++
			}
		case r.err != nil:
			otherErrs++
			if firstErr == nil {
				firstErr = r.err
			}
		}
		if !r.hung {
			answered = append(answered, r.took)
		}
	}
	fmt.Printf("%s: %d BMCs in %v; CPU %.2f s\n", label, len(rs), total.Round(time.Millisecond), cpuS)
	fmt.Printf("  per BMC, all:      p50 %v  p99 %v  max %v\n", pct(all, 50), pct(all, 99), pct(all, 100))
	fmt.Printf("  per BMC, answering: p50 %v  p99 %v  max %v\n", pct(answered, 50), pct(answered, 99), pct(answered, 100))
	fmt.Printf("  timeouts %d (%d of them hung BMCs), other errors %d, readings %d\n", timeouts, hungTimeouts, otherErrs, readings)
	if firstErr != nil {
		fmt.Printf("  first other error: %v\n", firstErr)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(time.Millisecond)
}

func cpu(r syscall.Rusage) float64 { return tv(r.Utime) + tv(r.Stime) }

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func numCPU() int {
	b, err := os.ReadFile("/sys/fs/cgroup/cpu.max")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 && f[0] != "max" {
			q, _ := strconv.Atoi(f[0])
			p, _ := strconv.Atoi(f[1])
			if p > 0 {
				return max(1, q/p)
			}
		}
	}
	return len(cpus())
}

func cpus() []int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	var out []int
	for l := range strings.Lines(string(b)) {
		if strings.HasPrefix(l, "processor") {
			out = append(out, len(out))
		}
	}
	return out
}
