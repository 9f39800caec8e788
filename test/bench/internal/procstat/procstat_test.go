package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseProcess(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		// A command name with spaces and parentheses must not shift the fields.
		{"4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123 456 789", 3 * time.Second, true},
		{"1234 (greenloop) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 12 0 100 0 0", 2870 * time.Millisecond, true},
		{"77 (a b) c) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0", 110 * time.Millisecond, true},
		{"", 0, false},
		{"no parenthesis", 0, false},
		{"1 (x) S 1 2", 0, false},
		{"1 (x) S 1 2 3 4 5 6 7 8 9 10 -5 6", 0, false}, // negative ticks
	} {
		got, err := ParseProcess([]byte(tc.stat))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseProcess(%q) = %v, %v; want %v, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
	if d, err := Process(os.Getpid()); err != nil || d < 0 {
		t.Errorf("own process: %v %v", d, err)
	}
}

func TestParseMachineBusy(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		// user+nice+system+irq+softirq+steal; idle and iowait left out.
		{"cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n", 1700 * time.Millisecond, true},
		{"cpu  100 20 30 4000 500 6 7 8 0 0\n", 1710 * time.Millisecond, true},
		{"intr 1 2 3\n", 0, false},
		{"cpu 1 2 3\n", 0, false},
		{"cpu  1 2 x 4 5 6 7 8 0 0\n", 0, false},
		{"cpu  900000000000 900000000000 0 0 0 0 0 0 0 0\n", 0, false},            // beyond a Duration
		{"cpu  40000000000 0 0 0 0 0 0 0 0 0\n", 400_000_000 * time.Second, true}, // 256 cores for 18 months
	} {
		got, err := ParseMachineBusy([]byte(tc.stat))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMachineBusy(%q) = %v, %v; want %v, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
	if _, err := MachineBusy(); err != nil {
		t.Error(err)
	}
}

// Any bytes: never a panic, never a negative time.
func FuzzParse(f *testing.F) {
	f.Add([]byte("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123 456 789"))
	f.Add([]byte("cpu  100 20 30 4000 500 6 7 8 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseProcess(b); err == nil && d < 0 {
			t.Fatalf("ParseProcess = %v", d)
		}
		if d, err := ParseMachineBusy(b); err == nil && d < 0 {
			t.Fatalf("ParseMachineBusy = %v", d)
		}
	})
}
