package mqtt

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"
)

func BenchmarkParseTasmota(b *testing.B) {
	payload := readFixture(b, "tasmota/dual-channel.json")
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := parse(FormatTasmota, "tele/sw25/SENSOR", payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseShellyPro3EM(b *testing.B) {
	payload := readFixture(b, "shelly/pro3em-fullstatus.json")
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := parse(FormatShelly, "shellypro3em-c8f09e8812ab/events/rpc", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandle is the work per received message: parse and store, for
// 1000 plugs publishing in turn.
func BenchmarkHandle(b *testing.B) {
	c := &Collector{format: FormatTasmota, maxSensors: DefaultMaxSensors, logEvery: time.Minute,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
		sensors: map[string]*sensorState{}, bad: map[string]*badTopic{}, logLast: map[string]time.Time{}, logHeld: map[string]int{}}
	payload := readFixture(b, "tasmota/pow-single.json")
	topics := make([]string, 1000)
	for i := range topics {
		topics[i] = "tele/plug-" + strconv.Itoa(i) + "/SENSOR"
	}
	i := 0
	for b.Loop() {
		c.handle(topics[i%len(topics)], payload)
		i++
	}
	if len(c.sensors) != len(topics) || c.Malformed() != 0 {
		b.Fatalf("%d sensors, %d malformed", len(c.sensors), c.Malformed())
	}
}
