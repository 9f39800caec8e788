// Package queue is the agent's durable store-and-forward queue: a bounded,
// crash-safe FIFO of opaque records (encoded remote_write batches) kept in
// segment files, which a sender reads, delivers and then acknowledges.
//
// Delivery is at least once: a record is removed only after Ack, and the
// read position survives restarts, so a record acknowledged before a crash is
// never returned again while one that was not is returned again.
//
// A Queue is safe for use by one producer goroutine (Append) and one consumer
// goroutine (Next, Ack) at the same time; Stats and Close may be called from
// any goroutine.
package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrRecordTooLarge is returned by Append for a record larger than
	// Options.MaxBytes/2 (or the absolute limit of 256 MiB).
	ErrRecordTooLarge = errors.New("queue: record too large")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrUnknownID is returned by Ack for an ID this queue never handed out.
	ErrUnknownID = errors.New("queue: unknown record ID")
)

// SyncMode says when appended records are flushed to stable storage.
type SyncMode int

const (
	// SyncInterval (the default) fsyncs the active segment every
	// SyncPolicy.Interval when something was appended. A process crash loses
	// nothing (every Append has reached the kernel); a power loss or kernel
	// crash can lose up to the last Interval of appends.
	SyncInterval SyncMode = iota
	// SyncEveryAppend fsyncs after every Append: nothing that Append
	// returned for is lost even on power loss, at the cost of one fsync per
	// record (milliseconds on most disks).
	SyncEveryAppend
	// SyncNever leaves write-back to the operating system (segments are
	// still fsynced on rotation and Close). A process crash loses nothing; a
	// power loss can lose whatever the kernel had not yet written back
	// (typically up to about 30 s of appends).
	SyncNever
)

// SyncPolicy is the fsync policy of a Queue. Its zero value is SyncInterval
// with a 1 s interval.
type SyncPolicy struct {
	Mode SyncMode
	// Interval between fsyncs for SyncInterval; zero means 1 s.
	Interval time.Duration
}

// Options configures Open.
type Options struct {
	// MaxBytes bounds the size of all segment files together, framing
	// included. Required, at least 4 KiB. When an Append would exceed it the
	// oldest segments are dropped, pending or not.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started; zero
	// means 8 MiB. It is lowered to MaxBytes/4 so that dropping the oldest
	// segment frees a useful share of the queue.
	SegmentBytes int64
	// Sync is the fsync policy; see SyncMode for what each one risks.
	Sync SyncPolicy
	// Logger receives corruption and overflow warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock for append times; nil means time.Now.
	Now func() time.Time
}

// ID identifies a record's position in the queue. IDs are ordered: Ack(id)
// acknowledges every record returned before it as well.
type ID struct {
	Segment uint64 // sequence number of the segment file
	Index   int    // record number within the segment, from 0
	End     int64  // file offset just past the record
}

// String formats the ID as segment/index.
func (id ID) String() string { return fmt.Sprintf("%d/%d", id.Segment, id.Index) }

// Record is a pending record as returned by Next.
type Record struct {
	Data     []byte // owned by the caller
	ID       ID
	Appended time.Time
}

// Stats describes the queue's contents. Bytes are on-disk bytes, framing
// included.
type Stats struct {
	PendingRecords int64
	PendingBytes   int64
	// OldestAppended is the append time of the oldest pending record; zero
	// when nothing is pending.
	OldestAppended time.Time
	// DroppedRecords and DroppedBytes count pending records dropped to stay
	// within MaxBytes since Open.
	DroppedRecords int64
	DroppedBytes   int64
	// CorruptBytes counts bytes found corrupt (bad checksum, torn tail) and
	// discarded since Open.
	CorruptBytes int64
	Segments     int
}

const (
	defaultSegmentBytes = 8 << 20
	defaultSyncInterval = time.Second
	minMaxBytes         = 4 << 10
	dropWarnEvery       = time.Minute
	ackName             = "ack"
	ackTmpName          = "ack.tmp"
	segExt              = ".seg"
	readChunk           = 256 << 10
)

type segment struct {
	seq     uint64
	size    int64 // bytes of valid content, magic included
	records int
	f       *os.File // write handle, only for the active segment
}

