package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"strconv"
	"strings"

	"codeberg.org/go-fonts/liberation/liberationsansbold"
	"codeberg.org/go-fonts/liberation/liberationsansregular"
	"github.com/go-pdf/fpdf"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartPNG renders a plot to PNG through vgimg.
func chartPNG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(150))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("render chart %q: %w", p.Title.Text, err)
	}
	return buf.Bytes(), nil
}

func monthLabels(r *Report) []string {
	l := make([]string, len(r.Monthly))
	for i, m := range r.Monthly {
		l[i] = m.Month
		if len(m.Month) == 7 {
			l[i] = m.Month[5:]
		}
	}
	return l
}

// EnergyChartPNG is the monthly EDC vs EIT bar chart (MWh).
func EnergyChartPNG(r *Report) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Monthly energy %d (MWh)", r.year)
	p.Y.Label.Text = "MWh"
	edc, eit := make(plotter.Values, len(r.Monthly)), make(plotter.Values, len(r.Monthly))
	for i, m := range r.Monthly {
		edc[i], eit[i] = m.EDC.MWh(), m.EIT.MWh()
	}
	w := vg.Points(9)
	b1, err := plotter.NewBarChart(edc, w)
	if err != nil {
		return nil, fmt.Errorf("edc chart: %w", err)
	}
	b1.Color, b1.LineStyle.Width, b1.Offset = color.RGBA{R: 0x2e, G: 0x7d, B: 0x32, A: 0xff}, 0, -w/2
	b2, err := plotter.NewBarChart(eit, w)
	if err != nil {
		return nil, fmt.Errorf("eit chart: %w", err)
	}
	b2.Color, b2.LineStyle.Width, b2.Offset = color.RGBA{R: 0x15, G: 0x65, B: 0xc0, A: 0xff}, 0, w/2
	p.Add(b1, b2)
	p.Legend.Add("EDC (facility)", b1)
	p.Legend.Add("EIT (IT)", b2)
	p.Legend.Top, p.Legend.Left = true, true
	top := 0.0
	for _, v := range edc {
		top = max(top, v)
	}
	p.Y.Min, p.Y.Max = 0, top*1.3+1
	p.NominalX(monthLabels(r)...)
	return chartPNG(p, 16*vg.Centimeter, 7*vg.Centimeter)
}

