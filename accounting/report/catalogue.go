// Package report builds greenloop's EU data-centre report: the Energy
// Efficiency Directive (EU) 2023/1791 art. 12 information that Delegated
// Regulation (EU) 2024/1364 Annexes I and II list, the Annex III indicators,
// and the ESRS E1-5 energy-mix and E1-6 Scope 1/2 tables. It holds the field
// catalogue as data, the report model built from measured inputs and
// operator-entered fields, the validation rules, frozen snapshots with a
// SHA-256 content hash, and exports to JSON, CSV, XLSX and PDF.
//
// The package does no metering itself: measured annual sums arrive in a
// [Measured] struct, operator entries through an [InputStore].
package report

import (
	"fmt"
	"regexp"
	"slices"
)

// SchemaVersion is the version of the field catalogue reports are built
// against: the field set of Delegated Regulation (EU) 2024/1364 as published
// in the OJ of 17.5.2024. The pending amending act C(2026) 3472 (WIN-FRE
// replacing WIN-POT, NUTS3 location, new definitions) will become a later
// version registered with [RegisterCatalogue]; it is not implemented because
// its text is not in the OJ yet.
const SchemaVersion = "dr2024-1364.v1"

// Section is the part of the report a field belongs to, in annex order.
type Section string

// Sections in annex order.
const (
	SectionEnvelope Section = "envelope"
	SectionAnnexI   Section = "annex_i"
	SectionAnnexII1 Section = "annex_ii_1"
	SectionAnnexII2 Section = "annex_ii_2"
	SectionAnnexII3 Section = "annex_ii_3"
	SectionAnnexIII Section = "annex_iii"
	SectionE16      Section = "esrs_e1_6"
)

// FieldType is the type of a field's value.
type FieldType string

// Field types.
const (
	TypeString      FieldType = "string"
	TypeEnum        FieldType = "enum"
	TypeNumber      FieldType = "number" // with Field.Unit
	TypeBool        FieldType = "bool"
	TypeYearMonth   FieldType = "year_month" // YYYY-MM
	TypeDate        FieldType = "date"       // YYYY-MM-DD
	TypeList        FieldType = "list"       // list of strings
	TypeInstruments FieldType = "instruments"
	// TypeScope1Sources is a list of direct emission sources (Scope1Source).
	TypeScope1Sources FieldType = "scope1_sources"
)

// Obtain says where a field's value comes from (spec legend): M measured by
// collectors, O operator-entered with evidence, D derived, X external dataset.
// Several codes are joined by '/', e.g. "O/D".
type Obtain string

// Has reports whether code (one of 'M', 'O', 'D', 'X') is among the codes.
func (o Obtain) Has(code byte) bool {
	for i := 0; i < len(o); i++ {
		if o[i] == code {
			return true
		}
	}
	return false
}

