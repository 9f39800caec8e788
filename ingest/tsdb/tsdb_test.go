package tsdb_test

import (
	"testing"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/storetest"
	"github.com/greenloop/greenloop/ingest/tsdb"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) ingest.Store {
		s, err := tsdb.Open(dir, tsdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
