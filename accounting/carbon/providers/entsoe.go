package providers

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// ENTSOEConfig configures the ENTSO-E Transparency Platform provider.
type ENTSOEConfig struct {
	Options
	// Token is the platform's security token (sent as the securityToken
	// query parameter; it never appears in errors or logs).
	Token string
	// EmissionFactors adds to or replaces DefaultEmissionFactors, by psrType ("B06": 650).
	EmissionFactors map[string]carbon.Intensity
	// MaxRange is the longest window asked in one request (default 7 days;
	// the platform allows a year, but answers for long ranges are large).
	MaxRange time.Duration
}

// ENTSOE computes the average carbon intensity of a bidding zone's
// generation from the ENTSO-E Transparency Platform: actual generation per
// production type (documentType A75, processType A16) weighted by
// life-cycle emission factors per type (DefaultEmissionFactors), hourly.
// Imports and exports are not accounted for: the figure is that of the
// zone's own generation. Zones are names from ENTSOEZones or EIC codes.
type ENTSOE struct {
	cfg     ENTSOEConfig
	factors map[string]carbon.Intensity
	c       *client
	cache   *cache

	mu     sync.Mutex
	warned map[string]bool // psrTypes without a factor, logged once
}

// NewENTSOE returns the provider. Default rate: 2 requests/s, burst 10
// (the platform allows 400 requests a minute).
func NewENTSOE(cfg ENTSOEConfig) (*ENTSOE, error) {
	if cfg.Token == "" {
		return nil, errors.New("entsoe: the security token must be set")
	}
	if cfg.MaxRange <= 0 {
		cfg.MaxRange = 7 * 24 * time.Hour
	}
	factors := map[string]carbon.Intensity{}
	for k, v := range DefaultEmissionFactors {
		factors[k] = v
	}
	for k, v := range cfg.EmissionFactors {
		if _, ok := PSRTypeNames[k]; !ok {
			return nil, fmt.Errorf("entsoe: emission factor for unknown psrType %q", k)
		}
		if _, err := intensityValue("", float64(v)); err != nil {
			return nil, fmt.Errorf("entsoe: emission factor for %s: %w", k, err)
		}
		factors[k] = v
	}
	cfg.Options = cfg.Options.withDefaults("https://web-api.tp.entsoe.eu", 2, 10)
	return &ENTSOE{cfg: cfg, factors: factors, c: newClient("entsoe", cfg.Options), cache: newCache(cfg.Options), warned: map[string]bool{}}, nil
}

// Name returns "entsoe".
func (e *ENTSOE) Name() string { return "entsoe" }

func (e *ENTSOE) area(zone string, signal Signal) (string, error) {
	if err := average(e.Name(), signal); err != nil {
		return "", err
	}
	eic, ok := ENTSOEArea(zone)
	if !ok {
		return "", fmt.Errorf("entsoe: zone %q is neither a known bidding zone nor an EIC code: %w", zone, ErrUnknownZone)
	}
	return eic, nil
}

const entsoeTimeLayout = "200601021504"

// Intensity returns hourly intensities in [from, to); an hour where some
// production type is only partly reported is Kind Estimate.
func (e *ENTSOE) Intensity(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	eic, err := e.area(zone, signal)
	if err != nil {
		return nil, err
	}
	return e.cache.rangeCached(ctx, zone, signal, from, to, func(ctx context.Context, from, to time.Time) ([]Point, error) {
		gen := entsoeGeneration{}
		for _, w := range windows(from, to, e.cfg.MaxRange) {
			q := url.Values{
				"securityToken": {e.cfg.Token},
				"documentType":  {"A75"},
				"processType":   {"A16"},
				"in_Domain":     {eic},
				"periodStart":   {w[0].UTC().Format(entsoeTimeLayout)},
				"periodEnd":     {w[1].UTC().Format(entsoeTimeLayout)},
			}
			req, err := e.c.newRequest(ctx, "/api", q)
			if err != nil {
				return nil, err
			}
			r, err := e.c.do(ctx, req, http.StatusBadRequest)
			if err != nil {
				return nil, err
			}
			if err := parseENTSOE(r.body, gen); err != nil {
				re := e.c.bad(r.endpoint, err).(*ResponseError)
				if r.status != http.StatusOK {
					re.Status = r.status
				}
				return nil, re
			}
		}
		pts, unknown := gen.hourly(zone, e.factors)
		e.warnUnknown(unknown)
		return pts, nil
	})
}

