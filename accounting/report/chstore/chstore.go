// Package chstore keeps the EU report's operator inputs and frozen snapshots
// in ClickHouse (report.InputStore and report.SnapshotStore), so that several
// greenloop servers sharing one ClickHouse answer every request alike.
//
// Both tables are append-only MergeTree tables, which every ClickHouse from
// 18.16 on supports: an input Put is one INSERT of one row per field (one
// part, so readers see all of a Put or none of it), and the current value of
// a field is its latest entry. Two servers writing the same site and year at
// once both append, and nothing is lost. A snapshot is one row holding its
// canonical JSON; saving an id again is a no-op, and should two servers race
// to save one id, reads pick one row of it deterministically (the bytes are
// the same: the id holds the start of their hash).
//
// The tables live where the connection points: the server (or fail-over
// group) of a single-server store. On a cluster, callers hand a connection to
// one shard only (the first of the configuration); these tables are a few
// kilobytes per site and year, and one copy on one server means that a read
// sees every write that returned, whichever greenloop server made it, which a
// fail-over connection across shards would not guarantee. Where the series
// store's tables are replicated (a cluster whose shards have replicas), both
// tables are ReplicatedMergeTree tables beside them (replicated.go): created
// on each replica of the first shard, they survive the loss of one.
package chstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
)

// Table names in the database.
const (
	InputsTable    = "report_inputs"
	SnapshotsTable = "report_snapshots"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// table returns the quoted db.table name, checking the database name.
func table(database, name string) (string, error) {
	if !identRE.MatchString(database) {
		return "", fmt.Errorf("database %q is not a plain identifier", database)
	}
	return "`" + database + "`.`" + name + "`", nil
}

// newID returns a random 128-bit hex id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// execer is what schema creation needs of a driver.Conn.
type execer interface {
	Exec(ctx context.Context, query string, args ...any) error
}

// ensure creates the database and a table if missing.
func ensure(ctx context.Context, c execer, database, create string) error {
	if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`"); err != nil {
		return fmt.Errorf("create database %s: %w", database, err)
	}
	if err := c.Exec(ctx, create); err != nil {
		return err
	}
	return nil
}
