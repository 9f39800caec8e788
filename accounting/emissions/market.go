package emissions

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// InstrumentType is the kind of contractual instrument, in the order of the
// GHG Protocol's market-based factor hierarchy.
type InstrumentType string

// Instrument types.
const (
	// GuaranteeOfOrigin is an energy attribute certificate (EU GO per EN 16325, EECS, or a REC/I-REC).
	GuaranteeOfOrigin InstrumentType = "GO"
	PPAPhysical       InstrumentType = "PPA_physical"
	PPAVirtual        InstrumentType = "PPA_virtual"
	GreenTariff       InstrumentType = "green_tariff"
	// SupplierMix is the supplier- or product-specific emission factor of the electricity contract.
	SupplierMix InstrumentType = "supplier_mix"
)

var instrumentRank = map[InstrumentType]int{GuaranteeOfOrigin: 0, PPAPhysical: 1, PPAVirtual: 2, GreenTariff: 3, SupplierMix: 4}

// Instrument is one contractual instrument a site holds: a lot of
// certificates, a PPA's attributes, a green tariff or a supplier mix.
type Instrument struct {
	// ID names the instrument (contract or lot) in errors and results.
	ID   string
	Type InstrumentType
	// Registry is where its certificates are tracked and cancelled (e.g. "AIB hub, UBA HKNR").
	Registry string
	// CertIDs are the certificates (or certificate ranges) it conveys; each
	// may be claimed by one site for one period only.
	CertIDs []string
	// Site is the beneficiary data centre.
	Site string
	// Zone is the market (country or bidding zone) the energy was produced in.
	Zone       string
	Technology string
	// From and To bound the production period (vintage) it covers. When a
	// report period covers only part of it, the part of Energy that falls in
	// the report period, pro rata by time, is available.
	From, To time.Time
	// Energy is the volume it covers.
	Energy quantity.Energy
	// Factor is its emission factor: 0 for renewable (and nuclear) attributes,
	// the disclosed mix for a supplier-specific factor.
	Factor quantity.Intensity
	// CancelledAt is when the certificates were cancelled (retired) for the site; informational.
	CancelledAt time.Time
}

// Allocation is the part of one instrument applied to a site's consumption.
type Allocation struct {
	Instrument Instrument
	// Available is the instrument's energy inside the report period.
	Available quantity.Energy
	// Applied is what covered consumption; the rest expires unused.
	Applied   quantity.Energy
	Emissions quantity.CO2e
}

// DoubleClaimError is returned when a certificate is claimed twice.
type DoubleClaimError struct {
	CertID string
	// First and Second are the instruments (and their sites) that claim it.
	First, Second string
}

func (e *DoubleClaimError) Error() string {
	return fmt.Sprintf("certificate %q is claimed twice: by %s and by %s", e.CertID, e.First, e.Second)
}

// ErrDoubleClaim is wrapped by every DoubleClaimError (errors.Is(err, ErrDoubleClaim)).
var ErrDoubleClaim = errors.New("certificate claimed twice")

// Is reports ErrDoubleClaim.
func (e *DoubleClaimError) Is(target error) bool { return target == ErrDoubleClaim }

// CheckClaims reports every certificate that more than one instrument claims
// (whatever their sites), and instruments with no certificate or no site.
func CheckClaims(instruments []Instrument) error {
	var errs []error
	seen := map[string]string{}
	for i, in := range instruments {
		name := fmt.Sprintf("instrument %q (site %q)", in.ID, in.Site)
		if in.ID == "" {
			errs = append(errs, fmt.Errorf("instruments[%d]: empty id", i))
		}
		if in.Site == "" {
			errs = append(errs, fmt.Errorf("%s: no beneficiary site", name))
		}
		if _, ok := instrumentRank[in.Type]; !ok {
			errs = append(errs, fmt.Errorf("%s: unknown type %q (want GO, PPA_physical, PPA_virtual, green_tariff or supplier_mix)", name, in.Type))
		}
		if !in.To.After(in.From) {
			errs = append(errs, fmt.Errorf("%s: empty period %s to %s", name, in.From.Format(time.DateOnly), in.To.Format(time.DateOnly)))
		}
		if in.Energy < 0 || math.IsNaN(float64(in.Energy)) {
			errs = append(errs, fmt.Errorf("%s: negative energy %s", name, in.Energy))
		}
		if in.Factor < 0 || math.IsNaN(float64(in.Factor)) {
			errs = append(errs, fmt.Errorf("%s: negative factor %s", name, in.Factor))
		}
		if len(in.CertIDs) == 0 && (in.Type == GuaranteeOfOrigin || in.Type == PPAVirtual) {
			errs = append(errs, fmt.Errorf("%s: no certificate ids; certificates must be tracked to be claimed", name))
		}
		for _, c := range in.CertIDs {
			if prev, dup := seen[c]; dup {
				errs = append(errs, &DoubleClaimError{CertID: c, First: prev, Second: name})
				continue
			}
			seen[c] = name
		}
	}
	return errors.Join(errs...)
}

// Ledger remembers which site and period each certificate was claimed for,
// across reports computed in one process, so a certificate used in one
// report cannot be used again in another. Persisting it is the caller's job.
// It is not safe for concurrent use.
type Ledger struct {
	claims map[string]claim
}

type claim struct {
	site     string
	from, to time.Time
	by       string
}

