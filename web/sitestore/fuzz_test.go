package sitestore_test

import (
	"bytes"
	"testing"

	"github.com/greenloop/greenloop/web/sitestore"
)

// FuzzParseSite: ParseSite never panics, and a site it accepts that
// validates encodes (EncodeSite) to a document that parses back to the
// same encoding: what the admin API and the CLI store reads back unchanged.
func FuzzParseSite(f *testing.F) {
	for _, s := range []string{
		`{"id": "fra1", "zone": "DE", "location": {"lat": 50.1, "lon": 8.6}, "it_capacity_kw": 800}`,
		"id: ams1\ntenant: acme\nzone: NL\npue: {value: 1.4, basis: measured}\nmeters:\n  it_energy: 'x{site=\"ams1\"}'\n",
		`{"id": "x", "zone": "DE", "instruments": [{"id": "g", "type": "GO", "cert_ids": ["a"], "from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "energy_mwh": 0.30000000000000004}]}`,
		`{"id": "x", "zone": "DE", "colour": "green"}`,
		"id: a\n---\nid: b\n",
		`{"id": "x", "id": "y"}`,
		`{"id": "x", "zone": "DE", "it_capacity_kw": .nan}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := sitestore.ParseSite(data)
		if err != nil || s.Validate("") != nil {
			return
		}
		doc, err := sitestore.EncodeSite(s)
		if err != nil {
			t.Fatalf("a valid site does not encode: %v (%+v)", err, s)
		}
		back, err := sitestore.ParseSite(doc)
		if err != nil {
			t.Fatalf("its encoding does not parse: %v\n%s", err, doc)
		}
		doc2, err := sitestore.EncodeSite(back)
		if err != nil || !bytes.Equal(doc, doc2) {
			t.Fatalf("round trip changed the site:\n%s\n%s (%v)", doc, doc2, err)
		}
	})
}
