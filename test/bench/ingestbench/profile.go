package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// perfRecord runs f while Linux perf samples process pid (call graphs by
// frame pointers, which Go keeps), then writes into dir the recording
// (LABEL.perf.data) and two reports: LABEL.flat.txt (self time by symbol)
// and LABEL.tree.txt (time including callees). Neither server needs a
// profiling endpoint for this.
func perfRecord(ctx context.Context, pid int, dir, label string, f func() error) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("-perf needs Linux perf (apt-get install linux-perf): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := filepath.Join(dir, label+".perf.data")
	_ = os.Remove(data) // perf would keep it as .old
	rec := exec.CommandContext(ctx, perf, "record", "-q", "-F", "997", "-g", "-p", strconv.Itoa(pid), "-o", data)
	rec.Stdout, rec.Stderr = os.Stderr, os.Stderr
	if err := rec.Start(); err != nil {
		return fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // let perf attach
	ferr := f()
	_ = rec.Process.Signal(syscall.SIGINT)
	werr := rec.Wait()
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGINT {
			werr = nil // perf re-raises the SIGINT that ends a recording, after writing it
		}
	}
	if ferr != nil {
		return ferr
	}
	if werr != nil {
		return fmt.Errorf("perf record: %w", werr)
	}
	for _, r := range []struct {
		file string
		args []string
	}{
		{label + ".flat.txt", []string{"--no-children", "--sort", "symbol", "-g", "none"}},
		{label + ".tree.txt", []string{"--children", "--sort", "symbol", "-g", "none"}},
	} {
		out, err := os.Create(filepath.Join(dir, r.file))
		if err != nil {
			return err
		}
		rep := exec.CommandContext(ctx, perf, append([]string{"report", "-i", data, "--stdio", "--percent-limit", "0.3"}, r.args...)...)
		rep.Stdout = out
		rep.Stderr = os.Stderr
		err = rep.Run()
		out.Close()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
	}
	logf("perf: %s profile in %s", label, filepath.Join(dir, label+".{perf.data,flat.txt,tree.txt}"))
	return nil
}

// profileIngest runs the ingest load once more against a fresh greenloop,
// untimed, under perf (files greenloop-ingest.*). Prometheus is not profiled:
// distribution builds of it are usually stripped, leaving perf no symbols.
func (b *bench) profileIngest(ctx context.Context, dir string) error {
	s := b.s
	step := s.Interval.Milliseconds()
	end := time.Now().Truncate(s.Interval).UnixMilli()
	l := loadgen.Load{Kind: loadgen.Power, Fleet: loadgen.Fleet{Series: s.Series, Sites: 10},
		Start: end - int64(s.Scrapes-1)*step, Step: step, Steps: s.Scrapes, Batch: s.Batch}
	reqs, err := l.EncodeAll(s.Senders)
	if err != nil {
		return err
	}
	for _, name := range []string{nameGreenloop} {
		err := b.withServer(name, func(srv *server) error {
			return perfRecord(ctx, srv.pid(), dir, name+"-ingest", func() error {
				sr, err := sendEncoded(ctx, newClient(s.Senders), srv.url+"/api/v1/write", reqs)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				logf("perf: %s ingested %d samples in %s (%.0f samples/s under perf)", name, sr.Samples, sr.Elapsed.Round(time.Millisecond), float64(sr.Samples)/sr.Elapsed.Seconds())
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}
