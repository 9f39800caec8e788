package demo

import (
	"hash/fnv"
	"math"
)

// The demo's randomness is a seeded counter-mode generator: a value is a hash
// of (seed, what, when), so every gauge is a pure function of the seed and the
// time. A run is reproducible, and Generate and Run agree on any instant
// whatever their start and step.

// splitmix64 is the finaliser of the SplitMix64 generator: a bijective mix of 64 bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// keyOf derives the noise key of a named thing (a site, rack, node, sensor) under a seed.
func keyOf(seed int64, parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return splitmix64(h.Sum64() ^ splitmix64(uint64(seed)))
}

// sub derives an independent key for another quantity of the same thing.
func sub(key uint64, n uint64) uint64 { return splitmix64(key ^ (n * 0x9e3779b97f4a7c15)) }

// unit maps a hash to [-1, 1).
func unit(h uint64) float64 { return float64(h>>11)/(1<<52) - 1 }

// noise is smooth value noise in [-1, 1]: random knots every period ms,
// joined with a smoothstep, so it wanders on the time scale of period.
func noise(key uint64, tms, period int64) float64 {
	k := tms / period
	if tms < 0 && tms%period != 0 {
		k--
	}
	frac := float64(tms-k*period) / float64(period)
	a := unit(splitmix64(key ^ splitmix64(uint64(k))))
	b := unit(splitmix64(key ^ splitmix64(uint64(k+1))))
	s := frac * frac * (3 - 2*frac)
	return a + (b-a)*s
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
