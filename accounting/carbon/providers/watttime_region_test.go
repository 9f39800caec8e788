package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// regionServer is a WattTime API on httptest: /login as wattTimeServer,
// /v3/region-from-loc answering by latitude (37.77 → CAISO_NORTH as the
// documented shape, 10 → 403 not in plan, 95 → 400), and /v3/historical
// answering the fixture only for region CAISO_NORTH.
type regionServer struct {
	*recorder
	mu      sync.Mutex
	lookups int
}

func newRegionServer(t *testing.T) *regionServer {
	s := &regionServer{}
	hist := fixture(t, "watttime/historical.json")
	region := fixture(t, "watttime/region-from-loc.json")
	s.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			if u, p, ok := r.BasicAuth(); !ok || u != wtUser || p != wtPass {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			fmt.Fprint(w, `{"token":"tok-1"}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		q := r.URL.Query()
		switch r.URL.Path {
		case "/v3/region-from-loc":
			s.mu.Lock()
			s.lookups++
			s.mu.Unlock()
			if q.Get("signal_type") != "co2_moer" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			switch q.Get("latitude") {
			case "37.77":
				w.Write(region)
			case "10":
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"error":"Unauthorized","message":"User does not have access to this region"}`)
			default:
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"Invalid input","message":"latitude must be between -90 and 90"}`)
			}
		case "/v3/historical":
			if q.Get("region") != "CAISO_NORTH" {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":"unknown region %s"}`, q.Get("region"))
				return
			}
			w.Write(hist)
		default:
			http.NotFound(w, r)
		}
	})
	return s
}

