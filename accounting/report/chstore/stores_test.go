package chstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
)

// The file stores keep the contract too (one instance per directory).
func TestFileStoresContract(t *testing.T) {
	t.Run("Inputs", func(t *testing.T) {
		runInputContract(t, func(t *testing.T, now func() time.Time) (report.InputStore, report.InputStore) {
			st, err := report.NewFileInputStore(t.TempDir(), nil, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			return st, st
		})
	})
	t.Run("Snapshots", func(t *testing.T) {
		runSnapshotContract(t, func(t *testing.T) (report.SnapshotStore, report.SnapshotStore) {
			st, err := report.NewFileSnapshotStore(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return st, st
		})
	})
}

// Two servers: each its own connection and store instances over one database.
func TestClickHouseContract(t *testing.T) {
	server(t)
	ctx := context.Background()
	t.Run("Inputs", func(t *testing.T) {
		runInputContract(t, func(t *testing.T, now func() time.Time) (report.InputStore, report.InputStore) {
			db := newDB()
			a, err := chstore.NewInputStore(ctx, dial(t), db, nil, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := chstore.NewInputStore(ctx, dial(t), db, nil, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		})
	})
	t.Run("Snapshots", func(t *testing.T) {
		runSnapshotContract(t, func(t *testing.T) (report.SnapshotStore, report.SnapshotStore) {
			db := newDB()
			a, err := chstore.NewSnapshotStore(ctx, dial(t), db, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := chstore.NewSnapshotStore(ctx, dial(t), db, nil)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		})
	})
}

// A clock that steps back does not reorder one server's entries.
func TestInputStoreClockStepsBack(t *testing.T) {
	ctx := context.Background()
	readings := []time.Time{enteredAt, enteredAt.Add(-time.Hour), enteredAt.Add(-time.Hour), enteredAt.Add(time.Second)}
	i := 0
	st, err := chstore.NewInputStore(ctx, dial(t), newDB(), nil, func() time.Time { i++; return readings[i-1] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2", "3", "4"} {
		if err := st.Put(ctx, "acme", "fra1", 2025, raw(report.FFloorTotal, v), "a"); err != nil {
			t.Fatal(err)
		}
	}
	in, err := st.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{enteredAt, enteredAt.Add(1), enteredAt.Add(2), enteredAt.Add(time.Second)}
	h := in.Fields[report.FFloorTotal]
	if len(h) != 4 {
		t.Fatalf("history %+v", h)
	}
	for k, e := range h {
		if string(e.Value) != []string{"1", "2", "3", "4"}[k] || !e.At.Equal(want[k]) {
			t.Errorf("entry %d: %s at %v, want %d at %v", k, e.Value, e.At, k+1, want[k])
		}
	}
}

// A snapshot whose stored JSON no longer matches its hash is refused.
func TestSnapshotAltered(t *testing.T) {
	ctx := context.Background()
	conn, db := dial(t), newDB()
	st, err := chstore.NewSnapshotStore(ctx, conn, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := synthetic("acme", "fra1", 2025, []byte(`{"kwh": 100}`), enteredAt)
	// What a hand-edit of the table would leave: the row with other JSON.
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+"."+chstore.SnapshotsTable+" (tenant, id, site, year, sha256, status, created_by, created_at_ns, body)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(s.Tenant, s.ID, s.Site, uint16(s.Year), s.SHA256, s.Status, s.By, s.CreatedAt.UnixNano(), `{"kwh": 10}`); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "acme", s.ID); err == nil || !strings.Contains(err.Error(), "does not match its SHA-256") {
		t.Errorf("get of an altered snapshot: %v", err)
	}
	sum := sha256.Sum256([]byte(`{"kwh": 10}`))
	if hex.EncodeToString(sum[:]) == s.SHA256 {
		t.Fatal("test bodies collide")
	}
}

func TestBadDatabase(t *testing.T) {
	conn := dial(t)
	if _, err := chstore.NewInputStore(context.Background(), conn, "x`; DROP", nil, nil, nil); err == nil {
		t.Error("input store accepted a database name that needs quoting")
	}
	if _, err := chstore.NewSnapshotStore(context.Background(), conn, "", nil); err == nil {
		t.Error("snapshot store accepted an empty database name")
	}
}

// A file store's history moves to ClickHouse as it is, once.
func TestImportFromFileStore(t *testing.T) {
	ctx := context.Background()
	files, err := report.NewFileInputStore(t.TempDir(), nil, stepClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ fields map[string]json.RawMessage }{
		{raw(report.FFloorTotal, "12000", report.FWIN, `{"value": 9100.5, "quality": "estimated"}`)},
		{raw(report.FFloorTotal, "12500")},
		{raw(report.FICTStorage, `{"omission_reason": "technical reasons"}`)},
		{raw(report.FFloorTotal, "null")},
	} {
		if err := files.Put(ctx, "acme", "fra1", 2025, p.fields, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	old, err := files.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	st, err := chstore.NewInputStore(ctx, dial(t), newDB(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{5, 0} { // a second run adds nothing
		n, err := st.Import(ctx, old)
		if err != nil || n != want {
			t.Fatalf("import %d: %d entries, %v; want %d", i, n, err, want)
		}
	}
	got, err := st.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*report.Inputs{&old, &got} {
		for _, h := range in.Fields {
			for i := range h {
				if h[i].Value != nil {
					var buf bytes.Buffer
					if err := json.Compact(&buf, h[i].Value); err != nil {
						t.Fatal(err)
					}
					h[i].Value = buf.Bytes()
				}
			}
		}
	}
	if !reflect.DeepEqual(got, old) {
		t.Errorf("imported:\n got %+v\nwant %+v", got, old)
	}
	if _, err := st.Import(ctx, report.Inputs{Tenant: "acme", Site: "fra1", Year: 2025,
		Fields: map[string][]report.Entry{report.FFloorTotal: {{Value: json.RawMessage("1")}}}}); err == nil {
		t.Error("imported an entry without author and time")
	}
}
