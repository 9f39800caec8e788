package ndjson

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, `{"metric":"greenloop_power_watts","labels":{"site":"fra1","node":"bmc-%d","source":"redfish","component":"psu","sensor":"PSU%d"},"value":%d.5,"timestamp_ms":%d}`+"\n",
			i%50, i%4, i, 1763800000000+int64(i))
	}
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		series, rejs := Parse(body, now)
		if len(rejs) != 0 || len(series) != 100 {
			b.Fatalf("%d series, %d rejections", len(series), len(rejs))
		}
	}
}
