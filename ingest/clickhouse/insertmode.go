package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// How the store asks ClickHouse to gather small INSERTs on the server side
// (Options.AsyncInsert).
const (
	// AsyncInsertAuto uses async_insert when the server gathers native-protocol
	// INSERTs with it (23.10 and later) and the Buffer table is not enabled.
	AsyncInsertAuto = "auto"
	// AsyncInsertOn always sets it; Open fails on a server without it (before 21.11).
	AsyncInsertOn = "on"
	// AsyncInsertOff never sets it.
	AsyncInsertOff = "off"
)

// BufferOptions put a ClickHouse Buffer table in front of the samples table:
// sample INSERTs land in the server's memory and reach the samples table (and
// the rollups) in larger blocks, when every min threshold or any max threshold
// of a buffer layer is reached. ClickHouse acknowledges rows that are only in
// memory: they are lost if clickhouse-server crashes or is killed before the
// flush (a graceful stop flushes them). Zero fields take the defaults
// documented on each.
type BufferOptions struct {
	// Enabled turns the Buffer table on.
	Enabled bool
	// Layers is the number of independent buffers (num_layers); zero means 4.
	// ClickHouse holds a layer locked while it flushes it, and an INSERT that
	// pushes a layer past a max threshold flushes it itself (materialized
	// views included) before it returns: with several layers, INSERTs go to
	// an unlocked one and the background flush at the min thresholds usually
	// comes first. Each layer flushes as parts of its own.
	Layers int
	// MinTime and MaxTime bound the age of a layer's oldest row at flush
	// (whole seconds); zero means 5 s and 30 s. MaxTime is the longest a row
	// waits in memory, so the longest that a crash can lose and that rollup
	// reads lag behind.
	MinTime, MaxTime time.Duration
	// MinRows and MaxRows bound the rows of a flush; zero means 100,000 and
	// 1,000,000. An INSERT larger than MaxRows bypasses the buffer.
	MinRows, MaxRows int64
	// MinBytes and MaxBytes bound the bytes of a flush; zero means 1 MiB and
	// 100 MiB (a sample takes 24 bytes).
	MinBytes, MaxBytes int64
}

func (b BufferOptions) withDefaults() BufferOptions {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if b.Layers <= 0 {
		b.Layers = 4
	}
	if b.MinTime <= 0 {
		b.MinTime = 5 * time.Second
	}
	if b.MaxTime <= 0 {
		b.MaxTime = 30 * time.Second
	}
	def(&b.MinRows, 100_000)
	def(&b.MaxRows, 1_000_000)
	def(&b.MinBytes, 1<<20)
	def(&b.MaxBytes, 100<<20)
	return b
}

// check reports thresholds that contradict each other (after defaults).
func (b BufferOptions) check(batchSize int) error {
	var errs []error
	secs := func(d time.Duration) bool { return d%time.Second == 0 }
	if !secs(b.MinTime) || !secs(b.MaxTime) {
		errs = append(errs, fmt.Errorf("buffer min_time %s and max_time %s must be whole seconds", b.MinTime, b.MaxTime))
	}
	if b.MinTime > b.MaxTime {
		errs = append(errs, fmt.Errorf("buffer min_time %s exceeds max_time %s", b.MinTime, b.MaxTime))
	}
	if b.MinRows > b.MaxRows {
		errs = append(errs, fmt.Errorf("buffer min_rows %d exceeds max_rows %d", b.MinRows, b.MaxRows))
	}
	if b.MinBytes > b.MaxBytes {
		errs = append(errs, fmt.Errorf("buffer min_bytes %d exceeds max_bytes %d", b.MinBytes, b.MaxBytes))
	}
	if int64(batchSize) > b.MaxRows {
		errs = append(errs, fmt.Errorf("batch size %d exceeds buffer max_rows %d: every INSERT would bypass the buffer", batchSize, b.MaxRows))
	}
	return errors.Join(errs...)
}

