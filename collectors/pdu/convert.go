package pdu

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// quantity is a kind of reading, with the integer base unit the collector
// computes it in before it becomes a typed unit or a float.
type quantity int

const (
	qPower         quantity = iota + 1 // µW
	qEnergy                            // µJ
	qApparentPower                     // µVA
	qCurrent                           // mA
	qVoltage                           // mV
	qTemperature                       // m°C
	qPowerFactor                       // millionths
	qHumidity                          // millionths (relative humidity as a ratio)
)

// Metric names this package emits beyond collectors' constants (DESIGN.md,
// "Canonical series").
const (
	MetricApparentPower = "greenloop_apparent_power_voltamperes"
	MetricPowerFactor   = "greenloop_power_factor_ratio"
	MetricHumidity      = "greenloop_humidity_ratio"
)

var quantities = map[string]quantity{
	"power": qPower, "energy": qEnergy, "apparent_power": qApparentPower,
	"current": qCurrent, "voltage": qVoltage, "temperature": qTemperature,
	"power_factor": qPowerFactor, "humidity": qHumidity,
}

// symbols maps each quantity's unit symbols to their size in the base unit.
var symbols = map[quantity]map[string]int64{
	qPower:         {"W": 1e6, "kW": 1e9},
	qEnergy:        {"J": 1e6, "Wh": 3600e6, "kWh": 3600e9},
	qApparentPower: {"VA": 1e6, "kVA": 1e9},
	qCurrent:       {"A": 1000, "mA": 1},
	qVoltage:       {"V": 1000, "mV": 1},
	qTemperature:   {"C": 1000},
	qPowerFactor:   {"": 1e6, "%": 1e4},
	qHumidity:      {"%RH": 1e4, "%": 1e4, "": 1e6},
}

// unit is a column's unit: one raw count is num/den base units.
type unit struct {
	q        quantity
	num, den int64
}

// parseUnit reads a Value's metric and unit, e.g. ("power", "0.01kW").
func parseUnit(metric, s string) (unit, error) {
	q, ok := quantities[metric]
	if !ok {
		return unit{}, fmt.Errorf("metric %q: want one of power, energy, apparent_power, current, voltage, power_factor, temperature, humidity", metric)
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	factor, sym := s[:i], s[i:]
	size, ok := symbols[q][sym]
	if !ok {
		var known []string
		for k := range symbols[q] {
			known = append(known, fmt.Sprintf("%q", k))
		}
		slices.Sort(known)
		return unit{}, fmt.Errorf("metric %s: unit %q: symbol %q not one of %s", metric, s, sym, strings.Join(known, ", "))
	}
	num, den := int64(1), int64(1)
	if factor != "" {
		r, ok := new(big.Rat).SetString(factor)
		if !ok || r.Sign() <= 0 || !r.Num().IsInt64() || !r.Denom().IsInt64() || r.Denom().Int64() > 1e9 || r.Num().Int64() > 1e9 {
			return unit{}, fmt.Errorf("metric %s: unit %q: bad factor %q", metric, s, factor)
		}
		num, den = r.Num().Int64(), r.Denom().Int64()
	}
	r := new(big.Rat).SetFrac64(num*size, den)
	return unit{q: q, num: r.Num().Int64(), den: r.Denom().Int64()}, nil
}

// maxDigits bounds a decimal-digits column (Raritan uses 0 to 3).
const maxDigits = 9

// pow10 holds 10^0 … 10^maxDigits.
var pow10 = func() (p [maxDigits + 1]int64) {
	p[0] = 1
	for i := 1; i <= maxDigits; i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// scale returns raw × u / 10^digits in the base unit, rounded to the
// nearest integer (half away from zero); ok is false when it does not fit
// an int64.
func (u unit) scale(raw int64, digits int) (int64, bool) {
	// Fast path: exact in int64 (the usual case: a whole number of base
	// units per raw count).
	if digits >= 0 && digits <= maxDigits && u.den == 1 {
		if p, ok := mul64(raw, u.num); ok && p%pow10[digits] == 0 {
			return p / pow10[digits], true
		}
	}
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(raw), big.NewInt(u.num)),
		new(big.Int).Mul(big.NewInt(u.den), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)))
	// Round half away from zero.
	n, d := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(n, d, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(d) >= 0 {
		if n.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, false
	}
	return q.Int64(), true
}

// mul64 returns a×b and whether it fits an int64.
func mul64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

// raw is one SNMP value as the profile engine sees it.
type raw struct {
	// isNum says num holds an integer value (INTEGER, Counter32, Gauge32,
	// Counter64, Unsigned32, TimeTicks).
	isNum bool
	num   int64
	// str holds an OCTET STRING, cleaned for use as a label.
	str string
	// missing marks noSuchObject, noSuchInstance, endOfMibView and NULL.
	missing bool
}

// maxLabelLen bounds a sensor name taken from the device.
const maxLabelLen = 128

// rawOf converts one varbind. Values the engine cannot use (an IP address,
// a Counter64 above 2^63) come back with neither isNum nor str set.
func rawOf(p gosnmp.SnmpPDU) raw {
	switch p.Type {
	case gosnmp.Integer:
		if v, ok := p.Value.(int); ok {
			return raw{isNum: true, num: int64(v)}
		}
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		switch v := p.Value.(type) {
		case uint:
			if uint64(v) <= math.MaxInt64 {
				return raw{isNum: true, num: int64(v)}
			}
		case uint32:
			return raw{isNum: true, num: int64(v)}
		}
	case gosnmp.Counter64:
		if v, ok := p.Value.(uint64); ok && v <= math.MaxInt64 {
			return raw{isNum: true, num: int64(v)}
		}
	case gosnmp.OctetString:
		if b, ok := p.Value.([]byte); ok {
			return raw{str: cleanLabel(b)}
		}
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null:
		return raw{missing: true}
	}
	return raw{}
}

// cleanLabel turns device bytes into a label value: valid UTF-8, no control
// characters, trimmed (NUL padding included), at most maxLabelLen bytes.
func cleanLabel(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteRune('\uFFFD')
		case r < 0x20 || r == 0x7f:
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	s := strings.TrimSpace(sb.String())
	if len(s) > maxLabelLen {
		cut := maxLabelLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		// The cut may leave a space at the end: trim again.
		s = strings.TrimRightFunc(s[:cut], unicode.IsSpace)
	}
	return s
}
