package service

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// ConfiguredInstrument is one of a site's configured contractual
// instruments as the EU report takes it for one period.
type ConfiguredInstrument struct {
	// Path names it in the configuration, e.g. sites[fra1].instruments[go1].
	Path string
	// Instrument carries the energy that falls in the period, pro rata by
	// time of its production period (as market-based emissions take it).
	Instrument report.Instrument
	// Share is the part of the instrument's energy in the period, 0 to 1.
	Share float64
}

var countryCodeRe = regexp.MustCompile(`^[A-Z]{2}$`)

// ConfiguredInstruments returns the site's configured instruments whose
// production period overlaps [from, to), with the energy of the overlap
// pro rata by time, in configuration order. The beneficiary is the site;
// the country is the instrument's (else the site's) zone when that is an
// ISO 3166 code; the vintage is the overlap's year (or month).
func ConfiguredInstruments(site config.Site, from, to time.Time) []ConfiguredInstrument {
	var out []ConfiguredInstrument
	for i, in := range Instruments(site) {
		if !in.From.Before(to) || !in.To.After(from) || !in.To.After(in.From) {
			continue
		}
		lo, hi := maxTime(in.From, from), minTime(in.To, to)
		share := hi.Sub(lo).Seconds() / in.To.Sub(in.From).Seconds()
		avail := in.Energy * quantity.Energy(share)
		ri := report.Instrument{Type: string(in.Type), Registry: in.Registry, CertIDs: slices.Clone(in.CertIDs), Technology: in.Technology,
			BeneficiaryDCID: site.ID, KWh: report.KWh(avail.KWh())}
		if countryCodeRe.MatchString(in.Zone) {
			ri.Country = in.Zone
		}
		last := hi.Add(-time.Nanosecond).UTC()
		ri.Vintage = lo.UTC().Format("2006")
		if lo.UTC().Format("2006-01") == last.Format("2006-01") {
			ri.Vintage = lo.UTC().Format("2006-01")
		}
		if !in.CancelledAt.IsZero() {
			ri.CancellationDate = in.CancelledAt.UTC().Format(time.DateOnly)
		}
		if in.Factor != 0 || ri.Type == report.InstrumentSupplierMix {
			f := report.KgCO2ePerKWh(in.Factor.KgPerKWh())
			ri.EmissionFactor = &f
		}
		out = append(out, ConfiguredInstrument{Path: fmt.Sprintf("sites[%s].instruments[%s]", site.ID, site.Instruments[i].ID), Instrument: ri, Share: share})
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ByConfiguration is the author of the entries EUReport makes from the
// site configuration; their source in the report names the configuration.
const ByConfiguration = "configuration"

// reportPlan is how the configuration completes a report's entries: the
// entries to add, the field sources to state, and the validation issues
// about the two sources of contractual instruments.
type reportPlan struct {
	add      map[string]report.Entry
	sources  map[string]string
	errors   []report.Issue
	warnings []report.Issue
}

// planInstruments decides how the site's configured instruments enter the
// report of year. Precedence: contractual instruments entered for the report
// win; the configured ones are then left out (warning
// configured_instruments_ignored). Without an entry, the configured ones
// overlapping the year are the report's instruments (quality entered, source
// the configuration), and ERES-GOO / ERES-PPA are 0 when no configured
// instrument is of their types and they are not entered (the configuration
// is the site's portfolio, as market-based emissions take it). Either way a
// certificate both entered and configured is a blocking certificate_unique
// error.
func planInstruments(ctx context.Context, store report.InputStore, entries report.Inputs, tenant string, site config.Site, year int,
	opts report.Options, now time.Time) (reportPlan, error) {
	p := reportPlan{add: map[string]report.Entry{}, sources: map[string]string{}}
	from, to := YearPeriod(year)
	conf := ConfiguredInstruments(site, from, to)
	if len(conf) == 0 {
		return p, nil
	}
	paths := make([]string, len(conf))
	byCert := map[string]string{}
	for i, c := range conf {
		paths[i] = c.Path
		for _, id := range c.Instrument.CertIDs {
			byCert[id] = c.Path
		}
	}
	// The certificates entered for this site and year, read as the report reads them.
	claims, err := report.CertificateClaims(ctx, store, tenant, []string{site.ID}, []int{year})
	if err != nil {
		return p, err
	}
	for _, id := range slices.Sorted(maps.Keys(claims)) {
		if path, ok := byCert[id]; ok {
			p.errors = append(p.errors, report.Issue{Rule: "certificate_unique", Field: report.FInstruments,
				Message: fmt.Sprintf("certificate %s is claimed twice: entered in %s for %d and configured in %s; a certificate counts once, remove it from one of them",
					id, report.FInstruments, year, path)})
		}
	}
	entered, ok := entries.Current(report.FInstruments)
	if ok && len(entered.Value) > 0 {
		p.warnings = append(p.warnings, report.Issue{Rule: "configured_instruments_ignored", Field: report.FInstruments,
			Message: fmt.Sprintf("%s entered by %s is used; the configured %s are left out of the report (the entered instruments take precedence)",
				report.FInstruments, entered.By, strings.Join(paths, ", "))})
		return p, nil
	}
	list := make([]report.Instrument, len(conf))
	for i, c := range conf {
		list[i] = c.Instrument
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return p, err
	}
	p.add[report.FInstruments] = report.Entry{Value: raw, Quality: report.QualityEntered, By: ByConfiguration, At: now}
	src := "configuration: " + strings.Join(paths, ", ")
	if slices.ContainsFunc(conf, func(c ConfiguredInstrument) bool { return c.Share < 1 }) {
		src += fmt.Sprintf(" (energy pro rata to the part of each production period within %d)", year)
	}
	p.sources[report.FInstruments] = src
	for _, f := range []struct {
		id    string
		types []string
		what  string
	}{{report.FERESGOO, []string{report.InstrumentGO}, "a GO"}, {report.FERESPPA, opts.PPATypesForERESPPA, "a PPA of type " + strings.Join(opts.PPATypesForERESPPA, " or ")}} {
		if slices.ContainsFunc(list, func(in report.Instrument) bool { return slices.Contains(f.types, in.Type) }) {
			continue
		}
		if e, ok := entries.Current(f.id); ok && len(e.Value) > 0 {
			continue
		}
		p.add[f.id] = report.Entry{Value: json.RawMessage("0"), Quality: report.QualityEntered, By: ByConfiguration, At: now}
		p.sources[f.id] = fmt.Sprintf("configuration: none of %s is %s", strings.Join(paths, ", "), f.what)
	}
	return p, nil
}

// configuredClaims returns the certificates of configured instruments that
// are claimed outside this report: by the tenant's other sites, and by this
// site for other years (an instrument whose production period overlaps the
// report's year is this report's own claim, whatever other years it spans),
// within two years of the report's.
func configuredClaims(site config.Site, others []config.Site, year int) map[string]report.CertificateClaim {
	out := map[string]report.CertificateClaim{}
	overlaps := func(in config.Instrument, y int) bool {
		f, t := YearPeriod(y)
		return in.From.Before(t) && in.To.After(f)
	}
	for _, s := range append([]config.Site{site}, others...) {
		for _, in := range s.Instruments {
			if s.ID == site.ID && overlaps(in, year) {
				continue
			}
			for y := year - 2; y <= year+2; y++ {
				if !overlaps(in, y) {
					continue
				}
				for _, id := range in.CertIDs {
					if _, ok := out[id]; !ok {
						out[id] = report.CertificateClaim{DataCentreID: s.ID, Year: y}
					}
				}
				break
			}
		}
	}
	return out
}

// overlayInputs adds entries to one site and year's stored inputs, without
// storing them.
type overlayInputs struct {
	report.InputStore
	tenant, site string
	year         int
	add          map[string]report.Entry
}

func (o overlayInputs) Get(ctx context.Context, tenant, site string, year int) (report.Inputs, error) {
	in, err := o.InputStore.Get(ctx, tenant, site, year)
	if err != nil || tenant != o.tenant || site != o.site || year != o.year || len(o.add) == 0 {
		return in, err
	}
	fields := make(map[string][]report.Entry, len(in.Fields)+len(o.add))
	maps.Copy(fields, in.Fields)
	for id, e := range o.add {
		fields[id] = append(slices.Clone(fields[id]), e)
	}
	in.Fields = fields
	return in, nil
}
