package tokenstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/tokenstore"
)

// BenchmarkLoad is one refresh of 1000 live tokens (plus 100 revoked) from
// the shared ClickHouse: what every server does every refresh_interval.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	st, err := tokenstore.New(ctx, dial(b), newDB(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]web.Token, 1100)
	for i := range toks {
		toks[i] = webToken(fmt.Sprint("bench-", i), fmt.Sprint("tenant", i%10), web.RoleAgent, fmt.Sprint("agent ", i))
	}
	if _, err := st.Import(ctx, toks, "bench"); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := st.Revoke(ctx, tokenstore.Selector{Name: fmt.Sprint("agent ", i)}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		got, bad, err := st.Load(ctx)
		if err != nil || len(bad) > 0 || len(got) != 1000 {
			b.Fatalf("%d tokens, %v, %v", len(got), bad, err)
		}
	}
}
