// Package clickhouse is greenloop's ClickHouse series store: the ingest.Store
// interface over a schema greenloop creates and migrates itself (series,
// deduplicated raw samples, 1-minute and 1-hour rollups kept by materialized
// views), on one server or a cluster of shards behind Distributed tables.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
)

// Options configure the store. Zero fields take the defaults documented on each.
type Options struct {
	// Addrs are the servers' native-protocol addresses (host:port). On a single
	// server (Cluster empty) they are alternatives for fail-over; with Cluster
	// set, each is one server of the cluster (every replica of every shard)
	// and the schema is created on every one.
	Addrs []string
	// Database holds greenloop's tables; empty means "greenloop". It is created if missing.
	Database string
	// Username and Password authenticate; empty Username means "default".
	Username, Password string
	// Cluster names the remote_servers cluster of the Distributed tables; empty
	// means a single server.
	Cluster string
	// Replication is "auto" (empty: the same), "on" or "off": whether the
	// cluster's local tables are Replicated tables (see replica.go). auto
	// replicates where a shard of the cluster has more than one replica.
	Replication string
	// ZooKeeperPath is the ZooKeeper path template of a replicated table;
	// empty means DefaultZooKeeperPath.
	ZooKeeperPath string
	// Retention is how long raw samples are kept; zero means 15 days.
	Retention time.Duration
	// MinuteRetention is how long the 1-minute rollup is kept; zero means Retention.
	MinuteRetention time.Duration
	// HourRetention is how long the 1-hour rollup is kept; zero means 400 days.
	// It is never shorter than MinuteRetention.
	HourRetention time.Duration
	// RetentionInterval is how often old partitions are dropped on servers
	// without TTL, and series left without samples in any table (raw or
	// rollup) are deleted; zero means one hour.
	RetentionInterval time.Duration
	// BatchSize is the most rows one INSERT carries; larger commits are split.
	// Zero means 100,000.
	BatchSize int
	// FlushInterval is how long a commit waits for concurrent commits to share
	// its INSERT (ClickHouse prefers few large inserts); zero means 5 ms (1 ms
	// with Buffer, which gathers rows on the server), a negative value sends
	// each commit at once.
	FlushInterval time.Duration
	// AsyncInsert is "auto" (empty: the same), "on" or "off": whether sample
	// INSERTs carry async_insert=1 and wait_for_async_insert=1, so that the
	// server gathers concurrent small INSERTs into one part and answers each
	// once that part is written (the acknowledgement still means stored).
	// auto uses it on servers that gather native-protocol INSERTs (23.10 and
	// later) unless Buffer is enabled; on fails at Open on servers before 21.11.
	AsyncInsert string
	// Compression is "auto" (empty: the same), "lz4" or "none": whether
	// blocks travel LZ4-compressed, both ways (reads and INSERTs). auto
	// means none when every address is a loopback one: on the 2-core VM a
	// day of 10,000 series (347 MB of columns) read in 0.89-0.95 s
	// uncompressed against 1.17-1.26 s with LZ4, and compressing INSERTs
	// cost greenloop about a tenth of its ingest CPU, to save a copy.
	Compression string
	// Buffer puts a Buffer table in front of the samples table (see
	// BufferOptions: faster on servers without async_insert, but rows only in
	// the buffer's memory are lost if the server crashes).
	Buffer BufferOptions
	// WriteTimeout bounds one INSERT, connection included; zero means 10 s. A
	// commit that runs past it fails with ErrUnavailable.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting to a server; zero means 5 s.
	DialTimeout time.Duration
	// LookbackDelta must equal the PromQL engine's lookback delta; it lets
	// Select recognise step-aligned instant selections that the rollups can
	// answer. Zero means 5 minutes (the engine's default).
	LookbackDelta time.Duration
	// DisableRollupReads makes Select always read raw samples.
	DisableRollupReads bool
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for retention; nil means time.Now.
	Now func() time.Time
}

// ErrUnavailable wraps every failure to reach ClickHouse: connection refused
// or reset, a timeout, a server that is overloaded (too many parts, too many
// queries, memory limit). Nothing of the failed batch can be assumed stored,
// and resending it is safe (writes are idempotent), so an HTTP layer answers
// 503 with Retry-After. Check with errors.Is.
var ErrUnavailable = errors.New("clickhouse unavailable")

