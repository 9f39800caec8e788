package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Quality says how a field's value was obtained.
type Quality string

// Qualities. Derived fields take the worst quality of their inputs.
const (
	QualityMeasured     Quality = "measured"
	QualityEstimated    Quality = "estimated"
	QualityEntered      Quality = "entered"
	QualityNotAvailable Quality = "not_available"
)

// rank orders qualities from best to worst for derived values.
func (q Quality) rank() int {
	switch q {
	case QualityMeasured:
		return 0
	case QualityEntered:
		return 1
	case QualityEstimated:
		return 2
	default:
		return 3
	}
}

func worst(qs ...Quality) Quality {
	w := QualityMeasured
	for _, q := range qs {
		if q.rank() > w.rank() {
			w = q
		}
	}
	return w
}

// Instrument types of the GHG Protocol Scope 2 market-based method (spec §6.2).
const (
	InstrumentGO          = "GO"
	InstrumentPPAPhysical = "PPA_physical"
	InstrumentPPAVirtual  = "PPA_virtual"
	InstrumentGreenTariff = "green_tariff"
	InstrumentSupplierMix = "supplier_mix"
)

var instrumentTypes = []string{InstrumentGO, InstrumentPPAPhysical, InstrumentPPAVirtual, InstrumentGreenTariff, InstrumentSupplierMix}

// Instrument is one contractual instrument (energy attribute certificate,
// PPA, green tariff or supplier mix) claimed for the site's consumption.
type Instrument struct {
	Type             string   `json:"instrument_type"`
	Registry         string   `json:"registry,omitempty"`
	CertIDs          []string `json:"cert_ids,omitempty"`
	ProductionDevice string   `json:"production_device,omitempty"`
	Country          string   `json:"country,omitempty"`
	Technology       string   `json:"technology,omitempty"`
	Vintage          string   `json:"vintage,omitempty"` // YYYY or YYYY-MM
	CancellationDate string   `json:"cancellation_date,omitempty"`
	BeneficiaryDCID  string   `json:"beneficiary_dc_id"`
	KWh              KWh      `json:"kwh"`
	// EmissionFactor is the instrument's factor; nil means 0 (renewable
	// GO, PPA or green tariff). A supplier mix must state it.
	EmissionFactor *KgCO2ePerKWh `json:"ef_kg_per_kwh,omitempty"`
}

// Factor returns the instrument's emission factor (0 when unset).
func (in Instrument) Factor() KgCO2ePerKWh {
	if in.EmissionFactor == nil {
		return 0
	}
	return *in.EmissionFactor
}

// Renewable reports whether the instrument conveys renewable attributes.
func (in Instrument) Renewable() bool { return in.Type != InstrumentSupplierMix }

var (
	yearMonthRe = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)
	vintageRe   = regexp.MustCompile(`^\d{4}(-(0[1-9]|1[0-2]))?$`)
	countryRe   = regexp.MustCompile(`^[A-Z]{2}$`)
)

// ErrUnknownField is returned for a field id not in the catalogue.
var ErrUnknownField = errors.New("unknown field")

// ErrNotEnterable is returned for an attempt to enter a derived field.
var ErrNotEnterable = errors.New("field is derived and cannot be entered")

// FieldError is a problem with one field's value.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ParseValue decodes and checks a raw JSON value against a field's type and
// constraints, and returns it normalised: string, float64, bool, []string,
// []Instrument or []Scope1Source. JSON null returns nil (no value).
func ParseValue(f Field, raw json.RawMessage) (any, error) {
	v, err := parseValue(f, raw)
	if err != nil {
		return nil, &FieldError{Field: f.ID, Err: err}
	}
	return v, nil
}

func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the value")
	}
	return nil
}

func parseValue(f Field, raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	switch f.Type {
	case TypeString, TypeEnum, TypeYearMonth, TypeDate:
		var s string
		if err := strictDecode(raw, &s); err != nil {
			return nil, fmt.Errorf("want a JSON string: %w", err)
		}
		return s, checkString(f, s)
	case TypeNumber:
		var x float64
		if err := strictDecode(raw, &x); err != nil {
			return nil, fmt.Errorf("want a number in %s: %w", unitOr(f.Unit, "its unit"), err)
		}
		return x, checkNumber(f, x)
	case TypeBool:
		var b bool
		if err := strictDecode(raw, &b); err != nil {
			return nil, fmt.Errorf("want true or false: %w", err)
		}
		return b, nil
	case TypeList:
		var l []string
		if err := strictDecode(raw, &l); err != nil {
			return nil, fmt.Errorf("want a list of strings: %w", err)
		}
		for i, s := range l {
			if f.re != nil && !f.re.MatchString(s) {
				return nil, fmt.Errorf("item %d %q does not match %s", i, s, f.Pattern)
			}
		}
		return l, nil
	case TypeInstruments:
		var l []Instrument
		if err := strictDecode(raw, &l); err != nil {
			return nil, fmt.Errorf("want a list of instruments: %w", err)
		}
		for i, in := range l {
			if err := checkInstrument(in); err != nil {
				return nil, fmt.Errorf("instrument %d: %w", i, err)
			}
		}
		return l, nil
	case TypeScope1Sources:
		var l []Scope1Source
		if err := strictDecode(raw, &l); err != nil {
			return nil, fmt.Errorf("want a list of Scope 1 sources: %w", err)
		}
		if l == nil {
			l = []Scope1Source{}
		}
		for i, s := range l {
			if err := checkScope1Source(s); err != nil {
				return nil, fmt.Errorf("source %d: %w", i, err)
			}
		}
		return l, nil
	}
	return nil, fmt.Errorf("unsupported type %q", f.Type)
}

