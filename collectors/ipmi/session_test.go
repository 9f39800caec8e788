package ipmi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/dcmi"
	"github.com/bougou/go-ipmi/pkg/command/sensor"
	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/greenloop/greenloop/collectors"
)

// errNoAnswer stands for a request the BMC never answered.
var errNoAnswer = fmt.Errorf("IPMI LAN: no matching IPMI response: %w", timeoutError{})

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// scriptedSession answers the collector's commands from fields a test sets,
// for the failure sequences a BMC does not produce on demand.
type scriptedSession struct {
	mu        sync.Mutex
	dcmiErr   error
	dcmiCalls int
	repoErr   error
	sdrs      []*types.SDR
	raw       map[uint8]uint8
	readErr   map[uint8]error
	reads     map[uint8]int
	dead      bool // set by a read of the sensor deadAt: nothing is answered any more
	deadAt    uint8
	closed    int
}

func (s *scriptedSession) GetDCMIPowerReading(context.Context) (*dcmi.GetDCMIPowerReadingResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dcmiCalls++
	if s.dcmiErr != nil {
		return nil, s.dcmiErr
	}
	return &dcmi.GetDCMIPowerReadingResponse{CurrentPower: 200, MinimumPower: 180, MaximumPower: 230, AveragePower: 205,
		ReportingPeriod: 60000, PowerMeasurementActive: true}, nil
}

func (s *scriptedSession) GetSDRRepoInfo(context.Context) (*storage.GetSDRRepoInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.repoErr != nil {
		return nil, s.repoErr
	}
	if s.dead {
		return nil, errNoAnswer
	}
	return &storage.GetSDRRepoInfoResponse{RecordCount: uint16(len(s.sdrs))}, nil
}

func (s *scriptedSession) GetSDRsRaw(context.Context, ...types.SDRRecordType) ([]*types.SDR, error) {
	return s.sdrs, nil
}

func (s *scriptedSession) GetSensorReading(_ context.Context, n uint8) (*sensor.GetSensorReadingResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads == nil {
		s.reads = map[uint8]int{}
	}
	s.reads[n]++
	if s.deadAt != 0 && n >= s.deadAt {
		s.dead = true
	}
	if s.dead {
		return nil, errNoAnswer
	}
	if err := s.readErr[n]; err != nil {
		return nil, err
	}
	return &sensor.GetSensorReadingResponse{Reading: s.raw[n]}, nil
}

func (s *scriptedSession) GetSensorReadingFactors(context.Context, uint8, uint8) (*sensor.GetSensorReadingFactorsResponse, error) {
	return nil, types.NewResponseError(types.CodeInvalidCommand, "invalid command")
}

func (s *scriptedSession) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// scripted returns a collector whose sessions are the ones next hands out.
func scripted(t *testing.T, next func() *scriptedSession) (*Collector, *syncBuffer, *int) {
	t.Helper()
	logs := &syncBuffer{}
	c, err := New(Config{Host: "bmc-13.example", Username: "monitor", Timeout: 5 * time.Second}, testDeps(logs))
	if err != nil {
		t.Fatal(err)
	}
	opens := 0
	c.open = func(context.Context, types.PrivilegeLevel) (session, error) {
		opens++
		return next(), nil
	}
	return c, logs, &opens
}

func threeTemps(t *testing.T) []*types.SDR {
	var sdrs []*types.SDR
	for i, name := range []string{"A", "B", "C"} {
		sdrs = append(sdrs, parseSDR(t, sdrSpec{num: uint8(i + 1), name: name, stype: 1, evtype: 1, entity: 7, inst: 1, base: 1, m: 1}))
	}
	return sdrs
}

func readingsOf(rs []collectors.Reading) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, "\n")
}

// TestDCMIDropped: a BMC that answers everything but DCMI (drops those
// requests) is read without DCMI, and the next polls do not wait for it.
func TestDCMIDropped(t *testing.T) {
	s := &scriptedSession{dcmiErr: errNoAnswer, sdrs: threeTemps(t), raw: map[uint8]uint8{1: 40, 2: 41, 3: 42}}
	c, logs, opens := scripted(t, func() *scriptedSession { return s })
	for i := range 3 {
		var got []collectors.Reading
		err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { got = append(got, r) }))
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		want := `greenloop_temperature_celsius{source="ipmi",sensor="A"} 40
greenloop_temperature_celsius{source="ipmi",sensor="B"} 41
greenloop_temperature_celsius{source="ipmi",sensor="C"} 42`
		if readingsOf(got) != want {
			t.Fatalf("poll %d:\n%s\nwant\n%s", i, readingsOf(got), want)
		}
	}
	if s.dcmiCalls != 1 || *opens != 1 || s.closed != 0 {
		t.Fatalf("DCMI asked %d times, %d sessions, %d closed; want 1, 1, 0", s.dcmiCalls, *opens, s.closed)
	}
	if n := strings.Count(logs.String(), "does not answer DCMI"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs)
	}
	// A new session asks again.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) {})); err != nil {
		t.Fatal(err)
	}
	if s.dcmiCalls != 2 {
		t.Fatalf("DCMI asked %d times after a new session, want 2", s.dcmiCalls)
	}
}