// labelCacheSize is how many series' label sets a store keeps for reads
// (about 200 bytes each).
const labelCacheSize = 1 << 18

// ErrHistogramsUnsupported is returned for native histogram samples, which
// this backend does not store.
var ErrHistogramsUnsupported = errors.New("clickhouse store: native histograms are not supported")

// Store is an open ClickHouse store.
type Store struct {
	conn   driver.Conn   // reads and writes (Distributed tables with a cluster)
	shards []driver.Conn // one per address with a cluster: DDL, retention, disk size
	// reader reads raw samples column by column (clickhouse-go scans
	// rows one at a time, four times the server's time on a large read).
	reader *chnative.Client
	// compress: LZ4 blocks both ways, on reads and INSERTs (Options.Compression).
	compress bool
	t        tables
	f        features
	opts     Options
	ret      retention
	log      *slog.Logger
	now      func() time.Time

	// labels caches the label sets of series read (seriesLabels).
	labels labelCache

	// known holds the ids (uint64 keys) of series whose series row is
	// stored. A sync.Map: every sample looks its series up, from every
	// request's goroutine, and a read-write mutex's shared counter cost
	// more than the lookup.
	known sync.Map

	// async: sample INSERTs carry async_insert=1, wait_for_async_insert=1.
	async bool
	// samples is the table sample INSERTs and raw reads go to: samples, or
	// samples_buffer with Options.Buffer.
	samples string

	// rollupReads counts the Selects answered from each rollup (index in rollupBuckets).
	rollupReads [2]atomic.Uint64

	reqs      chan *flushReq
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ ingest.Store = (*Store)(nil)

// Open connects, checks the server's version, creates the database and applies
// the schema migrations (on every shard with a cluster), enforces retention
// once and starts the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("clickhouse store: no addrs")
	}
	if o.Database == "" {
		o.Database = "greenloop"
	}
	if !validIdent(o.Database) {
		return nil, fmt.Errorf("clickhouse store: database %q is not a plain identifier", o.Database)
	}
	if o.Cluster != "" && !validIdent(o.Cluster) {
		return nil, fmt.Errorf("clickhouse store: cluster %q is not a plain identifier", o.Cluster)
	}
	if err := checkReplicationOptions(o.Replication, o.ZooKeeperPath, o.Cluster); err != nil {
		return nil, fmt.Errorf("clickhouse store: %w: %w", ErrReplication, err)
	}
	if o.Username == "" {
		o.Username = "default"
	}
	if o.Retention <= 0 {
		o.Retention = 15 * 24 * time.Hour
	}
	if o.MinuteRetention <= 0 {
		o.MinuteRetention = o.Retention
	}
	if o.HourRetention <= 0 {
		o.HourRetention = 400 * 24 * time.Hour
	}
	o.HourRetention = max(o.HourRetention, o.MinuteRetention)
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = time.Hour
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100_000
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 5 * time.Millisecond
		if o.Buffer.Enabled {
			o.FlushInterval = time.Millisecond
		}
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	// The mode and its combination with Buffer (the server's part is checked in setup).
	if _, _, err := chooseAsyncInsert(o.AsyncInsert, o.Buffer.Enabled, features{AsyncInsert: true, AsyncInsertNative: true}, ""); err != nil {
		return nil, fmt.Errorf("clickhouse store: %w", err)
	}
	if o.Buffer.Enabled {
		o.Buffer = o.Buffer.withDefaults()
		if err := o.Buffer.check(o.BatchSize); err != nil {
			return nil, fmt.Errorf("clickhouse store: %w", err)
		}
	}
	if o.LookbackDelta <= 0 {
		o.LookbackDelta = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{
		t:       tables{db: quoteIdent(o.Database), cluster: o.Cluster, replication: o.Replication, zkPath: o.ZooKeeperPath},
		opts:    o,
		ret:     retention{raw: o.Retention, minute: o.MinuteRetention, hour: o.HourRetention},
		log:     o.Logger,
		now:     o.Now,
		labels:  labelCache{max: labelCacheSize},
		samples: tblSamples,
		reqs:    make(chan *flushReq),
		stop:    make(chan struct{}),
	}
	var err error
	if s.compress, err = compression(o.Compression, o.Addrs); err != nil {
		return nil, fmt.Errorf("clickhouse store: %w", err)
	}
	if s.conn, err = s.dial(o.Addrs); err != nil {
		return nil, err
	}
	s.shards = []driver.Conn{s.conn}
	s.reader = chnative.New(chnative.Options{Addrs: o.Addrs, Username: o.Username, Password: o.Password,
		DialTimeout: o.DialTimeout, Compress: s.compress})
	if o.Cluster != "" {
		s.shards = nil
		for _, a := range o.Addrs {
			c, err := s.dial([]string{a})
			if err != nil {
				s.closeConns()
				return nil, err
			}
			s.shards = append(s.shards, c)
		}
	}
	if err := s.setup(ctx); err != nil {
		s.closeConns()
		return nil, err
	}
	s.wg.Add(2)
	go s.flusher()
	go s.retentionLoop()
	return s, nil
}

