package providers

import (
	"regexp"
	"slices"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// entsoeZones maps zone names (the Electricity Maps zone keys where they
// exist) to ENTSO-E bidding-zone EIC codes, as listed in the "Areas" table of
// the ENTSO-E Transparency Platform RESTful API guide (BZN entries).
var entsoeZones = map[string]string{
	"AT":     "10YAT-APG------L",
	"BE":     "10YBE----------2",
	"BG":     "10YCA-BULGARIA-R",
	"CH":     "10YCH-SWISSGRIDZ",
	"CZ":     "10YCZ-CEPS-----N",
	"DE-LU":  "10Y1001A1001A82H",
	"DK-DK1": "10YDK-1--------W",
	"DK-DK2": "10YDK-2--------M",
	"EE":     "10Y1001A1001A39I",
	"ES":     "10YES-REE------0",
	"FI":     "10YFI-1--------U",
	"FR":     "10YFR-RTE------C",
	"GR":     "10YGR-HTSO-----Y",
	"HR":     "10YHR-HEP------M",
	"HU":     "10YHU-MAVIR----U",
	"IE-SEM": "10Y1001A1001A59C",
	"IT-NO":  "10Y1001A1001A73I",
	"LT":     "10YLT-1001A0008Q",
	"LV":     "10YLV-1001A00074",
	"NL":     "10YNL----------L",
	"NO-NO1": "10YNO-1--------2",
	"NO-NO2": "10YNO-2--------T",
	"NO-NO3": "10YNO-3--------J",
	"NO-NO4": "10YNO-4--------9",
	"NO-NO5": "10Y1001A1001A48H",
	"PL":     "10YPL-AREA-----S",
	"PT":     "10YPT-REN------W",
	"RO":     "10YRO-TEL------P",
	"SE-SE1": "10Y1001A1001A44P",
	"SE-SE2": "10Y1001A1001A45N",
	"SE-SE3": "10Y1001A1001A46L",
	"SE-SE4": "10Y1001A1001A47J",
	"SI":     "10YSI-ELES-----O",
	"SK":     "10YSK-SEPS-----K",
}

// eicPattern is the form of an EIC area code: 16 characters, "10Y" for areas.
var eicPattern = regexp.MustCompile(`^[0-9]{2}[A-Z][0-9A-Z-]{12}[0-9A-Z]$`)

// ENTSOEZones lists the zone names the ENTSO-E provider knows, sorted.
func ENTSOEZones() []string {
	out := make([]string, 0, len(entsoeZones))
	for z := range entsoeZones {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}

// ENTSOEArea returns the EIC code for zone: a name from ENTSOEZones, or an
// EIC code given as is.
func ENTSOEArea(zone string) (string, bool) {
	if eic, ok := entsoeZones[zone]; ok {
		return eic, true
	}
	if eicPattern.MatchString(zone) {
		return zone, true
	}
	return "", false
}

// PSRTypeNames are the ENTSO-E production types (psrType codes).
var PSRTypeNames = map[string]string{
	"B01": "Biomass",
	"B02": "Fossil Brown coal/Lignite",
	"B03": "Fossil Coal-derived gas",
	"B04": "Fossil Gas",
	"B05": "Fossil Hard coal",
	"B06": "Fossil Oil",
	"B07": "Fossil Oil shale",
	"B08": "Fossil Peat",
	"B09": "Geothermal",
	"B10": "Hydro Pumped Storage",
	"B11": "Hydro Run-of-river and poundage",
	"B12": "Hydro Water Reservoir",
	"B13": "Marine",
	"B14": "Nuclear",
	"B15": "Other renewable",
	"B16": "Solar",
	"B17": "Waste",
	"B18": "Wind Offshore",
	"B19": "Wind Onshore",
	"B20": "Other",
	"B25": "Energy storage",
}

// IPCCSource is the source of DefaultEmissionFactors.
const IPCCSource = "Schlömer, S. et al., 2014: Annex III: Technology-specific cost and performance parameters. " +
	"In: Climate Change 2014: Mitigation of Climate Change. Contribution of Working Group III to the Fifth Assessment " +
	"Report of the Intergovernmental Panel on Climate Change. Cambridge University Press. " +
	"Table A.III.2 (Emissions of selected electricity supply technologies, gCO2eq/kWh), life-cycle median values"

// DefaultEmissionFactors are life-cycle emission factors in gCO2e/kWh per
// ENTSO-E psrType: the medians of IPCC AR5 WG III Annex III, Table A.III.2
// (IPCCSource). Choices where the table and the ENTSO-E types do not match
// one to one:
//   - B01 Biomass: "Biomass – dedicated" (230); co-firing in coal plants (740) is reported as coal.
//   - B02 Lignite and B05 Hard coal: "Coal – PC" (820); AR5 has no separate lignite figure, so lignite is understated.
//   - B04 Gas: "Gas – Combined Cycle" (490); open-cycle plants emit more.
//   - B11, B12 Hydro: "Hydropower" (24).
//   - B16 Solar: "Solar PV – utility" (48); rooftop PV is 41.
//
// Types the table has no figure for have none here: B03 coal-derived gas,
// B06 oil, B07 oil shale, B08 peat, B13 marine, B15 other renewable, B17
// waste, B20 other, and the storage types B10 and B25 (they return
// electricity taken from the grid earlier). Generation of a type without a
// factor is left out of the weighted mean, which amounts to giving it the
// mean intensity of the rest of the mix; set ENTSOEConfig.EmissionFactors
// for them where that matters (oil and waste in particular).
var DefaultEmissionFactors = map[string]carbon.Intensity{
	"B01": 230,
	"B02": 820,
	"B04": 490,
	"B05": 820,
	"B09": 38,
	"B11": 24,
	"B12": 24,
	"B14": 12,
	"B16": 48,
	"B18": 12,
	"B19": 11,
}
