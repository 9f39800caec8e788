package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newWriter(t *testing.T, mapping bool) (*ingest.Writer, ingest.Store) {
	t.Helper()
	s, err := tsdb.Open(t.TempDir(), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w, err := ingest.NewWriter(s, ingest.WriterOptions{Clock: func() time.Time { return now }, Mapping: mapping})
	if err != nil {
		t.Fatal(err)
	}
	return w, s
}

type ts struct {
	labels []string
	points []prompb.Sample
}

func encode(t testing.TB, series ...ts) []byte {
	t.Helper()
	req := &prompb.WriteRequest{}
	for _, s := range series {
		var p prompb.TimeSeries
		for i := 0; i < len(s.labels); i += 2 {
			p.Labels = append(p.Labels, prompb.Label{Name: s.labels[i], Value: s.labels[i+1]})
		}
		p.Samples = s.points
		req.Timeseries = append(req.Timeseries, p)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t *testing.T, s ingest.Store, tenant string) []string {
	t.Helper()
	q, err := ingest.TenantQueryable(s, tenant).Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out []string
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		var b strings.Builder
		b.WriteString(ss.At().Labels().String())
		b.WriteString(" =>")
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			tt, v := it.At()
			fmt.Fprintf(&b, " %d:%g", tt-now.UnixMilli(), v)
		}
		out = append(out, b.String())
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ms(d time.Duration) int64 { return now.Add(d).UnixMilli() }

func TestWriteRemote(t *testing.T) {
	tests := []struct {
		name       string
		opts       ingest.WriteOptions
		series     []ts
		accepted   int
		rejected   []string // reason per rejection, in order
		nRejected  int      // samples refused, when it differs from len(rejected)
		stored     []string
		readTenant string
	}{
		{
			name: "valid series stored with every sample",
			series: []ts{{
				labels: []string{"__name__", "greenloop_power_watts", "site", "fra1", "node", "n1"},
				points: []prompb.Sample{{Value: 212.5, Timestamp: ms(-2 * time.Second)}, {Value: 213, Timestamp: ms(-time.Second)}},
			}},
			accepted: 2,
			stored:   []string{`{__name__="greenloop_power_watts", node="n1", site="fra1"} => -2000:212.5 -1000:213`},
		},
		{
			name: "invalid names are refused, the rest stored",
			series: []ts{
				{labels: []string{"__name__", "bad-name", "site", "x"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}, {Value: 2, Timestamp: ms(time.Second)}}},
				{labels: []string{"__name__", "ok_metric", "1bad", "x"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}}},
				{labels: []string{"__name__", "ok_metric", "site", "a", "site", "b"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}}},
				{labels: []string{"site", "x"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}}},
				{labels: []string{"__name__", "good", "site", "x"}, points: []prompb.Sample{{Value: 3, Timestamp: ms(0)}}},
			},
			accepted:  1,
			rejected:  []string{"invalid_metric_name", "invalid_label_name", "duplicate_label", "missing_metric_name"},
			nRejected: 5,
			stored:    []string{`{__name__="good", site="x"} => 0:3`},
		},
		{
			name: "timestamps outside the window and bad canonical values",
			series: []ts{{
				labels: []string{"__name__", "greenloop_energy_joules_total", "site", "x"},
				points: []prompb.Sample{
					{Value: 1, Timestamp: ms(11 * time.Minute)},
					{Value: 1, Timestamp: ms(-73 * time.Hour)},
					{Value: math.NaN(), Timestamp: ms(-3 * time.Second)},
					{Value: -5, Timestamp: ms(-2 * time.Second)},
					{Value: 7, Timestamp: ms(-time.Second)},
				},
			}},
			accepted: 1,
			rejected: []string{"too_far_in_future", "too_old", "invalid_value", "invalid_value"},
			stored:   []string{`{__name__="greenloop_energy_joules_total", site="x"} => -1000:7`},
		},
		{
			name: "NaN is fine for foreign series",
			series: []ts{{
				labels: []string{"__name__", "go_gc_duration_seconds", "quantile", "0.5"},
				points: []prompb.Sample{{Value: math.NaN(), Timestamp: ms(0)}},
			}},
			accepted: 1,
			stored:   []string{`{__name__="go_gc_duration_seconds", quantile="0.5"} => 0:NaN`},
		},
		{
			name: "tenant stamped over the client's",
			opts: ingest.WriteOptions{Tenant: "acme"},
			series: []ts{{
				labels: []string{"__name__", "m", "tenant", "globex", "site", "x"},
				points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}},
			}},
			accepted:   1,
			readTenant: "acme",
			stored:     []string{`{__name__="m", site="x"} => 0:1`},
		},
		{
			name: "extra labels fill in, never override",
			opts: ingest.WriteOptions{ExtraLabels: []sample.Label{{Name: "site", Value: "fra1"}, {Name: "room", Value: "r1"}}},
			series: []ts{
				{labels: []string{"__name__", "m", "node", "a"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}}},
				{labels: []string{"__name__", "m", "node", "b", "site", "par1"}, points: []prompb.Sample{{Value: 2, Timestamp: ms(0)}}},
			},
			accepted: 2,
			stored: []string{
				`{__name__="m", node="a", room="r1", site="fra1"} => 0:1`,
				`{__name__="m", node="b", room="r1", site="par1"} => 0:2`,
			},
		},
		{
			name: "empty label values mean absent",
			series: []ts{{
				labels: []string{"__name__", "m", "empty", "", "site", "x"},
				points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}},
			}},
			accepted: 1,
			stored:   []string{`{__name__="m", site="x"} => 0:1`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, s := newWriter(t, false)
			body := encode(t, tc.series...)
			// Twice: the second time the series come from the cache and must give the same outcome.
			for round := range 2 {
				res, err := w.WriteRemote(context.Background(), tc.opts, body)
				if err != nil {
					t.Fatal(err)
				}
				var reasons []string
				for _, r := range res.Rejected {
					reasons = append(reasons, r.Reason)
					if r.Detail == "" || r.Field == "" {
						t.Errorf("rejection without field or detail: %+v", r)
					}
				}
				nRejected := tc.nRejected
				if nRejected == 0 {
					nRejected = len(tc.rejected)
				}
				if res.Accepted != tc.accepted || !slices.Equal(reasons, tc.rejected) || res.RejectedCount != nRejected {
					t.Fatalf("round %d: accepted %d rejected %v (%d), want %d %v", round, res.Accepted, reasons, res.RejectedCount, tc.accepted, tc.rejected)
				}
			}
			if got := readAll(t, s, tc.readTenant); !slices.Equal(got, tc.stored) {
				t.Fatalf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.stored, "\n"))
			}
		})
	}
}