func (s *Store) dial(addrs []string) (driver.Conn, error) {
	var comp *ch.Compression
	if s.compress {
		comp = &ch.Compression{Method: ch.CompressionLZ4}
	}
	conn, err := ch.Open(&ch.Options{
		Addr:        addrs,
		Protocol:    ch.Native,
		Auth:        ch.Auth{Username: s.opts.Username, Password: s.opts.Password, Database: "default"},
		DialTimeout: s.opts.DialTimeout,
		ReadTimeout: max(s.opts.WriteTimeout, 30*time.Second),
		Compression: comp,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse store: connect to %v: %w", addrs, err)
	}
	return conn, nil
}

// setup checks versions, migrates every server and applies retention.
func (s *Store) setup(ctx context.Context) error {
	for i, c := range s.shards {
		v, err := c.ServerVersion()
		if err != nil {
			return classify(fmt.Errorf("clickhouse store: server version of %s: %w", s.addr(i), err))
		}
		f := featuresFor(v.Version.Major, v.Version.Minor)
		if i == 0 {
			s.f = f
		} else if f != s.f {
			return fmt.Errorf("clickhouse store: shard %s runs %d.%d, whose features differ from the first shard's", s.addr(i), v.Version.Major, v.Version.Minor)
		}
		applied, err := migrate(ctx, c, s.t, f, s.now())
		if err != nil {
			return classify(fmt.Errorf("clickhouse store: migrate %s on %s: %w", s.opts.Database, s.addr(i), err))
		}
		version := fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch)
		if s.opts.Buffer.Enabled {
			replaced, err := ensureBuffer(ctx, c, s.t, s.opts.Buffer)
			if err != nil {
				return classify(fmt.Errorf("clickhouse store: buffer table on %s: %w", s.addr(i), err))
			}
			if replaced {
				s.log.Info("clickhouse buffer table replaced with new thresholds", "addr", s.addr(i))
			}
			s.samples = tblBuffer
		}
		if i == 0 {
			use, warn, err := chooseAsyncInsert(s.opts.AsyncInsert, s.opts.Buffer.Enabled, f, version)
			if err != nil {
				return fmt.Errorf("clickhouse store: %s: %w", s.addr(i), err)
			}
			if warn != "" {
				s.log.Warn("clickhouse async_insert has no effect", "addr", s.addr(i), "reason", warn)
			}
			s.async = use
		}
		s.log.Info("clickhouse schema ready", "addr", s.addr(i), "version", version,
			"database", s.opts.Database, "applied_migrations", applied, "codecs", f.Codecs, "ttl", f.TTL,
			"async_insert", s.async, "buffer", s.opts.Buffer.Enabled)
	}
	return s.applyRetention(ctx, true)
}

func (s *Store) addr(i int) string {
	if s.opts.Cluster != "" {
		return s.opts.Addrs[i]
	}
	return fmt.Sprint(s.opts.Addrs)
}

