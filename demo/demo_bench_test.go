package demo

import (
	"testing"
	"time"

	"github.com/greenloop/greenloop/internal/sample"
)

// BenchmarkGenerateDay generates one day of the whole fleet at a 60 s step.
func BenchmarkGenerateDay(b *testing.B) {
	from := day0
	for b.Loop() {
		f := New(1)
		_ = f.Generate(from, from.Add(24*time.Hour), time.Minute, func([]sample.Series) error { return nil })
	}
}