// Claim records the certificates of in for site over [from, to). Claiming a
// certificate again for the same site and the same period is allowed
// (recomputing a report); any other claim is a DoubleClaimError.
func (l *Ledger) Claim(in Instrument, site string, from, to time.Time) error {
	if l.claims == nil {
		l.claims = map[string]claim{}
	}
	name := fmt.Sprintf("instrument %q (site %q, %s to %s)", in.ID, site, from.Format(time.DateOnly), to.Format(time.DateOnly))
	for _, c := range in.CertIDs {
		if prev, ok := l.claims[c]; ok && (prev.site != site || !prev.from.Equal(from) || !prev.to.Equal(to)) {
			return &DoubleClaimError{CertID: c, First: prev.by, Second: name}
		}
	}
	for _, c := range in.CertIDs {
		l.claims[c] = claim{site: site, from: from, to: to, by: name}
	}
	return nil
}

// MarketInput is what Market needs.
type MarketInput struct {
	Site string
	// Zone is the site's grid zone; the residual mix must be for it.
	Zone string
	// Energy is the site's consumption in buckets (any length).
	Energy *energy.Result
	// Instruments may hold the whole portfolio: only those whose Site is
	// this site and whose period overlaps the report count. Every
	// certificate must appear once in the whole list.
	Instruments []Instrument
	// Residual is the residual mix of the zone, for consumption no
	// instrument covers. Required when any remains.
	Residual *Factor
	// Overhead, when set, scales the energy (IT-only) by a PUE.
	Overhead *Overhead
	// Ledger, when set, records the claims and refuses certificates already
	// claimed for another site or period.
	Ledger *Ledger
}

// Market computes market-based Scope 2 emissions: instruments in the order
// of the factor hierarchy (certificates, PPAs, green tariffs, supplier mix)
// cover consumption at their own factor, and the residual mix the rest.
// The hourly series spreads the result in proportion to each bucket's
// energy (annual matching); see Match for hourly matching.
func Market(in MarketInput) (*Result, error) {
	if in.Energy == nil {
		return nil, errors.New("market-based emissions: no energy")
	}
	if err := CheckClaims(in.Instruments); err != nil {
		return nil, fmt.Errorf("market-based emissions of site %q: %w", in.Site, err)
	}
	scale, err := overheadScale(in.Overhead)
	if err != nil {
		return nil, err
	}
	from, to := in.Energy.From, in.Energy.To
	r := &Result{Site: in.Site, From: from, To: to, Method: MarketBased, Overhead: in.Overhead}
	var weighted, span float64
	for _, b := range in.Energy.Buckets {
		r.Energy += b.Energy * quantity.Energy(scale)
		d := b.End.Sub(b.Start).Seconds()
		weighted += b.Completeness * d
		span += d
	}
	if span > 0 {
		r.Completeness = weighted / span
	}

	var mine []Instrument
	for _, ins := range in.Instruments {
		if ins.Site == in.Site && ins.From.Before(to) && ins.To.After(from) {
			mine = append(mine, ins)
		}
	}
	slices.SortStableFunc(mine, func(a, b Instrument) int { return instrumentRank[a.Type] - instrumentRank[b.Type] })
	remaining := r.Energy
	for _, ins := range mine {
		if in.Ledger != nil {
			if err := in.Ledger.Claim(ins, in.Site, from, to); err != nil {
				return nil, fmt.Errorf("market-based emissions of site %q: %w", in.Site, err)
			}
		}
		if in.Zone != "" && ins.Zone != "" && !strings.EqualFold(ins.Zone, in.Zone) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("instrument %q was produced in zone %q, not the site's zone %q: check it meets the same-market criterion", ins.ID, ins.Zone, in.Zone))
		}
		lo, hi := maxTime(ins.From, from), minTime(ins.To, to)
		avail := ins.Energy * quantity.Energy(hi.Sub(lo).Seconds()/ins.To.Sub(ins.From).Seconds())
		applied := min(avail, remaining)
		a := Allocation{Instrument: ins, Available: avail, Applied: applied, Emissions: applied.Emissions(ins.Factor)}
		remaining -= applied
		r.Emissions += a.Emissions
		r.Allocations = append(r.Allocations, a)
		if avail > applied {
			r.Warnings = append(r.Warnings, fmt.Sprintf("instrument %q: %s of %s unused (consumption already covered); surplus does not carry over", ins.ID, avail-applied, avail))
		}
	}
	r.ResidualEnergy = remaining
	if remaining > 0 {
		if in.Residual == nil {
			return nil, fmt.Errorf("market-based emissions of site %q: %s not covered by instruments and no residual mix configured for zone %q", in.Site, remaining, in.Zone)
		}
		if in.Residual.Zone != "" && in.Zone != "" && !strings.EqualFold(in.Residual.Zone, in.Zone) {
			return nil, fmt.Errorf("market-based emissions of site %q: residual mix is for zone %q, the site is in %q", in.Site, in.Residual.Zone, in.Zone)
		}
		if in.Residual.Intensity < 0 || math.IsNaN(float64(in.Residual.Intensity)) {
			return nil, fmt.Errorf("residual mix %q: negative factor", in.Residual.Source)
		}
		r.Residual = in.Residual
		r.Emissions += remaining.Emissions(in.Residual.Intensity)
	}
	eff := r.Emissions.Per(r.Energy)
	r.Series = make([]Point, len(in.Energy.Buckets))
	for i, b := range in.Energy.Buckets {
		e := b.Energy * quantity.Energy(scale)
		r.Series[i] = Point{T: b.Start, Energy: e, Intensity: eff, IntensityKnown: r.Energy > 0, Emissions: e.Emissions(eff), Completeness: b.Completeness}
	}
	return r, nil
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