// applyRetention enforces retention on every server: it sets the TTLs
// (newer servers, when setTTL: at Open) or drops old partitions (older
// servers), then deletes the series rows left without samples in any table.
func (s *Store) applyRetention(ctx context.Context, setTTL bool) error {
	defer func() {
		// A series pruned here (or by another greenloop sharing the database)
		// must be stored again if it reports again: forget what is stored.
		s.known.Clear()
	}()
	for i, c := range s.shards {
		switch {
		case s.f.TTL && setTTL:
			for _, stmt := range retentionTTL(s.t, s.ret) {
				if err := c.Exec(ctx, stmt); err != nil {
					return classify(fmt.Errorf("clickhouse store: set TTL on %s: %w", s.addr(i), err))
				}
			}
		case !s.f.TTL:
			dropped, err := dropOldPartitions(ctx, c, s.t, s.ret, s.now())
			if err != nil {
				return classify(fmt.Errorf("clickhouse store: retention on %s: %w", s.addr(i), err))
			}
			if len(dropped) > 0 {
				s.log.Info("clickhouse retention dropped partitions", "addr", s.addr(i), "partitions", dropped)
			}
		}
		n, err := pruneSeries(ctx, c, s.t, s.samples, s.now())
		if err != nil {
			return classify(fmt.Errorf("clickhouse store: series retention on %s: %w", s.addr(i), err))
		}
		if n > 0 {
			s.log.Info("clickhouse retention deleted series without samples", "addr", s.addr(i), "series", n)
		}
	}
	return nil
}

func (s *Store) retentionLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.RetentionInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.applyRetention(ctx, false); err != nil {
				s.log.Warn("clickhouse retention failed", "err", err)
			}
			cancel()
		}
	}
}

// Stats implements ingest.Store: Series counts every stored series (ClickHouse
// has no head), MinTime/MaxTime bound the raw samples, DiskBytes sums the
// active parts of the database on every server.
func (s *Store) Stats(ctx context.Context) (ingest.Stats, error) {
	var st ingest.Stats
	if err := s.conn.QueryRow(ctx, "SELECT uniqExact(series_id) FROM "+s.t.q(tblSeries)).Scan(&st.Series); err != nil {
		return st, classify(fmt.Errorf("clickhouse store: count series: %w", err))
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count(), min(ts), max(ts) FROM "+s.t.q(s.samples)).Scan(&n, &st.MinTime, &st.MaxTime); err != nil {
		return st, classify(fmt.Errorf("clickhouse store: sample time range: %w", err))
	}
	if n == 0 {
		st.MinTime, st.MaxTime = 0, 0
	}
	for i, c := range s.shards {
		var b uint64
		if err := c.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active", s.opts.Database).Scan(&b); err != nil {
			return st, classify(fmt.Errorf("clickhouse store: disk size on %s: %w", s.addr(i), err))
		}
		st.DiskBytes += int64(b)
	}
	return st, nil
}

// Close stops the writer (pending commits fail) and closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
	return s.closeConns()
}

func (s *Store) closeConns() error {
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	if s.opts.Cluster != "" {
		for _, c := range s.shards {
			errs = append(errs, c.Close())
		}
	}
	s.shards, s.conn = nil, nil
	return errors.Join(errs...)
}

// compression says whether blocks travel LZ4-compressed (see
// Options.Compression).
func compression(mode string, addrs []string) (bool, error) {
	switch mode {
	case "lz4":
		return true, nil
	case "none":
		return false, nil
	case "", "auto":
		for _, a := range addrs {
			if !isLoopback(a) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("compression %q: want auto, lz4 or none", mode)
}

// isLoopback reports whether addr (host:port) names this machine by a
// loopback address or "localhost".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Conn exposes the connection for benchmarks and maintenance tools.
func (s *Store) Conn() driver.Conn { return s.conn }

// Database is the database the store's tables live in.
func (s *Store) Database() string { return s.opts.Database }

// Transient server error codes: the server is there but cannot take the work now.
var transientCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	225: true, // NO_ZOOKEEPER: a replicated table without its ZooKeeper for now
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY: a replica that lost its ZooKeeper session
	252: true, // TOO_MANY_PARTS
	279: true, // ALL_CONNECTION_TRIES_FAILED
	319: true, // UNKNOWN_STATUS_OF_INSERT
	999: true, // KEEPER_EXCEPTION: ZooKeeper connection loss or session expiry
}

// isUnavailable reports whether err means ClickHouse could not be reached or could not take the work now.
func isUnavailable(err error) bool {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return transientCodes[ex.Code]
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, ch.ErrAcquireConnTimeout) || errors.Is(err, net.ErrClosed)
}

// classify wraps err with ErrUnavailable when it is a failure to reach ClickHouse.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
