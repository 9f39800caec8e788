package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/xuri/excelize/v2"
)

// XLSX worksheet names, in annex order.
const (
	SheetAnnexI     = "Annex I"
	SheetAnnexII    = "Annex II"
	SheetKPIs       = "KPIs"
	SheetE15        = "ESRS E1-5"
	SheetE16        = "ESRS E1-6"
	SheetValidation = "Validation"
)

// XLSXSheets lists the worksheets of the XLSX export in order.
var XLSXSheets = []string{SheetAnnexI, SheetAnnexII, SheetKPIs, SheetE15, SheetE16, SheetValidation}

// XLSXFieldHeader is the header row of the field worksheets; values are in
// column E, numbers stored as numbers.
var XLSXFieldHeader = []any{"id", "annex_ref", "name", "symbol", "value", "unit", "quality", "source", "omission_reason"}

type xlsxWriter struct {
	f      *excelize.File
	bold   int
	styles map[string]int // number format → style id
	err    error
}

func (x *xlsxWriter) numStyle(format string) int {
	if id, ok := x.styles[format]; ok {
		return id
	}
	fm := format
	id, err := x.f.NewStyle(&excelize.Style{CustomNumFmt: &fm})
	if err != nil && x.err == nil {
		x.err = fmt.Errorf("xlsx style %q: %w", format, err)
	}
	x.styles[format] = id
	return id
}

func cell(col, row int) string {
	c, _ := excelize.CoordinatesToCellName(col, row)
	return c
}

// set writes one cell: numbers as numbers with a number format, the rest as text.
func (x *xlsxWriter) set(sheet string, col, row int, v any, format string) {
	if x.err != nil {
		return
	}
	c := cell(col, row)
	switch t := v.(type) {
	case nil:
		return
	case float64:
		if err := x.f.SetCellFloat(sheet, c, t, -1, 64); err != nil {
			x.err = err
			return
		}
		if format == "" {
			format = "General"
		}
		if err := x.f.SetCellStyle(sheet, c, c, x.numStyle(format)); err != nil {
			x.err = err
		}
	case *float64:
		if t != nil {
			x.set(sheet, col, row, *t, format)
		}
	case int:
		x.set(sheet, col, row, float64(t), "0")
	case bool, string:
		x.err = x.f.SetCellValue(sheet, c, t)
	default:
		x.err = x.f.SetCellStr(sheet, c, FormatValue(v))
	}
}

func (x *xlsxWriter) header(sheet string, row int, cols ...any) {
	for i, c := range cols {
		x.set(sheet, i+1, row, c, "")
	}
	if x.err == nil {
		x.err = x.f.SetCellStyle(sheet, cell(1, row), cell(len(cols), row), x.bold)
	}
}

// unitFormat is the number format of a unit.
func unitFormat(unit string) string {
	switch unit {
	case "kWh", "m³", "kW", "m²", "degree-days", "SERT score":
		return "#,##0.###"
	case "%":
		return "0.00"
	case "°C":
		return "0.0"
	case "L/kWh", "kgCO2e/kWh", "":
		return "0.000"
	}
	return "General"
}

func kpiFormat(decimals int) string {
	if decimals <= 0 {
		return "0"
	}
	return "0." + strings.Repeat("0", decimals)
}