func (e *ENTSOE) warnUnknown(types []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range types {
		if !e.warned[t] {
			e.warned[t] = true
			e.cfg.Logger.Warn("entsoe: no emission factor for a production type; its generation is left out of the mean",
				"psr_type", t, "name", PSRTypeNames[t])
		}
	}
}

// Forecast is not offered: the platform forecasts wind and solar only, not the whole mix.
func (e *ENTSOE) Forecast(context.Context, string, time.Time, time.Time, Signal) ([]Point, error) {
	return nil, fmt.Errorf("entsoe: forecast: %w", ErrUnsupported)
}

// Latest returns the newest hour of the last 6 (the platform publishes with
// a delay of about an hour).
func (e *ENTSOE) Latest(ctx context.Context, zone string, signal Signal) (Point, error) {
	if _, err := e.area(zone, signal); err != nil {
		return Point{}, err
	}
	now := e.cfg.Clock.Now().UTC()
	pts, err := e.Intensity(ctx, zone, now.Truncate(time.Hour).Add(-6*time.Hour), now, signal)
	if err != nil {
		return Point{}, err
	}
	if len(pts) == 0 {
		return Point{}, fmt.Errorf("entsoe: latest of zone %q: %w", zone, ErrNoData)
	}
	return pts[len(pts)-1], nil
}

// entsoeGeneration holds generation per psrType and interval start (Unix
// seconds): mean MW over an interval of the given length.
type entsoeGeneration map[string]map[int64]genInterval

type genInterval struct {
	dur time.Duration
	mw  float64
}

// maxPeriodPositions bounds the positions of one Period: a leap year at
// PT15M, the most one request may ask for.
const maxPeriodPositions = 366 * 96

var resolutionPattern = regexp.MustCompile(`^PT([0-9]{1,4})([MH])$`)

func parseResolution(field, v string) (time.Duration, error) {
	m := resolutionPattern.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, fieldErr(field, "resolution %q, want PTnM or PTnH", v)
	}
	n, _ := strconv.Atoi(m[1])
	d := time.Duration(n) * time.Minute
	if m[2] == "H" {
		d = time.Duration(n) * time.Hour
	}
	if d <= 0 || time.Hour%d != 0 {
		return 0, fieldErr(field, "resolution %q does not divide an hour", v)
	}
	return d, nil
}

func parseENTSOETime(field, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse("2006-01-02T15:04Z", v); err == nil {
		return t, nil
	}
	return parseTime(field, v)
}

type glMarketDocument struct {
	TimeSeries []struct {
		InDomain  string `xml:"inBiddingZone_Domain.mRID"`
		OutDomain string `xml:"outBiddingZone_Domain.mRID"`
		Unit      string `xml:"quantity_Measure_Unit.name"`
		CurveType string `xml:"curveType"`
		PSRType   string `xml:"MktPSRType>psrType"`
		Periods   []struct {
			Start      string `xml:"timeInterval>start"`
			End        string `xml:"timeInterval>end"`
			Resolution string `xml:"resolution"`
			Points     []struct {
				Position string `xml:"position"`
				Quantity string `xml:"quantity"`
			} `xml:"Point"`
		} `xml:"Period"`
	} `xml:"TimeSeries"`
}

type acknowledgement struct {
	Reasons []struct {
		Code string `xml:"code"`
		Text string `xml:"text"`
	} `xml:"Reason"`
}