func TestWriteRemoteMalformedStoresNothing(t *testing.T) {
	w, s := newWriter(t, false)
	good := encode(t, ts{labels: []string{"__name__", "m"}, points: []prompb.Sample{{Value: 1, Timestamp: ms(0)}}})
	for _, body := range [][]byte{
		append(slices.Clone(good), 0x0a, 0x05, 0x01),                       // truncated second series
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // overlong varint
		append(slices.Clone(good), 0x08, 0x01),                             // field 1 as varint
	} {
		_, err := w.WriteRemote(context.Background(), ingest.WriteOptions{}, body)
		if !errors.Is(err, ingest.ErrMalformed) {
			t.Fatalf("body %x: err %v, want ErrMalformed", body, err)
		}
	}
	if got := readAll(t, s, ""); len(got) != 0 {
		t.Fatalf("malformed requests stored %v", got)
	}
}

func TestTenantsAreConfined(t *testing.T) {
	w, s := newWriter(t, false)
	for _, tenant := range []string{"acme", "globex"} {
		v := float64(len(tenant))
		if _, err := w.WriteRemote(context.Background(), ingest.WriteOptions{Tenant: tenant},
			encode(t, ts{labels: []string{"__name__", "shared_name", "site", "x"}, points: []prompb.Sample{{Value: v, Timestamp: ms(0)}}})); err != nil {
			t.Fatal(err)
		}
	}
	for tenant, want := range map[string]string{"acme": "0:4", "globex": "0:6"} {
		got := readAll(t, s, tenant)
		if len(got) != 1 || !strings.HasSuffix(got[0], want) || strings.Contains(got[0], "tenant") {
			t.Errorf("tenant %s reads %v, want only its own value %s and no tenant label", tenant, got, want)
		}
		q, _ := ingest.TenantQueryable(s, tenant).Querier(math.MinInt64, math.MaxInt64)
		names, _, _ := q.LabelNames(context.Background(), nil)
		vals, _, _ := q.LabelValues(context.Background(), "tenant", nil)
		q.Close()
		if slices.Contains(names, "tenant") || len(vals) != 0 {
			t.Errorf("tenant %s sees the tenant label: names %v values %v", tenant, names, vals)
		}
	}
	// A matcher on another tenant finds nothing.
	q, _ := ingest.TenantQueryable(s, "acme").Querier(math.MinInt64, math.MaxInt64)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "tenant", "globex"),
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "shared_name"))
	for ss.Next() {
		t.Errorf("acme asking for tenant globex got %s", ss.At().Labels())
	}
}

