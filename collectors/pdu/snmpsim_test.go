package pdu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// SNMPv3 user snmpsimd is started with (RECIPES.md, section 2).
const (
	v3User     = "tester"
	v3AuthPass = "authpass123"
	v3PrivPass = "privpass123"
)

// snmpsim is a running snmpsimd serving one data directory on 127.0.0.1.
type snmpsim struct {
	addr string
	log  string
}

// needSnmpsimd returns snmpsimd's path, or skips (fails when CI=true).
func needSnmpsimd(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("snmpsimd")
	if err != nil {
		msg := "snmpsimd not found: install the Debian package snmpsim"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return bin
}

// startSnmpsim starts snmpsimd serving files (community or v3 context name →
// snmprec content) and stops it when the test ends.
func startSnmpsim(tb testing.TB, files map[string][]byte, extraArgs ...string) *snmpsim {
	tb.Helper()
	bin := needSnmpsimd(tb)
	// snmpsimd drops privileges to nobody when run as root, so its
	// directories must be reachable by nobody: not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "pdu-snmpsim-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	data, cache := filepath.Join(dir, "data"), filepath.Join(dir, "cache")
	for _, d := range []string{data, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(data, name+".snmprec"), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	args := []string{"--data-dir=" + data, "--cache-dir=" + cache}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			tb.Fatalf("snmpsimd as root needs user nobody: %v", err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		for _, d := range []string{dir, cache} {
			if err := os.Chown(d, uid, gid); err != nil {
				tb.Fatal(err)
			}
		}
		grp, err := user.LookupGroupId(nobody.Gid)
		if err != nil {
			tb.Fatal(err)
		}
		args = append(args, "--process-user=nobody", "--process-group="+grp.Name)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	port := freeUDPPort(tb)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logFile := filepath.Join(dir, "snmpsimd.log")
	args = append(args, "--agent-udpv4-endpoint="+addr,
		"--v3-user="+v3User, "--v3-auth-key="+v3AuthPass, "--v3-auth-proto=SHA",
		"--v3-priv-key="+v3PrivPass, "--v3-priv-proto=AES",
		"--logging-method=file:"+logFile)
	args = append(args, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start snmpsimd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var first string
	for name := range files {
		first = name
		break
	}
	s := &snmpsim{addr: addr, log: logFile}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logFile)
			tb.Fatalf("snmpsimd exited: %v\n%s", err, tailString(string(b), 2000))
		default:
		}
		if s.ready(first) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			tb.Fatalf("snmpsimd did not answer on %s within 30 s\n%s", addr, tailString(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *snmpsim) ready(community string) bool {
	host, ps, _ := net.SplitHostPort(s.addr)
	port, _ := strconv.Atoi(ps)
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(port), Community: community, Version: gosnmp.Version2c,
		Timeout: 300 * time.Millisecond, Retries: 0, Context: context.Background()}
	if err := g.Connect(); err != nil {
		return false
	}
	defer g.Conn.Close()
	pkt, err := g.Get([]string{oidSysObjectID})
	return err == nil && len(pkt.Variables) == 1
}

func freeUDPPort(tb testing.TB) int {
	tb.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// readRecordings loads testdata/snmprec/<name>.snmprec for each name.
func readRecordings(tb testing.TB, names ...string) map[string][]byte {
	tb.Helper()
	m := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "snmprec", n+".snmprec"))
		if err != nil {
			tb.Fatal(err)
		}
		m[n] = b
	}
	return m
}

// replaceRecord swaps the value of one OID's line in an snmprec file.
func replaceRecord(tb testing.TB, rec []byte, oid, typeAndValue string) []byte {
	tb.Helper()
	lines := strings.Split(string(rec), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, oid+"|") {
			lines[i] = fmt.Sprintf("%s|%s", oid, typeAndValue)
			return []byte(strings.Join(lines, "\n"))
		}
	}
	tb.Fatalf("OID %s not in recording", oid)
	return nil
}
