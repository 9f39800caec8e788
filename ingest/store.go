// Package ingest gets series into greenloop and keeps them: the request
// decoders, validation and exporter mapping, tenant stamping, the storage
// interface every backend implements, and the write pipeline tying them together.
package ingest

import (
	"context"

	"github.com/prometheus/prometheus/storage"
)

// TenantLabel is the label the server stamps on every series when it runs multi-tenant.
const TenantLabel = "tenant"

// Store is the interface every series backend implements (embedded TSDB,
// ClickHouse). It is Prometheus-shaped so the PromQL engine reads from it
// directly, and one conformance suite (package storetest) checks every backend.
type Store interface {
	// Appendable gives appenders; a write is durable (acknowledgeable) once Commit returns nil.
	storage.Appendable
	// Queryable gives queriers over [mint, maxt] in milliseconds.
	storage.Queryable
	// Stats describes the store's size.
	Stats(ctx context.Context) (Stats, error)
	// Close flushes and releases the store.
	Close() error
}

// Stats describes a store's contents and footprint.
type Stats struct {
	// Series is the number of active (in-memory head) series.
	Series uint64 `json:"series"`
	// MinTime and MaxTime bound the stored samples, in ms; zero when empty.
	MinTime int64 `json:"min_time_ms"`
	MaxTime int64 `json:"max_time_ms"`
	// DiskBytes is the size of the store on disk.
	DiskBytes int64 `json:"disk_bytes"`
}
