package web

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/common/model"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// remoteWrite receives Prometheus remote_write 1.0: a snappy block-compressed
// protobuf WriteRequest. 204 once every valid sample is committed; 400 when
// some were refused (the rest are stored); 503 when the store failed, so the
// sender retries.
func (s *Server) remoteWrite(c echo.Context, id Identity) error {
	r := c.Request()
	if err := checkRemoteWriteHeaders(r.Header); err != nil {
		return err
	}
	opts, err := s.writeOptions(r.URL.RawQuery, id, nil)
	if err != nil {
		return err
	}
	body := s.bufs.get()
	defer s.bufs.put(body)
	if err := s.readBody(r, body); err != nil {
		return err
	}
	n, err := snappy.DecodedLen(*body)
	if errors.Is(err, snappy.ErrTooLarge) {
		return &Error{Code: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("snappy body claims a decoded size above 4 GiB; ingest.max_decoded_bytes is %d", s.opts.Ingest.MaxDecodedBytes)}
	}
	if err != nil {
		return &Error{Code: http.StatusBadRequest, Msg: "body is not snappy block-compressed: " + err.Error()}
	}
	if int64(n) > int64(s.opts.Ingest.MaxDecodedBytes) {
		return &Error{Code: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("decoded body of %d bytes exceeds ingest.max_decoded_bytes (%d); send smaller batches", n, s.opts.Ingest.MaxDecodedBytes)}
	}
	dec := s.bufs.get()
	defer s.bufs.put(dec)
	if cap(*dec) < n {
		*dec = make([]byte, 0, n)
	}
	pb, err := snappy.Decode((*dec)[:n], *body)
	if err != nil {
		return &Error{Code: http.StatusBadRequest, Msg: "body is not valid snappy: " + err.Error()}
	}
	res, err := s.deps.Writer.WriteRemote(r.Context(), opts, pb)
	if err != nil {
		if errors.Is(err, ingest.ErrMalformed) {
			return &Error{Code: http.StatusBadRequest, Msg: "malformed remote_write request: " + err.Error()}
		}
		return storageError(err)
	}
	if res.RejectedCount > 0 {
		return s.rejected(c, id, res)
	}
	return c.NoContent(http.StatusNoContent)
}

// checkRemoteWriteHeaders accepts remote_write 1.0 only: snappy encoding
// (assumed when absent, as Prometheus does) and a protobuf WriteRequest.
func checkRemoteWriteHeaders(h http.Header) error {
	if enc := h.Get(echo.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "snappy") {
		return &Error{Code: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("unsupported Content-Encoding %q: remote_write 1.0 bodies are snappy block-compressed (Content-Encoding: snappy)", enc)}
	}
	ct := h.Get(echo.HeaderContentType)
	if ct == "" || ct == "application/x-protobuf" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-protobuf" {
		return &Error{Code: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("unsupported Content-Type %q: want application/x-protobuf (remote_write 1.0)", ct)}
	}
	if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
		return &Error{Code: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("unsupported protobuf message %q: only remote_write 1.0 (prometheus.WriteRequest) is accepted", p)}
	}
	return nil
}

// importText receives Prometheus text exposition, timestamps optional.
func (s *Server) importText(c echo.Context, id Identity) error {
	return s.importLines(c, id, s.deps.ParseText)
}

// importNDJSON receives one JSON reading per line.
func (s *Server) importNDJSON(c echo.Context, id Identity) error {
	return s.importLines(c, id, s.deps.ParseNDJSON)
}

// importBackfill receives history older than the out-of-order window:
// format=csv (meter columns, see package csvimport) or format=prometheus
// (text exposition with timestamps, the default).
func (s *Server) importBackfill(c echo.Context, id Identity) error {
	if s.deps.Backfill == nil {
		return &Error{Code: http.StatusNotImplemented, Msg: "this storage backend has no backfill path"}
	}
	var parse ParseFunc
	switch f := c.QueryParam("format"); f {
	case "", "prometheus":
		parse = s.deps.ParseText
	case "csv":
		parse = s.deps.ParseCSV
	default:
		return badData("format: want csv or prometheus, got %q", f)
	}
	return s.importWith(c, id, parse, s.deps.Backfill)
}

