package chstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
)

// BenchmarkPut is one operator entry of two fields: one INSERT.
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	st, err := chstore.NewInputStore(ctx, dial(b), newDB(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if err := st.Put(ctx, "acme", "fra1", 2025, raw(report.FFloorTotal, fmt.Sprint(i), report.FWIN, "12.5"), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads a site and year with 200 entries over 2 fields.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	st, err := chstore.NewInputStore(ctx, dial(b), newDB(), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if err := st.Put(ctx, "acme", "fra1", 2025, raw(report.FFloorTotal, fmt.Sprint(i), report.FWIN, "12.5"), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		in, err := st.Get(ctx, "acme", "fra1", 2025)
		if err != nil || len(in.Fields[report.FFloorTotal]) != 100 {
			b.Fatal(len(in.Fields), err)
		}
	}
}