// engine is the Buffer engine clause over the local samples table of database db.
func (b BufferOptions) engine(db, target string) string {
	return fmt.Sprintf("Buffer('%s', '%s', %d, %d, %d, %d, %d, %d, %d)", db, target, b.Layers,
		int64(b.MinTime/time.Second), int64(b.MaxTime/time.Second), b.MinRows, b.MaxRows, b.MinBytes, b.MaxBytes)
}

// chooseAsyncInsert decides whether sample INSERTs carry async_insert=1,
// wait_for_async_insert=1, from the configured mode, whether the Buffer table
// is on and the server's features. warn, when set, is worth a log line.
func chooseAsyncInsert(mode string, buffer bool, f features, version string) (use bool, warn string, err error) {
	switch mode {
	case "", AsyncInsertAuto:
		return f.AsyncInsertNative && !buffer, "", nil
	case AsyncInsertOff:
		return false, "", nil
	case AsyncInsertOn:
		if buffer {
			return false, "", errors.New("async_insert on and the buffer table enabled: choose one")
		}
		if !f.AsyncInsert {
			return false, "", fmt.Errorf("async_insert on, but ClickHouse %s has no async_insert (21.11 or later)", version)
		}
		if !f.AsyncInsertNative {
			return true, fmt.Sprintf("ClickHouse %s ignores async_insert for native-protocol INSERTs (23.10 or later gathers them): every INSERT is still written at once", version), nil
		}
		return true, "", nil
	default:
		return false, "", fmt.Errorf("async_insert %q: want auto, on or off", mode)
	}
}

// bufferParamsRE picks the parameter list out of a Buffer table's CREATE statement.
var bufferParamsRE = regexp.MustCompile(`ENGINE = Buffer\(([^)]*)\)`)

// normalizeBufferParams makes two Buffer parameter lists comparable: no spaces, no quotes.
func normalizeBufferParams(s string) string {
	return strings.NewReplacer(" ", "", "'", "", "`", "", "\n", "", "\t", "").Replace(s)
}

// ensureBuffer creates the Buffer table in front of the local samples table
// on one server, replacing one whose thresholds differ (dropping a Buffer
// table flushes it into the samples table first). With a cluster it also
// creates the Distributed table over the shards' Buffer tables. It reports
// whether it replaced an existing table.
func ensureBuffer(ctx context.Context, conn driver.Conn, t tables, b BufferOptions) (replaced bool, err error) {
	db := strings.Trim(t.db, "`")
	target, local := tblSamples, tblBuffer
	if t.cluster != "" {
		target, local = tblSamples+"_local", tblBuffer+"_local"
	}
	want := b.engine(db, target)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, local).Scan(&n); err != nil {
		return false, fmt.Errorf("look for %s: %w", local, err)
	}
	if n > 0 {
		var stmt string
		if err := conn.QueryRow(ctx, "SHOW CREATE TABLE "+t.local(tblBuffer)).Scan(&stmt); err != nil {
			return false, fmt.Errorf("read the definition of %s: %w", local, err)
		}
		m := bufferParamsRE.FindStringSubmatch(stmt)
		wm := bufferParamsRE.FindStringSubmatch("ENGINE = " + want)
		if m != nil && normalizeBufferParams(m[1]) == normalizeBufferParams(wm[1]) {
			n = 0 // as wanted: CREATE ... IF NOT EXISTS below keeps it
		} else {
			if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+t.local(tblBuffer)); err != nil {
				return false, fmt.Errorf("drop %s to change its thresholds: %w", local, err)
			}
			replaced = true
		}
	}
	// The samples columns without codecs (a Buffer table keeps them in memory).
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t.local(tblBuffer)+" (series_id UInt64, ts Int64, value Float64) ENGINE = "+want); err != nil {
		return replaced, fmt.Errorf("create %s: %w", local, err)
	}
	if t.cluster != "" {
		if err := conn.Exec(ctx, distributed(t, tblBuffer)); err != nil {
			return replaced, fmt.Errorf("create %s: %w", tblBuffer, err)
		}
	}
	return replaced, nil
}