// TestSessionLost: when the BMC stops answering mid-poll, the readings
// taken so far are emitted, the error names the BMC and the sensor, the
// session is closed, and the next poll opens a new one.
func TestSessionLost(t *testing.T) {
	var sessions []*scriptedSession
	c, _, opens := scripted(t, func() *scriptedSession {
		s := &scriptedSession{sdrs: threeTemps(t), raw: map[uint8]uint8{1: 40, 2: 41, 3: 42}}
		if len(sessions) == 0 {
			s.deadAt = 2 // the BMC resets while sensor B is read
		}
		sessions = append(sessions, s)
		return s
	})
	var got []collectors.Reading
	err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { got = append(got, r) }))
	if err == nil || !strings.Contains(err.Error(), `bmc-13.example:623: reading sensor "B" (0x02)`) || !errors.Is(err, timeoutError{}) {
		t.Fatalf("err = %v, want one naming the BMC and sensor B, wrapping the timeout", err)
	}
	want := `greenloop_power_watts{source="ipmi",component="chassis",sensor="dcmi"} 200
greenloop_ipmi_dcmi_power_min_watts{source="ipmi",component="chassis",sensor="dcmi"} 180
greenloop_ipmi_dcmi_power_max_watts{source="ipmi",component="chassis",sensor="dcmi"} 230
greenloop_ipmi_dcmi_power_average_watts{source="ipmi",component="chassis",sensor="dcmi"} 205
greenloop_ipmi_dcmi_sampling_period_seconds{source="ipmi",component="chassis",sensor="dcmi"} 60
greenloop_temperature_celsius{source="ipmi",sensor="A"} 40`
	if readingsOf(got) != want {
		t.Fatalf("partial poll:\n%s\nwant\n%s", readingsOf(got), want)
	}
	if sessions[0].closed != 1 {
		t.Fatalf("failed session closed %d times, want 1", sessions[0].closed)
	}
	got = nil
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { got = append(got, r) })); err != nil {
		t.Fatal(err)
	}
	if *opens != 2 || len(got) != 8 {
		t.Fatalf("after the failure: %d sessions opened, %d readings; want 2 and 8", *opens, len(got))
	}
}

// TestDCMIAndRepoLost: DCMI and then the SDR repository go unanswered:
// the session is gone, not DCMI alone.
func TestDCMIAndRepoLost(t *testing.T) {
	s := &scriptedSession{dcmiErr: errNoAnswer, repoErr: errNoAnswer, sdrs: threeTemps(t)}
	c, logs, _ := scripted(t, func() *scriptedSession { return s })
	err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) {}))
	if err == nil || !strings.Contains(err.Error(), "SDR repository info") {
		t.Fatalf("err = %v, want the SDR repository info failure", err)
	}
	if strings.Contains(logs.String(), "does not answer DCMI") || !c.dcmiOffUntil.IsZero() || s.closed != 1 {
		t.Fatalf("DCMI marked unanswered (%v) or session not closed (%d) when the whole session failed:\n%s",
			c.dcmiOffUntil, s.closed, logs)
	}
}

// TestSensorDropped: a sensor the BMC does not answer for (one behind a
// controller it does not bridge to) while it answers the rest is skipped,
// and not asked for again on the next polls.
func TestSensorDropped(t *testing.T) {
	sdrs := threeTemps(t)
	behindME := parseSDR(t, sdrSpec{num: 9, name: "ME Temp", stype: 1, evtype: 1, entity: 7, inst: 1, base: 1, m: 1, owner: 0x2c})
	sdrs = append(sdrs[:1], append([]*types.SDR{behindME}, sdrs[1:]...)...)
	s := &scriptedSession{sdrs: sdrs, raw: map[uint8]uint8{1: 40, 2: 41, 3: 42, 9: 50}, readErr: map[uint8]error{9: errNoAnswer}}
	c, logs, opens := scripted(t, func() *scriptedSession { return s })
	for i := range 3 {
		var got []collectors.Reading
		if err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { got = append(got, r) })); err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		if len(got) != 8 || strings.Contains(readingsOf(got), "ME Temp") {
			t.Fatalf("poll %d:\n%s\nwant DCMI and A, B, C", i, readingsOf(got))
		}
	}
	if s.reads[9] != 1 || s.reads[3] != 3 || *opens != 1 {
		t.Fatalf("ME Temp read %d times, C %d times, %d sessions; want 1, 3, 1", s.reads[9], s.reads[3], *opens)
	}
	if !strings.Contains(logs.String(), `sensor="ME Temp" owner=0x2c`) {
		t.Fatalf("skip not logged:\n%s", logs)
	}
}
