package chtest

import (
	"context"
	"os"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// inCI reports whether the tests run in CI (CI set, and not "false" or "0"),
// where scripts/test-deps.sh installs the server: a missing one is a failure there.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Require returns the server binary, or ends the test: a failure in CI, a
// skip naming the Debian package elsewhere.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		missing(t, err)
	}
	return bin
}

func missing(t testing.TB, err error) {
	t.Helper()
	if inCI() {
		t.Fatalf("no ClickHouse server (Debian package %s): %v", DebianPackage, err)
	}
	t.Skipf("no ClickHouse server (Debian package %s): %v", DebianPackage, err)
}

// Shared is one server shared by every test of a package (each test using a
// database of its own), started from TestMain:
//
//	var shared *chtest.Shared
//
//	func TestMain(m *testing.M) {
//		shared = chtest.StartShared("greenloop-mypkg-")
//		code := m.Run()
//		shared.Close()
//		os.Exit(code)
//	}
type Shared struct {
	srv *Server
	err error
	dir string
}

// StartShared starts the server in a temporary directory named with prefix;
// when the binary is missing or the start fails, Server reports it per test.
func StartShared(prefix string) *Shared {
	s := &Shared{}
	if s.dir, s.err = os.MkdirTemp("", prefix); s.err != nil {
		return s
	}
	if _, s.err = Binary(); s.err == nil {
		s.srv, s.err = Start(s.dir, 0)
	}
	return s
}

// Server returns the shared server, or ends the test as Require does.
func (s *Shared) Server(t testing.TB) *Server {
	t.Helper()
	if s.srv == nil {
		missing(t, s.err)
	}
	return s.srv
}

// Close stops the server and removes its directory.
func (s *Shared) Close() {
	if s.srv != nil {
		_ = s.srv.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Dial opens a connection of its own to the server at addr (native
// protocol, user default), checks it with a ping, and closes it at the end
// of the test: what a second greenloop server's connection would be.
func Dial(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{
		Addr: []string{addr}, Protocol: ch.Native,
		Auth:        ch.Auth{Username: "default", Database: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
