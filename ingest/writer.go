package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/greenloop/greenloop/ingest/mapping"
	"github.com/greenloop/greenloop/ingest/validate"
	"github.com/greenloop/greenloop/internal/sample"
)

// ErrMalformed wraps decoding failures of a whole request (as opposed to refusals of single samples).
var ErrMalformed = errors.New("malformed request")

// WriterOptions configure the write pipeline. Zero values take the documented defaults.
type WriterOptions struct {
	// Clock gives "now" for timestamp checks; nil means time.Now.
	Clock func() time.Time
	// MaxFutureSkew is how far ahead of now a sample may be; zero means 10 minutes.
	MaxFutureSkew time.Duration
	// MaxAge is how far behind now a sample may be; zero means 72 hours. Set it
	// to the store's out-of-order window so refusals are explained up front.
	MaxAge time.Duration
	// MaxLabels bounds the labels of one series; zero means 64.
	MaxLabels int
	// Mapping adds canonical copies of well-known exporter series (package mapping).
	Mapping bool
	// MaxCachedSeries bounds the series cache; zero means 4 million. When full the cache is emptied.
	MaxCachedSeries int
	// Registerer receives the ingest metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives storage errors; nil discards them.
	Logger *slog.Logger
}

// Writer is the write pipeline shared by every ingest path: validate, map,
// stamp the tenant, append, commit. It caches, per distinct series as sent,
// the final labels and the store's series reference, so a series seen before
// costs a hash and a map lookup, not a label parse and sort.
type Writer struct {
	store   Store
	clock   func() time.Time
	limits  validate.Limits
	maxLbls int
	mapping bool
	log     *slog.Logger
	cache   seriesCache

	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	mapped   prometheus.Counter
	cached   prometheus.GaugeFunc
}

// NewWriter builds the pipeline over a store.
func NewWriter(store Store, o WriterOptions) (*Writer, error) {
	if store == nil {
		return nil, errors.New("ingest: NewWriter needs a store")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = 10 * time.Minute
	}
	if o.MaxAge == 0 {
		o.MaxAge = 72 * time.Hour
	}
	if o.MaxLabels == 0 {
		o.MaxLabels = 64
	}
	if o.MaxCachedSeries == 0 {
		o.MaxCachedSeries = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		store:   store,
		clock:   o.Clock,
		limits:  validate.Limits{MaxLabels: o.MaxLabels, MaxFutureSkew: o.MaxFutureSkew, MaxAge: o.MaxAge},
		maxLbls: o.MaxLabels,
		mapping: o.Mapping,
		log:     o.Logger,
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenloop_ingest_samples_total",
			Help: "Samples stored, by ingest path.",
		}, []string{"path"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenloop_ingest_rejected_samples_total",
			Help: "Samples refused, by reason.",
		}, []string{"reason"}),
		mapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "greenloop_ingest_mapped_samples_total",
			Help: "Canonical copies stored for well-known exporter series.",
		}),
	}
	w.cache.init(o.MaxCachedSeries)
	w.cached = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "greenloop_ingest_series_cache_entries",
		Help: "Distinct series in the write path's cache.",
	}, func() float64 { return float64(w.cache.len()) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.accepted, w.rejected, w.mapped, w.cached} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ingest: register metrics: %w", err)
			}
		}
	}
	return w, nil
}

// seriesEntry is what the cache keeps for one distinct series as sent.
type seriesEntry struct {
	key    string // optKey + raw identity bytes; confirms a hash hit
	lset   labels.Labels
	metric string
	kind   validate.Kind
	ref    atomic.Uint64
	// rej is set when the series itself is invalid: all its samples are refused.
	rej *sample.Rejection
	// Canonical copy from exporter mapping.
	hasMapped bool
	mlset     labels.Labels
	scale     float64
	mref      atomic.Uint64
}

const cacheShards = 64

type seriesCache struct {
	max    int
	count  atomic.Int64
	shards [cacheShards]struct {
		mu sync.RWMutex
		m  map[uint64]*seriesEntry
	}
}

func (c *seriesCache) init(max int) {
	c.max = max
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*seriesEntry)
	}
}

func (c *seriesCache) len() int { return int(c.count.Load()) }

