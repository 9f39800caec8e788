package clickhouse_test

import (
	"testing"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/storetest"
)

func TestConformance(t *testing.T) {
	server(t)
	storetest.Run(t, func(t *testing.T, dir string) ingest.Store {
		return open(t, dbFor(dir))
	})
}