// Field is one entry of the catalogue.
type Field struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`             // official name
	Symbol   string    `json:"symbol,omitempty"` // e.g. EDC, EIT
	Unit     string    `json:"unit,omitempty"`
	AnnexRef string    `json:"annex_ref"`
	Section  Section   `json:"section"`
	Obtain   Obtain    `json:"obtain"`
	Type     FieldType `json:"type"`
	// Enum lists the allowed values of a TypeEnum field.
	Enum []string `json:"enum,omitempty"`
	// Pattern is a regular expression a string (or every list item) must match.
	Pattern string `json:"pattern,omitempty"`
	// Min and Max bound a number, inclusive; nil is unbounded.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Required fields must have a value or an omission reason.
	Required bool   `json:"required"`
	Notes    string `json:"notes,omitempty"`

	re *regexp.Regexp
}

// Enterable reports whether an operator may enter the field: everything but
// derived-only fields. A measured field may be entered when no meter covers
// it (its quality is then "entered" or "estimated").
func (f Field) Enterable() bool { return f.Obtain.Has('O') || f.Obtain.Has('M') || f.Obtain.Has('X') }

// Catalogue is a versioned, ordered field set. It is immutable once built.
type Catalogue struct {
	version string
	fields  []Field
	byID    map[string]int
}

// NewCatalogue checks a field set (unique ids, known types, enums, regular
// expressions) and returns it as a catalogue.
func NewCatalogue(version string, fields []Field) (*Catalogue, error) {
	c := &Catalogue{version: version, fields: slices.Clone(fields), byID: make(map[string]int, len(fields))}
	for i := range c.fields {
		f := &c.fields[i]
		if f.ID == "" {
			return nil, fmt.Errorf("catalogue %s: field %d has no id", version, i)
		}
		if _, dup := c.byID[f.ID]; dup {
			return nil, fmt.Errorf("catalogue %s: duplicate field %q", version, f.ID)
		}
		c.byID[f.ID] = i
		switch f.Type {
		case TypeString, TypeNumber, TypeBool, TypeYearMonth, TypeDate, TypeList, TypeInstruments, TypeScope1Sources:
		case TypeEnum:
			if len(f.Enum) == 0 {
				return nil, fmt.Errorf("catalogue %s: field %q: enum without values", version, f.ID)
			}
		default:
			return nil, fmt.Errorf("catalogue %s: field %q: unknown type %q", version, f.ID, f.Type)
		}
		if f.Pattern != "" {
			re, err := regexp.Compile(f.Pattern)
			if err != nil {
				return nil, fmt.Errorf("catalogue %s: field %q: pattern: %w", version, f.ID, err)
			}
			f.re = re
		}
	}
	return c, nil
}

// Version returns the catalogue's schema version.
func (c *Catalogue) Version() string { return c.version }

// Fields returns the fields in annex order.
func (c *Catalogue) Fields() []Field { return slices.Clone(c.fields) }

// Field returns the field with the id.
func (c *Catalogue) Field(id string) (Field, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Field{}, false
	}
	return c.fields[i], true
}

// Section returns the fields of one section in annex order.
func (c *Catalogue) Section(s Section) []Field {
	var out []Field
	for _, f := range c.fields {
		if f.Section == s {
			out = append(out, f)
		}
	}
	return out
}

var catalogues = map[string]*Catalogue{}

// RegisterCatalogue makes a catalogue available under its version, e.g. the
// field set of a later amending act.
func RegisterCatalogue(c *Catalogue) error {
	if _, dup := catalogues[c.version]; dup {
		return fmt.Errorf("catalogue %s already registered", c.version)
	}
	catalogues[c.version] = c
	return nil
}

// LookupCatalogue returns the catalogue of a schema version.
func LookupCatalogue(version string) (*Catalogue, bool) {
	c, ok := catalogues[version]
	return c, ok
}

// DefaultCatalogue returns the catalogue of SchemaVersion.
func DefaultCatalogue() *Catalogue { return catalogues[SchemaVersion] }

func init() {
	c, err := NewCatalogue(SchemaVersion, v1Fields())
	if err != nil {
		panic(err)
	}
	if err := RegisterCatalogue(c); err != nil {
		panic(err)
	}
}

func fp(v float64) *float64 { return &v }

// Redundancy levels: N, N+1, N+2, 2N, 2N+1, ...
const redundancyPattern = `^(N|N\+\d+|\dN(\+\d+)?)$`

// Field ids the code refers to.
const (
	FReportingRoute      = "reporting_route"
	FMSEntityRef         = "ms_entity_reference_id"
	FMSDCRef             = "ms_dc_reference_id"
	FPartialYear         = "partial_year"
	FPeriodStart         = "period_start"
	FPeriodEnd           = "period_end"
	FEvidence            = "evidence"
	FTradeSecrets        = "trade_secret_fields"
	FDCName              = "dc_name"
	FEntryIntoOperation  = "entry_into_operation"
	FPDIT                = "pd_it_kw"
	FFloorTotal          = "floor_area_total_m2"
	FFloorCR             = "floor_area_computer_room_m2"
	FEDC                 = "energy_total_kwh"
	FEDCBG               = "energy_backup_gen_kwh"
	FEIT                 = "energy_it_kwh"
	FEITBasis            = "energy_it_meter_basis"
	FWIN                 = "water_input_m3"
	FWUECategory         = "wue_category"
	FWINPOT              = "water_potable_input_m3"
	FEREUSE              = "waste_heat_reused_kwh"
	FTWH                 = "waste_heat_temp_avg_c"
	FTIN                 = "it_intake_setpoint_avg_c"
	FERESTot             = "renewable_total_kwh"
	FERESGOO             = "renewable_goo_kwh"
	FERESPPA             = "renewable_ppa_kwh"
	FERESOS              = "renewable_onsite_kwh"
	FServersCoverage     = "ict_capacity_servers_coverage_pct"
	FStorageCoverage     = "ict_capacity_storage_coverage_pct"
	FPUE                 = "pue"
	FWUE                 = "wue"
	FERF                 = "erf"
	FREF                 = "ref"
	FInstruments         = "contractual_instruments"
	FScope1Sources       = "scope1_sources"
	FGridImport          = "grid_import_kwh"
	FGridFunctions       = "grid_functions"
	FBatteryToGrid       = "battery_to_grid_kw"
	FRefrigerantTypes    = "refrigerant_types"
	FCoolingDegreeDays   = "cooling_degree_days"
	FDCType              = "dc_type"
	FDCStructure         = "dc_structure"
	FDCTypeMixedServices = "dc_type_mixed_services"
	FLocationLAU         = "location_lau_code"
	FOwnerName           = "owner_name"
	FOwnerContact        = "owner_contact"
	FOperatorName        = "operator_name"
	FOperatorContact     = "operator_contact"
	FRedundancyElecHV    = "redundancy_electrical_hv"
	FRedundancyElecLV    = "redundancy_electrical_lv"
	FRedundancyElecRack  = "redundancy_electrical_rack"
	FRedundancyCoolRoom  = "redundancy_cooling_room"
	FRedundancyCoolRack  = "redundancy_cooling_rack"
	FPDITBasis           = "pd_it_basis"
	FICTServers          = "ict_capacity_servers"
	FICTStorage          = "ict_capacity_storage_pb"
	FBandwidthIn         = "bandwidth_in"
	FBandwidthOut        = "bandwidth_out"
	FTrafficIn           = "traffic_in_eb"
	FTrafficOut          = "traffic_out_eb"
)

func v1Fields() []Field {
	red := func(id, name, ref string) Field {
		return Field{ID: id, Name: name, AnnexRef: ref, Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: redundancyPattern, Required: true,
			Notes: "N, N+1, N+2, 2N, 2N+1, ..."}
	}
	kwh := func(id, name, sym, ref string, ob Obtain, req bool, notes string) Field {
		return Field{ID: id, Name: name, Symbol: sym, Unit: "kWh", AnnexRef: ref, Section: SectionAnnexII1, Obtain: ob, Type: TypeNumber, Min: fp(0), Required: req, Notes: notes}
	}
	pct := func(id, name string) Field {
		return Field{ID: id, Name: name, Unit: "%", AnnexRef: "II.2", Section: SectionAnnexII2, Obtain: "O", Type: TypeNumber, Min: fp(0), Max: fp(100), Required: true}
	}
	return []Field{
		// §2 envelope (platform-defined).
		{ID: FReportingRoute, Name: "Reporting route", AnnexRef: "DR Art. 3(1)", Section: SectionEnvelope, Obtain: "O", Type: TypeString,
			Pattern: `^(eu_database|national:[A-Z]{2})$`, Notes: "eu_database or national:<ISO2>; default eu_database"},
		{ID: FMSEntityRef, Name: "Member State entity ReferenceID", AnnexRef: "DR Art. 3", Section: SectionEnvelope, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,127}$`},
		{ID: FMSDCRef, Name: "Member State data centre ReferenceID", AnnexRef: "DR Art. 3", Section: SectionEnvelope, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,127}$`},
		{ID: FPartialYear, Name: "Data centre in operation for less than the full calendar year", AnnexRef: "DR Art. 3", Section: SectionEnvelope, Obtain: "O", Type: TypeBool},
		{ID: FPeriodStart, Name: "Start of the reporting period (partial year)", AnnexRef: "DR Art. 3", Section: SectionEnvelope, Obtain: "O", Type: TypeDate},
		{ID: FPeriodEnd, Name: "End of the reporting period (partial year)", AnnexRef: "DR Art. 3", Section: SectionEnvelope, Obtain: "O", Type: TypeDate},
		{ID: FEvidence, Name: "Evidence (document references)", AnnexRef: "platform", Section: SectionEnvelope, Obtain: "O", Type: TypeList, Pattern: `^\S.{0,511}$`},
		{ID: FTradeSecrets, Name: "Fields withheld from publication as trade secrets (EED art. 12(1))", AnnexRef: "EED 12(1)", Section: SectionEnvelope, Obtain: "O", Type: TypeList,
			Pattern: `^[a-z][a-z0-9_]{0,62}$`, Notes: "field ids; the public PDF shows them as withheld"},

		// §3.1 Annex I.
		{ID: FDCName, Name: "Data centre name", AnnexRef: "I.1(a)", Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,255}$`, Required: true},
		{ID: FOwnerName, Name: "Owner of the data centre: name", AnnexRef: "I.1(b)", Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,255}$`, Required: true, Notes: "GDPR"},
		{ID: FOwnerContact, Name: "Owner of the data centre: contact details", AnnexRef: "I.1(b)", Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,255}$`, Required: true, Notes: "GDPR"},
		{ID: FOperatorName, Name: "Operator of the data centre: name", AnnexRef: "I.1(b)", Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,255}$`, Required: true},
		{ID: FOperatorContact, Name: "Operator of the data centre: contact details", AnnexRef: "I.1(b)", Section: SectionAnnexI, Obtain: "O", Type: TypeString, Pattern: `^\S.{0,255}$`, Required: true},
		{ID: FLocationLAU, Name: "Location: LAU code (latest Eurostat LAU tables)", AnnexRef: "I.1(c)", Section: SectionAnnexI, Obtain: "O/D", Type: TypeString,
			Pattern: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$`, Required: true, Notes: "amendment → NUTS3"},
		{ID: FDCType, Name: "Type of data centre", AnnexRef: "I.1(d)", Section: SectionAnnexI, Obtain: "O", Type: TypeEnum, Enum: []string{"enterprise", "colocation", "co_hosting"}, Required: true},
		{ID: FDCStructure, Name: "Type of data centre combined with 'structure' or 'group of structures'", AnnexRef: "I.1(d)", Section: SectionAnnexI, Obtain: "O", Type: TypeEnum,
			Enum: []string{"structure", "group_of_structures"}, Required: true},
		{ID: FDCTypeMixedServices, Name: "Colocation data centre also offering co-hosting services (or vice versa)", AnnexRef: "I.1(d)", Section: SectionAnnexI, Obtain: "O", Type: TypeBool},
		{ID: FEntryIntoOperation, Name: "Year and month of entry into operation", AnnexRef: "I.1(e)", Section: SectionAnnexI, Obtain: "O", Type: TypeYearMonth, Required: true},
		red(FRedundancyElecHV, "Electrical infrastructure redundancy level at high-voltage level", "I.2(a)"),
		red(FRedundancyElecLV, "Electrical infrastructure redundancy level at low-voltage (line-up) level", "I.2(a)"),
		red(FRedundancyElecRack, "Electrical infrastructure redundancy level at rack level", "I.2(a)"),
		red(FRedundancyCoolRoom, "Cooling infrastructure redundancy level at room level", "I.2(b)"),
		red(FRedundancyCoolRack, "Cooling infrastructure redundancy level at rack level", "I.2(b)"),

		// §3.2 Annex II.1.
		{ID: FPDIT, Name: "Installed information technology power demand", Symbol: "PDIT", Unit: "kW", AnnexRef: "II.1(a)", Section: SectionAnnexII1, Obtain: "O/D", Type: TypeNumber, Min: fp(0), Required: true,
			Notes: "weighted average if it changed; fallback: rated IT load"},
		{ID: FPDITBasis, Name: "Metric used for the installed IT power demand", AnnexRef: "II.1(a)", Section: SectionAnnexII1, Obtain: "O", Type: TypeEnum, Enum: []string{"installed", "rated"}, Required: true},
		{ID: FFloorTotal, Name: "Data centre total floor area", Symbol: "SDC", Unit: "m²", AnnexRef: "II.1(b)", Section: SectionAnnexII1, Obtain: "O", Type: TypeNumber, Min: fp(0), Required: true},
		{ID: FFloorCR, Name: "Data centre computer room floor area", Symbol: "SCR", Unit: "m²", AnnexRef: "II.1(c)", Section: SectionAnnexII1, Obtain: "O", Type: TypeNumber, Min: fp(0), Required: true},
		kwh(FEDC, "Total energy consumption", "EDC", "II.1(d)", "M", true, "EN 50600-4-2; metered before the supply transfer switchgear"),
		kwh(FEDCBG, "Total energy consumption from back-up generators", "EDC-BG", "II.1(d)", "M", true, "measured separately; included in EDC"),
		kwh(FEIT, "Total energy consumption of information technology equipment", "EIT", "II.1(e)", "M", true, "EN 50600-4-2 category 1 (UPS output)"),
		{ID: FEITBasis, Name: "EIT measurement point", AnnexRef: "II.1(e)", Section: SectionAnnexII1, Obtain: "O", Type: TypeEnum, Enum: []string{"ups", "pdu", "cat2", "custom"}, Notes: "audit aid [U]"},
		{ID: FGridFunctions, Name: "Electrical grid functions", AnnexRef: "II.1(f)", Section: SectionAnnexII1, Obtain: "O", Type: TypeList, Pattern: `^\S.{0,255}$`},
		{ID: FBatteryToGrid, Name: "Average battery capacity offered to the grid", Symbol: "CBtG", Unit: "kW", AnnexRef: "II.1(g)", Section: SectionAnnexII1, Obtain: "O/M", Type: TypeNumber, Min: fp(0)},
		{ID: FWIN, Name: "Total water input", Symbol: "WIN", Unit: "m³", AnnexRef: "II.1(h)", Section: SectionAnnexII1, Obtain: "M", Type: TypeNumber, Min: fp(0), Required: true, Notes: "EN 50600-4-9 WUE category 2, else category 1"},
		{ID: FWUECategory, Name: "WUE category used", AnnexRef: "II.1(h)", Section: SectionAnnexII1, Obtain: "O", Type: TypeEnum, Enum: []string{"1", "2"}, Required: true},
		{ID: FWINPOT, Name: "Total potable water input", Symbol: "WIN-POT", Unit: "m³", AnnexRef: "II.1(i)", Section: SectionAnnexII1, Obtain: "M", Type: TypeNumber, Min: fp(0), Required: true, Notes: "amendment → WIN-FRE"},
		kwh(FEREUSE, "Waste heat reused", "EREUSE", "II.1(j)", "M", true, "EN 50600-4-6; heat meter at the DC boundary"),
		{ID: FTWH, Name: "Average waste heat temperature", Symbol: "TWH", Unit: "°C", AnnexRef: "II.1(k)", Section: SectionAnnexII1, Obtain: "M/D", Type: TypeNumber, Min: fp(-50), Max: fp(200)},
		{ID: FTIN, Name: "Average setpoint information technology equipment intake air temperature", Symbol: "TIN", Unit: "°C", AnnexRef: "II.1(l)", Section: SectionAnnexII1, Obtain: "M/O", Type: TypeNumber,
			Min: fp(0), Max: fp(60), Required: true},
		{ID: FRefrigerantTypes, Name: "Types of refrigerants", AnnexRef: "II.1(m)", Section: SectionAnnexII1, Obtain: "O", Type: TypeList, Pattern: `^\S.{0,63}$`, Required: true,
			Notes: "common name or industrial designation per Reg. (EU) 517/2014 (since replaced by 2024/573 [U])"},
		{ID: FCoolingDegreeDays, Name: "Cooling degree days", Symbol: "CDD", Unit: "degree-days", AnnexRef: "II.1(n)", Section: SectionAnnexII1, Obtain: "X/D", Type: TypeNumber, Min: fp(0), Max: fp(366 * 40), Required: true,
			Notes: "Eurostat/JRC method, base 21 °C [U]"},
		kwh(FERESTot, "Total renewable energy consumption", "ERES-TOT", "II.1(o)", "D", true, "= ERES-GOO + ERES-PPA + ERES-OS"),
		kwh(FERESGOO, "Total renewable energy consumption from Guarantees of Origin", "ERES-GOO", "II.1(p)", "O", true, "GOs purchased and retired by this DC only"),
		kwh(FERESPPA, "Total renewable energy consumption from Power Purchasing Agreements", "ERES-PPA", "II.1(q)", "O/M", true, "PPA energy entering the DC boundary"),
		kwh(FERESOS, "Total renewable energy consumption from on-site renewables", "ERES-OS", "II.1(r)", "M", true, "generation inside the DC boundary"),

		// §3.3 Annex II.2.
		{ID: FICTServers, Name: "ICT capacity for servers", Symbol: "CSERV", Unit: "SERT score", AnnexRef: "II.2", Section: SectionAnnexII2, Obtain: "D/O", Type: TypeNumber, Min: fp(0), Required: true},
		pct(FServersCoverage, "ICT capacity for servers: % of computer-room floor area covered"),
		{ID: FICTStorage, Name: "ICT capacity for storage equipment", Symbol: "CSTOR", Unit: "PB", AnnexRef: "II.2", Section: SectionAnnexII2, Obtain: "D/O", Type: TypeNumber, Min: fp(0), Required: true},
		pct(FStorageCoverage, "ICT capacity for storage equipment: % of computer-room floor area covered"),

		// §3.4 Annex II.3.
		{ID: FBandwidthIn, Name: "Incoming traffic bandwidth", Symbol: "BIN", Unit: "GB/s", AnnexRef: "II.3", Section: SectionAnnexII3, Obtain: "O", Type: TypeNumber, Min: fp(0), Required: true,
			Notes: "gigabytes per second, not Gbit/s"},
		{ID: FBandwidthOut, Name: "Outgoing traffic bandwidth", Symbol: "BOUT", Unit: "GB/s", AnnexRef: "II.3", Section: SectionAnnexII3, Obtain: "O", Type: TypeNumber, Min: fp(0), Required: true},
		{ID: FTrafficIn, Name: "Incoming data traffic", Symbol: "TIN", Unit: "EB", AnnexRef: "II.3", Section: SectionAnnexII3, Obtain: "M/O", Type: TypeNumber, Min: fp(0), Required: true},
		{ID: FTrafficOut, Name: "Outgoing data traffic", Symbol: "TOUT", Unit: "EB", AnnexRef: "II.3", Section: SectionAnnexII3, Obtain: "M/O", Type: TypeNumber, Min: fp(0), Required: true},

		// §3.5 Annex III (derived).
		{ID: FPUE, Name: "Power usage effectiveness", Symbol: "PUE", AnnexRef: "III(a)", Section: SectionAnnexIII, Obtain: "D", Type: TypeNumber, Notes: "EDC / EIT"},
		{ID: FWUE, Name: "Water usage effectiveness", Symbol: "WUE", Unit: "L/kWh", AnnexRef: "III(b)", Section: SectionAnnexIII, Obtain: "D", Type: TypeNumber, Notes: "WIN / EIT (EIT in MWh)"},
		{ID: FERF, Name: "Energy reuse factor", Symbol: "ERF", AnnexRef: "III(c)", Section: SectionAnnexIII, Obtain: "D", Type: TypeNumber, Notes: "EREUSE / EDC"},
		{ID: FREF, Name: "Renewable energy factor", Symbol: "REF", AnnexRef: "III(d)", Section: SectionAnnexIII, Obtain: "D", Type: TypeNumber, Notes: "ERES-TOT / EDC"},

		// ESRS E1-6 inputs.
		{ID: FGridImport, Name: "Purchased grid electricity", Unit: "kWh", AnnexRef: "ESRS E1-6 AR 45(b)", Section: SectionE16, Obtain: "M/D", Type: TypeNumber, Min: fp(0),
			Notes: "default EDC − EDC-BG − ERES-OS"},
		{ID: FInstruments, Name: "Contractual instruments (GO, PPA, green tariff, supplier mix)", AnnexRef: "ESRS E1-6 AR 45(a)", Section: SectionE16, Obtain: "O", Type: TypeInstruments,
			Notes: "one certificate → one DC → one period"},
		{ID: FScope1Sources, Name: "Scope 1 sources (fuels burnt, refrigerant top-ups)", AnnexRef: "ESRS E1-6 AR 39", Section: SectionE16, Obtain: "O", Type: TypeScope1Sources,
			Notes: "fuel: quantity × factor_kg_per_unit; refrigerant: kg × GWP100; an empty list states that there were none"},
	}
}
