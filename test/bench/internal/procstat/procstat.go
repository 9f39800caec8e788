// Package procstat reads, from Linux /proc, the CPU time a process has used
// and the time the machine's CPUs have been busy: what the benchmark
// programs report next to their wall-clock figures.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// tick is one USER_HZ clock tick, the unit of /proc's CPU times (100 Hz on Linux).
const tick = 10 * time.Millisecond

// Process returns the user + system CPU time of process pid and its threads.
func Process(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseProcess(b)
}

// ParseProcess reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself: fields are counted after the last ')'.
func ParseProcess(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are f[11] and f[12].
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/PID/stat utime/stime: %w", err)
	}
	return ticks(u, s)
}

// MachineBusy returns the time all CPUs have spent not idle since boot.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return ParseMachineBusy(b)
}

// ParseMachineBusy reads user, nice, system, irq, softirq and steal (idle
// and iowait left out) from /proc/stat's first line.
func ParseMachineBusy(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat first line")
	}
	var busy []uint64
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i+2, err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy = append(busy, n)
		}
	}
	return ticks(busy...)
}

// ticks sums clock-tick counts into a duration, refusing sums a Duration
// cannot hold (about 290 years).
func ticks(ns ...uint64) (time.Duration, error) {
	const most = uint64(math.MaxInt64 / int64(tick))
	var sum uint64
	for _, n := range ns {
		if n > most || sum > most-n {
			return 0, errors.New("CPU time beyond a duration's range")
		}
		sum += n
	}
	return time.Duration(sum) * tick, nil
}
