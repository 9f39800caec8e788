// Package chtest starts throw-away ClickHouse servers for tests: the Debian
// clickhouse-server binary with its own config.xml in a temporary directory,
// listening on 127.0.0.1 on free ports, optionally with a remote_servers
// cluster so several of them form shards of one cluster.
package chtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DebianPackage is the package that provides the server.
const DebianPackage = "clickhouse-server"

// Binary returns the path of clickhouse-server, or an error naming the Debian package.
func Binary() (string, error) {
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("clickhouse-server not found: install the Debian package %s", DebianPackage)
}

// Cluster is one remote_servers entry: a name and one address per shard, or,
// for a replicated cluster, the addresses of each shard's replicas.
type Cluster struct {
	Name   string
	Shards []string // host:port of each shard's native port (one replica each)
	// Replicas, when set, replaces Shards: Replicas[i] lists the host:port of
	// shard i's replicas. Such a cluster is written with
	// internal_replication=true: a Distributed table writes one replica of
	// each shard and the Replicated tables copy the data to the others.
	Replicas [][]string
}

// shards returns the replicas of each shard.
func (c Cluster) shards() [][]string {
	if len(c.Replicas) > 0 {
		return c.Replicas
	}
	out := make([][]string, len(c.Shards))
	for i, a := range c.Shards {
		out[i] = []string{a}
	}
	return out
}

// ServerOptions configure a server beyond its port and clusters, for
// replication: the ZooKeeper ensemble and the macros the Replicated tables'
// paths name ({shard}, {replica}).
type ServerOptions struct {
	// Port is the native-protocol port; 0 picks a free one.
	Port int
	// Clusters are written as remote_servers.
	Clusters []Cluster
	// ZooKeeper lists host:port of the ensemble; empty writes no <zookeeper>.
	ZooKeeper []string
	// Macros are written as <macros> (e.g. shard: "01", replica: "r1").
	Macros map[string]string
	// InterserverPort is the port replicas fetch parts from each other on;
	// 0 picks a free one when ZooKeeper is set.
	InterserverPort int
	// ProfileSettings are added to the default user profile (users.xml),
	// e.g. insert_deduplicate: "0".
	ProfileSettings map[string]string
}

// withProfileSettings adds settings to the default profile of a users.xml.
func withProfileSettings(users string, settings map[string]string) (string, error) {
	if len(settings) == 0 {
		return users, nil
	}
	p := strings.Index(users, "<profiles>")
	if p < 0 {
		return "", errors.New("users.xml has no <profiles>")
	}
	d := strings.Index(users[p:], "<default>")
	if d < 0 {
		return "", errors.New("users.xml has no default profile")
	}
	at := p + d + len("<default>")
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "<%[1]s>%[2]s</%[1]s>", k, settings[k])
	}
	return users[:at] + b.String() + users[at:], nil
}

// Server is a running clickhouse-server.
type Server struct {
	// Addr is the native-protocol address (127.0.0.1:port).
	Addr string
	// Dir holds the config, data and logs.
	Dir string

	bin string
	cmd *exec.Cmd
	// exited is closed when the process ends.
	exited chan struct{}
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start writes a config into dir and starts a server on port (0: a free one).
// clusters, if any, are written as remote_servers. It returns once the server
// accepts connections.
func Start(dir string, port int, clusters ...Cluster) (*Server, error) {
	return StartWith(dir, ServerOptions{Port: port, Clusters: clusters})
}

// StartWith writes a config into dir and starts a server as o says. It
// returns once the server accepts connections.
func StartWith(dir string, o ServerOptions) (*Server, error) {
	port := o.Port
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("pick a port: %w", err)
		}
	}
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	users, err := os.ReadFile("/etc/clickhouse-server/users.xml")
	if err != nil {
		users = []byte(defaultUsers)
	}
	usersXML, err := withProfileSettings(string(users), o.ProfileSettings)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, err
	}
	if len(o.ZooKeeper) > 0 && o.InterserverPort == 0 {
		if o.InterserverPort, err = FreePort(); err != nil {
			return nil, fmt.Errorf("pick an interserver port: %w", err)
		}
	}
	o.Port = port
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(ConfigWith(dir, o)), 0o644); err != nil {
		return nil, err
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, bin: bin}
	return s, s.start()
}

// Config returns the config.xml of a server in dir on port.
func Config(dir string, port int, clusters ...Cluster) string {
	return ConfigWith(dir, ServerOptions{Port: port, Clusters: clusters})
}

// ConfigWith returns the config.xml of a server in dir configured by o
// (o.Port must be set).
func ConfigWith(dir string, o ServerOptions) string {
	var rs strings.Builder
	for _, c := range o.Clusters {
		fmt.Fprintf(&rs, "<%s>", c.Name)
		for _, replicas := range c.shards() {
			rs.WriteString("<shard>")
			if len(c.Replicas) > 0 {
				rs.WriteString("<internal_replication>true</internal_replication>")
			}
			for _, r := range replicas {
				host, p, _ := net.SplitHostPort(r)
				fmt.Fprintf(&rs, "<replica><host>%s</host><port>%s</port></replica>", host, p)
			}
			rs.WriteString("</shard>")
		}
		fmt.Fprintf(&rs, "</%s>", c.Name)
	}
	var repl strings.Builder
	if len(o.ZooKeeper) > 0 {
		repl.WriteString("\n    <zookeeper>")
		for _, z := range o.ZooKeeper {
			host, p, _ := net.SplitHostPort(z)
			fmt.Fprintf(&repl, "<node><host>%s</host><port>%s</port></node>", host, p)
		}
		repl.WriteString("<session_timeout_ms>10000</session_timeout_ms></zookeeper>")
		fmt.Fprintf(&repl, "\n    <interserver_http_host>127.0.0.1</interserver_http_host>\n    <interserver_http_port>%d</interserver_http_port>", o.InterserverPort)
	}
	if len(o.Macros) > 0 {
		keys := make([]string, 0, len(o.Macros))
		for k := range o.Macros {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		repl.WriteString("\n    <macros>")
		for _, k := range keys {
			fmt.Fprintf(&repl, "<%[1]s>%[2]s</%[1]s>", k, o.Macros[k])
		}
		repl.WriteString("</macros>")
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>%[1]s/log/clickhouse-server.log</log>
        <errorlog>%[1]s/log/clickhouse-server.err.log</errorlog><size>10M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <remote_servers>%[3]s</remote_servers>%[4]s
</yandex>
`, dir, o.Port, rs.String(), repl.String())
}

func (s *Server) start() error {
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("clickhouse-server on %s exited at start; see %s", s.Addr, filepath.Join(s.Dir, "log"))
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = s.Stop()
	return fmt.Errorf("clickhouse-server on %s not ready after 30 s; see %s", s.Addr, filepath.Join(s.Dir, "log"))
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return nil
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return errors.New("not running")
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	return nil
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing answers.
func (s *Server) Pause() error {
	if s.cmd == nil {
		return errors.New("not running")
	}
	return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP)
}

// Resume undoes Pause.
func (s *Server) Resume() error {
	if s.cmd == nil {
		return errors.New("not running")
	}
	return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
}

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return errors.New("still running")
	}
	return s.start()
}

const defaultUsers = `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>10000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
    <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
