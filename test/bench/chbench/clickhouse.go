package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// clientPackage is the Debian package of clickhouse-client.
const clientPackage = "clickhouse-client"

// chClient runs clickhouse-client against one server.
type chClient struct {
	bin        string
	host, port string
}

func newCHClient(bin, addr string) (*chClient, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install the Debian package %s: %w", bin, clientPackage, err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("clickhouse address %q: %w", addr, err)
	}
	return &chClient{bin: p, host: host, port: port}, nil
}

// clientRun is one finished clickhouse-client process.
type clientRun struct {
	Wall time.Duration
	CPU  float64 // user + system seconds of the client process
}

// exec runs one query, with stdin (may be nil) as the INSERT's data, and returns its output.
func (c *chClient) exec(ctx context.Context, query string, stdin io.Reader) ([]byte, clientRun, error) {
	cmd := exec.CommandContext(ctx, c.bin, "--host", c.host, "--port", c.port, "--query", query)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	run := clientRun{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		run.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return nil, run, fmt.Errorf("clickhouse-client --query %q: %w: %s", truncate(query, 120), err, truncate(strings.TrimSpace(errb.String()), 400))
	}
	return out.Bytes(), run, nil
}

// query runs a query that needs no input.
func (c *chClient) query(ctx context.Context, q string) ([]byte, error) {
	out, _, err := c.exec(ctx, q, nil)
	return out, err
}

// uints runs a query answering one row of n unsigned integers.
func (c *chClient) uints(ctx context.Context, q string, n int) ([]uint64, error) {
	out, err := c.query(ctx, q)
	if err != nil {
		return nil, err
	}
	vs, err := parseUints(out, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	return vs, nil
}

// serverEvents are the system.events counters the report shows.
var serverEvents = []string{"InsertQuery", "InsertedRows", "Merge", "MergedRows"}

// events reads the server's serverEvents counters (absent ones are zero).
func (c *chClient) events(ctx context.Context) (map[string]uint64, error) {
	out, err := c.query(ctx, "SELECT event, value FROM system.events WHERE event IN ('"+strings.Join(serverEvents, "', '")+"')")
	if err != nil {
		return nil, err
	}
	ev, err := parseEvents(out)
	if err != nil {
		return nil, fmt.Errorf("system.events: %w", err)
	}
	return ev, nil
}

// insertFile times `INSERT INTO table (series_id, ts, value) FORMAT Native` fed from a file.
func (c *chClient) insertFile(ctx context.Context, table, path string) (clientRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return clientRun{}, err
	}
	defer f.Close()
	_, run, err := c.exec(ctx, "INSERT INTO "+table+" (series_id, ts, value) FORMAT Native", f)
	return run, err
}

// createGreenloopSchema creates database db with greenloop's own schema (the
// ingest/clickhouse migrations: samples table, rollup tables and their
// materialized views), so clickhouse-client inserts into the very table
// layout greenloop writes.
func createGreenloopSchema(ctx context.Context, addr, db string) error {
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{addr}, Database: db})
	if err != nil {
		return fmt.Errorf("create greenloop schema in database %s: %w", db, err)
	}
	return st.Close()
}

// prepareInput writes the rows as Native, loads them into a staging table and
// has clickhouse-client export them again as Native: the file the client's
// insert reads is ClickHouse's own, in the blocks clickhouse-client writes.
func prepareInput(ctx context.Context, c *chClient, r rows, dir string) (string, int64, error) {
	raw := filepath.Join(dir, "rows-go.native")
	f, err := os.Create(raw)
	if err != nil {
		return "", 0, err
	}
	err = writeNative(f, r, 65536)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS chbench_stage",
		"DROP TABLE IF EXISTS chbench_stage.rows",
		// Log keeps the insertion order (one stream).
		"CREATE TABLE chbench_stage.rows (series_id UInt64, ts Int64, value Float64) ENGINE = Log",
	} {
		if _, err := c.query(ctx, q); err != nil {
			return "", 0, err
		}
	}
	if _, err := c.insertFile(ctx, "chbench_stage.rows", raw); err != nil {
		return "", 0, fmt.Errorf("stage rows: %w", err)
	}
	out := filepath.Join(dir, "rows.native")
	of, err := os.Create(out)
	if err != nil {
		return "", 0, err
	}
	cmd := exec.CommandContext(ctx, c.bin, "--host", c.host, "--port", c.port, "--max_threads", "1",
		"--query", "SELECT series_id, ts, value FROM chbench_stage.rows FORMAT Native")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = of, &errb
	err = cmd.Run()
	if cerr := of.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("export staged rows as Native: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	vs, err := c.uints(ctx, "SELECT count() FROM chbench_stage.rows", 1)
	if err != nil {
		return "", 0, err
	}
	if vs[0] != uint64(r.len()) {
		return "", 0, fmt.Errorf("staged %d rows, want %d", vs[0], r.len())
	}
	if _, err := c.query(ctx, "DROP DATABASE chbench_stage"); err != nil {
		return "", 0, err
	}
	_ = os.Remove(raw)
	fi, err := os.Stat(out)
	if err != nil {
		return "", 0, err
	}
	return out, fi.Size(), nil
}

