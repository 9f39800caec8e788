package fastrate

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chunkOf encodes samples with Prometheus' own XOR appender.
func chunkOf(t testing.TB, ts []int64, vs []float64) []byte {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return c.Bytes()
}

// reference decodes data with chunkenc's iterator, keeping [mint, maxt]
// without stale markers, as the engine's windows see a series.
func reference(data []byte, mint, maxt int64) ([]int64, []float64, error) {
	c, err := chunkenc.FromData(chunkenc.EncXOR, data)
	if err != nil {
		return nil, nil, err
	}
	var ts []int64
	var vs []float64
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		if t > maxt {
			break
		}
		if t >= mint && !value.IsStaleNaN(v) {
			ts, vs = append(ts, t), append(vs, v)
		}
	}
	return ts, vs, it.Err()
}

// decode reads data with appendDecoded into a fresh evaluator.
func decode(data []byte, mint, maxt int64) ([]int64, []float64, error) {
	e := evaluator{mint: mint, maxt: maxt}
	err := e.appendDecoded(data)
	return e.ts, e.vs, err
}

func sameSamples(t *testing.T, name string, wt, gt []int64, wv, gv []float64) {
	t.Helper()
	if len(wt) != len(gt) || len(wv) != len(gv) {
		t.Fatalf("%s: %d samples, want %d", name, len(gt), len(wt))
	}
	for i := range wt {
		if wt[i] != gt[i] || math.Float64bits(wv[i]) != math.Float64bits(gv[i]) {
			t.Fatalf("%s: sample %d = %d %v (%x), want %d %v (%x)", name, i, gt[i], gv[i], math.Float64bits(gv[i]), wt[i], wv[i], math.Float64bits(wv[i]))
		}
	}
}

// appendDecoded reads every chunk shape the appender writes exactly as
// chunkenc's iterator does: regular and jittered intervals, every
// delta-of-delta size, negative deltas, repeated values, NaN, infinities,
// stale markers and full 64-bit value changes.
func TestDecodeXORMatchesChunkenc(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	jumps := []int64{0, 1, -1, 8191, -8191, 8192, 65535, -65536, 65537, 524287, -524288, 524289, 1 << 40, -(1 << 40)}
	for n := range 400 {
		count := 1 + r.IntN(250)
		ts, vs := make([]int64, count), make([]float64, count)
		t0 := int64(r.Uint64()>>2) - 1<<60
		delta := int64(1 + r.IntN(60_000))
		v := r.NormFloat64() * 1e6
		for i := range count {
			if i > 0 {
				switch n % 4 {
				case 0: // regular
				case 1:
					delta += jumps[r.IntN(len(jumps))]
				default:
					delta += int64(r.IntN(2001)) - 1000
				}
				if delta < 1 {
					delta = 1
				}
				t0 += delta
			}
			switch x := r.IntN(100); {
			case x < 30: // unchanged
			case x < 33:
				v = math.NaN()
			case x < 34:
				v = math.Float64frombits(value.StaleNaN)
			case x < 35:
				v = math.Inf(1 - 2*r.IntN(2))
			case x < 45:
				v = math.Float64frombits(r.Uint64())
			default:
				v += r.Float64() * 1000
			}
			ts[i], vs[i] = t0, v
		}
		data := chunkOf(t, ts, vs)
		mint, maxt := int64(math.MinInt64), int64(math.MaxInt64)
		if n%3 == 1 {
			mint, maxt = ts[count/3], ts[2*count/3]
		}
		wt, wv, err := reference(data, mint, maxt)
		if err != nil {
			t.Fatal(err)
		}
		e := evaluator{mint: mint, maxt: maxt}
		if err := e.appendDecoded(data); err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
		sameSamples(t, "chunk", wt, e.ts, wv, e.vs)
		var resets []int
		for i := 1; i < len(wv); i++ {
			if wv[i] < wv[i-1] {
				resets = append(resets, i)
			}
		}
		if !slices.Equal(resets, e.resets) {
			t.Fatalf("chunk %d: resets at %v, want %v", n, e.resets, resets)
		}
	}
}

// Truncated or damaged chunks give an error or the same samples as
// chunkenc, never a panic or a read past the bytes.
func TestDecodeXORCorrupt(t *testing.T) {
	ts := []int64{1000, 2000, 3000, 4100, 5100}
	vs := []float64{1, 2, 2, 3.5, 1e9}
	data := chunkOf(t, ts, vs)
	for cut := range len(data) {
		if _, _, err := decode(data[:cut], math.MinInt64, math.MaxInt64); err == nil && cut < len(data)-1 {
			// A cut inside the last sample's bits may still decode when
			// the remaining bits were padding; anything shorter must fail.
			wt, _, werr := reference(data[:cut], math.MinInt64, math.MaxInt64)
			if werr != nil || len(wt) < len(ts) {
				t.Errorf("cut at %d of %d bytes decoded without error", cut, len(data))
			}
		}
	}
	bad := append([]byte(nil), data...)
	binary.BigEndian.PutUint16(bad, 60000) // more samples than the bits hold
	if _, _, err := decode(bad, math.MinInt64, math.MaxInt64); err == nil {
		t.Error("a sample count beyond the data decoded without error")
	}
}

// FuzzDecodeXOR: any bytes. When chunkenc reads them without error,
// appendDecoded must read the same samples or refuse them; it never panics.
func FuzzDecodeXOR(f *testing.F) {
	f.Add(chunkOf(f, []int64{1, 2, 3}, []float64{1, 1, 2}))
	f.Add(chunkOf(f, []int64{0, 15_000, 30_000, 46_000, 60_000}, []float64{0, 10, 20.5, math.NaN(), 1e300}))
	f.Add([]byte{0, 2, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		gt, gv, err := decode(data, math.MinInt64, math.MaxInt64)
		if err != nil {
			return
		}
		wt, wv, werr := reference(data, math.MinInt64, math.MaxInt64)
		if werr != nil {
			return // chunkenc refuses what appendDecoded read; no reference to compare with
		}
		if len(data) >= 2 && int(binary.BigEndian.Uint16(data)) == len(wt) {
			sameSamples(t, "fuzz", wt, gt, wv, gv)
		}
	})
}