// PUEChartPNG is the monthly PUE line chart.
func PUEChartPNG(r *Report) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Monthly PUE %d", r.year)
	p.Y.Label.Text = "PUE"
	var xys plotter.XYs
	for i, m := range r.Monthly {
		if m.PUE != nil {
			xys = append(xys, plotter.XY{X: float64(i), Y: *m.PUE})
		}
	}
	if len(xys) > 0 {
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("pue chart: %w", err)
		}
		l.Color = color.RGBA{R: 0xc6, G: 0x28, B: 0x28, A: 0xff}
		pts.Color = l.Color
		p.Add(l, pts)
	}
	if k := r.KPIs[KPIPUE]; k.Value != nil {
		annual, err := plotter.NewLine(plotter.XYs{{X: 0, Y: *k.Value}, {X: float64(max(len(r.Monthly)-1, 1)), Y: *k.Value}})
		if err == nil {
			annual.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(annual)
			p.Legend.Add("annual "+k.Display, annual)
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	p.NominalX(monthLabels(r)...)
	return chartPNG(p, 16*vg.Centimeter, 6*vg.Centimeter)
}

// pdfFont is the embedded UTF-8 font (Liberation Sans, SIL OFL, the font
// gonum/plot also embeds), so names in any EU language print correctly.
const pdfFont = "LiberationSans"

// pdfText maps the few characters Liberation Sans lacks.
var pdfText = strings.NewReplacer("→", "->", "₂", "2")

type pdfDoc struct {
	*fpdf.Fpdf
}

func (d *pdfDoc) t(s string) string { return pdfText.Replace(s) }

func (d *pdfDoc) heading(s string) {
	d.Ln(3)
	d.SetFont(pdfFont, "B", 12)
	d.CellFormat(0, 7, d.t(s), "", 1, "L", false, 0, "")
	d.SetFont(pdfFont, "", 8)
}

// fit shortens s to fit width w (mm) in the current font.
func (d *pdfDoc) fit(s string, w float64) string {
	s = d.t(s)
	if d.GetStringWidth(s) <= w-1 {
		return s
	}
	for len(s) > 0 && d.GetStringWidth(s+"...") > w-1 {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// table draws a table with column widths ws; numeric columns are right-aligned.
func (d *pdfDoc) table(ws []float64, head []string, rows [][]string, right map[int]bool) {
	d.SetFont(pdfFont, "B", 8)
	d.SetFillColor(230, 236, 230)
	for i, h := range head {
		d.CellFormat(ws[i], 5, d.fit(h, ws[i]), "1", 0, "L", true, 0, "")
	}
	d.Ln(-1)
	d.SetFont(pdfFont, "", 8)
	for _, row := range rows {
		if d.GetY() > 275 {
			d.AddPage()
		}
		for i, c := range row {
			align := "L"
			if right[i] {
				align = "R"
			}
			d.CellFormat(ws[i], 4.5, d.fit(c, ws[i]), "1", 0, align, false, 0, "")
		}
		d.Ln(-1)
	}
}

// displayValue formats a value for the PDF: numbers with thousands separators.
func displayValue(v any) string {
	x, ok := v.(float64)
	if !ok {
		return FormatValue(v)
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if x != float64(int64(x)) {
		s = strconv.FormatFloat(x, 'f', 3, 64)
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

func fmtPtr(p *float64, prec int) string {
	if p == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*p, 'f', prec, 64)
}

func exportPDF(w io.Writer, r *Report, meta ExportMeta) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes(pdfFont, "", liberationsansregular.TTF)
	pdf.AddUTF8FontFromBytes(pdfFont, "B", liberationsansbold.TTF)
	d := &pdfDoc{Fpdf: pdf}
	pdf.SetCreationDate(r.GeneratedAt)
	pdf.SetModificationDate(r.GeneratedAt)
	pdf.SetCatalogSort(true)
	pdf.SetTitle(fmt.Sprintf("EU data centre report %s %d", r.DataCentreName, r.year), true)
	pdf.SetCreator("greenloop", true)
	pdf.AliasNbPages("")
	footer := "PREVIEW - not frozen, not for publication"
	if meta.SHA256 != "" {
		footer = "Snapshot " + meta.SnapshotID + "  SHA-256 " + meta.SHA256
	}
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont(pdfFont, "", 6.5)
		pdf.CellFormat(170, 4, d.t(footer), "", 0, "L", false, 0, "")
		pdf.CellFormat(0, 4, fmt.Sprintf("page %d/{nb}", pdf.PageNo()), "", 0, "R", false, 0, "")
	})
	pdf.AddPage()

	pdf.SetFont(pdfFont, "B", 16)
	pdf.CellFormat(0, 9, d.t("EU data centre report - "+r.DataCentreName), "", 1, "L", false, 0, "")
	pdf.SetFont(pdfFont, "", 10)
	pdf.CellFormat(0, 6, d.t(fmt.Sprintf("Site %s · calendar year %d (%s to %s) · reporting year %d", r.DataCentreID, r.year, r.PeriodStart, r.PeriodEnd, r.ReportingYear)), "", 1, "L", false, 0, "")
	pdf.CellFormat(0, 6, d.t("Energy Efficiency Directive (EU) 2023/1791 art. 12, Delegated Regulation (EU) 2024/1364 Annexes I-III; ESRS E1-5, E1-6"), "", 1, "L", false, 0, "")
	status := strings.ToUpper(r.Status)
	if r.Status != StatusFinal {
		pdf.SetTextColor(198, 40, 40)
		status += " - not for publication"
	}
	pdf.SetFont(pdfFont, "B", 10)
	pdf.CellFormat(0, 6, d.t("Status: "+status+"   Schema: "+r.SchemaVersion+"   Report: "+r.ReportID), "", 1, "L", false, 0, "")
	pdf.SetTextColor(0, 0, 0)

	d.heading("Key performance indicators")
	var kr [][]string
	for _, id := range KPIOrder {
		k := r.KPIs[id]
		kr = append(kr, []string{strings.ToUpper(strings.ReplaceAll(id, "_", " ")), k.Display, k.Unit, k.Formula, k.Reason})
	}
	d.table([]float64{22, 22, 24, 60, 62}, []string{"KPI", "Value", "Unit", "Formula", "Note"}, kr, map[int]bool{1: true})

	if len(r.Monthly) > 0 {
		d.heading("Monthly energy and PUE")
		for i, render := range []func(*Report) ([]byte, error){EnergyChartPNG, PUEChartPNG} {
			png, err := render(r)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("chart%d", i)
			pdf.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
			hmm := 70.0
			if i == 1 {
				hmm = 60
			}
			if pdf.GetY()+hmm > 280 {
				pdf.AddPage()
			}
			pdf.ImageOptions(name, 15, pdf.GetY(), 160, hmm, true, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
		}
		if err := pdf.Error(); err != nil {
			return fmt.Errorf("pdf %s: %w", r.ReportID, err)
		}
	}

	d.heading("Fields (Annex I, Annex II)")
	var fr [][]string
	secret := map[string]bool{}
	for _, id := range r.TradeSecretFields {
		secret[id] = true
	}
	for _, row := range Rows(r, meta) {
		if row.Section == SectionEnvelope {
			continue
		}
		v := displayValue(row.Value)
		if k, ok := r.KPIs[row.ID]; ok && row.Value != nil {
			v = k.Display
		}
		if l, ok := row.Value.([]Instrument); ok {
			var sum KWh
			for _, in := range l {
				sum += in.KWh
			}
			v = fmt.Sprintf("%d instrument(s), %s kWh", len(l), displayValue(float64(sum)))
		}
		if l, ok := row.Value.([]Scope1Source); ok {
			v = fmt.Sprintf("%d source(s), see the E1-6 table", len(l))
			if len(l) == 0 {
				v = "none"
			}
		}
		switch {
		case secret[row.ID]:
			v = "withheld (trade secret)"
		case row.Value == nil:
			v = "-"
			if row.OmissionReason != "" {
				v = "omitted"
			}
		}
		fr = append(fr, []string{row.AnnexRef, row.Name, v, row.Unit, string(row.Quality)})
	}
	d.table([]float64{24, 92, 34, 18, 22}, []string{"Ref", "Field", "Value", "Unit", "Quality"}, fr, map[int]bool{2: true})

	d.heading("ESRS E1-5 energy consumption and mix (MWh)")
	mix := r.EnergyMix
	if mix.Available {
		var mr [][]string
		for _, row := range mix.Rows {
			mr = append(mr, []string{row.Label, row.Category, displayValue(row.MWh)})
		}
		mr = append(mr,
			[]string{"Total energy consumption", "", displayValue(mix.TotalMWh)},
			[]string{fmt.Sprintf("Shares: fossil %.2f %%, nuclear %.2f %%, renewable %.2f %%", mix.FossilPct, mix.NuclearPct, mix.RenewablePct), "", ""})
		d.table([]float64{120, 30, 40}, []string{"Line", "Category", "MWh"}, mr, map[int]bool{2: true})
	} else {
		pdf.MultiCell(0, 4.5, d.t("Not available: "+mix.Reason), "", "L", false)
	}

	d.heading("ESRS E1-6 gross Scope 1 and 2 emissions (tCO2e)")
	em := r.Emissions
	er := [][]string{
		{"Gross Scope 1", fmtPtr(em.Scope1T, 1)},
		{"Gross Scope 2, location-based", fmtPtr(em.Scope2LBT, 1)},
		{"Gross Scope 2, market-based", fmtPtr(em.Scope2MBT, 1)},
		{"Total Scope 1 + 2, location-based", fmtPtr(em.TotalLBT, 1)},
		{"Total Scope 1 + 2, market-based", fmtPtr(em.TotalMBT, 1)},
		{"Purchased electricity under contractual instruments (%)", fmtPtr(em.InstrumentsSharePct, 1)},
	}
	d.table([]float64{140, 50}, []string{"Line", "tCO2e"}, er, map[int]bool{1: true})

	d.heading("Validation")
	pdf.CellFormat(0, 5, fmt.Sprintf("%d blocking error(s), %d warning(s)", len(r.Validation.Errors), len(r.Validation.Warnings)), "", 1, "L", false, 0, "")
	var vr [][]string
	for _, is := range r.Validation.Errors {
		vr = append(vr, []string{"error", is.Field, is.Message})
	}
	for _, is := range r.Validation.Warnings {
		vr = append(vr, []string{"warning", is.Field, is.Message})
	}
	if len(vr) > 0 {
		d.table([]float64{16, 44, 130}, []string{"Severity", "Field", "Message"}, vr, nil)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("pdf %s: %w", r.ReportID, err)
	}
	return nil
}
