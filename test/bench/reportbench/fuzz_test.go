package main

import "testing"

// parseStatCPU never panics, and a result it accepts is not negative.
func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (greenloop) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 12 0 100 0 0")
	f.Add("77 (a b) c) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseStatCPU(s)
		if err == nil && d < 0 {
			t.Errorf("parseStatCPU(%q) = %v", s, d)
		}
	})
}
