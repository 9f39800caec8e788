package providers

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestUKGrid(t *testing.T) {
	files := map[string][]byte{
		"latest": fixture(t, "ukgrid/intensity.json"),
		"range":  fixture(t, "ukgrid/range.json"),
		"fw48h":  fixture(t, "ukgrid/fw48h.json"),
	}
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/intensity":
			w.Write(files["latest"])
		case p == "/intensity/2025-03-10T12:00Z/fw48h":
			w.Write(files["fw48h"])
		case p == "/intensity/2025-03-09T12:00Z/2025-03-09T14:00Z":
			w.Write(files["range"])
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"code":"400 Bad Request","message":"Please enter a valid date"}}`))
		}
	})
	clk := newFakeClock(mustTime("2025-03-10T12:10:00Z"))
	u := NewUKGrid(Options{BaseURL: rec.srv.URL, Clock: clk})
	ctx := context.Background()
	half := 30 * time.Minute

	p, err := u.Latest(ctx, "GB", Average)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Point{Zone: "GB", Time: mustTime("2025-03-10T12:00:00Z"), Duration: half, Intensity: 142, Kind: Forecast, Signal: Average}); p != want {
		t.Errorf("latest %+v, want %+v", p, want)
	}

	pts, err := u.Intensity(ctx, "GB", mustTime("2025-03-09T12:00:00Z"), mustTime("2025-03-09T14:00:00Z"), Average)
	if err != nil {
		t.Fatal(err)
	}
	type vk struct {
		v float64
		k Kind
	}
	want := []vk{{121, Actual}, {125, Actual}, {131, Forecast}, {129, Actual}}
	if len(pts) != len(want) {
		t.Fatalf("got %v", pts)
	}
	for i, w := range want {
		if pts[i].Intensity.GramsPerKWh() != w.v || pts[i].Kind != w.k || pts[i].Duration != half ||
			!pts[i].Time.Equal(mustTime("2025-03-09T12:00:00Z").Add(time.Duration(i)*half)) {
			t.Errorf("point %d: %+v, want %v", i, pts[i], w)
		}
	}

	fc, err := u.Forecast(ctx, "GB", mustTime("2025-03-10T12:30:00Z"), mustTime("2025-03-11T00:00:00Z"), Average)
	if err != nil {
		t.Fatal(err)
	}
	if len(fc) != 2 || fc[0].Intensity != 139 || fc[1].Intensity != 97 || fc[1].Kind != Forecast {
		t.Errorf("forecast %v", fc)
	}
	if rec.count() != 3 {
		t.Errorf("%d requests, want 3", rec.count())
	}

	if _, err := u.Latest(ctx, "DE", Average); !errors.Is(err, ErrUnknownZone) {
		t.Errorf("zone DE: %v", err)
	}
	_, err = u.Intensity(ctx, "GB", mustTime("2025-03-01T12:00:00Z"), mustTime("2025-03-01T14:00:00Z"), Average)
	var re *ResponseError
	if !errors.As(err, &re) || re.Status != 400 || re.Endpoint != "/intensity/2025-03-01T12:00Z/2025-03-01T14:00Z" {
		t.Errorf("400: %v", err)
	}
}

func TestParseUKGridErrors(t *testing.T) {
	f := func(body, field string) {
		t.Helper()
		_, err := parseUKGrid([]byte(body))
		var fe *fieldError
		if !errors.As(err, &fe) || fe.field != field {
			t.Errorf("%s: got %v, want field %q", body, err, field)
		}
	}
	f(`{}`, "data")
	f(`{"data":[{"from":"2025-03-09T12:00Z","to":"2025-03-09T12:30Z"}]}`, "data[0].intensity")
	f(`{"data":[{"from":"2025-03-09T12:00Z","to":"2025-03-09T11:30Z","intensity":{}}]}`, "data[0].to")
	f(`{"data":[{"from":"12:00","to":"2025-03-09T12:30Z","intensity":{}}]}`, "data[0].from")
	f(`{"data":[{"from":"2025-03-09T12:00Z","to":"2025-03-09T12:30Z","intensity":{"actual":-1}}]}`, "data[0].intensity.actual")
	f(`{"data":[{"from":"2025-03-09T12:00Z","to":"2025-03-09T12:30Z","intensity":{"forecast":"x"}}]}`, "data.intensity.forecast")
}
