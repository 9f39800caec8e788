package report

import (
	"io"
	"testing"
)

// BenchmarkBuildAndExportAll builds the worked example and exports it in
// every format, as one "download everything" request would.
func BenchmarkBuildAndExportAll(b *testing.B) {
	req := exampleRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		r, err := Build(req)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Freeze("acme", r, FreezeOptions{Now: testNow, By: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []Format{FormatJSON, FormatCSV, FormatXLSX, FormatPDF} {
			if err := ExportSnapshot(io.Discard, s, f); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBuild is Build alone (catalogue, KPIs, ESRS tables, validation).
func BenchmarkBuild(b *testing.B) {
	req := exampleRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(req); err != nil {
			b.Fatal(err)
		}
	}
}