// get returns the entry for hash h whose key is optKey+raw, or nil.
func (c *seriesCache) get(h uint64, optKey string, raw []byte) *seriesEntry {
	s := &c.shards[h%cacheShards]
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	if e == nil || len(e.key) != len(optKey)+len(raw) || e.key[:len(optKey)] != optKey || e.key[len(optKey):] != string(raw) {
		return nil
	}
	return e
}

// put stores e under h unless another entry holds h (a hash collision: the
// newcomer then stays uncached, which is correct, only slower).
func (c *seriesCache) put(h uint64, e *seriesEntry) {
	if int(c.count.Load()) >= c.max {
		c.reset()
	}
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	if _, taken := s.m[h]; !taken {
		s.m[h] = e
		c.count.Add(1)
	}
	s.mu.Unlock()
}

func (c *seriesCache) reset() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		c.count.Add(-int64(len(s.m)))
		s.m = make(map[uint64]*seriesEntry)
		s.mu.Unlock()
	}
}

// optKey identifies the per-request settings that change a series' final labels.
func optKey(o WriteOptions) string {
	if o.Tenant == "" && len(o.ExtraLabels) == 0 {
		return "\x00"
	}
	var b strings.Builder
	b.WriteString(o.Tenant)
	for _, l := range o.ExtraLabels {
		b.WriteByte(0xff)
		b.WriteString(l.Name)
		b.WriteByte(0xfe)
		b.WriteString(l.Value)
	}
	b.WriteByte(0)
	return b.String()
}

// newEntry validates the labels as sent and computes the final and mapped labels.
func (w *Writer) newEntry(key string, in []sample.Label, o WriteOptions) *seriesEntry {
	e := &seriesEntry{key: key}
	in, rej := validate.Labels(in, w.maxLbls)
	if rej != nil {
		e.rej = rej
		return e
	}
	var b labels.ScratchBuilder
	b.Reset()
	has := func(name string) bool {
		for _, l := range in {
			if l.Name == name {
				return true
			}
		}
		return false
	}
	for _, l := range in {
		if o.Tenant != "" && l.Name == TenantLabel {
			continue
		}
		b.Add(l.Name, l.Value)
	}
	for _, l := range o.ExtraLabels {
		if l.Name != TenantLabel && !has(l.Name) {
			b.Add(l.Name, l.Value)
		}
	}
	if o.Tenant != "" {
		b.Add(TenantLabel, o.Tenant)
	}
	b.Sort()
	e.lset = b.Labels()
	e.metric = e.lset.Get(model.MetricNameLabel)
	e.kind = validate.KindOf(e.metric)
	if w.mapping {
		final := make([]sample.Label, 0, e.lset.Len())
		e.lset.Range(func(l labels.Label) { final = append(final, sample.Label{Name: l.Name, Value: l.Value}) })
		if ml, scale, ok := mapping.Map(final); ok {
			var mb labels.ScratchBuilder
			for _, l := range ml {
				mb.Add(l.Name, l.Value)
			}
			mb.Sort()
			e.hasMapped, e.mlset, e.scale = true, mb.Labels(), scale
		}
	}
	return e
}

// request is the state of one write call.
type request struct {
	w      *Writer
	app    storage.Appender
	now    time.Time
	res    Result
	mapped int
	byWhy  map[string]int
	// line is the input line of the point being appended, 0 when unknown.
	line int
}

func (w *Writer) begin(ctx context.Context) *request {
	return &request{w: w, app: w.store.Appender(ctx), now: w.clock()}
}

func (r *request) reject(n int, rej sample.Rejection) {
	r.res.Reject(n, rej)
	if r.byWhy == nil {
		r.byWhy = make(map[string]int, 4)
	}
	r.byWhy[rej.Reason] += n
}

