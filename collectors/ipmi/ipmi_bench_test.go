package ipmi

import (
	"context"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

// BenchmarkCollect is one poll of the real-server sensor set (17 SDR
// sensors, 15 read) plus DCMI over a reused session, against go-ipmi's
// in-process BMC on loopback: the collector's own cost per poll.
func BenchmarkCollect(b *testing.B) {
	f := startFakeBMCB(b, serverSDRs)
	f.mu.Lock()
	for _, s := range serverSDRs {
		if !s.notInSim && !s.scanDisabled {
			f.readings[s.num] = []byte{s.raw, 0xc0, 0x00}
		}
	}
	f.dcmi = dcmiData(dcmiWatts, dcmiWatts-20, dcmiWatts+30, dcmiWatts, 1000, true)
	f.mu.Unlock()
	c, err := New(Config{Host: "127.0.0.1", Port: f.port, Username: fakeAdmin, Password: fakeAdminPass, Timeout: 5 * time.Second}, collectors.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	emit := collectors.EmitterFunc(func(collectors.Reading) { n++ })
	ctx := context.Background()
	if err := c.Collect(ctx, emit); err != nil { // connect and read the SDRs
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := c.Collect(ctx, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N+1), "readings/op")
}