func (s *regionServer) lookupCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// A zone that is not a WattTime region but has a location: the region is
// looked up once (cached), used for the data requests, and the points keep
// the zone. A zone without a location is the region itself.
func TestWattTimeRegionFromSiteLocation(t *testing.T) {
	s := newRegionServer(t)
	w, err := NewWattTime(WattTimeConfig{Options: Options{BaseURL: s.srv.URL, Clock: newFakeClock(mustTime("2025-03-10T12:07:00Z"))},
		Username: wtUser, Password: wtPass, Locations: map[string]Location{"US-CAL-CISO": {Lat: 37.77, Lon: -122.42}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, win := range [][2]string{{"2025-03-10T10:00:00Z", "2025-03-10T11:00:00Z"}, {"2025-03-09T10:00:00Z", "2025-03-09T11:00:00Z"}} {
		pts, err := w.Intensity(ctx, "US-CAL-CISO", mustTime(win[0]), mustTime(win[1]), Marginal)
		if err != nil {
			t.Fatal(err)
		}
		// The fixture's three points lie in the first window only.
		if i == 0 && (len(pts) != 3 || pts[0].Zone != "US-CAL-CISO" || pts[0].Intensity.GramsPerKWh() != 453.59237) || i == 1 && len(pts) != 0 {
			t.Fatalf("window %d: points %+v", i, pts)
		}
		if q := s.last().URL.Query(); s.last().URL.Path != "/v3/historical" || q.Get("region") != "CAISO_NORTH" {
			t.Errorf("window %d: last request %s %v", i, s.last().URL.Path, q)
		}
	}
	if n := s.lookupCount(); n != 1 {
		t.Errorf("%d region look-ups, want 1 (cached)", n)
	}
	s.recorder.mu.Lock()
	reqs := s.reqs
	s.recorder.mu.Unlock()
	for _, req := range reqs {
		if req.URL.Path == "/v3/region-from-loc" {
			q := req.URL.Query()
			if q.Get("latitude") != "37.77" || q.Get("longitude") != "-122.42" || q.Get("signal_type") != "co2_moer" || req.Header.Get("Authorization") != "Bearer tok-1" {
				t.Errorf("look-up %v, auth %q", q, req.Header.Get("Authorization"))
			}
		}
	}
	if r, err := w.Region(ctx, "CAISO_NORTH"); err != nil || r != "CAISO_NORTH" {
		t.Errorf("zone without location: %q %v", r, err)
	}
	if n := s.lookupCount(); n != 1 {
		t.Errorf("%d region look-ups after a zone without location, want 1", n)
	}
}

func TestWattTimeRegionErrors(t *testing.T) {
	cases := []struct {
		name        string
		loc         Location
		status      int
		is          error
		unknownZone bool
		msg         []string
	}{
		{"not in plan", Location{Lat: 10, Lon: 10}, http.StatusForbidden, ErrAuth, false,
			[]string{`zone "XX"`, "10,10", "/v3/region-from-loc", "HTTP 403", "not in plan"}},
		{"refused coordinates", Location{Lat: 89.5, Lon: 0.25}, http.StatusBadRequest, ErrBadResponse, true,
			[]string{`zone "XX"`, "89.5,0.25", "HTTP 400", "check the site's location", "latitude must be between"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newRegionServer(t)
			w, err := NewWattTime(WattTimeConfig{Options: Options{BaseURL: s.srv.URL, Clock: newFakeClock(mustTime("2025-03-10T12:07:00Z"))},
				Username: wtUser, Password: wtPass, Locations: map[string]Location{"XX": c.loc}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			_, err = w.Intensity(ctx, "XX", mustTime("2025-03-10T10:00:00Z"), mustTime("2025-03-10T11:00:00Z"), Marginal)
			var re *RegionError
			if !errors.As(err, &re) || re.Zone != "XX" || re.Location != c.loc || !errors.Is(err, c.is) || errors.Is(err, ErrUnknownZone) != c.unknownZone {
				t.Fatalf("got %v (%T)", err, err)
			}
			for _, m := range c.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
			if strings.Contains(err.Error(), wtPass) || strings.Contains(err.Error(), "tok-1") {
				t.Errorf("error leaks a secret: %v", err)
			}
			// Not cached: the next call asks again; no data request was sent.
			if _, err := w.SignalIndex(ctx, "XX"); !errors.As(err, &re) {
				t.Fatalf("second call: %v", err)
			}
			if n := s.lookupCount(); n != 2 {
				t.Errorf("%d look-ups, want 2", n)
			}
			for _, p := range s.paths() {
				if p != "/login" && p != "/v3/region-from-loc" {
					t.Errorf("unexpected request to %s", p)
				}
			}
		})
	}
}

func TestWattTimeLocationsValidated(t *testing.T) {
	for _, l := range []Location{{Lat: 91}, {Lon: -181}, {Lat: math.NaN()}} {
		_, err := NewWattTime(WattTimeConfig{Username: "u", Password: "p", Locations: map[string]Location{"Z": l}})
		if err == nil || !strings.Contains(err.Error(), `zone "Z"`) {
			t.Errorf("%v: got %v", l, err)
		}
	}
}

func TestParseWattTimeRegion(t *testing.T) {
	reg, err := parseWattTimeRegion(fixture(t, "watttime/region-from-loc.json"), "co2_moer")
	if err != nil || reg != (Region{Region: "CAISO_NORTH", FullName: "California ISO Northern", SignalType: "co2_moer"}) {
		t.Fatalf("%+v %v", reg, err)
	}
	for body, field := range map[string]string{
		`{"region_full_name":"x","signal_type":"co2_moer"}`: "region",
		`{"region":"","signal_type":"co2_moer"}`:            "region",
		`{"region":"CAISO_NORTH","signal_type":"co2_aoer"}`: "signal_type",
	} {
		_, err := parseWattTimeRegion([]byte(body), "co2_moer")
		var fe *fieldError
		if !errors.As(err, &fe) || fe.field != field {
			t.Errorf("%s: got %v, want field %q", body, err, field)
		}
	}
	if _, err := parseWattTimeRegion([]byte(`{"region":`), "co2_moer"); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func FuzzParseWattTimeRegion(f *testing.F) {
	f.Add(fixture(f, "watttime/region-from-loc.json"))
	f.Fuzz(func(t *testing.T, in []byte) {
		reg, err := parseWattTimeRegion(in, "co2_moer")
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if reg.Region == "" || (reg.SignalType != "" && reg.SignalType != "co2_moer") {
			t.Fatalf("accepted %+v", reg)
		}
	})
}