// serverPID finds the clickhouse-server process chtest started in dir.
func serverPID(srv *chtest.Server) (int, error) {
	arg := "--config-file=" + filepath.Join(srv.Dir, "config.xml")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && cmdlineHas(b, arg) {
			return pid, nil
		}
	}
	return 0, errors.New("clickhouse-server process not found in /proc")
}

// verification is what ClickHouse holds after a round.
type verification struct {
	ClientRows         uint64 `json:"client_rows"`
	ClientDistinct     uint64 `json:"client_distinct_series_ts"`
	GreenloopRawRows   uint64 `json:"greenloop_rows_before_optimize"`
	GreenloopDistinct  uint64 `json:"greenloop_distinct_series_ts"`
	GreenloopFinalRows uint64 `json:"greenloop_rows_after_optimize_final"`
	GreenloopSeries    uint64 `json:"greenloop_series_rows"`
	// RowsDiffering counts (series_id, ts, value) rows not found exactly once in each table.
	RowsDiffering uint64 `json:"rows_differing"`
}

// verify counts the rows of both databases and compares them row by row.
func verify(ctx context.Context, c *chClient, clientDB, glDB string, want uint64) (verification, error) {
	var v verification
	vs, err := c.uints(ctx, "SELECT count(), uniqExact(series_id, ts) FROM "+clientDB+".samples", 2)
	if err != nil {
		return v, err
	}
	v.ClientRows, v.ClientDistinct = vs[0], vs[1]
	if vs, err = c.uints(ctx, "SELECT count(), uniqExact(series_id, ts) FROM "+glDB+".samples", 2); err != nil {
		return v, err
	}
	v.GreenloopRawRows, v.GreenloopDistinct = vs[0], vs[1]
	if _, err := c.query(ctx, "OPTIMIZE TABLE "+glDB+".samples FINAL"); err != nil {
		return v, err
	}
	if vs, err = c.uints(ctx, "SELECT count() FROM "+glDB+".samples", 1); err != nil {
		return v, err
	}
	v.GreenloopFinalRows = vs[0]
	if vs, err = c.uints(ctx, "SELECT count() FROM "+glDB+".series", 1); err != nil {
		return v, err
	}
	v.GreenloopSeries = vs[0]
	q := fmt.Sprintf("SELECT count() FROM (SELECT series_id, ts, value, sum(a) AS na, sum(b) AS nb FROM ("+
		"SELECT series_id, ts, value, 1 AS a, 0 AS b FROM %s.samples UNION ALL "+
		"SELECT series_id, ts, value, 0 AS a, 1 AS b FROM %s.samples) "+
		"GROUP BY series_id, ts, value HAVING na != 1 OR nb != 1)", clientDB, glDB)
	if vs, err = c.uints(ctx, q, 1); err != nil {
		return v, err
	}
	v.RowsDiffering = vs[0]
	var errs []error
	check := func(name string, got uint64) {
		if got != want {
			errs = append(errs, fmt.Errorf("%s = %d, want %d", name, got, want))
		}
	}
	check("client rows", v.ClientRows)
	check("client distinct (series_id, ts)", v.ClientDistinct)
	check("greenloop distinct (series_id, ts)", v.GreenloopDistinct)
	check("greenloop rows after OPTIMIZE FINAL", v.GreenloopFinalRows)
	if v.RowsDiffering != 0 {
		errs = append(errs, fmt.Errorf("%d rows differ between %s and %s", v.RowsDiffering, clientDB, glDB))
	}
	return v, errors.Join(errs...)
}
