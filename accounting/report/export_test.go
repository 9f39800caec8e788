package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenJSON = "testdata/worked_example.golden.json"

// finalSnapshot freezes the worked example as final.
func finalSnapshot(t testing.TB) Snapshot {
	t.Helper()
	s, err := Freeze("acme", build(t, exampleRequest(t)), FreezeOptions{By: "officer-bob", Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJSONGolden(t *testing.T) {
	s := finalSnapshot(t)
	var buf bytes.Buffer
	if err := ExportSnapshot(&buf, s, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(goldenJSON, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenJSON)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("JSON export differs from %s (rerun with -update if the change is intended):\n%s", goldenJSON, firstDiff(buf.String(), string(want)))
	}
	// The hash is the SHA-256 of exactly the exported bytes, so it is
	// stable across runs and machines.
	sum := sha256.Sum256(want)
	if s.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("snapshot hash %s is not the SHA-256 of the golden file", s.SHA256)
	}
	for _, key := range []string{`"schema_version": "dr2024-1364.v1"`, `"status": "final"`, `"submitted_at": "2026-03-02T09:30:00Z"`, `"reporting_route": "national:DE"`,
		`"energy_total_kwh": {`, `"display": "1.300"`, `"errors": []`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < min(len(la), len(lb)); i++ {
		if la[i] != lb[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got:  " + la[i] + "\n want: " + lb[i]
		}
	}
	return "lengths differ: " + strconv.Itoa(len(la)) + " vs " + strconv.Itoa(len(lb)) + " lines"
}

func TestSnapshotStore(t *testing.T) {
	ctx := context.Background()
	st, err := NewFileSnapshotStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := finalSnapshot(t)
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, s); err != nil { // idempotent
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "acme", s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != s.SHA256 || got.Status != StatusFinal || got.By != "officer-bob" || got.Year != 2025 {
		t.Errorf("got %+v", got)
	}
	var a, b bytes.Buffer
	if err := ExportSnapshot(&a, got, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if err := ExportSnapshot(&b, got, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), s.JSON) || !bytes.Equal(b.Bytes(), s.JSON) {
		t.Error("re-export of the snapshot is not byte-identical")
	}
	// Re-freezing the report read back from the snapshot gives the same bytes.
	r, err := got.Report()
	if err != nil {
		t.Fatal(err)
	}
	again, err := MarshalCanonical(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, s.JSON) {
		t.Errorf("report parsed back from the snapshot marshals differently:\n%s", firstDiff(string(again), string(s.JSON)))
	}
	list, err := st.List(ctx, "acme", "fra1", 2025)
	if err != nil || len(list) != 1 || list[0].ID != s.ID {
		t.Errorf("list = %+v, %v", list, err)
	}
	if _, err := st.Get(ctx, "other", s.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("other tenant's get: %v", err)
	}
	// Tampering on disk is detected.
	p := filepath.Join(st.dir, "acme", s.ID, "report.json")
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(data, []byte(`"display": "1.300"`), []byte(`"display": "1.100"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "acme", s.ID); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("tampered snapshot read without error: %v", err)
	}
}

func TestFreezeRefusesBlockingErrors(t *testing.T) {
	req := exampleRequest(t)
	req.Measured.EIT.Value = 16_000_000 // EIT > EDC
	r := build(t, req)
	if _, err := Freeze("acme", r, FreezeOptions{By: "bob", Now: testNow}); !errors.Is(err, ErrBlocking) || !strings.Contains(err.Error(), FEIT) {
		t.Fatalf("final freeze with errors: %v", err)
	}
	s, err := Freeze("acme", r, FreezeOptions{Draft: true, By: "bob", Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != StatusDraft || !bytes.Contains(s.JSON, []byte(`"status": "draft"`)) || !bytes.Contains(s.JSON, []byte(`"submitted_at": null`)) {
		t.Errorf("draft snapshot: %s", s.Status)
	}
	if r.Status != StatusPreview {
		t.Errorf("Freeze changed the report's status to %s", r.Status)
	}
}

func TestCSVExport(t *testing.T) {
	s := finalSnapshot(t)
	var buf bytes.Buffer
	if err := ExportSnapshot(&buf, s, FormatCSV); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("header %v", recs[0])
	}
	r, _ := s.Report()
	if len(recs)-1 != len(Rows(r, ExportMeta{})) {
		t.Errorf("%d rows, want %d", len(recs)-1, len(Rows(r, ExportMeta{})))
	}
	idx := map[string]int{}
	byID := map[string][]string{}
	for i, rec := range recs[1:] {
		idx[rec[0]] = i
		byID[rec[0]] = rec
	}
	// Annex order.
	order := []string{"report_id", FDCName, FRedundancyCoolRack, FPDIT, FEDC, FERESOS, FICTServers, FBandwidthIn, FPUE, FREF, KPICUELB}
	for i := 1; i < len(order); i++ {
		if idx[order[i-1]] >= idx[order[i]] {
			t.Errorf("%s comes after %s", order[i-1], order[i])
		}
	}
	checks := []struct {
		id, col string
		want    string
	}{
		{FEDC, "value", "15600000"}, {FEDC, "unit", "kWh"}, {FEDC, "quality", "measured"}, {FEDC, "annex_ref", "II.1(d)"}, {FEDC, "symbol", "EDC"},
		{FEDC, "source", `meter greenloop_energy_joules_total{site="fra1",component="facility"}`},
		{FDCType, "value", "colocation"}, {FRefrigerantTypes, "value", "R-134a; R-1234ze(E)"}, {FFloorTotal, "quality", "entered"},
		{"snapshot_sha256", "value", s.SHA256}, {"status", "value", "final"},
	}
	col := map[string]int{}
	for i, h := range CSVHeader {
		col[h] = i
	}
	for _, c := range checks {
		if got := byID[c.id][col[c.col]]; got != c.want {
			t.Errorf("%s.%s = %q, want %q", c.id, c.col, got, c.want)
		}
	}
	pue, err := strconv.ParseFloat(byID[FPUE][col["value"]], 64)
	if err != nil || !near(pue, 1.3, 1e-12) {
		t.Errorf("pue %v %v", pue, err)
	}
}

func TestXLSXExport(t *testing.T) {
	s := finalSnapshot(t)
	var buf bytes.Buffer
	if err := ExportSnapshot(&buf, s, FormatXLSX); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); strings.Join(got, "|") != strings.Join(XLSXSheets, "|") {
		t.Fatalf("sheets %v, want %v", got, XLSXSheets)
	}
	find := func(sheet, id string) int {
		rows, err := f.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if len(r) > 0 && r[0] == id {
				return i + 1
			}
		}
		t.Fatalf("%s: no row %s", sheet, id)
		return 0
	}
	numeric := func(sheet, c string, want float64) {
		t.Helper()
		typ, err := f.GetCellType(sheet, c)
		if err != nil {
			t.Fatal(err)
		}
		if typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
			t.Errorf("%s!%s has type %v, want a number", sheet, c, typ)
		}
		raw, err := f.GetCellValue(sheet, c, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || !near(v, want, 1e-9*max(1, want)) {
			t.Errorf("%s!%s = %q, want %v", sheet, c, raw, want)
		}
		st, err := f.GetCellStyle(sheet, c)
		if err != nil {
			t.Fatal(err)
		}
		style, err := f.GetStyle(st)
		if err != nil {
			t.Fatal(err)
		}
		if style.CustomNumFmt == nil || *style.CustomNumFmt == "" {
			t.Errorf("%s!%s has no number format", sheet, c)
		}
	}
	row := find(SheetAnnexII, FEDC)
	numeric(SheetAnnexII, "E"+strconv.Itoa(row), 15_600_000)
	if u, _ := f.GetCellValue(SheetAnnexII, "F"+strconv.Itoa(row)); u != "kWh" {
		t.Errorf("EDC unit %q", u)
	}
	numeric(SheetAnnexII, "E"+strconv.Itoa(find(SheetAnnexII, FWIN)), 9600)
	numeric(SheetAnnexII, "E"+strconv.Itoa(find(SheetAnnexII, FPDIT)), 2000)
	numeric(SheetKPIs, "C"+strconv.Itoa(find(SheetKPIs, KPIPUE)), 1.3)
	if d, _ := f.GetCellValue(SheetKPIs, "C"+strconv.Itoa(find(SheetKPIs, KPIPUE))); d != "1.300" {
		t.Errorf("PUE shown as %q, want 1.300", d)
	}
	name := "A" + strconv.Itoa(find(SheetAnnexI, FDCName))
	if typ, _ := f.GetCellType(SheetAnnexI, strings.Replace(name, "A", "E", 1)); typ != excelize.CellTypeSharedString {
		t.Errorf("dc_name value type %v, want a string", typ)
	}
	// ESRS tables.
	rows, _ := f.GetRows(SheetE15)
	var total string
	for i, r := range rows {
		if len(r) > 0 && r[0] == "Total energy consumption (MWh)" {
			total = "C" + strconv.Itoa(i+1)
		}
	}
	numeric(SheetE15, total, 15635)
	rows, _ = f.GetRows(SheetE16)
	for i, r := range rows {
		if len(r) > 1 && r[1] == "Gross Scope 2 location-based (tCO2e)" {
			numeric(SheetE16, "G"+strconv.Itoa(i+1), 5327)
		}
	}
	if v, _ := f.GetCellValue(SheetValidation, "A1"); v != "severity" {
		t.Errorf("validation header %q", v)
	}
}

// pdftotext runs poppler's pdftotext, skipping (or failing on CI) without it.
func pdftotext(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pdftotext not found: install the Debian package poppler-utils")
		}
		t.Skip("pdftotext not found (Debian package poppler-utils); skipping the PDF text check")
	}
	p := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(p, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", p, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

func TestPDFExport(t *testing.T) {
	s := finalSnapshot(t)
	var buf bytes.Buffer
	if err := ExportSnapshot(&buf, s, FormatPDF); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatal("not a PDF")
	}
	text := pdftotext(t, buf.Bytes())
	norm := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{"Frankfurt 1", "fra1", "calendar year 2025", "1.300", "0.792", s.SHA256, "Status: FINAL",
		"15 600 000", "Monthly energy", "0 blocking error(s)", "5327.0", "1932.0", "Annex"} {
		if !strings.Contains(norm, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	if strings.Contains(norm, "PREVIEW") {
		t.Error("a final snapshot's PDF says PREVIEW")
	}
}

func TestPreviewExportsAreMarked(t *testing.T) {
	r := build(t, exampleRequest(t))
	var buf bytes.Buffer
	if err := Export(&buf, r, FormatPDF, ExportMeta{}); err != nil {
		t.Fatal(err)
	}
	text := pdftotext(t, buf.Bytes())
	if !strings.Contains(text, "PREVIEW - not frozen") {
		t.Error("preview PDF not marked")
	}
}

func TestChartsRender(t *testing.T) {
	r := build(t, exampleRequest(t))
	for name, f := range map[string]func(*Report) ([]byte, error){"energy": EnergyChartPNG, "pue": PUEChartPNG} {
		png, err := f(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 2000 {
			t.Errorf("%s chart: %d bytes, not a PNG", name, len(png))
		}
	}
}

func TestPDFWithholdsTradeSecrets(t *testing.T) {
	req := exampleRequest(t)
	e := exampleEntries()
	e[FTradeSecrets] = []string{FICTServers, "not_a_field"}
	req.Inputs = inputsOf(t, e)
	r := build(t, req)
	if len(r.TradeSecretFields) != 1 || !hasRule(r.Validation.Warnings, "trade_secret_unknown") {
		t.Fatalf("trade secrets %v, warnings %+v", r.TradeSecretFields, r.Validation.Warnings)
	}
	var pdf, csvOut bytes.Buffer
	if err := Export(&pdf, r, FormatPDF, ExportMeta{}); err != nil {
		t.Fatal(err)
	}
	if err := Export(&csvOut, r, FormatCSV, ExportMeta{}); err != nil {
		t.Fatal(err)
	}
	norm := strings.Join(strings.Fields(pdftotext(t, pdf.Bytes())), " ")
	if !strings.Contains(norm, "withheld (trade secret)") || strings.Contains(norm, "1 250 000") {
		t.Error("the PDF publishes a trade secret")
	}
	if !strings.Contains(csvOut.String(), "ict_capacity_servers,II.2,ICT capacity for servers,CSERV,1250000,") {
		t.Error("the CSV for the authority lost the withheld value")
	}
}

func TestPDFPrintsEULanguages(t *testing.T) {
	req := exampleRequest(t)
	e := exampleEntries()
	name := "Łódź Północ – Ústí nad Labem – Győr – Αθήνα"
	e[FDCName] = name
	req.Inputs = inputsOf(t, e)
	var pdf bytes.Buffer
	if err := Export(&pdf, build(t, req), FormatPDF, ExportMeta{}); err != nil {
		t.Fatal(err)
	}
	if text := pdftotext(t, pdf.Bytes()); !strings.Contains(text, name) {
		t.Errorf("PDF text lacks %q", name)
	}
}