// appendPoint validates and appends one sample of e. A non-nil error is a storage failure.
func (r *request) appendPoint(e *seriesEntry, index int, t int64, v float64) error {
	if reason, detail, ok := validate.PointOf(e.kind, e.metric, sample.Point{T: t, V: v}, r.now, r.w.limits); !ok {
		r.reject(1, sample.Rejection{Series: e.lset.String(), Line: r.line, Index: index, TimestampMs: t, Field: fieldOf(reason), Reason: reason, Detail: detail})
		return nil
	}
	ref, err := r.app.Append(storage.SeriesRef(e.ref.Load()), e.lset, t, v)
	if err != nil {
		if reason, ok := sampleError(err); ok {
			r.reject(1, sample.Rejection{Series: e.lset.String(), Line: r.line, Index: index, TimestampMs: t, Field: "timestamp", Reason: reason, Detail: err.Error()})
			return nil
		}
		return fmt.Errorf("append %s: %w", e.lset.String(), err)
	}
	if uint64(ref) != e.ref.Load() {
		e.ref.Store(uint64(ref))
	}
	r.res.Accepted++
	if e.hasMapped {
		mv := v * e.scale
		if math.IsNaN(mv) || math.IsInf(mv, 0) {
			return nil // the original keeps the value; a canonical series takes only finite numbers
		}
		ref, err := r.app.Append(storage.SeriesRef(e.mref.Load()), e.mlset, t, mv)
		if err != nil {
			if _, ok := sampleError(err); ok {
				return nil
			}
			return fmt.Errorf("append %s: %w", e.mlset.String(), err)
		}
		if uint64(ref) != e.mref.Load() {
			e.mref.Store(uint64(ref))
		}
		r.mapped++
	}
	return nil
}

// finish commits (or rolls back after a storage failure) and counts.
func (r *request) finish(path string, err error) (Result, error) {
	if err == nil {
		err = r.app.Commit()
		if err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	} else {
		_ = r.app.Rollback()
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			r.w.log.Error("ingest: storage failure", "path", path, "err", err)
		}
		return Result{}, err
	}
	r.w.accepted.WithLabelValues(path).Add(float64(r.res.Accepted))
	for why, n := range r.byWhy {
		r.w.rejected.WithLabelValues(why).Add(float64(n))
	}
	if r.mapped > 0 {
		r.w.mapped.Add(float64(r.mapped))
	}
	return r.res, nil
}

func fieldOf(reason string) string {
	switch reason {
	case sample.ReasonTooFarInFuture, sample.ReasonTooOld:
		return "timestamp"
	default:
		return "value"
	}
}

// sampleError classifies the store's refusals of single samples; ok is false for storage failures.
func sampleError(err error) (reason string, ok bool) {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return sample.ReasonOutOfOrder, true
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return sample.ReasonTooOld, true
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return sample.ReasonDuplicateSample, true
	}
	return "", false
}