// Queue is a durable FIFO of records; see the package comment.
type Queue struct {
	lock     *os.File // flock on dir/lock, held while open
	dir      string
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	segBytes int64
	maxRec   int

	mu       sync.Mutex
	closed   bool
	segs     []*segment // oldest first; the last one may be active
	active   *segment   // segment being appended to, nil until the first Append
	nextSeq  uint64
	total    int64 // sum of segs[i].size
	headOff  int64 // read position in segs[0]
	headIdx  int   // records before headOff in segs[0]
	dirty    bool  // appended since the last fsync
	rf       *os.File
	rfSeq    uint64
	wbuf     []byte
	rbuf     []byte
	dropped  struct{ recs, bytes int64 }
	corrupt  int64
	warnAt   time.Time // last overflow warning
	unwarned struct{ recs, bytes int64 }

	stop chan struct{}
	done chan struct{}
}

// Open opens the queue in dir, creating dir if needed. It validates every
// segment: a torn or corrupt tail is truncated and logged, and a segment
// that is corrupt in the middle loses the rest of its records (counted in
// Stats.CorruptBytes and logged). Reading resumes at the first record not
// acknowledged.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.MaxBytes < minMaxBytes {
		return nil, fmt.Errorf("queue: MaxBytes must be at least %d, got %d", minMaxBytes, opts.MaxBytes)
	}
	if opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("queue: negative SegmentBytes %d", opts.SegmentBytes)
	}
	switch opts.Sync.Mode {
	case SyncInterval, SyncEveryAppend, SyncNever:
	default:
		return nil, fmt.Errorf("queue: unknown sync mode %d", opts.Sync.Mode)
	}
	if opts.Sync.Interval < 0 {
		return nil, fmt.Errorf("queue: negative sync interval %v", opts.Sync.Interval)
	}
	if opts.Sync.Interval == 0 {
		opts.Sync.Interval = defaultSyncInterval
	}
	q := &Queue{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		segBytes: opts.SegmentBytes,
		maxRec:   int(min(opts.MaxBytes/2, maxFrameData)),
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.segBytes == 0 {
		q.segBytes = defaultSegmentBytes
	}
	q.segBytes = min(q.segBytes, opts.MaxBytes/4)

	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	q.lock = lock
	if err := q.load(); err != nil {
		q.closeFiles()
		q.lock.Close()
		return nil, err
	}
	if opts.Sync.Mode == SyncInterval {
		q.stop = make(chan struct{})
		q.done = make(chan struct{})
		go q.syncLoop()
	}
	return q, nil
}

// load reads the ack file and validates the segments.
func (q *Queue) load() error {
	// A temp file left by a crash during Ack was never renamed into place:
	// the previous ack file is the valid one.
	if err := os.Remove(filepath.Join(q.dir, ackTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: %w", err)
	}
	ackSeq, ackOff, haveAck := q.readAck()

	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })

	q.nextSeq = 1
	if haveAck {
		q.nextSeq = ackSeq + 1
	}
	for _, seq := range seqs {
		q.nextSeq = max(q.nextSeq, seq+1)
		if haveAck && seq < ackSeq {
			// Fully acknowledged; a crash came between the ack file and
			// the deletion.
			if err := os.Remove(q.segPath(seq)); err != nil {
				return fmt.Errorf("queue: %w", err)
			}
			continue
		}
		off := int64(-1)
		if haveAck && seq == ackSeq {
			off = ackOff
		}
		if err := q.loadSegment(seq, off); err != nil {
			return err
		}
	}
	return q.collect()
}

// loadSegment validates one segment and appends it to q.segs. ackOff >= 0
// is the acknowledged position within it.
func (q *Queue) loadSegment(seq uint64, ackOff int64) error {
	path := q.segPath(seq)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(segMagic)) {
		q.corrupt += int64(len(b))
		q.log.Warn("queue: segment has no valid header, discarding it", "segment", path, "bytes", len(b))
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		return nil
	}
	s := &segment{seq: seq, size: segHdr}
	headOff, headIdx := segHdr, 0
	for s.size < int64(len(b)) {
		_, _, n, err := decodeFrame(b[s.size:])
		if err != nil {
			lost := int64(len(b)) - s.size
			q.corrupt += lost
			what := "corrupt record"
			if errors.Is(err, errShortFrame) {
				what = "torn record at the end"
			}
			q.log.Warn("queue: "+what+" in segment, truncating it; the rest of the segment is lost",
				"segment", path, "offset", s.size, "lost_bytes", lost, "intact_records", s.records)
			if err := os.Truncate(path, s.size); err != nil {
				return fmt.Errorf("queue: truncating corrupt segment: %w", err)
			}
			break
		}
		s.size += int64(n)
		s.records++
		if ackOff >= s.size {
			headOff, headIdx = s.size, s.records
		}
	}
	if ackOff >= 0 { // segments before the acknowledged one were deleted above
		q.headOff, q.headIdx = headOff, headIdx
	} else if len(q.segs) == 0 {
		q.headOff, q.headIdx = segHdr, 0
	}
	q.segs = append(q.segs, s)
	q.total += s.size
	return nil
}

