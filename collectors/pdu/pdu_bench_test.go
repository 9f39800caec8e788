package pdu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

// walkFromRecording builds the walk a profile would get from an snmprec
// recording (integers and strings only), without an agent.
func walkFromRecording(tb testing.TB, rec []byte, p *Profile) walkData {
	tb.Helper()
	d := walkData{}
	cols := p.columns()
	for _, c := range cols {
		d[c] = map[string]raw{}
	}
	sc := bufio.NewScanner(bytes.NewReader(rec))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range cols {
			if !hasOIDPrefix(parts[0], c) || parts[0] == c {
				continue
			}
			idx := parts[0][len(c)+1:]
			switch parts[1] {
			case "2", "65", "66":
				n, err := strconv.ParseInt(parts[2], 10, 64)
				if err == nil {
					d[c][idx] = raw{isNum: true, num: n}
				}
			case "4":
				d[c][idx] = raw{str: cleanLabel([]byte(parts[2]))}
			case "4x":
				b, _ := hex.DecodeString(parts[2])
				d[c][idx] = raw{str: cleanLabel(b)}
			}
		}
	}
	return d
}

// BenchmarkEvaluateAPC8641 is the profile engine's cost for one 24-outlet
// PDU (83 readings), without SNMP.
func BenchmarkEvaluateAPC8641(b *testing.B) {
	ps, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	p, _ := ps.Get("apc-rpdu2")
	d := walkFromRecording(b, readRecordings(b, "apc-8641")["apc-8641"], p)
	b.ReportAllocs()
	for b.Loop() {
		rs, _ := evaluate(p, d)
		if len(rs) != 83 {
			b.Fatalf("%d readings, want 83", len(rs))
		}
	}
}

// BenchmarkCollectAPC8641 is one full collection of the AP8641 recording
// from snmpsimd over SNMPv2c and SNMPv3 authPriv: mostly snmpsimd's time
// (Python), see test/bench/pdubench for the 500-device refresh.
func BenchmarkCollectAPC8641(b *testing.B) {
	sim := startSnmpsim(b, readRecordings(b, "apc-8641"))
	for _, v := range []struct {
		name string
		cfg  Config
	}{
		{"v2c", Config{Address: sim.addr, Community: "apc-8641"}},
		{"v3-authPriv", Config{Address: sim.addr, Version: "3", Username: v3User, AuthProtocol: "SHA", AuthPassword: v3AuthPass,
			PrivProtocol: "AES", PrivPassword: v3PrivPass, Context: "apc-8641"}},
	} {
		b.Run(v.name, func(b *testing.B) {
			c, err := New(v.cfg, collectors.Deps{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			n := 0
			emit := collectors.EmitterFunc(func(collectors.Reading) { n++ })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.Collect(ctx, emit); err != nil { // detection, v3 discovery
				b.Fatal(err)
			}
			for b.Loop() {
				if err := c.Collect(ctx, emit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