// WriteSeries stores decoded series (text and NDJSON imports, the demo, agents).
// Valid samples are stored even when others are refused; a non-nil error is a
// storage failure, and then nothing of this call is stored.
func (w *Writer) WriteSeries(ctx context.Context, o WriteOptions, series []sample.Series) (Result, error) {
	r := w.begin(ctx)
	ok := "s" + optKey(o)
	var key []byte
	var err error
	for i := range series {
		s := &series[i]
		key = key[:0]
		for _, l := range s.Labels {
			key = append(key, l.Name...)
			key = append(key, 0xff)
			key = append(key, l.Value...)
			key = append(key, 0xfe)
		}
		h := hashKey(ok, key)
		e := w.cache.get(h, ok, key)
		if e == nil {
			e = w.newEntry(ok+string(key), s.Labels, o)
			w.cache.put(h, e)
		}
		if e.rej != nil {
			// Imports name refused samples by input line (when the format has
			// lines) and series; a position in the decoded batch would mean
			// nothing to the sender. Each line is listed.
			for j := range s.Points {
				rej := *e.rej
				rej.Index = -1
				if j < len(s.Lines) {
					rej.Line = s.Lines[j]
				}
				r.reject(1, rej)
			}
			continue
		}
		for j, p := range s.Points {
			r.line = 0
			if j < len(s.Lines) {
				r.line = s.Lines[j]
			}
			if err = r.appendPoint(e, -1, p.T, p.V); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	return r.finish("import", err)
}

func hashKey(optKey string, raw []byte) uint64 {
	return mixKey(xxhash.Sum64String(optKey), raw)
}

// mixKey is hashKey with the options' hash computed once per request. The
// cache compares whole keys, so the mix only has to spread them.
func mixKey(hOpt uint64, raw []byte) uint64 {
	return xxhash.Sum64(raw) ^ bits.RotateLeft64(hOpt, 31)
}

// WriteRemote stores a remote_write 1.0 request (the protobuf, already
// snappy-decoded). It decodes in one pass, checking the framing as it goes,
// and builds no per-label strings for series it has seen before. Errors
// wrapping ErrMalformed mean the body is not a valid WriteRequest; nothing of
// it is stored then (the batch is rolled back).
func (w *Writer) WriteRemote(ctx context.Context, o WriteOptions, pb []byte) (Result, error) {
	r := w.begin(ctx)
	ok := "r" + optKey(o)
	hOpt := xxhash.Sum64String(ok)
	var scratch []sample.Label
	var err error
	index := 0
	for len(pb) > 0 {
		num, typ, n := protowire.ConsumeTag(pb)
		if n < 0 {
			err = fmt.Errorf("%w: bad field tag %d bytes before the end: %v", ErrMalformed, len(pb), protowire.ParseError(n))
			break
		}
		pb = pb[n:]
		if num == 1 {
			if typ != protowire.BytesType {
				err = fmt.Errorf("%w: timeseries[%d] has wire type %d", ErrMalformed, index, typ)
				break
			}
			ts, m := protowire.ConsumeBytes(pb)
			if m < 0 {
				err = fmt.Errorf("%w: timeseries[%d]: %v", ErrMalformed, index, protowire.ParseError(m))
				break
			}
			pb = pb[m:]
			if scratch, err = w.remoteSeries(r, ok, hOpt, ts, index, scratch, o); err != nil {
				break
			}
			index++
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, pb)
		if m < 0 {
			err = fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(m))
			break
		}
		pb = pb[m:]
	}
	return r.finish("remote_write", err)
}

func malformedSeries(index int, what string, err error) error {
	return fmt.Errorf("%w: timeseries[%d]: %s: %v", ErrMalformed, index, what, err)
}

// remoteSeries stores one TimeSeries message, checking its framing.
func (w *Writer) remoteSeries(r *request, optKey string, hOpt uint64, ts []byte, index int, scratch []sample.Label, o WriteOptions) ([]sample.Label, error) {
	// Pass 1: check the fields, find the label region, count samples and histograms.
	start, end := -1, -1
	contiguous := true
	nSamples, nHist := 0, 0
	for p := 0; p < len(ts); {
		fieldStart := p
		var num protowire.Number
		if t := ts[p]; (t == tagLabel || t == tagSample) && p+1 < len(ts) && ts[p+1] < 0x80 {
			// The usual encoding: a one-byte tag and a length under 128.
			num = protowire.Number(t >> 3)
			p += 2 + int(ts[p+1])
			if p > len(ts) {
				return scratch, malformedSeries(index, fmt.Sprintf("field %d", num), protowire.ParseError(-1))
			}
		} else {
			var typ protowire.Type
			var n int
			num, typ, n = protowire.ConsumeTag(ts[p:])
			if n < 0 {
				return scratch, malformedSeries(index, "field tag", protowire.ParseError(n))
			}
			if (num == 1 || num == 2) && typ != protowire.BytesType {
				return scratch, malformedSeries(index, fmt.Sprintf("field %d", num), fmt.Errorf("wire type %d", typ))
			}
			p += n
			m := protowire.ConsumeFieldValue(num, typ, ts[p:])
			if m < 0 {
				return scratch, malformedSeries(index, fmt.Sprintf("field %d", num), protowire.ParseError(m))
			}
			p += m
		}
		switch num {
		case 1:
			if start < 0 {
				start = fieldStart
			} else if end != fieldStart {
				contiguous = false
			}
			end = p
		case 2:
			nSamples++
		case 4:
			nHist++
		}
	}
	var raw []byte
	if start >= 0 {
		raw = ts[start:end]
	}
	var e *seriesEntry
	var h uint64
	if contiguous {
		// A hit means these exact label bytes were decoded and checked before.
		h = mixKey(hOpt, raw)
		e = w.cache.get(h, optKey, raw)
	}
	if e == nil {
		var err error
		if scratch, err = decodeLabels(ts, scratch[:0]); err != nil {
			return scratch, malformedSeries(index, "label", err)
		}
		e = w.newEntry(optKey+string(raw), scratch, o)
		if contiguous {
			w.cache.put(h, e)
		}
	}
	switch {
	case e.rej != nil:
		rej := *e.rej
		rej.Index = index
		r.reject(nSamples+nHist, rej)
	case nHist > 0:
		r.reject(nHist, sample.Rejection{Series: e.lset.String(), Index: index, Field: "histograms",
			Reason: sample.ReasonUnsupported, Detail: "native histograms are not stored; send classic histograms"})
	}
	// Pass 2: the samples (checked even for a refused series, so a malformed
	// body is refused whole). Pass 1 checked the framing; contiguous labels
	// are skipped in one step.
	for p := 0; p < len(ts); {
		if p == start && contiguous {
			p = end
			continue
		}
		num, typ, n := protowire.ConsumeTag(ts[p:])
		p += n
		if num != 2 {
			p += protowire.ConsumeFieldValue(num, typ, ts[p:])
			continue
		}
		b, m := protowire.ConsumeBytes(ts[p:])
		p += m
		t, v, err := decodeSample(b)
		if err != nil {
			return scratch, malformedSeries(index, "sample", err)
		}
		if e.rej != nil {
			continue
		}
		if err := r.appendPoint(e, index, t, v); err != nil {
			return scratch, err
		}
	}
	return scratch, nil
}

// One-byte tags of the fields the decoder reads most.
const (
	tagLabel     = 1<<3 | byte(protowire.BytesType)   // TimeSeries.labels
	tagSample    = 2<<3 | byte(protowire.BytesType)   // TimeSeries.samples
	tagValue     = 1<<3 | byte(protowire.Fixed64Type) // Sample.value
	tagTimestamp = 2<<3 | byte(protowire.VarintType)  // Sample.timestamp
)

// decodeSample decodes a Sample message: value (field 1, double) and timestamp (field 2, int64).
func decodeSample(b []byte) (t int64, v float64, err error) {
	// The usual encoding: value, then a timestamp of at most 9 bytes.
	if len(b) >= 11 && b[0] == tagValue && b[9] == tagTimestamp {
		if x, k := protowire.ConsumeVarint(b[10:]); k == len(b)-10 {
			return int64(x), math.Float64frombits(binary.LittleEndian.Uint64(b[1:9])), nil
		}
	}
	for len(b) > 0 {
		fn, ft, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, 0, protowire.ParseError(k)
		}
		b = b[k:]
		switch {
		case fn == 1 && ft == protowire.Fixed64Type:
			x, k := protowire.ConsumeFixed64(b)
			if k < 0 {
				return 0, 0, protowire.ParseError(k)
			}
			v = math.Float64frombits(x)
			b = b[k:]
		case fn == 2 && ft == protowire.VarintType:
			x, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0, 0, protowire.ParseError(k)
			}
			t = int64(x)
			b = b[k:]
		case fn == 1 || fn == 2:
			return 0, 0, fmt.Errorf("field %d has wire type %d", fn, ft)
		default:
			k := protowire.ConsumeFieldValue(fn, ft, b)
			if k < 0 {
				return 0, 0, protowire.ParseError(k)
			}
			b = b[k:]
		}
	}
	return t, v, nil
}