// readAck returns the persisted read position. A missing or unreadable ack
// file means "from the start" (at least once: records may be repeated).
func (q *Queue) readAck() (seq uint64, off int64, ok bool) {
	b, err := os.ReadFile(filepath.Join(q.dir, ackName))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			q.log.Warn("queue: cannot read ack file, resending from the oldest record", "err", err)
		}
		return 0, 0, false
	}
	var idx int
	if _, err := fmt.Sscanf(string(b), "%d %d %d\n", &seq, &off, &idx); err != nil {
		q.log.Warn("queue: malformed ack file, resending from the oldest record", "err", err)
		return 0, 0, false
	}
	return seq, off, true
}

// writeAck persists the read position: temp file, fsync, rename, and an
// fsync of the directory, so the ack file is always either old or new.
func (q *Queue) writeAck(id ID) error {
	tmp := filepath.Join(q.dir, ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("queue: writing ack file: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d %d %d\n", id.Segment, id.End, id.Index+1)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(q.dir, ackName))
	}
	if err == nil {
		err = q.syncDir()
	}
	if err != nil {
		return fmt.Errorf("queue: writing ack file: %w", err)
	}
	return nil
}

func (q *Queue) syncDir() error {
	d, err := os.Open(q.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (q *Queue) segPath(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%016d%s", seq, segExt))
}

// Append adds rec at the end of the queue. A record larger than MaxBytes/2
// is refused with ErrRecordTooLarge. When the queue would exceed MaxBytes,
// the oldest segments are dropped first (counted in Stats and logged).
func (q *Queue) Append(rec []byte) error {
	if len(rec) > q.maxRec {
		return fmt.Errorf("%w: %d bytes, limit %d (half of MaxBytes)", ErrRecordTooLarge, len(rec), q.maxRec)
	}
	n := int64(frameHdr + len(rec))
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.active == nil || (q.active.records > 0 && q.active.size+n > q.segBytes) {
		if err := q.rotate(); err != nil {
			return err
		}
	}
	for q.total+n > q.opts.MaxBytes && q.segs[0] != q.active {
		if err := q.dropOldest(); err != nil {
			return err
		}
	}
	s := q.active
	q.wbuf = appendFrame(q.wbuf[:0], rec, q.now().UnixNano())
	if _, err := s.f.Write(q.wbuf); err != nil {
		// Cut off a partial frame so that later appends stay readable.
		if terr := s.f.Truncate(s.size); terr == nil {
			_, _ = s.f.Seek(s.size, 0)
		} else {
			q.active = nil // the next Append starts a fresh segment
			_ = s.f.Close()
			s.f = nil
		}
		return fmt.Errorf("queue: append: %w", err)
	}
	s.size += n
	s.records++
	q.total += n
	if q.opts.Sync.Mode == SyncEveryAppend {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("queue: append: fsync: %w", err)
		}
	} else {
		q.dirty = true
	}
	return nil
}

// rotate closes the active segment and starts a new one.
func (q *Queue) rotate() error {
	if old := q.active; old != nil {
		q.active = nil
		err := q.syncFile(old.f)
		if cerr := old.f.Close(); err == nil {
			err = cerr
		}
		old.f = nil
		q.dirty = false
		if err != nil {
			return fmt.Errorf("queue: closing segment: %w", err)
		}
	}
	seq := q.nextSeq
	path := q.segPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("queue: new segment: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("queue: new segment: %w", err)
	}
	if q.opts.Sync.Mode != SyncNever {
		if err := q.syncDir(); err != nil {
			_ = f.Close()
			_ = os.Remove(path)
			return fmt.Errorf("queue: new segment: %w", err)
		}
	}
	q.nextSeq++
	s := &segment{seq: seq, size: segHdr, f: f}
	q.segs = append(q.segs, s)
	if len(q.segs) == 1 {
		q.headOff, q.headIdx = segHdr, 0
	}
	q.active = s
	q.total += segHdr
	return q.collect()
}

func (q *Queue) syncFile(f *os.File) error {
	if q.opts.Sync.Mode == SyncNever {
		return nil
	}
	return f.Sync()
}

// dropOldest removes segs[0], which is not the active segment, counting its
// pending records as dropped.
func (q *Queue) dropOldest() error {
	s := q.segs[0]
	recs, b := int64(s.records-q.headIdx), s.size-q.headOff
	if err := q.removeHead(); err != nil {
		return err
	}
	q.dropped.recs += recs
	q.dropped.bytes += b
	q.unwarned.recs += recs
	q.unwarned.bytes += b
	if now := q.now(); q.warnAt.IsZero() || now.Sub(q.warnAt) >= dropWarnEvery {
		q.log.Warn("queue: full, dropped the oldest pending records",
			"records", q.unwarned.recs, "bytes", q.unwarned.bytes,
			"total_dropped_records", q.dropped.recs, "total_dropped_bytes", q.dropped.bytes,
			"max_bytes", q.opts.MaxBytes)
		q.warnAt = now
		q.unwarned.recs, q.unwarned.bytes = 0, 0
	}
	return nil
}

// removeHead deletes segs[0] and moves the read position to the next one.
func (q *Queue) removeHead() error {
	s := q.segs[0]
	if q.rf != nil && q.rfSeq == s.seq {
		_ = q.rf.Close()
		q.rf = nil
	}
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	if s == q.active {
		q.active = nil
		q.dirty = false
	}
	if err := os.Remove(q.segPath(s.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: removing segment: %w", err)
	}
	q.total -= s.size
	q.segs[0] = nil
	q.segs = q.segs[1:]
	q.headOff, q.headIdx = segHdr, 0
	return nil
}

// collect deletes leading segments that are fully acknowledged and no
// longer appended to.
func (q *Queue) collect() error {
	for len(q.segs) > 0 && q.segs[0] != q.active && q.headOff >= q.segs[0].size {
		if err := q.removeHead(); err != nil {
			return err
		}
	}
	return nil
}

// Next returns up to maxRecords of the oldest pending records without removing
// them; a second call without Ack returns the same records. maxBytes > 0
// bounds the sum of their Data lengths, except that one record is always
// returned if any is pending. It returns no records and a nil error when the
// queue is empty.
func (q *Queue) Next(maxRecords, maxBytes int) ([]Record, error) {
	if maxRecords <= 0 {
		return nil, fmt.Errorf("queue: Next: maxRecords must be positive, got %d", maxRecords)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	var out []Record
	sum := 0
	for i := 0; i < len(q.segs) && len(out) < maxRecords; i++ {
		s := q.segs[i]
		off, idx := segHdr, 0
		if i == 0 {
			off, idx = q.headOff, q.headIdx
		}
		chunk := int64(readChunk)
	segLoop:
		for off < s.size && len(out) < maxRecords {
			f, err := q.reader(s)
			if err != nil {
				return out, err
			}
			n := min(s.size-off, chunk)
			if int64(cap(q.rbuf)) < n {
				q.rbuf = make([]byte, n)
			}
			buf := q.rbuf[:n]
			if _, err := f.ReadAt(buf, off); err != nil {
				return out, fmt.Errorf("queue: reading segment %d: %w", s.seq, err)
			}
			p := 0
			for p < len(buf) && len(out) < maxRecords {
				data, at, fl, err := decodeFrame(buf[p:])
				if errors.Is(err, errShortFrame) && p == 0 && fl > 0 && int64(fl) <= s.size-off {
					chunk = int64(fl) // a record bigger than the chunk
					continue segLoop
				}
				if err != nil {
					if len(out) > 0 {
						return out, nil
					}
					// Corrupted after it was written (or validated on
					// Open): everything up to here has been acknowledged,
					// so drop this segment and those before it.
					lost := s.size - (off + int64(p))
					q.corrupt += lost
					q.log.Warn("queue: corrupt record while reading, dropping the rest of the segment",
						"segment", q.segPath(s.seq), "offset", off+int64(p), "lost_bytes", lost,
						"lost_records", s.records-idx, "err", err)
					for j := 0; j <= i; j++ {
						if err := q.removeHead(); err != nil {
							return nil, err
						}
					}
					i = -1
					break segLoop
				}
				if maxBytes > 0 && len(out) > 0 && sum+len(data) > maxBytes {
					return out, nil
				}
				sum += len(data)
				out = append(out, Record{
					Data:     bytes.Clone(data),
					ID:       ID{Segment: s.seq, Index: idx, End: off + int64(p+fl)},
					Appended: time.Unix(0, at),
				})
				p += fl
				idx++
			}
			off += int64(p)
			chunk = readChunk
		}
	}
	return out, nil
}

// reader returns a read handle on s, reusing the cached one.
func (q *Queue) reader(s *segment) (*os.File, error) {
	if q.rf != nil && q.rfSeq == s.seq {
		return q.rf, nil
	}
	if q.rf != nil {
		_ = q.rf.Close()
		q.rf = nil
	}
	f, err := os.Open(q.segPath(s.seq))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q.rf, q.rfSeq = f, s.seq
	return f, nil
}

// Ack marks every record up to and including upTo as delivered: the read
// position is persisted before Ack returns, and segments that are fully
// acknowledged are deleted. Acknowledging a record that was already
// acknowledged or dropped is a no-op.
func (q *Queue) Ack(upTo ID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if len(q.segs) == 0 || upTo.Segment < q.segs[0].seq {
		return nil // dropped or deleted already
	}
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].seq >= upTo.Segment })
	if i == len(q.segs) || q.segs[i].seq != upTo.Segment {
		return fmt.Errorf("%w: %v", ErrUnknownID, upTo)
	}
	s := q.segs[i]
	if upTo.Index < 0 || upTo.Index >= s.records || upTo.End <= segHdr || upTo.End > s.size {
		return fmt.Errorf("%w: %v", ErrUnknownID, upTo)
	}
	if i == 0 && upTo.End <= q.headOff {
		return nil
	}
	if err := q.writeAck(upTo); err != nil {
		return err
	}
	for ; i > 0; i-- {
		if err := q.removeHead(); err != nil {
			return err
		}
	}
	q.headOff, q.headIdx = upTo.End, upTo.Index+1
	return q.collect()
}