// importLines reads a (possibly gzipped) body, parses it and writes what
// parsed. Refused lines and refused samples are listed together in one 400.
func (s *Server) importLines(c echo.Context, id Identity, parse ParseFunc) error {
	return s.importWith(c, id, parse, s.deps.Writer)
}

func (s *Server) importWith(c echo.Context, id Identity, parse ParseFunc, w Writer) error {
	r := c.Request()
	defaultTs := s.now().UnixMilli()
	opts, err := s.writeOptions(r.URL.RawQuery, id, &defaultTs)
	if err != nil {
		return err
	}
	body := s.bufs.get()
	defer s.bufs.put(body)
	switch enc := strings.ToLower(r.Header.Get(echo.HeaderContentEncoding)); enc {
	case "", "identity":
		err = s.readBody(r, body)
	case "gzip", "x-gzip":
		err = s.readGzipBody(r, body)
	default:
		err = &Error{Code: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("unsupported Content-Encoding %q: send the body plain or gzip-compressed", enc)}
	}
	if err != nil {
		return err
	}
	series, parseRejects := parse(*body, defaultTs)
	var res ingest.Result
	for _, rj := range parseRejects {
		res.Reject(1, rj)
	}
	if len(series) > 0 {
		wres, err := w.WriteSeries(r.Context(), opts, series)
		if err != nil {
			return storageError(err)
		}
		res.Merge(wres)
	}
	if res.RejectedCount > 0 {
		// Written here, while body (which rejections may point into) is still ours.
		return s.rejected(c, id, res)
	}
	return c.NoContent(http.StatusNoContent)
}

// storageRetryAfter is what a client is told to wait after a failed write:
// long enough for a restarting store, short enough not to build a backlog.
const storageRetryAfter = 5 * time.Second

func storageError(err error) error {
	return &Error{Code: http.StatusServiceUnavailable, Msg: "storage failed; the request was not stored (sending it again is safe), retry later", Err: err,
		RetryAfter: storageRetryAfter}
}

// rejected answers 400 with every refusal (up to ingest.MaxListedRejections).
func (s *Server) rejected(c echo.Context, id Identity, res ingest.Result) error {
	total := res.Accepted + res.RejectedCount
	if s.rejectLog.allow(time.Now()) {
		first := res.Rejected[0]
		s.log.Warn("samples rejected", "tenant", id.Tenant, "client", id.Name, "route", routeLabel(c),
			"rejected", res.RejectedCount, "accepted", res.Accepted, "first_reason", first.Reason, "first_detail", first.Detail,
			"similar_lines_suppressed", s.rejectLog.suppressed.Swap(0))
	}
	return c.JSON(http.StatusBadRequest, errorBody{
		Error:  fmt.Sprintf("%d of %d samples rejected", res.RejectedCount, total),
		Detail: res,
	})
}

// logThrottle lets one log line through per second and counts the rest, so a
// misbehaving sender cannot flood the log.
type logThrottle struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

func (t *logThrottle) allow(now time.Time) bool {
	n := now.UnixNano()
	last := t.last.Load()
	if n-last >= int64(time.Second) && t.last.CompareAndSwap(last, n) {
		return true
	}
	t.suppressed.Add(1)
	return false
}