// decodeLabels appends the labels of a TimeSeries message to dst, checking their framing.
func decodeLabels(ts []byte, dst []sample.Label) ([]sample.Label, error) {
	for len(ts) > 0 {
		num, typ, n := protowire.ConsumeTag(ts)
		ts = ts[n:] // the framing of ts itself was checked by the caller
		if num != 1 {
			ts = ts[protowire.ConsumeFieldValue(num, typ, ts):]
			continue
		}
		b, m := protowire.ConsumeBytes(ts)
		ts = ts[m:]
		var l sample.Label
		for len(b) > 0 {
			fn, ft, k := protowire.ConsumeTag(b)
			if k < 0 {
				return dst, protowire.ParseError(k)
			}
			b = b[k:]
			if fn == 1 || fn == 2 {
				if ft != protowire.BytesType {
					return dst, fmt.Errorf("field %d has wire type %d", fn, ft)
				}
				s, k := protowire.ConsumeBytes(b)
				if k < 0 {
					return dst, protowire.ParseError(k)
				}
				if fn == 1 {
					l.Name = string(s)
				} else {
					l.Value = string(s)
				}
				b = b[k:]
				continue
			}
			k = protowire.ConsumeFieldValue(fn, ft, b)
			if k < 0 {
				return dst, protowire.ParseError(k)
			}
			b = b[k:]
		}
		dst = append(dst, l)
	}
	return dst, nil
}
