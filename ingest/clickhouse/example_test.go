package clickhouse_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// Open a store, write a batch and tell an outage (retry later) from a bad request.
func ExampleOpen() {
	ctx := context.Background()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{"127.0.0.1:9000"}, Database: "greenloop"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	app := st.Appender(ctx)
	l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", "n1")
	if _, err := app.Append(0, l, time.Now().UnixMilli(), 212.5); err != nil {
		log.Fatal(err)
	}
	switch err := app.Commit(); {
	case errors.Is(err, clickhouse.ErrUnavailable):
		// Answer 503 with Retry-After: nothing is acknowledged, a resend is safe.
	case err != nil:
		log.Fatal(err)
	}
}