// writeOptions reads ?extra_label=name=value (repeatable) and, when ts is
// non-nil, ?timestamp= (the default for samples without one). It scans the raw
// query by hand to keep the ingest path free of per-request maps.
func (s *Server) writeOptions(rawQuery string, id Identity, ts *int64) (ingest.WriteOptions, error) {
	o := ingest.WriteOptions{Tenant: id.Tenant}
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "extra_label":
			v, err := url.QueryUnescape(v)
			if err != nil {
				return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid extra_label: %v", err)}
			}
			name, value, ok := strings.Cut(v, "=")
			switch {
			case !ok || value == "":
				return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid extra_label %q: want name=value with a non-empty value", v)}
			case !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, "__"):
				return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid extra_label %q: %q is not a valid label name", v, name)}
			case name == ingest.TenantLabel:
				return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid extra_label %q: the tenant label comes from the token", v)}
			}
			for _, l := range o.ExtraLabels {
				if l.Name == name {
					return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid extra_label %q: label %q given twice", v, name)}
				}
			}
			o.ExtraLabels = append(o.ExtraLabels, sample.Label{Name: name, Value: value})
		case "timestamp":
			if ts == nil {
				continue
			}
			v, err := url.QueryUnescape(v)
			if err == nil {
				var t time.Time
				if t, err = parseTime(v); err == nil {
					*ts = t.UnixMilli()
					continue
				}
			}
			return o, &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid timestamp %q: want Unix seconds or RFC 3339", v)}
		}
	}
	return o, nil
}

func tooLarge(what string, limitName string, limit int64) error {
	return &Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s exceeds %s (%d bytes); send smaller batches", what, limitName, limit)}
}

// readBody reads the whole request body into buf, refusing more than
// ingest.max_body_bytes with 413.
func (s *Server) readBody(r *http.Request, buf *[]byte) error {
	limit := int64(s.opts.Ingest.MaxBodyBytes)
	if r.ContentLength > limit {
		return tooLarge(fmt.Sprintf("request body of %d bytes", r.ContentLength), "ingest.max_body_bytes", limit)
	}
	if r.ContentLength >= 0 {
		n := int(r.ContentLength)
		if cap(*buf) < n {
			*buf = make([]byte, 0, n)
		}
		b := (*buf)[:n]
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return readError(err)
		}
		*buf = b
		return nil
	}
	over, err := readAllLimit(r.Body, buf, limit)
	if over {
		return tooLarge("request body", "ingest.max_body_bytes", limit)
	}
	return err
}

var gzipReaders sync.Pool

// readGzipBody inflates a gzip body into buf, refusing more than
// ingest.max_body_bytes sent or ingest.max_decoded_bytes inflated with 413.
func (s *Server) readGzipBody(r *http.Request, buf *[]byte) error {
	limit := int64(s.opts.Ingest.MaxBodyBytes)
	if r.ContentLength > limit {
		return tooLarge(fmt.Sprintf("request body of %d bytes", r.ContentLength), "ingest.max_body_bytes", limit)
	}
	lr := &limitReader{r: r.Body, left: limit}
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(lr)
	} else {
		err = zr.Reset(lr)
	}
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return tooLarge("request body", "ingest.max_body_bytes", limit)
		}
		return &Error{Code: http.StatusBadRequest, Msg: "body is not valid gzip: " + err.Error()}
	}
	defer gzipReaders.Put(zr)
	dlimit := int64(s.opts.Ingest.MaxDecodedBytes)
	over, err := readAllLimit(zr, buf, dlimit)
	switch {
	case over:
		return tooLarge("decompressed body", "ingest.max_decoded_bytes", dlimit)
	case errors.Is(err, errBodyTooLarge):
		return tooLarge("request body", "ingest.max_body_bytes", limit)
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		return &Error{Code: http.StatusBadRequest, Msg: "body is not valid gzip: " + err.Error()}
	}
	return nil
}

var errBodyTooLarge = errors.New("body too large")

// limitReader fails with errBodyTooLarge once more than left bytes were read.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

// readAllLimit reads r to EOF into buf, growing it; over reports more than limit bytes.
func readAllLimit(r io.Reader, buf *[]byte, limit int64) (over bool, err error) {
	b := (*buf)[:0]
	defer func() { *buf = b }()
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, readError(err)
		}
	}
}

func readError(err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return err
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large", Err: err}
	}
	return &Error{Code: http.StatusBadRequest, Msg: "reading request body failed: " + err.Error(), Err: err}
}
