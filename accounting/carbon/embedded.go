package carbon

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
)

// Attribution is the credit the ODbL asks for wherever the embedded data is
// shown or used (see data/NOTICE).
const Attribution = "Carbon-intensity data © Electricity Maps (Electricity Maps Data Portal), licensed under the Open Database License (ODbL) 1.0"

// The compact copies of the Electricity Maps 2022 hourly exports: datetime,
// direct and LCA columns only. They are regenerated with
// `go run ./accounting/carbon/internal/gendata -src <folder of exports> -out accounting/carbon/data`.
//
//go:embed data/*_2022_hourly.csv data/NOTICE
var embedded embed.FS

var (
	embeddedMu    sync.Mutex
	embeddedCache = map[string]*Series{}
)

// Embedded2022Zones lists the zones whose 2022 hourly data is embedded, sorted.
func Embedded2022Zones() []string {
	names, _ := fs.Glob(embedded, "data/*_2022_hourly.csv")
	zones := make([]string, 0, len(names))
	for _, n := range names {
		zones = append(zones, strings.TrimSuffix(strings.TrimPrefix(n, "data/"), "_2022_hourly.csv"))
	}
	sort.Strings(zones)
	return zones
}

// Embedded2022 returns the real 2022 hourly carbon intensity of zone (one of
// Embedded2022Zones) as published by Electricity Maps. The series is parsed
// once and shared: callers must not modify it. Show Attribution with it.
func Embedded2022(zone string) (*Series, error) {
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	if s, ok := embeddedCache[zone]; ok {
		return s, nil
	}
	name := "data/" + zone + "_2022_hourly.csv"
	f, err := embedded.Open(name)
	if err != nil {
		return nil, fmt.Errorf("no embedded 2022 carbon data for zone %q (have %s)", zone, strings.Join(Embedded2022Zones(), ", "))
	}
	defer f.Close()
	s, err := ParseElectricityMaps(f)
	if err != nil {
		return nil, fmt.Errorf("embedded %s: %w", name, err)
	}
	s.Zone = zone
	embeddedCache[zone] = s
	return s, nil
}
