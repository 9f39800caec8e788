//go:build linux

package main

import (
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/redfish"
)

func TestPct(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // 100 ms down to 1 ms
	}
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := pct(ds, tt.p); got != tt.want {
			t.Errorf("pct(%d) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := pct(nil, 50); got != 0 {
		t.Errorf("pct(nil) = %v", got)
	}
}

// The simulated BMC serves the mockup to the real collector over a session,
// with its latency, and ends the session on Close.
func TestSimulatedBMC(t *testing.T) {
	files, err := loadTree("../../../collectors/redfish/testdata/dmtf-public-rackmount1")
	if err != nil {
		t.Fatal(err)
	}
	b := &bmc{expand: true, files: files, minLat: time.Millisecond, spread: time.Millisecond,
		rnd: rand.New(rand.NewPCG(1, 1)), sessions: map[string]string{}}
	srv := httptest.NewServer(b)
	defer srv.Close()
	c, err := redfish.New(redfish.Config{Endpoint: srv.URL, Username: benchUser, Password: benchPass}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ })); err != nil {
		t.Fatal(err)
	}
	if n != 25 { // testdata/dmtf-public-rackmount1.golden
		t.Errorf("%d readings, want 25", n)
	}
	open := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.sessions)
	}
	if n := open(); n != 1 {
		t.Errorf("%d sessions open, want 1", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := open(); n != 0 {
		t.Errorf("%d sessions open after Close, want 0", n)
	}
}