func unitOr(u, def string) string {
	if u == "" {
		return def
	}
	return u
}

func checkString(f Field, s string) error {
	switch f.Type {
	case TypeEnum:
		if !slices.Contains(f.Enum, s) {
			return fmt.Errorf("%q is not one of %s", s, strings.Join(f.Enum, ", "))
		}
	case TypeYearMonth:
		if !yearMonthRe.MatchString(s) {
			return fmt.Errorf("%q is not YYYY-MM", s)
		}
	case TypeDate:
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return fmt.Errorf("%q is not YYYY-MM-DD", s)
		}
	}
	if f.re != nil && !f.re.MatchString(s) {
		return fmt.Errorf("%q does not match %s", s, f.Pattern)
	}
	return nil
}

func checkNumber(f Field, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return errors.New("not a finite number")
	}
	if f.Min != nil && x < *f.Min {
		return fmt.Errorf("%v %s is below the minimum %v", x, f.Unit, *f.Min)
	}
	if f.Max != nil && x > *f.Max {
		return fmt.Errorf("%v %s is above the maximum %v", x, f.Unit, *f.Max)
	}
	return nil
}

// checkScope1Source checks one entered direct emission source: a fuel needs
// its own emission factor (no default is assumed: fuel blends differ); a
// refrigerant is in kg and takes the report options' GWP100 when it states
// no factor.
func checkScope1Source(s Scope1Source) error {
	switch s.Kind {
	case Scope1Fuel, Scope1Refrigerant:
	default:
		return fmt.Errorf("kind %q is not one of %s, %s", s.Kind, Scope1Fuel, Scope1Refrigerant)
	}
	if strings.TrimSpace(s.Name) == "" {
		return errors.New("name must be set (the fuel, e.g. diesel, or the refrigerant, e.g. R-134a)")
	}
	if !(s.Quantity >= 0) || math.IsInf(s.Quantity, 0) {
		return fmt.Errorf("quantity %v must be a non-negative number", s.Quantity)
	}
	if strings.TrimSpace(s.Unit) == "" {
		return errors.New("unit must be set (L, kg, kWh, m³)")
	}
	if !(s.Factor >= 0) || math.IsInf(s.Factor, 0) {
		return fmt.Errorf("factor_kg_per_unit %v must be a non-negative number", s.Factor)
	}
	switch s.Kind {
	case Scope1Fuel:
		if s.Factor == 0 {
			return fmt.Errorf("fuel %s needs factor_kg_per_unit (kgCO2e per %s)", s.Name, s.Unit)
		}
	case Scope1Refrigerant:
		if s.Unit != "kg" {
			return fmt.Errorf("refrigerant %s: unit %q, want kg", s.Name, s.Unit)
		}
		if s.Renewable {
			return fmt.Errorf("refrigerant %s cannot be renewable", s.Name)
		}
	}
	return nil
}

func checkInstrument(in Instrument) error {
	if !slices.Contains(instrumentTypes, in.Type) {
		return fmt.Errorf("instrument_type %q is not one of %s", in.Type, strings.Join(instrumentTypes, ", "))
	}
	if in.BeneficiaryDCID == "" {
		return errors.New("beneficiary_dc_id must be set")
	}
	if !(in.KWh >= 0) || math.IsInf(float64(in.KWh), 0) {
		return fmt.Errorf("kwh %v must be a non-negative number", in.KWh)
	}
	if in.EmissionFactor != nil && (!(*in.EmissionFactor >= 0) || math.IsInf(float64(*in.EmissionFactor), 0)) {
		return fmt.Errorf("ef_kg_per_kwh %v must be a non-negative number", *in.EmissionFactor)
	}
	if in.Type == InstrumentSupplierMix && in.EmissionFactor == nil {
		return errors.New("a supplier_mix needs ef_kg_per_kwh")
	}
	if in.Type == InstrumentGO && len(in.CertIDs) == 0 {
		return errors.New("a GO needs cert_ids")
	}
	for i, id := range in.CertIDs {
		if strings.TrimSpace(id) == "" {
			return fmt.Errorf("cert_ids[%d] is empty", i)
		}
	}
	if in.Country != "" && !countryRe.MatchString(in.Country) {
		return fmt.Errorf("country %q is not an ISO 3166 alpha-2 code", in.Country)
	}
	if in.Vintage != "" && !vintageRe.MatchString(in.Vintage) {
		return fmt.Errorf("vintage %q is not YYYY or YYYY-MM", in.Vintage)
	}
	if in.CancellationDate != "" {
		if _, err := time.Parse(time.DateOnly, in.CancellationDate); err != nil {
			return fmt.Errorf("cancellation_date %q is not YYYY-MM-DD", in.CancellationDate)
		}
	}
	return nil
}
