package pdu

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gosnmp/gosnmp"
)

// OIDs every SNMP agent answers (SNMPv2-MIB).
const oidSysObjectID = "1.3.6.1.2.1.1.2.0"

// maxRowsPerColumn bounds one column's walk, against agents that loop.
const maxRowsPerColumn = 10000

// maxVarbinds bounds the varbinds one GetBulk may bring back (columns ×
// repetitions), to keep responses within an ordinary UDP datagram.
const maxVarbinds = 60

// snmpError names the device and what was asked in an error.
func (c *Collector) snmpError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, gosnmp.ErrMaxRetriesExceeded) {
		return fmt.Errorf("pdu: %s: %s: no answer within the timeout (%s, %d retries): %w", c.addr, what, c.timeout, c.retries, err)
	}
	return fmt.Errorf("pdu: %s: %s: %w", c.addr, what, err)
}

// sysObjectID reads sysObjectID.0; "" when the agent has none.
func (c *Collector) sysObjectID() (string, error) {
	pkt, err := c.g.Get([]string{oidSysObjectID})
	if err != nil {
		return "", c.snmpError("get sysObjectID", err)
	}
	if pkt.Error != gosnmp.NoError {
		return "", c.snmpError("get sysObjectID", fmt.Errorf("agent error %s", pkt.Error))
	}
	for _, v := range pkt.Variables {
		if v.Type == gosnmp.ObjectIdentifier {
			if s, ok := v.Value.(string); ok {
				return strings.TrimPrefix(s, "."), nil
			}
		}
	}
	return "", nil
}

// probe reports whether the agent holds anything under subtree.
func (c *Collector) probe(subtree string) (bool, error) {
	pkt, err := c.g.GetNext([]string{subtree})
	if err != nil {
		return false, c.snmpError("probe "+subtree, err)
	}
	if pkt.Error == gosnmp.NoSuchName { // SNMPv1: end of the MIB
		return false, nil
	}
	if pkt.Error != gosnmp.NoError {
		return false, c.snmpError("probe "+subtree, fmt.Errorf("agent error %s", pkt.Error))
	}
	for _, v := range pkt.Variables {
		if v.Type != gosnmp.EndOfMibView && hasOIDPrefix(strings.TrimPrefix(v.Name, "."), subtree) {
			return true, nil
		}
	}
	return false, nil
}

// walkColumns walks several table columns side by side: each request asks
// for the next rows of every unfinished column at once (GetBulk with
// repetitions sized so that a response holds at most maxVarbinds, or
// GetNext with one varbind per column on SNMPv1), so a 24-outlet table of
// four columns takes two requests instead of ninety-six.
func (c *Collector) walkColumns(cols []string) (walkData, error) {
	d := make(walkData, len(cols))
	pending := make([]*colWalk, 0, len(cols))
	for _, col := range cols {
		d[col] = map[string]raw{}
		pending = append(pending, &colWalk{col: col, last: col})
	}
	var errs []error
	limit := c.varbindLimit // lowered when the agent refuses a request as too big
	for len(pending) > 0 {
		batch := pending[:min(len(pending), limit)]
		oids := make([]string, len(batch))
		for i, s := range batch {
			oids[i] = s.last
		}
		var (
			pkt *gosnmp.SnmpPacket
			err error
		)
		if c.g.Version == gosnmp.Version1 {
			pkt, err = c.g.GetNext(oids)
		} else {
			reps := max(1, min(c.maxRep, limit/len(batch)))
			pkt, err = c.g.GetBulk(oids, 0, uint32(reps))
		}
		if err != nil {
			return nil, c.snmpError("walk "+batch[0].col, err)
		}
		done := make([]bool, len(batch))
		switch {
		case (pkt.Error == gosnmp.TooBig || pkt.Error == gosnmp.GenErr) && limit > 1:
			// The response would not fit the agent's message size
			// (tooBig), or the agent refuses that many varbinds (some
			// answer genErr, snmpsimd --max-varbinds among them): ask
			// for fewer.
			limit /= 2
			c.varbindLimit = limit // remembered for the next collections
			continue
		case pkt.Error == gosnmp.NoSuchName && c.g.Version == gosnmp.Version1 &&
			pkt.ErrorIndex >= 1 && int(pkt.ErrorIndex) <= len(batch):
			// SNMPv1 walked past the end of the MIB on that column.
			done[pkt.ErrorIndex-1] = true
		case pkt.Error != gosnmp.NoError:
			return nil, c.snmpError("walk "+batch[0].col, fmt.Errorf("agent error %s", pkt.Error))
		case len(pkt.Variables) == 0:
			return nil, c.snmpError("walk "+batch[0].col, errors.New("empty response"))
		default:
			for _, e := range absorb(d, batch, pkt.Variables, done) {
				errs = append(errs, fmt.Errorf("pdu: %s: %w", c.addr, e))
			}
		}
		next := pending[:0:0]
		for i, s := range pending {
			if i < len(batch) && done[i] {
				continue
			}
			next = append(next, s)
		}
		pending = next
	}
	return d, errors.Join(errs...)
}

// colWalk is the progress of one column's walk.
type colWalk struct {
	col, last string
	rows      int
}

// absorb files the varbinds of one GetBulk or GetNext response into d:
// varbind i continues column i mod len(batch). A column is done (done[j]
// set) when its next OID leaves the column or the MIB ends; an agent that
// does not move forward, or a column longer than maxRowsPerColumn, also
// ends the column, with an error.
func absorb(d walkData, batch []*colWalk, vars []gosnmp.SnmpPDU, done []bool) []error {
	var errs []error
	for i, v := range vars {
		j := i % len(batch)
		s := batch[j]
		if done[j] {
			continue
		}
		name := strings.TrimPrefix(v.Name, ".")
		if v.Type == gosnmp.EndOfMibView || !hasOIDPrefix(name, s.col) || name == s.col {
			done[j] = true
			continue
		}
		if compareIndex(name, s.last) <= 0 {
			errs = append(errs, fmt.Errorf("walk %s: agent returned %s after %s; column cut short", s.col, name, s.last))
			done[j] = true
			continue
		}
		d[s.col][name[len(s.col)+1:]] = rawOf(v)
		s.last = name
		s.rows++
		if s.rows >= maxRowsPerColumn {
			errs = append(errs, fmt.Errorf("walk %s: more than %d rows; column cut short", s.col, maxRowsPerColumn))
			done[j] = true
		}
	}
	return errs
}