func exportXLSX(w io.Writer, r *Report, meta ExportMeta) error {
	f := excelize.NewFile()
	defer f.Close()
	x := &xlsxWriter{f: f, styles: map[string]int{}}
	var err error
	if x.bold, err = f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}}); err != nil {
		return fmt.Errorf("xlsx: %w", err)
	}
	if err := f.SetSheetName("Sheet1", XLSXSheets[0]); err != nil {
		return fmt.Errorf("xlsx: %w", err)
	}
	for _, s := range XLSXSheets[1:] {
		if _, err := f.NewSheet(s); err != nil {
			return fmt.Errorf("xlsx sheet %s: %w", s, err)
		}
	}
	rows := Rows(r, meta)
	fieldSheet := func(sheet string, sections ...Section) {
		x.header(sheet, 1, XLSXFieldHeader...)
		n := 2
		for _, row := range rows {
			in := false
			for _, s := range sections {
				in = in || row.Section == s
			}
			if !in {
				continue
			}
			x.set(sheet, 1, n, row.ID, "")
			x.set(sheet, 2, n, row.AnnexRef, "")
			x.set(sheet, 3, n, row.Name, "")
			x.set(sheet, 4, n, row.Symbol, "")
			x.set(sheet, 5, n, row.Value, unitFormat(row.Unit))
			x.set(sheet, 6, n, row.Unit, "")
			x.set(sheet, 7, n, string(row.Quality), "")
			x.set(sheet, 8, n, row.Source, "")
			x.set(sheet, 9, n, row.OmissionReason, "")
			n++
		}
		if x.err == nil {
			x.err = f.SetColWidth(sheet, "C", "C", 60)
		}
		if x.err == nil {
			x.err = f.SetColWidth(sheet, "H", "H", 50)
		}
	}
	fieldSheet(SheetAnnexI, SectionEnvelope, SectionAnnexI)
	fieldSheet(SheetAnnexII, SectionAnnexII1, SectionAnnexII2, SectionAnnexII3)

	// KPIs and the monthly table.
	s := SheetKPIs
	x.header(s, 1, "id", "name", "value", "display", "unit", "formula", "category", "completeness_pct", "estimated_share_pct", "meters", "reason")
	n := 2
	for _, id := range KPIOrder {
		k := r.KPIs[id]
		x.set(s, 1, n, k.ID, "")
		x.set(s, 2, n, k.Name, "")
		x.set(s, 3, n, k.Value, kpiFormat(r.Assumptions.Decimals[id]))
		x.set(s, 4, n, k.Display, "")
		x.set(s, 5, n, k.Unit, "")
		x.set(s, 6, n, k.Formula, "")
		x.set(s, 7, n, k.Category, "")
		x.set(s, 8, n, k.CompletenessPct, "0.00")
		x.set(s, 9, n, k.EstimatedSharePct, "0.00")
		x.set(s, 10, n, strings.Join(k.MeterIDs, "; "), "")
		x.set(s, 11, n, k.Reason, "")
		n++
	}
	n++
	x.header(s, n, "month", "EDC kWh", "EIT kWh", "PUE")
	for _, m := range r.Monthly {
		n++
		x.set(s, 1, n, m.Month, "")
		x.set(s, 2, n, float64(m.EDC), "#,##0")
		x.set(s, 3, n, float64(m.EIT), "#,##0")
		x.set(s, 4, n, m.PUE, "0.000")
	}

	// ESRS E1-5.
	s = SheetE15
	mix := r.EnergyMix
	x.header(s, 1, "line", "category", "MWh")
	n = 2
	for _, row := range mix.Rows {
		x.set(s, 1, n, row.Label, "")
		x.set(s, 2, n, row.Category, "")
		x.set(s, 3, n, row.MWh, "#,##0.00")
		n++
	}
	n++
	for _, t := range []struct {
		label  string
		v      float64
		format string
	}{
		{"Total energy consumption (MWh)", mix.TotalMWh, "#,##0.00"},
		{"Fossil sources (MWh)", mix.FossilMWh, "#,##0.00"},
		{"Nuclear sources (MWh)", mix.NuclearMWh, "#,##0.00"},
		{"Renewable sources (MWh)", mix.RenewableMWh, "#,##0.00"},
		{"Fossil share (%)", mix.FossilPct, "0.00"},
		{"Nuclear share (%)", mix.NuclearPct, "0.00"},
		{"Renewable share (%)", mix.RenewablePct, "0.00"},
		{"Renewable fuels (MWh)", mix.RenewableFuelsMWh, "#,##0.00"},
		{"Purchased renewable electricity, heat, steam, cooling (MWh)", mix.RenewablePurchasedMWh, "#,##0.00"},
		{"Self-generated non-fuel renewable energy (MWh)", mix.RenewableSelfGeneratedMWh, "#,##0.00"},
		{"Renewable energy production (MWh)", mix.ProductionRenewableMWh, "#,##0.00"},
		{"Non-renewable energy production (MWh)", mix.ProductionNonRenewableMWh, "#,##0.00"},
	} {
		x.set(s, 1, n, t.label, "")
		if mix.Available {
			x.set(s, 3, n, t.v, t.format)
		}
		n++
	}
	for _, note := range append(notesOr(mix.Reason), mix.Notes...) {
		x.set(s, 1, n, "Note: "+note, "")
		n++
	}

	// ESRS E1-6.
	s = SheetE16
	em := r.Emissions
	x.header(s, 1, "scope", "line", "quantity", "unit", "factor", "factor unit", "tCO2e")
	n = 2
	for _, row := range em.Rows {
		x.set(s, 1, n, row.Scope, "")
		x.set(s, 2, n, row.Label, "")
		x.set(s, 3, n, row.Quantity, "#,##0.###")
		x.set(s, 4, n, row.Unit, "")
		x.set(s, 5, n, row.Factor, "0.000###")
		x.set(s, 6, n, row.FactorUnit, "")
		x.set(s, 7, n, row.TCO2e, "#,##0.000")
		n++
	}
	n++
	for _, t := range []struct {
		label string
		v     *float64
	}{
		{"Gross Scope 1 (tCO2e)", em.Scope1T},
		{"Gross Scope 2 location-based (tCO2e)", em.Scope2LBT},
		{"Gross Scope 2 market-based (tCO2e)", em.Scope2MBT},
		{"Total Scope 1 + 2 location-based (tCO2e)", em.TotalLBT},
		{"Total Scope 1 + 2 market-based (tCO2e)", em.TotalMBT},
		{"Purchased electricity covered by contractual instruments (%)", em.InstrumentsSharePct},
	} {
		x.set(s, 2, n, t.label, "")
		x.set(s, 7, n, t.v, "#,##0.000")
		n++
	}
	x.set(s, 2, n, "Contractual instrument types", "")
	x.set(s, 7, n, strings.Join(em.InstrumentTypes, ", "), "")
	n++
	for _, ef := range []*EmissionFactor{em.LocationFactor, em.ResidualFactor} {
		if ef != nil {
			x.set(s, 2, n, fmt.Sprintf("Factor: %s %s (%d), %s %s", ef.Source, ef.DatasetVersion, ef.Year, ef.Gases, ef.LCAScope), "")
			x.set(s, 5, n, float64(ef.Value), "0.000###")
			x.set(s, 6, n, "kgCO2e/kWh", "")
			n++
		}
	}
	for _, note := range em.Notes {
		x.set(s, 2, n, "Note: "+note, "")
		n++
	}

	// Validation.
	s = SheetValidation
	x.header(s, 1, "severity", "rule", "field", "message")
	n = 2
	for _, g := range []struct {
		sev string
		is  []Issue
	}{{"error", r.Validation.Errors}, {"warning", r.Validation.Warnings}} {
		for _, is := range g.is {
			x.set(s, 1, n, g.sev, "")
			x.set(s, 2, n, is.Rule, "")
			x.set(s, 3, n, is.Field, "")
			x.set(s, 4, n, is.Message, "")
			n++
		}
	}
	if x.err != nil {
		return fmt.Errorf("xlsx %s: %w", r.ReportID, x.err)
	}
	if err := f.SetDocProps(&excelize.DocProperties{
		Title: fmt.Sprintf("EU data centre report %s %d", r.DataCentreID, r.year), Subject: r.ReportID,
		Description: "status " + r.Status + "; snapshot sha256 " + meta.SHA256, Creator: "greenloop",
	}); err != nil {
		return fmt.Errorf("xlsx %s: %w", r.ReportID, err)
	}
	if err := f.Write(w); err != nil {
		return fmt.Errorf("xlsx %s: %w", r.ReportID, err)
	}
	return nil
}

func notesOr(reason string) []string {
	if reason == "" {
		return nil
	}
	return []string{reason}
}
