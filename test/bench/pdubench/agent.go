package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gosnmp/gosnmp"
)

// goAgent is a minimal SNMPv2c agent serving snmprec recordings from memory
// (Get, GetNext, GetBulk), one community per device. It exists to measure
// the collector without snmpsimd's Python cost; it is no general agent:
// variation modules and SNMPv3 are not supported.
type goAgent struct {
	oids   []oidKey         // sorted; the same for every device
	values map[string][]any // community → value per oid (nil = absent)
	types  map[string][]gosnmp.Asn1BER
	pc     net.PacketConn
	wg     sync.WaitGroup
}

type oidKey struct {
	arcs []uint32
	s    string
}

func parseOID(s string) ([]uint32, error) {
	parts := strings.Split(strings.TrimPrefix(s, "."), ".")
	arcs := make([]uint32, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("OID %q: %w", s, err)
		}
		arcs[i] = uint32(n)
	}
	return arcs, nil
}

func cmpArcs(a, b []uint32) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

type record struct {
	oid  oidKey
	typ  gosnmp.Asn1BER
	val  any
	skip bool
}

// parseRecording reads OID|TYPE|VALUE lines; lines with a variation
// module are skipped.
func parseRecording(b []byte) ([]record, error) {
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			continue
		}
		arcs, err := parseOID(parts[0])
		if err != nil {
			return nil, err
		}
		r := record{oid: oidKey{arcs: arcs, s: "." + strings.TrimPrefix(parts[0], ".")}}
		t, v := parts[1], parts[2]
		switch t {
		case "2":
			n, err := strconv.Atoi(v)
			r.typ, r.val, r.skip = gosnmp.Integer, n, err != nil
		case "4":
			r.typ, r.val = gosnmp.OctetString, []byte(v)
		case "4x":
			h, err := hex.DecodeString(v)
			r.typ, r.val, r.skip = gosnmp.OctetString, h, err != nil
		case "6":
			r.typ, r.val = gosnmp.ObjectIdentifier, "."+strings.TrimPrefix(v, ".")
		case "64":
			r.typ, r.val = gosnmp.IPAddress, v
		case "65", "66":
			n, err := strconv.ParseUint(v, 10, 32)
			r.typ, r.val, r.skip = gosnmp.Counter32, uint(n), err != nil
			if t == "66" {
				r.typ = gosnmp.Gauge32
			}
		case "67":
			n, err := strconv.ParseUint(v, 10, 32)
			r.typ, r.val, r.skip = gosnmp.TimeTicks, uint32(n), err != nil
		case "70":
			n, err := strconv.ParseUint(v, 10, 64)
			r.typ, r.val, r.skip = gosnmp.Counter64, n, err != nil
		default:
			r.skip = true
		}
		if !r.skip {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return cmpArcs(out[i].oid.arcs, out[j].oid.arcs) < 0 })
	return out, sc.Err()
}

func newGoAgent(recs map[string][]byte) (*goAgent, error) {
	a := &goAgent{values: map[string][]any{}, types: map[string][]gosnmp.Asn1BER{}}
	for comm, b := range recs {
		rs, err := parseRecording(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", comm, err)
		}
		if a.oids == nil {
			for _, r := range rs {
				a.oids = append(a.oids, r.oid)
			}
		}
		if len(rs) != len(a.oids) {
			return nil, fmt.Errorf("%s: %d objects, want the same %d as the others", comm, len(rs), len(a.oids))
		}
		vals := make([]any, len(rs))
		typs := make([]gosnmp.Asn1BER, len(rs))
		for i, r := range rs {
			if r.oid.s != a.oids[i].s {
				return nil, fmt.Errorf("%s: object %d is %s, want %s", comm, i, r.oid.s, a.oids[i].s)
			}
			vals[i], typs[i] = r.val, r.typ
		}
		a.values[comm], a.types[comm] = vals, typs
	}
	return a, nil
}

// serve answers on addr with workers goroutines until ctx ends.
func (a *goAgent) serve(ctx context.Context, addr string, workers int) (string, error) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return "", err
	}
	a.pc = pc
	go func() { <-ctx.Done(); pc.Close() }()
	for w := 0; w < workers; w++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			dec := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "x", Logger: gosnmp.NewLogger(nil)}
			buf := make([]byte, 65536)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if out := a.answer(dec, buf[:n]); out != nil {
					pc.WriteTo(out, from)
				}
			}
		}()
	}
	return pc.LocalAddr().String(), nil
}

func (a *goAgent) wait() { a.wg.Wait() }

// next returns the index of the first object after oid (i.e. GetNext).
func (a *goAgent) next(oid []uint32) int {
	return sort.Search(len(a.oids), func(i int) bool { return cmpArcs(a.oids[i].arcs, oid) > 0 })
}

func (a *goAgent) exact(oid []uint32) int {
	i := sort.Search(len(a.oids), func(i int) bool { return cmpArcs(a.oids[i].arcs, oid) >= 0 })
	if i < len(a.oids) && cmpArcs(a.oids[i].arcs, oid) == 0 {
		return i
	}
	return -1
}

func (a *goAgent) answer(dec *gosnmp.GoSNMP, b []byte) []byte {
	req, err := dec.SnmpDecodePacket(b)
	if err != nil || req.Version != gosnmp.Version2c {
		return nil
	}
	vals, ok := a.values[req.Community]
	if !ok {
		return nil // like snmpsimd: an unknown community gets no answer
	}
	typs := a.types[req.Community]
	resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: req.Community,
		PDUType: gosnmp.GetResponse, RequestID: req.RequestID}
	vb := func(i int) gosnmp.SnmpPDU {
		if i < 0 || i >= len(a.oids) {
			return gosnmp.SnmpPDU{Type: gosnmp.EndOfMibView}
		}
		return gosnmp.SnmpPDU{Name: a.oids[i].s, Type: typs[i], Value: vals[i]}
	}
	switch req.PDUType {
	case gosnmp.GetRequest:
		for _, v := range req.Variables {
			arcs, err := parseOID(v.Name)
			if err != nil {
				return nil
			}
			if i := a.exact(arcs); i >= 0 {
				resp.Variables = append(resp.Variables, vb(i))
			} else {
				resp.Variables = append(resp.Variables, gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.NoSuchObject})
			}
		}
	case gosnmp.GetNextRequest:
		for _, v := range req.Variables {
			arcs, err := parseOID(v.Name)
			if err != nil {
				return nil
			}
			p := vb(a.next(arcs))
			if p.Type == gosnmp.EndOfMibView {
				p.Name = v.Name
			}
			resp.Variables = append(resp.Variables, p)
		}
	case gosnmp.GetBulkRequest:
		pos := make([]int, len(req.Variables))
		for j, v := range req.Variables {
			arcs, err := parseOID(v.Name)
			if err != nil {
				return nil
			}
			pos[j] = a.next(arcs)
		}
		reps := int(req.MaxRepetitions)
		for r := 0; r < reps && len(resp.Variables) < 1000; r++ {
			for j := range pos {
				p := vb(pos[j])
				if p.Type == gosnmp.EndOfMibView {
					p.Name = req.Variables[j].Name
				}
				resp.Variables = append(resp.Variables, p)
				pos[j]++
			}
		}
	default:
		return nil
	}
	out, err := resp.MarshalMsg()
	if err != nil {
		return nil
	}
	return out
}
