package chstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// The contract every report store keeps, run on the file stores and on the
// ClickHouse stores alike. A factory returns two stores over the same data:
// for ClickHouse two "servers" (own connections and store instances); for
// the file stores one instance twice, since several processes must not share
// their directory.
type (
	inputsFactory    func(t *testing.T, now func() time.Time) (a, b report.InputStore)
	snapshotsFactory func(t *testing.T) (a, b report.SnapshotStore)
)

var enteredAt = time.Date(2026, 2, 20, 14, 0, 0, 0, time.UTC)

// stepClock returns a clock that advances one second per reading.
func stepClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return enteredAt.Add(time.Duration(n.Add(1)) * time.Second) }
}

func raw(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func runInputContract(t *testing.T, newStores inputsFactory) {
	t.Run("EntryForms", func(t *testing.T) { inputEntryForms(t, newStores) })
	t.Run("Rejects", func(t *testing.T) { inputRejects(t, newStores) })
	t.Run("ConcurrentPuts", func(t *testing.T) { inputConcurrentPuts(t, newStores) })
	t.Run("ContextCancelled", func(t *testing.T) { inputContextCancelled(t, newStores) })
}

func runSnapshotContract(t *testing.T, newStores snapshotsFactory) {
	t.Run("RoundTrip", func(t *testing.T) { snapshotRoundTrip(t, newStores) })
	t.Run("List", func(t *testing.T) { snapshotList(t, newStores) })
	t.Run("Rejects", func(t *testing.T) { snapshotRejects(t, newStores) })
	t.Run("ConcurrentSave", func(t *testing.T) { snapshotConcurrentSave(t, newStores) })
}

func inputEntryForms(t *testing.T, newStores inputsFactory) {
	a, b := newStores(t, stepClock())
	ctx := context.Background()
	put := func(id, v, who string) {
		t.Helper()
		if err := a.Put(ctx, "acme", "fra1", 2025, raw(id, v), who); err != nil {
			t.Fatal(err)
		}
	}
	put(report.FWIN, `{"value": 9100.5, "quality": "estimated"}`, "alice")                      // at +1s
	put(report.FICTStorage, `{"omission_reason": "technical reasons (DR art. 3(2))"}`, "alice") // +2s
	put(report.FFloorTotal, ` 12000 `, "alice")                                                 // +3s
	put(report.FFloorTotal, `12500`, "bob")                                                     // +4s
	put(report.FFloorTotal, `null`, "carol")                                                    // +5s
	if err := a.Put(ctx, "acme", "fra1", 2025, raw(report.FDCType, `"colocation"`, report.FGridFunctions, `["a", "b"]`), "dave"); err != nil {
		t.Fatal(err) // +6s, both fields
	}
	in, err := b.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	if in.Tenant != "acme" || in.Site != "fra1" || in.Year != 2025 || len(in.Fields) != 5 {
		t.Fatalf("inputs %+v", in)
	}
	at := func(s int) time.Time { return enteredAt.Add(time.Duration(s) * time.Second) }
	want := map[string][]report.Entry{
		report.FWIN:        {{Value: json.RawMessage("9100.5"), Quality: report.QualityEstimated, By: "alice", At: at(1)}},
		report.FICTStorage: {{Quality: report.QualityEntered, OmissionReason: "technical reasons (DR art. 3(2))", By: "alice", At: at(2)}},
		report.FFloorTotal: {
			{Value: json.RawMessage("12000"), Quality: report.QualityEntered, By: "alice", At: at(3)},
			{Value: json.RawMessage("12500"), Quality: report.QualityEntered, By: "bob", At: at(4)},
			{Quality: report.QualityEntered, By: "carol", At: at(5)},
		},
		report.FDCType:        {{Value: json.RawMessage(`"colocation"`), Quality: report.QualityEntered, By: "dave", At: at(6)}},
		report.FGridFunctions: {{Value: json.RawMessage(`["a","b"]`), Quality: report.QualityEntered, By: "dave", At: at(6)}},
	}
	for id, w := range want {
		// Values compare as JSON: the file store indents them.
		got := slices.Clone(in.Fields[id])
		for i := range got {
			if got[i].Value != nil {
				var buf bytes.Buffer
				if err := json.Compact(&buf, got[i].Value); err != nil {
					t.Fatal(err)
				}
				got[i].Value = buf.Bytes()
			}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s history:\n got %+v\nwant %+v", id, got, w)
		}
	}
	if cur, ok := in.Current(report.FFloorTotal); !ok || cur.Value != nil || cur.By != "carol" {
		t.Errorf("current floor area %+v %v", cur, ok)
	}
	// Both stores answer the same.
	if ina, err := a.Get(ctx, "acme", "fra1", 2025); err != nil || !reflect.DeepEqual(ina, in) {
		t.Errorf("the writing store reads %+v, %v", ina, err)
	}
	// Other keys are untouched, and empty inputs are not nil maps.
	for _, k := range []struct {
		tenant, site string
		year         int
	}{{"acme", "fra1", 2024}, {"acme", "fra2", 2025}, {"other", "fra1", 2025}} {
		in, err := b.Get(ctx, k.tenant, k.site, k.year)
		if err != nil || in.Fields == nil || len(in.Fields) != 0 || in.Tenant != k.tenant || in.Site != k.site || in.Year != k.year {
			t.Errorf("%v: %+v, %v", k, in, err)
		}
	}
	// The stored entries build the report as the file store's do.
	r, err := report.Build(report.Request{Tenant: "acme", Year: 2025, Now: at(10), Inputs: in, Site: siteFra1,
		Measured: report.Measured{EDC: &report.Reading[report.KWh]{Value: 1200}, EIT: &report.Reading[report.KWh]{Value: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	if fv := r.Fields[report.FWIN]; fv.Value != 9100.5 || fv.Quality != report.QualityEstimated || !strings.HasPrefix(fv.Source, "entered by alice at ") {
		t.Errorf("water field %+v", fv)
	}
	if fv := r.Fields[report.FICTStorage]; fv.Value != nil || fv.Quality != report.QualityNotAvailable || fv.OmissionReason == "" {
		t.Errorf("omitted field %+v", fv)
	}
	if fv := r.Fields[report.FFloorTotal]; fv.Value != nil {
		t.Errorf("cleared field still has %v", fv.Value)
	}
}

var siteFra1 = config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 800}

func inputRejects(t *testing.T, newStores inputsFactory) {
	a, b := newStores(t, nil)
	ctx := context.Background()
	cases := []struct {
		name   string
		fields map[string]json.RawMessage
		field  string // the field the error must name
		is     error
	}{
		{"unknown field", raw("floor_area_m2", "12"), "floor_area_m2", report.ErrUnknownField},
		{"derived field", raw(report.FPUE, "1.2"), report.FPUE, report.ErrNotEnterable},
		{"string for a number", raw(report.FFloorTotal, `"12000"`), report.FFloorTotal, nil},
		{"negative area", raw(report.FFloorTotal, `-1`), report.FFloorTotal, nil},
		{"enum value", raw(report.FDCType, `"hyperscale"`), report.FDCType, nil},
		{"instrument unknown key", raw(report.FInstruments, `[{"instrument_type":"GO","cert_ids":["a"],"beneficiary_dc_id":"fra1","kwh":1,"mwh":1}]`), report.FInstruments, nil},
		{"entry quality", raw(report.FFloorTotal, `{"value": 1, "quality": "measured"}`), report.FFloorTotal, nil},
		{"one bad among good", raw(report.FFloorTotal, `100`, report.FFloorCR, `"x"`), report.FFloorCR, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := a.Put(ctx, "acme", "fra1", 2025, c.fields, "alice")
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *report.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), "field "+c.field) {
				t.Errorf("error %q does not name field %s", err, c.field)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if in, err := b.Get(ctx, "acme", "fra1", 2025); err != nil || len(in.Fields) != 0 {
				t.Errorf("a rejected put stored %v (%v)", in.Fields, err)
			}
		})
	}
	for _, bad := range []struct {
		tenant, site string
		year         int
		who          string
		fields       map[string]json.RawMessage
	}{
		{"../x", "fra1", 2025, "a", raw(report.FFloorTotal, "1")},
		{"acme", "FRA1", 2025, "a", raw(report.FFloorTotal, "1")},
		{"acme", "", 2025, "a", raw(report.FFloorTotal, "1")},
		{"acme", "fra1", 1999, "a", raw(report.FFloorTotal, "1")},
		{"acme", "fra1", 2025, "", raw(report.FFloorTotal, "1")},
		{"acme", "fra1", 2025, "a", raw()},
	} {
		if err := a.Put(ctx, bad.tenant, bad.site, bad.year, bad.fields, bad.who); err == nil {
			t.Errorf("put accepted %+v", bad)
		}
	}
	if _, err := b.Get(ctx, "acme", "x y", 2025); err == nil {
		t.Error("get accepted site \"x y\"")
	}
}

func inputConcurrentPuts(t *testing.T, newStores inputsFactory) {
	clock := stepClock() // one clock: the servers' clocks agree
	a, b := newStores(t, clock)
	ctx := context.Background()
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*rounds)
	for w := range writers {
		st := []report.InputStore{a, b}[w%2] // half the users on each server
		wg.Go(func() {
			who := fmt.Sprintf("user%d", w)
			for i := range rounds {
				err := st.Put(ctx, "acme", "fra1", 2025, raw(
					report.FFloorTotal, fmt.Sprint(1000*w+i), // contended field
					report.FGridFunctions, fmt.Sprintf(`["w%d"]`, w), // contended list
				), who)
				if err != nil {
					errs <- err
				}
				if _, err := st.Get(ctx, "acme", "fra1", 2025); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, st := range []report.InputStore{a, b} {
		in, err := st.Get(ctx, "acme", "fra1", 2025)
		if err != nil {
			t.Fatal(err)
		}
		hist := in.Fields[report.FFloorTotal]
		if len(hist) != writers*rounds || len(in.Fields[report.FGridFunctions]) != writers*rounds {
			t.Fatalf("history has %d/%d entries, want %d", len(hist), len(in.Fields[report.FGridFunctions]), writers*rounds)
		}
		perUser := map[string]int{}
		values := map[string]bool{}
		for i, e := range hist {
			perUser[e.By]++
			values[string(e.Value)] = true
			if i > 0 && !e.At.After(hist[i-1].At) {
				t.Errorf("history not in time order at %d: %v then %v", i, hist[i-1].At, e.At)
			}
			// Both fields of one Put carry the same entry.
			if g := in.Fields[report.FGridFunctions][i]; g.By != e.By || !g.At.Equal(e.At) {
				t.Errorf("entry %d: floor area by %s at %v, grid functions by %s at %v", i, e.By, e.At, g.By, g.At)
			}
		}
		for w := range writers {
			if n := perUser[fmt.Sprintf("user%d", w)]; n != rounds {
				t.Errorf("user%d has %d entries, want %d", w, n, rounds)
			}
			for i := range rounds {
				if !values[fmt.Sprint(1000*w+i)] {
					t.Errorf("value %d lost", 1000*w+i)
				}
			}
		}
		if cur, _ := in.Current(report.FFloorTotal); !cur.At.Equal(hist[len(hist)-1].At) || cur.Quality != report.QualityEntered {
			t.Errorf("current %+v", cur)
		}
	}
}

func inputContextCancelled(t *testing.T, newStores inputsFactory) {
	a, _ := newStores(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Put(ctx, "acme", "fra1", 2025, raw(report.FFloorTotal, "1"), "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("put: %v", err)
	}
	if _, err := a.Get(ctx, "acme", "fra1", 2025); !errors.Is(err, context.Canceled) {
		t.Errorf("get: %v", err)
	}
}

// frozen builds and freezes a draft report of fra1 for year at now.
func frozen(t *testing.T, tenant string, year int, now time.Time, by string) report.Snapshot {
	t.Helper()
	r, err := report.Build(report.Request{Tenant: tenant, Year: year, Now: now, Site: siteFra1,
		Inputs:   report.Inputs{Fields: map[string][]report.Entry{report.FFloorTotal: {{Value: json.RawMessage("12000"), Quality: report.QualityEntered, By: "alice", At: enteredAt}}}},
		Measured: report.Measured{EDC: &report.Reading[report.KWh]{Value: 1200}, EIT: &report.Reading[report.KWh]{Value: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := report.Freeze(tenant, r, report.FreezeOptions{Draft: true, By: by, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// synthetic is a snapshot whose JSON is body.
func synthetic(tenant, site string, year int, body []byte, at time.Time) report.Snapshot {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	return report.Snapshot{ID: fmt.Sprintf("%s-%d-%s", site, year, h[:16]), SHA256: h, Tenant: tenant, Site: site, Year: year,
		Status: report.StatusDraft, By: "bob", CreatedAt: at, JSON: body}
}

func snapshotRoundTrip(t *testing.T, newStores snapshotsFactory) {
	a, b := newStores(t)
	ctx := context.Background()
	// A real frozen report, and bytes that a careless store would change:
	// non-ASCII text, control characters, no final newline, 3 MiB.
	big := bytes.Repeat([]byte("Ä€😀\t\"\\\r\n\x00\x01"), 3<<20/20)
	for _, snap := range []report.Snapshot{
		frozen(t, "acme", 2026, enteredAt.Add(time.Hour), "bob"),
		synthetic("acme", "fra1", 2024, append([]byte(`{"a": 1}`+"\n  "), big...), enteredAt),
	} {
		if err := a.Save(ctx, snap); err != nil {
			t.Fatal(err)
		}
		for i, st := range []report.SnapshotStore{a, b} {
			got, err := st.Get(ctx, "acme", snap.ID)
			if err != nil {
				t.Fatalf("store %d: %v", i, err)
			}
			if !bytes.Equal(got.JSON, snap.JSON) {
				t.Errorf("store %d: %s JSON differs (%d bytes, want %d)", i, snap.ID, len(got.JSON), len(snap.JSON))
			}
			want := snap
			got.JSON, want.JSON = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("store %d:\n got %+v\nwant %+v", i, got, want)
			}
		}
	}
	// The frozen report parses back.
	s := frozen(t, "acme", 2026, enteredAt.Add(time.Hour), "bob")
	got, err := b.Get(ctx, "acme", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := got.Report()
	if err != nil || r.DataCentreID != "fra1" || r.Status != report.StatusDraft {
		t.Errorf("report of the snapshot: %+v, %v", r, err)
	}
	// Unknown and malformed ids are not found.
	for _, ref := range []struct{ tenant, id string }{{"acme", "fra1-2025-0123456789abcdef"}, {"other", s.ID}, {"acme", "../x"}, {"ACME", s.ID}} {
		if _, err := b.Get(ctx, ref.tenant, ref.id); !errors.Is(err, report.ErrSnapshotNotFound) {
			t.Errorf("get %s/%s: %v, want not found", ref.tenant, ref.id, err)
		}
	}
}

func snapshotList(t *testing.T, newStores snapshotsFactory) {
	a, b := newStores(t)
	ctx := context.Background()
	s1 := synthetic("acme", "fra1", 2024, []byte("one"), enteredAt)
	s2 := synthetic("acme", "fra1", 2025, []byte("two"), enteredAt.Add(2*time.Hour))
	s3 := synthetic("acme", "fra1", 2025, []byte("three"), enteredAt.Add(time.Hour))
	s4 := synthetic("acme", "fra2", 2025, []byte("four"), enteredAt.Add(3*time.Hour))
	s5 := synthetic("other", "fra1", 2025, []byte("five"), enteredAt.Add(4*time.Hour))
	for i, s := range []report.Snapshot{s1, s2, s3, s4, s5, s2} { // s2 again: a no-op
		if err := []report.SnapshotStore{a, b}[i%2].Save(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(l []report.Snapshot) []string {
		out := []string{}
		for _, s := range l {
			out = append(out, s.ID)
			if s.JSON != nil {
				t.Errorf("list returned the JSON of %s", s.ID)
			}
		}
		return out
	}
	for _, c := range []struct {
		tenant, site string
		year         int
		want         []string
	}{
		{"acme", "fra1", 0, []string{s2.ID, s3.ID, s1.ID}},
		{"acme", "fra1", 2025, []string{s2.ID, s3.ID}},
		{"acme", "fra1", 2023, []string{}},
		{"acme", "fra2", 0, []string{s4.ID}},
		{"other", "fra1", 2025, []string{s5.ID}},
		{"nobody", "fra1", 0, []string{}},
	} {
		for i, st := range []report.SnapshotStore{a, b} {
			l, err := st.List(ctx, c.tenant, c.site, c.year)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(l); !reflect.DeepEqual(got, c.want) {
				t.Errorf("store %d: list %s/%s/%d = %v, want %v", i, c.tenant, c.site, c.year, got, c.want)
			}
		}
	}
	l, err := b.List(ctx, "acme", "fra1", 2024)
	if err != nil || len(l) != 1 || l[0].SHA256 != s1.SHA256 || !l[0].CreatedAt.Equal(s1.CreatedAt) || l[0].By != "bob" || l[0].Year != 2024 || l[0].Tenant != "acme" {
		t.Errorf("list entry %+v, %v", l, err)
	}
	if _, err := a.List(ctx, "Bad Tenant", "fra1", 0); err == nil {
		t.Error("list accepted a bad tenant")
	}
}

func snapshotRejects(t *testing.T, newStores snapshotsFactory) {
	a, b := newStores(t)
	ctx := context.Background()
	good := synthetic("acme", "fra1", 2025, []byte("body"), enteredAt)
	badHash := good
	badHash.JSON = []byte("other body")
	badTenant := good
	badTenant.Tenant = "../acme"
	badID := good
	badID.ID = "fra1-2025"
	for _, s := range []report.Snapshot{badHash, badTenant, badID} {
		if err := a.Save(ctx, s); err == nil {
			t.Errorf("saved %+v", s)
		}
	}
	if l, err := b.List(ctx, "acme", "fra1", 0); err != nil || len(l) != 0 {
		t.Errorf("a refused save stored %v (%v)", l, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Save(cctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("save with a cancelled context: %v", err)
	}
}

func snapshotConcurrentSave(t *testing.T, newStores snapshotsFactory) {
	a, b := newStores(t)
	ctx := context.Background()
	s := synthetic("acme", "fra1", 2025, []byte(`{"same": "bytes"}`), enteredAt)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		st := []report.SnapshotStore{a, b}[i%2]
		wg.Go(func() { errs <- st.Save(ctx, s) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range []report.SnapshotStore{a, b} {
		l, err := st.List(ctx, "acme", "fra1", 2025)
		if err != nil || len(l) != 1 || l[0].ID != s.ID {
			t.Errorf("store %d lists %+v, %v; want %s once", i, l, err, s.ID)
		}
		got, err := st.Get(ctx, "acme", s.ID)
		if err != nil || !bytes.Equal(got.JSON, s.JSON) {
			t.Errorf("store %d: get %q, %v", i, got.JSON, err)
		}
	}
}
