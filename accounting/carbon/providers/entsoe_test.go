package providers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

const entsoeToken = "0a1b2c3d-secret-entsoe-token"

func newENTSOE(t *testing.T, base string, clk *fakeClock, log *slog.Logger, factors map[string]float64) *ENTSOE {
	t.Helper()
	cfg := ENTSOEConfig{Options: Options{BaseURL: base, Clock: clk, Logger: log}, Token: entsoeToken}
	if factors != nil {
		cfg.EmissionFactors = map[string]carbon.Intensity{}
		for k, v := range factors {
			cfg.EmissionFactors[k] = carbon.Intensity(v)
		}
	}
	e, err := NewENTSOE(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestENTSOEHourlyIntensity(t *testing.T) {
	doc := fixture(t, "entsoe/a75_two_types_pt15m.xml")
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.Write(doc)
	})
	var logs bytes.Buffer
	clk := newFakeClock(mustTime("2025-03-10T04:20:00Z"))
	e := newENTSOE(t, rec.srv.URL, clk, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	ctx := context.Background()
	from, to := mustTime("2025-03-10T00:00:00Z"), mustTime("2025-03-10T03:00:00Z")

	pts, err := e.Intensity(ctx, "DE-LU", from, to, Average)
	if err != nil {
		t.Fatal(err)
	}
	// By hand, gas (B04, 490 g/kWh) and onshore wind (B19, 11 g/kWh); B20 has
	// no factor and pumped-storage consumption is skipped:
	//   00:00 gas (1000+1200+1400+1600)/4 = 1300 MW, wind (3000+2800+2600+2400)/4 = 2700 MW
	//         (1300*490 + 2700*11) / 4000 = 166.675
	//   01:00 gas 1600, wind A03 2000,(2000),1000,(1000) = 1500
	//         (1600*490 + 1500*11) / 3100 = 258.2258...
	//   02:00 gas only 02:00-02:30 reported, 1000; wind 500 held to the end
	//         (1000*490 + 500*11) / 1500 = 330.333..., an estimate
	want := []struct {
		v    float64
		kind Kind
	}{{166.675, Actual}, {800500.0 / 3100, Actual}, {495500.0 / 1500, Estimate}}
	if len(pts) != len(want) {
		t.Fatalf("got %v", pts)
	}
	for i, w := range want {
		p := pts[i]
		if math.Abs(p.Intensity.GramsPerKWh()-w.v) > 1e-9 || p.Kind != w.kind || p.Duration != time.Hour ||
			!p.Time.Equal(from.Add(time.Duration(i)*time.Hour)) || p.Zone != "DE-LU" || p.Signal != Average {
			t.Errorf("hour %d: %+v, want %v (%s)", i, p, w.v, w.kind)
		}
	}
	q := rec.last().URL.Query()
	for k, v := range map[string]string{"securityToken": entsoeToken, "documentType": "A75", "processType": "A16",
		"in_Domain": "10Y1001A1001A82H", "periodStart": "202503100000", "periodEnd": "202503100300"} {
		if q.Get(k) != v {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if rec.last().URL.Path != "/api" {
		t.Errorf("path %s", rec.last().URL.Path)
	}
	// Cached; the missing factor is logged once, without the token.
	if _, err := e.Intensity(ctx, "DE-LU", from, to, Average); err != nil || rec.count() != 1 {
		t.Errorf("second call: %v, %d requests", err, rec.count())
	}
	if n := strings.Count(logs.String(), "psr_type=B20"); n != 1 || strings.Contains(logs.String(), entsoeToken) {
		t.Errorf("logs (B20 %d times): %s", n, logs.String())
	}
	p, err := e.Latest(ctx, "DE-LU", Average)
	if err != nil || math.Abs(p.Intensity.GramsPerKWh()-495500.0/1500) > 1e-9 {
		t.Errorf("latest %+v %v", p, err)
	}

	// A factor for B20 brings its 100 MW into the mean.
	e2 := newENTSOE(t, rec.srv.URL, clk, nil, map[string]float64{"B20": 700})
	pts, err = e2.Intensity(ctx, "10Y1001A1001A82H", from, from.Add(time.Hour), Average)
	if err != nil {
		t.Fatal(err)
	}
	if w := (1300*490 + 2700*11 + 100*700) / 4100.0; len(pts) != 1 || math.Abs(pts[0].Intensity.GramsPerKWh()-w) > 1e-9 || pts[0].Zone != "10Y1001A1001A82H" {
		t.Errorf("with B20: %v, want %v", pts, w)
	}
}

func TestENTSOEErrors(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock(mustTime("2025-03-10T04:20:00Z"))
	from, to := mustTime("2025-03-10T00:00:00Z"), mustTime("2025-03-10T03:00:00Z")

	t.Run("no data", func(t *testing.T) {
		ack := fixture(t, "entsoe/acknowledgement_no_data.xml")
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write(ack)
		})
		e := newENTSOE(t, rec.srv.URL, clk, nil, nil)
		pts, err := e.Intensity(ctx, "FR", from, to, Average)
		if err != nil || len(pts) != 0 {
			t.Errorf("got %v, %v; want no points and no error", pts, err)
		}
		if _, err := e.Latest(ctx, "FR", Average); !errors.Is(err, ErrNoData) {
			t.Errorf("latest: %v", err)
		}
	})
	t.Run("other acknowledgement", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`<Acknowledgement_MarketDocument><Reason><code>A59</code><text>Invalid in_Domain</text></Reason></Acknowledgement_MarketDocument>`))
		})
		e := newENTSOE(t, rec.srv.URL, clk, nil, nil)
		_, err := e.Intensity(ctx, "FR", from, to, Average)
		var re *ResponseError
		if !errors.As(err, &re) || re.Field != "Reason" || re.Status != 400 || !strings.Contains(err.Error(), "Invalid in_Domain") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("auth", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte("<html><body><h1>401 Unauthorized</h1></body></html>"))
		})
		e := newENTSOE(t, rec.srv.URL, clk, nil, nil)
		_, err := e.Intensity(ctx, "FR", from, to, Average)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "entsoe") || strings.Contains(err.Error(), entsoeToken) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("token not in transport errors", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {})
		url := rec.srv.URL
		rec.srv.Close()
		e := newENTSOE(t, url, clk, nil, nil)
		_, err := e.Intensity(ctx, "FR", from, to, Average)
		if err == nil || strings.Contains(err.Error(), entsoeToken) || !strings.Contains(err.Error(), "/api") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("zone", func(t *testing.T) {
		e := newENTSOE(t, "http://127.0.0.1:1", clk, nil, nil)
		if _, err := e.Intensity(ctx, "Atlantis", from, to, Average); !errors.Is(err, ErrUnknownZone) {
			t.Errorf("got %v", err)
		}
		if _, err := e.Forecast(ctx, "FR", from, to, Average); !errors.Is(err, ErrUnsupported) {
			t.Errorf("forecast: %v", err)
		}
		if _, err := NewENTSOE(ENTSOEConfig{Token: "x", EmissionFactors: map[string]carbon.Intensity{"B99": 1}}); err == nil {
			t.Error("factor for an unknown psrType accepted")
		}
	})
}

