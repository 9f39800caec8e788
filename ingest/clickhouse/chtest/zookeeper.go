package chtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ZooKeeperPackage is the Debian package that provides ZooKeeper (3.8 in
// bookworm; it pulls in a Java runtime), which ClickHouse before 21.8 needs
// for Replicated tables: there is no clickhouse-keeper in them.
const ZooKeeperPackage = "zookeeper"

// zooKeeperJar is where the Debian package puts the server's classes (its
// manifest names the jars it depends on).
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZooKeeperBinary returns the java binary and the ZooKeeper jar, or an error
// naming the Debian package.
func ZooKeeperBinary() (java, jar string, err error) {
	if _, err := os.Stat(zooKeeperJar); err != nil {
		return "", "", fmt.Errorf("%s not found: install the Debian package %s", zooKeeperJar, ZooKeeperPackage)
	}
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", fmt.Errorf("java not found: install the Debian package %s (it depends on a JRE)", ZooKeeperPackage)
	}
	return java, zooKeeperJar, nil
}

// ZooKeeper is a running single-node ZooKeeper.
type ZooKeeper struct {
	// Addr is the client address (127.0.0.1:port).
	Addr string
	// Dir holds the config, data and log.
	Dir string

	java, jar string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// StartZooKeeper starts a standalone ZooKeeper with its data in dir on a free
// port of 127.0.0.1 (its admin HTTP server off). It returns once the server
// serves requests (its "srvr" answer names its mode).
func StartZooKeeper(dir string) (*ZooKeeper, error) {
	java, jar, err := ZooKeeperBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	// tickTime 500 ms: sessions of ClickHouse (10 s) fit between 2 and 20 ticks.
	// forceSync=no: a throw-away ensemble need not fsync its log on every write.
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=srvr\nforceSync=no\n",
		filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	log4j := "log4j.rootLogger=WARN, CONSOLE\nlog4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n" +
		"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n" +
		"log4j.appender.CONSOLE.layout.ConversionPattern=%d %p %c: %m%n\n"
	if err := os.WriteFile(filepath.Join(dir, "log4j.properties"), []byte(log4j), 0o644); err != nil {
		return nil, err
	}
	z := &ZooKeeper{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, java: java, jar: jar}
	if err := z.start(); err != nil {
		return nil, err
	}
	return z, nil
}

// Restart starts a stopped ZooKeeper again on its address and data, and
// returns once it serves requests.
func (z *ZooKeeper) Restart() error {
	if z.cmd != nil {
		return errors.New("zookeeper is running")
	}
	return z.start()
}

// start runs the server of z.Dir's configuration and waits until it serves.
func (z *ZooKeeper) start() error {
	dir, java, jar := z.Dir, z.java, z.jar
	out, err := os.OpenFile(filepath.Join(dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// A small heap and the quick JIT: a test ensemble holds a few hundred znodes.
	cmd := exec.Command(java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", dir+":"+jar, "-Dzookeeper.jmx.log4j.disable=true",
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start zookeeper: %w", err)
	}
	exited := make(chan struct{})
	z.cmd, z.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			z.cmd = nil
			return fmt.Errorf("zookeeper on %s exited at start; see %s", z.Addr, filepath.Join(dir, "zookeeper.log"))
		default:
		}
		if z.serving() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = z.Stop()
	return fmt.Errorf("zookeeper on %s not ready after 30 s; see %s", z.Addr, filepath.Join(dir, "zookeeper.log"))
}

// serving sends ZooKeeper's "srvr" four-letter word and reports whether it
// answered with its mode: "ruok" answers "imok" as soon as the process runs,
// before it takes sessions.
func (z *ZooKeeper) serving() bool {
	c, err := net.DialTimeout("tcp", z.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	out, _ := io.ReadAll(bufio.NewReader(c))
	return strings.Contains(string(out), "Mode: standalone")
}

// Stop stops ZooKeeper (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (z *ZooKeeper) Stop() error {
	if z.cmd == nil {
		return errors.New("not running")
	}
	_ = z.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-z.exited:
	case <-time.After(10 * time.Second):
		_ = z.cmd.Process.Kill()
		<-z.exited
	}
	z.cmd = nil
	return nil
}
