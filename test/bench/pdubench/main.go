// Command pdubench measures a full refresh of many SNMP PDUs by the pdu
// collector: it writes N recordings of a 24-outlet APC AP8641 (derived from
// the real recording in collectors/pdu/testdata, each device with its own
// outlet names and values), serves them with one or more snmpsimd processes
// on 127.0.0.1, and collects every device with bounded concurrency, several
// rounds. It prints the wall time of each round, p50/p99 per device, and the
// CPU time used by the collector and by snmpsimd.
//
//	go run ./test/bench/pdubench -devices 500 -concurrency 64 -simulators 1
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/pdu"
	"github.com/greenloop/greenloop/test/bench/internal/procstat"
)

func main() {
	var (
		devices     = flag.Int("devices", 500, "number of simulated PDUs")
		concurrency = flag.Int("concurrency", 64, "devices collected at once")
		simulators  = flag.Int("simulators", 1, "snmpsimd processes to spread the devices over")
		rounds      = flag.Int("rounds", 3, "full refreshes to time (the first also detects profiles)")
		version     = flag.String("version", "2c", "SNMP version: 2c or 3 (authPriv SHA/AES)")
		recording   = flag.String("recording", "collectors/pdu/testdata/snmprec/apc-8641.snmprec", "the 24-outlet recording to derive devices from")
		timeout     = flag.Duration("timeout", 10*time.Second, "per-device collection timeout")
		maxRep      = flag.Int("max-repetitions", 0, "GetBulk max-repetitions (0 = the collector's default)")
		agent       = flag.String("agent", "snmpsim", "what serves the devices: snmpsim (snmpsimd processes) or go (a minimal in-memory SNMPv2c agent in a child process, to measure the collector alone)")
		serveDir    = flag.String("serve-go-agent", "", "internal: serve the recordings of this directory with the Go agent")
		serveAddr   = flag.String("serve-addr", "127.0.0.1:0", "internal: address for -serve-go-agent")
	)
	flag.Parse()
	if *serveDir != "" {
		if err := serveGoAgent(*serveDir, *serveAddr); err != nil {
			log.Fatal(err)
		}
		return
	}
	useGoAgent = *agent == "go"
	if useGoAgent && *version != "2c" {
		log.Fatal("the Go agent serves SNMPv2c only")
	}
	if err := run(*devices, *concurrency, *simulators, *rounds, *version, *recording, *timeout, *maxRep); err != nil {
		log.Fatal(err)
	}
}

