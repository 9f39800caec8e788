package sysfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseUint(t *testing.T) {
	f := func(in string, want uint64, wantErr string) {
		t.Helper()
		got, err := ParseUint([]byte(in))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseUint(%q) = %d, %v; want error containing %q", in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("ParseUint(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	f("240422366267\n", 240422366267, "")
	f("  0 ", 0, "")
	f("18446744073709551615", 18446744073709551615, "")
	f("18446744073709551616", 0, "out of range")
	f("", 0, "empty")
	f("\n", 0, "empty")
	f("-1", 0, "not an unsigned decimal")
	f("+1", 0, "not an unsigned decimal")
	f("12 34", 0, "not an unsigned decimal")
	f("0x10", 0, "not an unsigned decimal")
	f("garbage", 0, `"garbage"`)
	f(strings.Repeat("x", 100), 0, `"...`)
}

func TestParseInt(t *testing.T) {
	f := func(in string, want int64, wantErr bool) {
		t.Helper()
		got, err := ParseInt([]byte(in))
		if (err != nil) != wantErr || got != want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, error %v", in, got, err, want, wantErr)
		}
	}
	f("55000\n", 55000, false)
	f("-5500", -5500, false)
	f("+12", 12, false)
	f("-9223372036854775808", -9223372036854775808, false)
	f("9223372036854775808", 0, true)
	f("-", 0, true)
	f("", 0, true)
	f("1.5", 0, true)
	f("N/A", 0, true)
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"0": false, "1\n": true, "2": true} {
		if got, err := ParseBool([]byte(in)); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseBool([]byte("yes")); err == nil {
		t.Error("ParseBool(yes): no error")
	}
}

func TestReadAttr(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := ReadAttr(write("ok", " 42\n")); err != nil || string(b) != "42" {
		t.Errorf("ReadAttr = %q, %v", b, err)
	}
	if b, err := ReadAttr(write("page", strings.Repeat("7", MaxAttrSize))); err != nil || len(b) != MaxAttrSize {
		t.Errorf("ReadAttr(one page) = %d bytes, %v", len(b), err)
	}
	if _, err := ReadAttr(write("big", strings.Repeat("7", MaxAttrSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadAttr(big) error = %v, want ErrTooLarge", err)
	}
	if _, err := ReadAttr(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadAttr(missing) error = %v", err)
	}
	// A directory where a file should be fails even for root, unlike chmod 000.
	if _, err := ReadAttr(dir); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadAttr(dir) error = %v, want EISDIR", err)
	}
}

// Whatever the bytes, the parsers return a value or an error, and a value
// formats back to the trimmed input without leading zeros or sign.
func FuzzParseUint(f *testing.F) {
	f.Add([]byte("240422366267\n"))
	f.Add([]byte("18446744073709551616"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseUint(b)
		if err != nil {
			return
		}
		s := bytes.TrimLeft(bytes.TrimSpace(b), "0")
		if got := strconv.FormatUint(v, 10); got != string(s) && !(v == 0 && len(s) == 0) {
			t.Fatalf("ParseUint(%q) = %d", b, v)
		}
	})
}

func FuzzParseInt(f *testing.F) {
	f.Add([]byte("-5500\n"))
	f.Add([]byte("+0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseInt(b)
		if err != nil {
			return
		}
		back, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil || back != v {
			t.Fatalf("ParseInt(%q) = %d, strconv says %d, %v", b, v, back, err)
		}
	})
}
