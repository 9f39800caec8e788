package textimport

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp%d\",instance=\"host%d:9100\"} %d.5 %d\n", i%8, i%50, i, 1763800000000+int64(i))
	}
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		series, rejs := Parse(body, now)
		if len(rejs) != 0 || len(series) != 200 {
			b.Fatalf("%d series, %d rejections", len(series), len(rejs))
		}
	}
}
