package fastrate

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// meterChunks are chunks as a 24 h dashboard reads them: 120 samples a
// minute apart of an energy counter integrating a power reading that moves
// with load and noise (every value's XOR has 30-50 meaningful bits).
func meterChunks(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	counter := 3.6e9
	t := int64(1_700_000_000_000)
	for c := range out {
		ts := make([]int64, 120)
		vs := make([]float64, 120)
		for i := range ts {
			w := 250 + 120*math.Sin(float64(t)/3.6e6) + float64((t/60_000*2654435761)%997)/10
			counter += w * 60
			ts[i], vs[i] = t, counter
			t += 60_000
		}
		out[c] = chunkOf(b, ts, vs)
	}
	return out
}

// BenchmarkDecodeXOR decodes realistic chunks with decodeXOR and with
// chunkenc's iterator; ns/sample is the figure to compare.
func BenchmarkDecodeXOR(b *testing.B) {
	cs := meterChunks(b, 1000)
	samples := 120 * len(cs)
	b.Run("fastrate", func(b *testing.B) {
		var e evaluator
		e.mint, e.maxt = math.MinInt64, math.MaxInt64
		for b.Loop() {
			for _, c := range cs {
				e.ts, e.vs, e.resets = e.ts[:0], e.vs[:0], e.resets[:0]
				if err := e.appendDecoded(c); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samples), "ns/sample")
	})
	b.Run("chunkenc", func(b *testing.B) {
		var it chunkenc.Iterator
		var sum float64
		for b.Loop() {
			for _, c := range cs {
				ch, _ := chunkenc.FromData(chunkenc.EncXOR, c)
				it = ch.Iterator(it)
				for it.Next() == chunkenc.ValFloat {
					_, v := it.At()
					sum += v
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samples), "ns/sample")
		_ = sum
	})
}

// BenchmarkWindows times eval alone: a day of a realistic counter a minute
// apart, rate over 5 m windows at every minute, added into a group's sums.
func BenchmarkWindows(b *testing.B) {
	expr, _ := parse(`sum(rate(x_total[5m]))`)
	plan, _ := Compile(expr)
	cs := meterChunks(b, 12)
	e := evaluator{plan: plan, startMs: 1_700_000_000_000 + 10*60_000, stepMs: 60_000, steps: 1430}
	e.mint, e.maxt = e.startMs-plan.rng+1, e.startMs+int64(e.steps-1)*e.stepMs
	for _, c := range cs {
		if err := e.appendDecoded(c); err != nil {
			b.Fatal(err)
		}
	}
	g := &group{sum: make([]float64, e.steps), c: make([]float64, e.steps), seen: make([]bool, e.steps)}
	for b.Loop() {
		e.eval(g)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*e.steps), "ns/window")
}