// rootElement returns the local name of the document's root element.
func rootElement(body []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return "", errors.New("no XML element")
		}
		if err != nil {
			return "", fmt.Errorf("invalid XML: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, nil
		}
	}
}

// parseENTSOE reads an A75 GL_MarketDocument into gen, or an
// Acknowledgement_MarketDocument: reason 999 ("No matching data found") is
// no data, any other reason an error. Only generation time series
// (inBiddingZone_Domain) are read; consumption series (outBiddingZone_Domain:
// pumping, storage charging) are skipped. An interval reported twice for a
// psrType keeps its first value.
//
// Curve types: A01 (sequential fixed size blocks): each Point covers one
// resolution step; a missing position is a gap. A03 (variable sized blocks):
// a Point holds its quantity from its position until the next Point's, the
// last one until the end of the Period; positions before the first Point are
// a gap.
func parseENTSOE(body []byte, gen entsoeGeneration) error {
	root, err := rootElement(body)
	if err != nil {
		return &fieldError{err: err}
	}
	switch root {
	case "Acknowledgement_MarketDocument":
		var ack acknowledgement
		if err := xml.Unmarshal(body, &ack); err != nil {
			return &fieldError{err: fmt.Errorf("invalid XML: %w", err)}
		}
		for _, r := range ack.Reasons {
			if strings.TrimSpace(r.Code) == "999" {
				return nil
			}
		}
		var texts []string
		for _, r := range ack.Reasons {
			texts = append(texts, strings.TrimSpace(r.Code)+": "+strings.TrimSpace(r.Text))
		}
		return fieldErr("Reason", "acknowledgement instead of data: %s", strings.Join(texts, "; "))
	case "GL_MarketDocument":
	default:
		return fieldErr("", "root element %q, want GL_MarketDocument", root)
	}
	var doc glMarketDocument
	if err := xml.Unmarshal(body, &doc); err != nil {
		return &fieldError{err: fmt.Errorf("invalid XML: %w", err)}
	}
	for i, ts := range doc.TimeSeries {
		f := fmt.Sprintf("TimeSeries[%d]", i)
		if strings.TrimSpace(ts.InDomain) == "" {
			continue // consumption
		}
		psr := strings.TrimSpace(ts.PSRType)
		if _, ok := PSRTypeNames[psr]; !ok {
			return fieldErr(f+".MktPSRType.psrType", "unknown production type %q", ts.PSRType)
		}
		if u := strings.TrimSpace(ts.Unit); u != "MAW" {
			return fieldErr(f+".quantity_Measure_Unit.name", "unit %q, want MAW (MW)", ts.Unit)
		}
		curve := strings.TrimSpace(ts.CurveType)
		if curve == "" {
			curve = "A01"
		}
		if curve != "A01" && curve != "A03" {
			return fieldErr(f+".curveType", "curve type %q, want A01 or A03", ts.CurveType)
		}
		if gen[psr] == nil {
			gen[psr] = map[int64]genInterval{}
		}
		for j, p := range ts.Periods {
			pf := fmt.Sprintf("%s.Period[%d]", f, j)
			if err := addPeriod(gen[psr], pf, curve, p.Start, p.End, p.Resolution, p.Points); err != nil {
				return err
			}
		}
	}
	return nil
}

