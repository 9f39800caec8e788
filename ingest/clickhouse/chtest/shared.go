package chtest

import (
	"os"
	"testing"
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
