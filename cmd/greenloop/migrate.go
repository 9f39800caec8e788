package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
)

// migrateHeadOverlap is how far before the newest block the head pass starts,
// so that late samples the head holds behind the blocks are copied too.
const migrateHeadOverlap = 73 * time.Hour

// migrateStats counts what a migration read and wrote.
type migrateStats struct {
	units, skipped        int
	series, samples, hist int64
}

// runMigrate copies the embedded store's history into ClickHouse: block by
// block (each recorded as done in ClickHouse, so an interrupted run resumes
// with the next block), then the head. ClickHouse deduplicates by series and
// timestamp, so copying a block twice stores its samples once.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "source: tsdb:DIR (the data_dir of an embedded store; may be in use by a running server)")
	to := fs.String("to", "clickhouse", "target: clickhouse (storage.clickhouse of --config)")
	cfgPath := fs.String("config", "", "server configuration whose storage.clickhouse is the target")
	batch := fs.Int("batch", 100_000, "samples per insert")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: greenloop migrate --from tsdb:DIR --to clickhouse --config FILE\n\nCopies the full history, resumably, and prints the counts.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, ok := strings.CutPrefix(*from, "tsdb:")
	if !ok || dir == "" {
		return fmt.Errorf("--from: want tsdb:DIR, got %q", *from)
	}
	if *to != "clickhouse" {
		return fmt.Errorf("--to: want clickhouse, got %q", *to)
	}
	if *cfgPath == "" {
		return errors.New("--config: the server configuration naming storage.clickhouse is required")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch: must be positive, got %d", *batch)
	}
	cfg, err := config.LoadFile(*cfgPath)
	if err != nil {
		return err
	}
	cfg.Storage.Backend = "clickhouse"
	cfg.DataDir = ""
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: invalid configuration:\n%w", *cfgPath, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opened, err := openStore(ctx, cfg, nil, log)
	if err != nil {
		return err
	}
	defer opened.Close()
	ch, ok := opened.Store.(*clickhouse.Store)
	if !ok {
		return errors.New("the target is not a ClickHouse store")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	src, err := ptsdb.OpenDBReadOnly(abs, "", slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("open %s read-only: %w", abs, err)
	}
	defer src.Close()

	progress := ch.Database() + ".migrate_progress"
	if err := ch.Conn().Exec(ctx, "CREATE TABLE IF NOT EXISTS "+progress+
		" (source String, unit String, series UInt64, samples UInt64, finished DateTime) ENGINE = ReplacingMergeTree(finished) ORDER BY (source, unit)"); err != nil {
		return fmt.Errorf("create %s: %w", progress, err)
	}
	done := map[string]bool{}
	rows, err := ch.Conn().Query(ctx, "SELECT unit FROM "+progress+" WHERE source = ?", abs)
	if err != nil {
		return fmt.Errorf("read %s: %w", progress, err)
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			rows.Close()
			return err
		}
		done[u] = true
	}
	rows.Close()

	blocks, err := src.Blocks()
	if err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	var total migrateStats
	start := time.Now()
	lastMax := int64(math.MinInt64)
	for _, b := range blocks {
		m := b.Meta()
		lastMax = max(lastMax, m.MaxTime)
		unit := "block " + m.ULID.String()
		span := fmt.Sprintf("%s .. %s", time.UnixMilli(m.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(m.MaxTime).UTC().Format(time.RFC3339))
		if done[unit] {
			total.skipped++
			fmt.Fprintf(stdout, "%s (%s): copied by an earlier run, skipped\n", unit, span)
			continue
		}
		q, err := ptsdb.NewBlockQuerier(b, m.MinTime, m.MaxTime)
		if err != nil {
			return fmt.Errorf("%s: %w", unit, err)
		}
		t0 := time.Now()
		st, err := copySeries(ctx, q, ch, *batch)
		q.Close()
		if err != nil {
			return fmt.Errorf("%s: %w (run again to resume with this block)", unit, err)
		}
		if err := recordDone(ctx, ch, progress, abs, unit, st); err != nil {
			return fmt.Errorf("record %s as done: %w", unit, err)
		}
		fmt.Fprintf(stdout, "%s (%s): %d series, %d samples in %s\n", unit, span, st.series, st.samples, time.Since(t0).Round(time.Millisecond))
		total.add(st)
	}
	// The head (write-ahead log): copied on every run, from a little before
	// the newest block, since it may hold late samples behind it.
	headFrom := int64(math.MinInt64)
	if lastMax != math.MinInt64 {
		headFrom = lastMax - migrateHeadOverlap.Milliseconds()
	}
	q, err := src.Querier(headFrom, math.MaxInt64)
	if err != nil {
		return fmt.Errorf("head: %w", err)
	}
	t0 := time.Now()
	st, err := copySeries(ctx, q, ch, *batch)
	q.Close()
	if err != nil {
		return fmt.Errorf("head: %w (run again to resume)", err)
	}
	fmt.Fprintf(stdout, "head (from %s): %d series, %d samples in %s (samples the newest blocks also hold are stored once)\n",
		time.UnixMilli(max(headFrom, 0)).UTC().Format(time.RFC3339), st.series, st.samples, time.Since(t0).Round(time.Millisecond))
	total.add(st)
	fmt.Fprintf(stdout, "copied %d samples of %d series from %d block(s) and the head in %s; %d block(s) skipped as already copied",
		total.samples, total.series, total.units-1, time.Since(start).Round(time.Millisecond), total.skipped)
	if total.hist > 0 {
		fmt.Fprintf(stdout, "; %d native-histogram samples left out (ClickHouse stores floats)", total.hist)
	}
	fmt.Fprintln(stdout)
	return migrateReports(ctx, abs, ch, log, stdout)
}