func addPeriod(dst map[int64]genInterval, pf, curve, start, end, resolution string, points []struct {
	Position string `xml:"position"`
	Quantity string `xml:"quantity"`
}) error {
	t0, err := parseENTSOETime(pf+".timeInterval.start", start)
	if err != nil {
		return err
	}
	t1, err := parseENTSOETime(pf+".timeInterval.end", end)
	if err != nil {
		return err
	}
	res, err := parseResolution(pf+".resolution", resolution)
	if err != nil {
		return err
	}
	span := t1.Sub(t0)
	if span <= 0 || span%res != 0 || t0.Unix()%int64(res/time.Second) != 0 {
		return fieldErr(pf+".timeInterval", "%s..%s is not a whole number of %v steps aligned to them", start, end, res)
	}
	n := int64(span / res)
	if n > maxPeriodPositions {
		return fieldErr(pf+".timeInterval", "%d positions, more than %d", n, maxPeriodPositions)
	}
	type pq struct {
		pos int64
		mw  float64
	}
	pqs := make([]pq, 0, len(points))
	for k, p := range points {
		f := fmt.Sprintf("%s.Point[%d]", pf, k)
		pos, err := strconv.ParseInt(strings.TrimSpace(p.Position), 10, 64)
		if err != nil || pos < 1 || pos > n {
			return fieldErr(f+".position", "%q, want 1..%d", p.Position, n)
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(p.Quantity), 64)
		if err != nil || math.IsNaN(q) || math.IsInf(q, 0) || math.Abs(q) > 1e7 {
			return fieldErr(f+".quantity", "%q, want MW", p.Quantity)
		}
		// Some TSOs report a small negative net output (a plant's own
		// consumption); it counts as no generation.
		pqs = append(pqs, pq{pos, math.Max(q, 0)})
		if k > 0 && pos <= pqs[k-1].pos {
			return fieldErr(f+".position", "%d not after the previous point's %d", pos, pqs[k-1].pos)
		}
	}
	put := func(pos int64, mw float64) {
		k := t0.Add(time.Duration(pos-1) * res).Unix()
		if _, dup := dst[k]; !dup {
			dst[k] = genInterval{dur: res, mw: mw}
		}
	}
	for k, p := range pqs {
		last := p.pos
		if curve == "A03" {
			last = n
			if k+1 < len(pqs) {
				last = pqs[k+1].pos - 1
			}
		}
		for pos := p.pos; pos <= last; pos++ {
			put(pos, p.mw)
		}
	}
	return nil
}

// hourly turns generation into hourly intensities: per type, the mean MW
// over the reported part of the hour; the intensity is the mean of the
// types' factors weighted by those means. It returns the types that had
// generation but no factor.
func (g entsoeGeneration) hourly(zone string, factors map[string]carbon.Intensity) ([]Point, []string) {
	type agg struct {
		mwh     float64
		covered time.Duration
	}
	byType := map[string]map[int64]*agg{}
	hours := map[int64]bool{}
	var unknown []string
	for psr, ivs := range g {
		if len(ivs) == 0 {
			continue
		}
		m := map[int64]*agg{}
		byType[psr] = m
		for start, iv := range ivs {
			h := unixHour(time.Unix(start, 0))
			a := m[h]
			if a == nil {
				a = &agg{}
				m[h] = a
			}
			a.mwh += iv.mw * iv.dur.Hours()
			a.covered += iv.dur
			hours[h] = true
		}
		if _, ok := factors[psr]; !ok {
			unknown = append(unknown, psr)
		}
	}
	slices.Sort(unknown)
	types := make([]string, 0, len(byType))
	for psr := range byType {
		types = append(types, psr)
	}
	slices.Sort(types) // a fixed order of summation, so results repeat to the last bit
	var out []Point
	for h := range hours {
		var num, den float64
		complete := true
		for _, psr := range types {
			a := byType[psr][h]
			if a == nil || a.covered < time.Hour {
				complete = false
			}
			if a == nil || a.covered == 0 {
				continue
			}
			ef, ok := factors[psr]
			if !ok {
				continue
			}
			mean := a.mwh / a.covered.Hours()
			num += mean * float64(ef)
			den += mean
		}
		if den <= 0 {
			continue
		}
		k := Actual
		if !complete {
			k = Estimate
		}
		out = append(out, Point{Zone: zone, Time: time.Unix(h*3600, 0).UTC(), Duration: time.Hour,
			Intensity: carbon.Intensity(num / den), Kind: k, Signal: Average})
	}
	sortPoints(out)
	return out, unknown
}