func TestWriteSeriesMatchesRemote(t *testing.T) {
	w, s := newWriter(t, false)
	res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{Tenant: "t1"}, []sample.Series{
		{Labels: []sample.Label{{Name: "site", Value: "x"}, {Name: "__name__", Value: "greenloop_power_watts"}}, Points: []sample.Point{{T: ms(0), V: 5}, {T: ms(time.Second), V: math.Inf(1)}}},
		{Labels: []sample.Label{{Name: "__name__", Value: "bad name"}}, Points: []sample.Point{{T: ms(0), V: 1}, {T: ms(time.Second), V: 1}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.RejectedCount != 3 {
		t.Fatalf("accepted %d rejected %d, want 1 and 3: %+v", res.Accepted, res.RejectedCount, res.Rejected)
	}
	if res.Rejected[1].Series != `bad name{}` || res.Rejected[1].Reason != sample.ReasonInvalidMetricName {
		t.Fatalf("second rejection %+v", res.Rejected[1])
	}
	if got := readAll(t, s, "t1"); !slices.Equal(got, []string{`{__name__="greenloop_power_watts", site="x"} => 0:5`}) {
		t.Fatalf("stored %v", got)
	}
}

func TestOutOfOrderAndDuplicates(t *testing.T) {
	w, s := newWriter(t, false)
	l := []string{"__name__", "m", "site", "x"}
	write := func(pts ...prompb.Sample) ingest.Result {
		res, err := w.WriteRemote(context.Background(), ingest.WriteOptions{}, encode(t, ts{labels: l, points: pts}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	write(prompb.Sample{Value: 1, Timestamp: ms(0)})
	// A backlog 48 h late is accepted (out-of-order window).
	if res := write(prompb.Sample{Value: 0.5, Timestamp: ms(-48 * time.Hour)}); res.Accepted != 1 {
		t.Fatalf("late sample: %+v", res)
	}
	// The same sample again is idempotent; another value at the same time is refused.
	if res := write(prompb.Sample{Value: 1, Timestamp: ms(0)}); res.Accepted != 1 || res.RejectedCount != 0 {
		t.Fatalf("retry: %+v", res)
	}
	if res := write(prompb.Sample{Value: 2, Timestamp: ms(0)}); res.RejectedCount != 1 || res.Rejected[0].Reason != sample.ReasonDuplicateSample {
		t.Fatalf("conflicting duplicate: %+v", res)
	}
	want := []string{`{__name__="m", site="x"} => -172800000:0.5 0:1`}
	if got := readAll(t, s, ""); !slices.Equal(got, want) {
		t.Fatalf("stored %v want %v", got, want)
	}
}

func TestHistogramsRefused(t *testing.T) {
	w, _ := newWriter(t, false)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     []prompb.Label{{Name: "__name__", Value: "h"}},
		Histograms: []prompb.Histogram{{Timestamp: ms(0), Count: &prompb.Histogram_CountInt{CountInt: 1}}},
	}}}
	b, _ := req.Marshal()
	res, err := w.WriteRemote(context.Background(), ingest.WriteOptions{}, b)
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedCount != 1 || res.Rejected[0].Reason != sample.ReasonUnsupported {
		t.Fatalf("%+v", res)
	}
}

func TestExporterSeriesGetCanonicalCopies(t *testing.T) {
	w, s := newWriter(t, true)
	body := encode(t,
		ts{labels: []string{"__name__", "node_rapl_package_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:0", "instance", "host1:9100", "job", "node"},
			points: []prompb.Sample{{Value: 1234.5, Timestamp: ms(0)}}},
		ts{labels: []string{"__name__", "DCGM_FI_DEV_POWER_USAGE", "gpu", "3", "Hostname", "gpu-node-7"},
			points: []prompb.Sample{{Value: 301.25, Timestamp: ms(0)}}},
	)
	res, err := w.WriteRemote(context.Background(), ingest.WriteOptions{ExtraLabels: []sample.Label{{Name: "site", Value: "fra1"}}}, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.RejectedCount != 0 {
		t.Fatalf("%+v", res)
	}
	got := strings.Join(readAll(t, s, ""), "\n")
	for _, want := range []string{
		`{__name__="node_rapl_package_joules_total", index="0", instance="host1:9100", job="node", path="/sys/class/powercap/intel-rapl:0", site="fra1"} => 0:1234.5`,
		`{__name__="greenloop_energy_joules_total", component="package", node="host1", sensor="intel-rapl:0", site="fra1", source="rapl"} => 0:1234.5`,
		`{__name__="greenloop_power_watts", component="gpu", node="gpu-node-7", sensor="gpu3", site="fra1", source="nvml"} => 0:301.25`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
}

func TestImportRefusalsNameTheLine(t *testing.T) {
	w, _ := newWriter(t, false)
	res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, []sample.Series{
		{Labels: []sample.Label{{Name: "__name__", Value: "bad-name"}}, Points: []sample.Point{{T: ms(0), V: 1}, {T: ms(time.Second), V: 2}}, Lines: []int{2, 5}},
		{Labels: []sample.Label{{Name: "__name__", Value: "ok"}}, Points: []sample.Point{{T: ms(0), V: 1}, {T: ms(time.Hour), V: 2}}, Lines: []int{3, 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, r := range res.Rejected {
		lines = append(lines, r.Line)
	}
	if res.Accepted != 1 || !slices.Equal(lines, []int{2, 5, 4}) || res.Rejected[2].Reason != sample.ReasonTooFarInFuture {
		t.Fatalf("accepted %d, refused lines %v: %+v", res.Accepted, lines, res.Rejected)
	}
}