func run(devices, concurrency, simulators, rounds int, version, recording string, timeout time.Duration, maxRep int) error {
	base, err := os.ReadFile(recording)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pdubench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Write the recordings, device i to simulator i % simulators.
	t := time.Now()
	dataDirs := make([]string, simulators)
	for s := range dataDirs {
		dataDirs[s] = filepath.Join(dir, fmt.Sprintf("sim%d", s), "data")
		if err := os.MkdirAll(dataDirs[s], 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < devices; i++ {
		rec := deviceRecording(base, i)
		if err := os.WriteFile(filepath.Join(dataDirs[i%simulators], community(i)+".snmprec"), rec, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d recordings (%d lines each) in %v\n", devices, bytes.Count(base, []byte("\n")), time.Since(t).Round(time.Millisecond))

	// Start the simulators.
	t = time.Now()
	sims := make([]*sim, simulators)
	for s := range sims {
		first := s // device s is the first one of simulator s
		last := first + ((devices-1-first)/simulators)*simulators
		start := startSim
		if useGoAgent {
			start = startGoAgent
		}
		sm, err := start(ctx, filepath.Dir(dataDirs[s]), community(last))
		if err != nil {
			for _, o := range sims[:s] {
				o.stop()
			}
			return fmt.Errorf("simulator %d: %w", s, err)
		}
		sims[s] = sm
		defer sm.stop()
	}
	fmt.Printf("%d agent process(es) (%s) loaded and answering in %v\n", simulators, map[bool]string{true: "go", false: "snmpsimd"}[useGoAgent], time.Since(t).Round(time.Millisecond))

	// One collector per device.
	cols := make([]*pdu.Collector, devices)
	for i := range cols {
		cfg := pdu.Config{Address: sims[i%simulators].addr, Community: community(i), Timeout: timeout, MaxRepetitions: maxRep}
		if version == "3" {
			cfg = pdu.Config{Address: sims[i%simulators].addr, Version: "3", Username: "tester",
				AuthProtocol: "SHA", AuthPassword: "authpass123", PrivProtocol: "AES", PrivPassword: "privpass123",
				Context: community(i), Timeout: timeout, MaxRepetitions: maxRep}
		}
		c, err := pdu.New(cfg, collectors.Deps{})
		if err != nil {
			return err
		}
		defer c.Close()
		cols[i] = c
	}

	fmt.Printf("devices=%d concurrency=%d simulators=%d version=%s cpus=%d\n", devices, concurrency, simulators, version, runtime.NumCPU())
	for r := 1; r <= rounds; r++ {
		simCPU0 := simsCPU(sims)
		selfCPU0 := selfCPU()
		start := time.Now()
		lat := make([]time.Duration, devices)
		var (
			mu       sync.Mutex
			readings int
			failures []string
		)
		sem := make(chan struct{}, concurrency)
		var wg sync.WaitGroup
		for i, c := range cols {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				n := 0
				t := time.Now()
				err := c.Collect(ctx, collectors.EmitterFunc(func(collectors.Reading) { n++ }))
				lat[i] = time.Since(t)
				mu.Lock()
				readings += n
				if err != nil {
					failures = append(failures, err.Error())
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		selfCPU1 := selfCPU()
		simCPU1 := simsCPU(sims)
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		fmt.Printf("round %d: wall %v, %d readings, %d failed; per device p50 %v p99 %v max %v; CPU collector %v, agents %v\n",
			r, wall.Round(time.Millisecond), readings, len(failures),
			pct(lat, 0.50).Round(time.Microsecond), pct(lat, 0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond),
			(selfCPU1 - selfCPU0).Round(time.Millisecond), (simCPU1 - simCPU0).Round(time.Millisecond))
		for i, f := range failures {
			if i == 3 {
				fmt.Printf("  ... %d more\n", len(failures)-3)
				break
			}
			fmt.Println("  failure:", f)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// useGoAgent replaces snmpsimd with the Go agent (one child process).
var useGoAgent bool

func community(i int) string { return fmt.Sprintf("pdu%04d", i) }

// deviceRecording derives device i from the base recording: outlet names
// get the device number, and the outlet power, current and energy and the
// device power and energy change with i, so no two devices are the same.
func deviceRecording(base []byte, i int) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(base))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		oid, rest, ok := strings.Cut(line, "|")
		if !ok {
			out.WriteString(line + "\n")
			continue
		}
		typ, val, _ := strings.Cut(rest, "|")
		switch {
		case strings.HasPrefix(oid, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.3."): // outlet name
			val = fmt.Sprintf("pdu%04d-outlet-%s", i, oid[strings.LastIndexByte(oid, '.')+1:])
			typ = "4"
		case strings.HasPrefix(oid, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6."), // outlet current
			strings.HasPrefix(oid, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7."),  // outlet power
			strings.HasPrefix(oid, "1.3.6.1.4.1.318.1.1.26.9.4.3.1.11."), // outlet energy
			oid == "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1",                    // device power
			oid == "1.3.6.1.4.1.318.1.1.26.4.3.1.9.1":                    // device energy
			if n, err := strconv.Atoi(val); err == nil {
				val = strconv.Itoa(n + i%17 + 1)
			}
		}
		fmt.Fprintf(&out, "%s|%s|%s\n", oid, typ, val)
	}
	return out.Bytes()
}

// startGoAgent runs this program again as a Go agent serving dir/data.
func startGoAgent(ctx context.Context, dir, probeCommunity string) (*sim, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	cmd := exec.Command(self, "-serve-go-agent", filepath.Join(dir, "data"), "-serve-addr", addr)
	return waitSim(ctx, cmd, addr, probeCommunity)
}

func serveGoAgent(dir, addr string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	recs := map[string][]byte{}
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".snmprec"); ok {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			recs[name] = b
		}
	}
	a, err := newGoAgent(recs)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := a.serve(ctx, addr, runtime.NumCPU()); err != nil {
		return err
	}
	a.wait()
	return nil
}

// sim is one snmpsimd (or Go agent) process.
type sim struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startSim(ctx context.Context, dir, probeCommunity string) (*sim, error) {
	bin, err := exec.LookPath("snmpsimd")
	if err != nil {
		return nil, fmt.Errorf("snmpsimd not found (Debian package snmpsim): %w", err)
	}
	cache := filepath.Join(dir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	args := []string{"--data-dir=" + filepath.Join(dir, "data"), "--cache-dir=" + cache,
		"--agent-udpv4-endpoint=" + addr, "--logging-method=null",
		"--v3-user=tester", "--v3-auth-key=authpass123", "--v3-auth-proto=SHA",
		"--v3-priv-key=privpass123", "--v3-priv-proto=AES"}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			return nil, err
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		if err := os.Chown(cache, uid, gid); err != nil {
			return nil, err
		}
		grp, err := user.LookupGroupId(nobody.Gid)
		if err != nil {
			return nil, err
		}
		args = append(args, "--process-user=nobody", "--process-group="+grp.Name)
	}
	return waitSim(ctx, exec.Command(bin, args...), addr, probeCommunity)
}

// waitSim starts cmd and waits until it answers for probeCommunity on addr.
func waitSim(ctx context.Context, cmd *exec.Cmd, addr, probeCommunity string) (*sim, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sim{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited: %s", cmd.Path, stderr.String())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		g := &gosnmp.GoSNMP{Target: host, Port: uint16(port), Community: probeCommunity, Version: gosnmp.Version2c,
			Timeout: 500 * time.Millisecond, Context: ctx}
		if g.Connect() == nil {
			pkt, err := g.Get([]string{"1.3.6.1.2.1.1.2.0"})
			g.Conn.Close()
			if err == nil && len(pkt.Variables) == 1 && pkt.Variables[0].Type == gosnmp.ObjectIdentifier {
				return s, nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("%s on %s did not answer within 10 minutes", cmd.Path, addr)
}

func (s *sim) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// procCPU returns the user+system CPU time of a process and its threads
// (0 when it cannot be read).
func procCPU(pid int) time.Duration {
	d, _ := procstat.Process(pid)
	return d
}

func simsCPU(sims []*sim) time.Duration {
	var d time.Duration
	for _, s := range sims {
		d += procCPU(s.cmd.Process.Pid)
	}
	return d
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