// Stats reports the queue's contents.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Stats{
		DroppedRecords: q.dropped.recs,
		DroppedBytes:   q.dropped.bytes,
		CorruptBytes:   q.corrupt,
		Segments:       len(q.segs),
	}
	for i, s := range q.segs {
		if i == 0 {
			st.PendingRecords += int64(s.records - q.headIdx)
			st.PendingBytes += s.size - q.headOff
		} else {
			st.PendingRecords += int64(s.records)
			st.PendingBytes += s.size - segHdr
		}
	}
	if st.PendingRecords > 0 && !q.closed {
		st.OldestAppended = q.oldest()
	}
	return st
}

// oldest reads the append time of the first pending record.
func (q *Queue) oldest() time.Time {
	for i, s := range q.segs {
		off := segHdr
		if i == 0 {
			off = q.headOff
		}
		if off >= s.size {
			continue
		}
		f, err := q.reader(s)
		if err != nil {
			return time.Time{}
		}
		var h [frameHdr]byte
		if _, err := f.ReadAt(h[:], off); err != nil {
			return time.Time{}
		}
		return time.Unix(0, frameTime(h[:]))
	}
	return time.Time{}
}

// syncLoop fsyncs the active segment every Sync.Interval (SyncInterval).
func (q *Queue) syncLoop() {
	defer close(q.done)
	t := time.NewTicker(q.opts.Sync.Interval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		q.mu.Lock()
		var f *os.File
		if q.dirty && q.active != nil {
			f = q.active.f
			q.dirty = false
		}
		q.mu.Unlock()
		if f == nil {
			continue
		}
		// Outside the lock so appends go on; a rotation may close f
		// meanwhile, and it fsyncs the segment itself.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			q.log.Warn("queue: fsync failed", "err", err)
		}
	}
}

// Close syncs the active segment and releases files. The queue is unusable
// afterwards.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	if q.stop != nil {
		close(q.stop)
		<-q.done
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var err error
	if q.active != nil {
		err = q.active.f.Sync()
	}
	if cerr := q.closeFiles(); err == nil {
		err = cerr
	}
	if q.lock != nil {
		q.lock.Close() // releases the flock
		q.lock = nil
	}
	if err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

func (q *Queue) closeFiles() error {
	var err error
	if q.active != nil && q.active.f != nil {
		err = q.active.f.Close()
		q.active.f = nil
		q.active = nil
	}
	if q.rf != nil {
		_ = q.rf.Close()
		q.rf = nil
	}
	return err
}
