package report

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestServiceFreezeAndCrossSiteCertificates(t *testing.T) {
	ctx := context.Background()
	inputs, err := NewFileInputStore(t.TempDir(), nil, stepClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := NewFileSnapshotStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Inputs: inputs, Snapshots: snaps, Now: func() time.Time { return testNow }}
	if err := inputs.Put(ctx, "acme", "fra1", 2025, rawEntries(t, exampleEntries()), "alice"); err != nil {
		t.Fatal(err)
	}
	snap, r, err := svc.Freeze(ctx, "acme", testSite(), 2025, exampleMeasured(), []string{"ams2"}, false, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Status != StatusFinal || !r.Validation.OK() {
		t.Fatalf("status %s", snap.Status)
	}
	got, err := snaps.Get(ctx, "acme", snap.ID)
	if err != nil || got.SHA256 != snap.SHA256 {
		t.Fatalf("get: %v", err)
	}
	// ams2 claims one of fra1's GOs the next year.
	if err := inputs.Put(ctx, "acme", "ams2", 2026, rawEntries(t, map[string]any{FInstruments: []Instrument{
		{Type: InstrumentGO, CertIDs: []string{"DE-GO-2025-000002"}, BeneficiaryDCID: "ams2", KWh: 1000},
	}}), "carol"); err != nil {
		t.Fatal(err)
	}
	_, r, err = svc.Freeze(ctx, "acme", testSite(), 2025, exampleMeasured(), []string{"ams2"}, false, "bob")
	if !errors.Is(err, ErrBlocking) || !hasRule(r.Validation.Errors, "certificate_unique") {
		t.Fatalf("double claim across sites: %v", err)
	}
	if snap, _, err := svc.Freeze(ctx, "acme", testSite(), 2025, exampleMeasured(), []string{"ams2"}, true, "bob"); err != nil || snap.Status != StatusDraft {
		t.Fatalf("draft freeze: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Options){
		func(o *Options) { o.ResidualRenewableAs = "nuclear" },
		func(o *Options) { o.PUEWarnMin = 0.9 },
		func(o *Options) { o.PPATypesForERESPPA = []string{"REC"} },
		func(o *Options) { o.FuelNCV["diesel/L"] = 0 },
		func(o *Options) { o.CompletenessMinPct = 101 },
	}
	for i, f := range bad {
		o := DefaultOptions()
		f(&o)
		if o.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func TestServiceSameCertificateTwoYears(t *testing.T) {
	ctx := context.Background()
	inputs, err := NewFileInputStore(t.TempDir(), nil, stepClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Inputs: inputs, Now: func() time.Time { return testNow }}
	if err := inputs.Put(ctx, "acme", "fra1", 2025, rawEntries(t, exampleEntries()), "alice"); err != nil {
		t.Fatal(err)
	}
	r, err := svc.Preview(ctx, "acme", testSite(), 2025, exampleMeasured(), nil)
	if err != nil || !r.Validation.OK() {
		t.Fatalf("preview: %v %+v", err, r.Validation.Errors)
	}
	// The PPA certificate is entered again for 2024.
	if err := inputs.Put(ctx, "acme", "fra1", 2024, rawEntries(t, map[string]any{FInstruments: []Instrument{
		{Type: InstrumentPPAPhysical, CertIDs: []string{"DE-PPA-2025-77"}, BeneficiaryDCID: "fra1", KWh: 1000},
	}}), "alice"); err != nil {
		t.Fatal(err)
	}
	r, err = svc.Preview(ctx, "acme", testSite(), 2025, exampleMeasured(), nil)
	if err != nil || !hasRule(r.Validation.Errors, "certificate_unique") {
		t.Fatalf("certificate used for two years not caught: %v %+v", err, r.Validation.Errors)
	}
}