func TestParseENTSOEErrors(t *testing.T) {
	ts := func(unit, curve, psr, start, end, res, points string) string {
		return `<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"><TimeSeries>` +
			`<inBiddingZone_Domain.mRID codingScheme="A01">10YFR-RTE------C</inBiddingZone_Domain.mRID>` +
			`<quantity_Measure_Unit.name>` + unit + `</quantity_Measure_Unit.name><curveType>` + curve + `</curveType>` +
			`<MktPSRType><psrType>` + psr + `</psrType></MktPSRType><Period><timeInterval><start>` + start + `</start><end>` + end + `</end></timeInterval>` +
			`<resolution>` + res + `</resolution>` + points + `</Period></TimeSeries></GL_MarketDocument>`
	}
	const p1 = `<Point><position>1</position><quantity>10</quantity></Point>`
	const s, e = "2025-03-10T00:00Z", "2025-03-10T01:00Z"
	f := func(body, field string) {
		t.Helper()
		err := parseENTSOE([]byte(body), entsoeGeneration{})
		var fe *fieldError
		if !errors.As(err, &fe) || fe.field != field {
			t.Errorf("got %v, want field %q", err, field)
		}
	}
	f(ts("KWH", "A01", "B04", s, e, "PT15M", p1), "TimeSeries[0].quantity_Measure_Unit.name")
	f(ts("MAW", "A02", "B04", s, e, "PT15M", p1), "TimeSeries[0].curveType")
	f(ts("MAW", "A01", "B99", s, e, "PT15M", p1), "TimeSeries[0].MktPSRType.psrType")
	f(ts("MAW", "A01", "B04", s, e, "P1D", p1), "TimeSeries[0].Period[0].resolution")
	f(ts("MAW", "A01", "B04", s, e, "PT7M", p1), "TimeSeries[0].Period[0].resolution")
	f(ts("MAW", "A01", "B04", "yesterday", e, "PT15M", p1), "TimeSeries[0].Period[0].timeInterval.start")
	f(ts("MAW", "A01", "B04", s, "2025-03-10T00:50Z", "PT15M", p1), "TimeSeries[0].Period[0].timeInterval")
	f(ts("MAW", "A01", "B04", s, e, "PT15M", `<Point><position>5</position><quantity>1</quantity></Point>`), "TimeSeries[0].Period[0].Point[0].position")
	f(ts("MAW", "A01", "B04", s, e, "PT15M", p1+`<Point><position>1</position><quantity>1</quantity></Point>`), "TimeSeries[0].Period[0].Point[1].position")
	f(ts("MAW", "A01", "B04", s, e, "PT15M", `<Point><position>1</position><quantity>lots</quantity></Point>`), "TimeSeries[0].Period[0].Point[0].quantity")
	f(`<Publication_MarketDocument/>`, "")
	f(`<GL_MarketDocument><TimeSeries>`, "")

	// A negative quantity counts as zero; PT60M works as PT1H.
	gen := entsoeGeneration{}
	if err := parseENTSOE([]byte(ts("MAW", "A01", "B14", s, e, "PT60M", `<Point><position>1</position><quantity>-3</quantity></Point>`)), gen); err != nil {
		t.Fatal(err)
	}
	if iv := gen["B14"][mustTime("2025-03-10T00:00:00Z").Unix()]; iv.mw != 0 || iv.dur != time.Hour {
		t.Errorf("got %+v", gen)
	}
}

func TestENTSOEZones(t *testing.T) {
	for _, z := range ENTSOEZones() {
		eic, ok := ENTSOEArea(z)
		if !ok || len(eic) != 16 || !eicPattern.MatchString(eic) {
			t.Errorf("%s: %q", z, eic)
		}
	}
	if eic, _ := ENTSOEArea("FR"); eic != "10YFR-RTE------C" {
		t.Errorf("FR: %s", eic)
	}
	if _, ok := ENTSOEArea("DE"); ok {
		t.Error("DE is not a bidding zone (DE-LU is)")
	}
	for psr := range DefaultEmissionFactors {
		if _, ok := PSRTypeNames[psr]; !ok {
			t.Errorf("factor for unnamed type %s", psr)
		}
	}
}
