//go:build linux && cgo

// Command nvmlprobe runs the NVML collector once against the system's NVML
// library and prints every reading as one JSON object per line, in the
// format of `greenloop collect --once --format json`. Build it with cgo on
// any Linux host (it links only libc and loads libnvidia-ml.so.1 at run
// time), copy it to a GPU machine, and run it there. Logs go to stderr. The
// exit status is 0 when it read something, 1 when the collection failed
// (readings taken before the failure are still printed), 2 when there was
// nothing to read (no library, driver or GPU).
//
// Flags: -site and -node set those labels (node defaults to the host name);
// -n collections, -interval apart (the second and later ones show the energy
// counter moving).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/gpu"
)

type line struct {
	Metric      string            `json:"metric"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	TimestampMS int64             `json:"timestamp_ms"`
}

func main() {
	host, _ := os.Hostname()
	site := flag.String("site", "probe", "site label")
	node := flag.String("node", host, "node label")
	n := flag.Int("n", 1, "number of collections")
	interval := flag.Duration("interval", time.Second, "time between collections")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c := gpu.New(collectors.Deps{Logger: log})
	defer c.Close()
	enc := json.NewEncoder(os.Stdout)
	emit := collectors.EmitterFunc(func(r collectors.Reading) {
		ls := map[string]string{"site": *site, "node": *node}
		for _, l := range r.Labels {
			ls[l.Name] = l.Value
		}
		if err := enc.Encode(line{r.Metric, ls, r.Value, r.Time.UnixMilli()}); err != nil {
			fmt.Fprintln(os.Stderr, "nvmlprobe:", err)
			os.Exit(1)
		}
	})
	status := 0
	for k := range *n {
		if k > 0 {
			time.Sleep(*interval)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := c.Collect(ctx, emit)
		cancel()
		fmt.Fprintf(os.Stderr, "nvmlprobe: collection %d took %s\n", k+1, time.Since(start).Round(time.Microsecond))
		switch {
		case errors.Is(err, collectors.ErrNoData):
			fmt.Fprintln(os.Stderr, "nvmlprobe:", err)
			c.Close()
			os.Exit(2)
		case err != nil:
			fmt.Fprintln(os.Stderr, "nvmlprobe:", err)
			status = 1
		}
	}
	c.Close()
	os.Exit(status)
}
