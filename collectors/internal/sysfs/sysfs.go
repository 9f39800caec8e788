// Package sysfs reads and parses the small attribute files of Linux sysfs for
// the local collectors: reads are bounded (sysfs reports a page-sized or fake
// file size, and a fixture or a broken driver may hand back anything), and the
// parsers are pure functions over the bytes read.
package sysfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// MaxAttrSize is the most a sysfs attribute holds (one page); a longer file is
// not an attribute and is refused.
const MaxAttrSize = 4096

// ErrTooLarge says a file held more than MaxAttrSize bytes.
var ErrTooLarge = errors.New("file larger than a sysfs attribute")

// ReadAttr reads the file at path, at most MaxAttrSize bytes, and returns its
// content with surrounding white space removed. Errors wrap the os errors
// (fs.ErrNotExist, fs.ErrPermission, EISDIR) so callers can tell them apart.
func ReadAttr(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxAttrSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxAttrSize {
		return nil, fmt.Errorf("read %s: %w", path, ErrTooLarge)
	}
	return bytes.TrimSpace(b), nil
}

// ParseUint parses a decimal unsigned integer such as the content of energy_uj,
// surrounding white space allowed.
func ParseUint(b []byte) (uint64, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return 0, errors.New("empty value")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not an unsigned decimal: %s", quote(s))
		}
	}
	v, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range: %s", quote(s))
	}
	return v, nil
}

// ParseInt parses a decimal integer with an optional sign, such as the content
// of temp1_input, surrounding white space allowed.
func ParseInt(b []byte) (int64, error) {
	s := bytes.TrimSpace(b)
	digits := s
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, fmt.Errorf("not a decimal: %s", quote(s))
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal: %s", quote(s))
		}
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range: %s", quote(s))
	}
	return v, nil
}

// ParseBool parses an "enabled"-style attribute: "0" is false, any other
// integer true.
func ParseBool(b []byte) (bool, error) {
	v, err := ParseInt(b)
	if err != nil {
		return false, err
	}
	return v != 0, nil
}

// quote shows at most 32 bytes of bad input in an error message.
func quote(b []byte) string {
	if len(b) > 32 {
		return strconv.Quote(string(b[:32])) + "..."
	}
	return strconv.Quote(string(b))
}
