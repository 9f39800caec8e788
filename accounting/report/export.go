package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format is an export format.
type Format string

// Export formats.
const (
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
	FormatXLSX Format = "xlsx"
	FormatPDF  Format = "pdf"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatJSON, FormatCSV, FormatXLSX, FormatPDF:
		return f, nil
	}
	return "", fmt.Errorf("unknown report format %q (want json, csv, xlsx or pdf)", s)
}

// ContentType returns the MIME type of a format.
func (f Format) ContentType() string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatCSV:
		return "text/csv; charset=utf-8"
	case FormatXLSX:
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case FormatPDF:
		return "application/pdf"
	}
	return "application/octet-stream"
}

// ExportMeta identifies the snapshot an export comes from; empty for a
// preview.
type ExportMeta struct {
	SnapshotID string
	SHA256     string
}

// Export writes a report in a format. A preview (no snapshot) is marked as
// such in the CSV, XLSX and PDF; its JSON is the canonical JSON with status
// "preview".
func Export(w io.Writer, r *Report, f Format, meta ExportMeta) error {
	switch f {
	case FormatJSON:
		data, err := MarshalCanonical(r)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case FormatCSV:
		return exportCSV(w, r, meta)
	case FormatXLSX:
		return exportXLSX(w, r, meta)
	case FormatPDF:
		return exportPDF(w, r, meta)
	}
	return fmt.Errorf("export: unknown format %q", f)
}

// ExportSnapshot writes a frozen report. Its JSON export is the snapshot's
// bytes unchanged, so every re-export is byte-identical and its SHA-256 is
// the snapshot's hash.
func ExportSnapshot(w io.Writer, s Snapshot, f Format) error {
	if f == FormatJSON {
		_, err := w.Write(s.JSON)
		return err
	}
	r, err := s.Report()
	if err != nil {
		return fmt.Errorf("export snapshot %s: %w", s.ID, err)
	}
	return Export(w, r, f, ExportMeta{SnapshotID: s.ID, SHA256: s.SHA256})
}

// FormatValue renders a field value as text: numbers in full precision,
// lists joined with "; ", instruments as JSON.
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []string:
		return strings.Join(x, "; ")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// Row is one line of the tabular exports (CSV, XLSX, PDF).
type Row struct {
	ID, AnnexRef, Name, Symbol string
	Value                      any
	Unit                       string
	Quality                    Quality
	Source                     string
	OmissionReason             string
	Section                    Section
}

// Rows returns the report as rows in annex order: the envelope, then
// every catalogue field, then the CUE indicators.
func Rows(r *Report, meta ExportMeta) []Row {
	cat, ok := LookupCatalogue(r.SchemaVersion)
	if !ok {
		cat = r.Assumptions.catalogue()
	}
	env := func(id, name string, v any) Row {
		return Row{ID: id, AnnexRef: "envelope", Name: name, Value: v, Section: SectionEnvelope}
	}
	var submitted any
	if r.SubmittedAt != nil {
		submitted = r.SubmittedAt.UTC().Format(time.RFC3339)
	}
	rows := []Row{
		env("report_id", "Report id", r.ReportID),
		env("schema_version", "Schema version", r.SchemaVersion),
		env("status", "Status", r.Status),
		env("data_centre_id", "Data centre id", r.DataCentreID),
		env("reporting_year", "Reporting year", float64(r.ReportingYear)),
		env("period_start", "Period start", r.PeriodStart),
		env("period_end", "Period end", r.PeriodEnd),
		env(FPartialYear, "Partial year", r.PartialYear),
		env(FReportingRoute, "Reporting route", r.ReportingRoute),
		env(FMSEntityRef, "Member State entity ReferenceID", r.MSEntityReferenceID),
		env(FMSDCRef, "Member State data centre ReferenceID", r.MSDCReferenceID),
		env("submitted_at", "Submitted at", submitted),
		env(FEvidence, "Evidence", r.Evidence),
		env(FTradeSecrets, "Fields withheld from publication (trade secrets)", r.TradeSecretFields),
		env("snapshot_sha256", "Snapshot SHA-256 (of the JSON export)", meta.SHA256),
	}
	for _, f := range cat.Fields() {
		if f.Section == SectionEnvelope {
			continue
		}
		fv := r.Fields[f.ID]
		rows = append(rows, Row{ID: f.ID, AnnexRef: f.AnnexRef, Name: f.Name, Symbol: f.Symbol, Value: fv.Value, Unit: f.Unit,
			Quality: fv.Quality, Source: fv.Source, OmissionReason: fv.OmissionReason, Section: f.Section})
	}
	for _, id := range []string{KPICUELB, KPICUEMB} {
		k := r.KPIs[id]
		row := Row{ID: id, AnnexRef: "ISO/IEC 30134-8", Name: k.Name, Symbol: strings.ToUpper(id), Unit: k.Unit, Source: "derived: " + k.Formula,
			Quality: QualityNotAvailable, OmissionReason: k.Reason, Section: SectionAnnexIII}
		if k.Value != nil {
			row.Value, row.Quality = *k.Value, worst(r.Fields[FEIT].Quality, r.Fields[FGridImport].Quality)
		}
		rows = append(rows, row)
	}
	return rows
}

// CSVHeader is the header of the CSV export.
var CSVHeader = []string{"id", "annex_ref", "name", "symbol", "value", "unit", "quality", "source", "omission_reason"}

func exportCSV(w io.Writer, r *Report, meta ExportMeta) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, row := range Rows(r, meta) {
		if err := cw.Write([]string{row.ID, row.AnnexRef, row.Name, row.Symbol, FormatValue(row.Value), row.Unit, string(row.Quality), row.Source, row.OmissionReason}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
