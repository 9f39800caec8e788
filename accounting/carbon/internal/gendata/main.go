// Command gendata writes the compact copies of Electricity Maps hourly exports
// that package carbon embeds: for each <ZONE>_<YEAR>_hourly.csv in -src it
// writes the datetime, direct and LCA columns to the same name in -out.
//
//	go run ./accounting/carbon/internal/gendata -src <folder of exports> -out accounting/carbon/data
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/greenloop/greenloop/accounting/carbon"
)

func main() {
	src := flag.String("src", "", "folder holding the Electricity Maps *_hourly.csv exports")
	out := flag.String("out", "", "folder to write the compact copies to")
	flag.Parse()
	if *src == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	files, err := filepath.Glob(filepath.Join(src, "*_hourly.csv"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *_hourly.csv in %s", src)
	}
	for _, in := range files {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		s, err := carbon.ParseElectricityMaps(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		var buf bytes.Buffer
		if err := carbon.WriteCompactCSV(&buf, s); err != nil {
			return err
		}
		dst := filepath.Join(out, filepath.Base(in))
		if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %d hours -> %s (%d bytes)\n", s.Zone, len(s.Points), dst, buf.Len())
	}
	return nil
}