// migrateReports copies the EU report's operator entries (with who entered
// them and when) and its frozen snapshots from the data directory's file
// stores into ClickHouse, where every server reads them. Both copies skip
// what ClickHouse already holds, so a second run adds nothing.
func migrateReports(ctx context.Context, dataDir string, ch *clickhouse.Store, log *slog.Logger, stdout io.Writer) error {
	inDir, snapDir := reportDirs(config.Server{DataDir: dataDir})
	if _, err := os.Stat(filepath.Dir(inDir)); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(stdout, "report inputs and snapshots: none in the data directory")
		return nil
	}
	if _, err := os.Stat(inDir); err == nil {
		files, err := report.NewFileInputStore(inDir, nil, nil, log)
		if err != nil {
			return err
		}
		all, err := files.All(ctx)
		if err != nil {
			return fmt.Errorf("read report inputs: %w", err)
		}
		to, err := chstore.NewInputStore(ctx, ch.Conn(), ch.Database(), nil, nil, log)
		if err != nil {
			return err
		}
		entries, added := 0, 0
		for _, in := range all {
			for _, h := range in.Fields {
				entries += len(h)
			}
			n, err := to.Import(ctx, in)
			if err != nil {
				return fmt.Errorf("copy report inputs of %s/%s/%d: %w (run again to resume)", in.Tenant, in.Site, in.Year, err)
			}
			added += n
		}
		fmt.Fprintf(stdout, "report inputs: %d entries of %d site-year(s), %d copied, %d already in ClickHouse\n", entries, len(all), added, entries-added)
	}
	if _, err := os.Stat(snapDir); err == nil {
		files, err := report.NewFileSnapshotStore(snapDir, log)
		if err != nil {
			return err
		}
		all, err := files.All(ctx)
		if err != nil {
			return fmt.Errorf("read report snapshots: %w", err)
		}
		to, err := chstore.NewSnapshotStore(ctx, ch.Conn(), ch.Database(), log)
		if err != nil {
			return err
		}
		copied := 0
		for _, snap := range all {
			if _, err := to.Get(ctx, snap.Tenant, snap.ID); err == nil {
				continue
			} else if !errors.Is(err, report.ErrSnapshotNotFound) {
				return fmt.Errorf("snapshot %s: %w", snap.ID, err)
			}
			if err := to.Save(ctx, snap); err != nil {
				return fmt.Errorf("copy snapshot %s: %w (run again to resume)", snap.ID, err)
			}
			copied++
		}
		fmt.Fprintf(stdout, "report snapshots: %d, %d copied, %d already in ClickHouse\n", len(all), copied, len(all)-copied)
	}
	return nil
}

// recordDone marks one unit of the source as copied.
func recordDone(ctx context.Context, ch *clickhouse.Store, table, source, unit string, st migrateStats) error {
	// PrepareBatch, not bound VALUES: the native protocol of older servers
	// (Debian's 18.16) takes inserts as data blocks only.
	b, err := ch.Conn().PrepareBatch(ctx, "INSERT INTO "+table+" (source, unit, series, samples, finished)")
	if err != nil {
		return err
	}
	if err := b.Append(source, unit, uint64(st.series), uint64(st.samples), time.Now()); err != nil {
		return err
	}
	return b.Send()
}

func (s *migrateStats) add(o migrateStats) {
	s.units++
	s.series += o.series
	s.samples += o.samples
	s.hist += o.hist
}

// copySeries copies every float sample q selects into ch, committing every batch samples.
func copySeries(ctx context.Context, q storage.Querier, ch *clickhouse.Store, batch int) (migrateStats, error) {
	var st migrateStats
	app := ch.Appender(ctx)
	pending := 0
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		lset := s.Labels()
		st.series++
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				st.hist++
				continue
			}
			t, v := it.At()
			if _, err := app.Append(0, lset, t, v); err != nil {
				_ = app.Rollback()
				return st, fmt.Errorf("series %s: %w", lset, err)
			}
			st.samples++
			if pending++; pending >= batch {
				if err := app.Commit(); err != nil {
					return st, err
				}
				app, pending = ch.Appender(ctx), 0
				if err := ctx.Err(); err != nil {
					return st, err
				}
			}
		}
		if err := it.Err(); err != nil {
			_ = app.Rollback()
			return st, fmt.Errorf("series %s: %w", lset, err)
		}
	}
	if err := ss.Err(); err != nil {
		_ = app.Rollback()
		return st, err
	}
	return st, app.Commit()
}
