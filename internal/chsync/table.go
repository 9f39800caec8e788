package chsync

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Version returns the version of a row that replaces one of version cur,
// taken from now, so that a clock stepping back does not let an older
// change win: now in Unix nanoseconds (0 before 1970), or cur+1 where that
// is not above cur.
func Version(now time.Time, cur uint64) uint64 {
	v := uint64(max(now.UnixNano(), 0))
	if v <= cur {
		v = cur + 1
	}
	return v
}

// Insert writes rows into table (its columns, comma-separated, in the
// order values gives them) in one batch: one part, all of them or none.
// No rows writes nothing.
func Insert[R any](ctx context.Context, conn driver.Conn, table, columns string, rows []R, values func(R) []any) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	defer b.Close()
	for _, r := range rows {
		if err := b.Append(values(r)...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// Select runs query (reading table) and returns its rows, each as scan
// reads it from rows (one rows.Scan). Errors name table.
func Select[R any](ctx context.Context, conn driver.Conn, table, query string, args []any, scan func(rows driver.Rows) (R, error)) ([]R, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var out []R
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		out = append(out, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}

// SamplesLocal is the series store's local samples table on a cluster
// (ingest/clickhouse); its engine tells whether the cluster is replicated.
const SamplesLocal = "samples_local"

// Engine returns the engine of the table name in database on the server
// behind conn, of the MergeTree family family ("MergeTree",
// "ReplacingMergeTree") with the engine arguments args ("" or "version"):
// family(args), or, where the series store's samples table on that server
// is replicated, Replicated+family registered in ZooKeeper beside it (the
// samples' path with the table's name in place of samples_local, so under
// the same {shard}), with the server's {replica} macro, then args. The
// table then lives on every replica of the first shard, and a failed first
// replica loses none of it. Engine refuses an existing table of the other
// kind, which it does not convert.
func Engine(ctx context.Context, conn driver.Conn, database, name, family, args string) (string, error) {
	var samplesPath, existing string
	if err := scanOne(ctx, conn, &samplesPath, "SELECT zookeeper_path FROM system.replicas WHERE database = ? AND table = ?", database, SamplesLocal); err != nil {
		return "", fmt.Errorf("read system.replicas: %w", err)
	}
	engine := family
	if args != "" {
		engine += "(" + args + ")"
	}
	if samplesPath != "" {
		i := strings.LastIndex(samplesPath, SamplesLocal)
		if i < 0 || strings.ContainsAny(samplesPath, `'\`) {
			return "", fmt.Errorf("zookeeper path %q of %s.%s: want one naming %s", samplesPath, database, SamplesLocal, SamplesLocal)
		}
		engine = fmt.Sprintf("Replicated%s('%s', '{replica}'", family, samplesPath[:i]+name+samplesPath[i+len(SamplesLocal):])
		if args != "" {
			engine += ", " + args
		}
		engine += ")"
	}
	if err := scanOne(ctx, conn, &existing, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, name); err != nil {
		return "", fmt.Errorf("read system.tables: %w", err)
	}
	if existing != "" && strings.HasPrefix(existing, "Replicated") != (samplesPath != "") {
		return "", fmt.Errorf("table %s.%s is a %s table but the series store's samples table there is %s;"+
			" greenloop does not convert it: move it as docs/operator.md says", database, name, existing,
			map[bool]string{true: "replicated", false: "not replicated"}[samplesPath != ""])
	}
	return engine, nil
}

// scanOne reads the one string column of query's rows into dst (the last
// row's; none leaves it).
func scanOne(ctx context.Context, conn driver.Conn, dst *string, query string, args ...any) error {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dst); err != nil {
			return err
		}
	}
	return rows.Err()
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CreateDatabase creates database if missing and returns the quoted name
// of its table name, `database`.`name`. database must be a plain
// identifier (letters, digits, underscores; not a digit first), as name is.
func CreateDatabase(ctx context.Context, conn driver.Conn, database, name string) (string, error) {
	if !identRE.MatchString(database) {
		return "", fmt.Errorf("database %q is not a plain identifier", database)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`"); err != nil {
		return "", fmt.Errorf("create database %s: %w", database, err)
	}
	return "`" + database + "`.`" + name + "`", nil
}
