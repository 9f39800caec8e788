package queue

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeFrame checks that the frame decoder never panics, never reads
// past its input, and accepts only what appendFrame produces.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("remote_write batch"), 1767225600000000000))
	f.Add(appendFrame(nil, nil, 0))
	f.Add([]byte("\x05\x00\x00\x00garbage-after-a-crash"))
	f.Fuzz(func(t *testing.T, b []byte) {
		data, at, n, err := decodeFrame(b)
		switch {
		case err == nil:
			if n < frameHdr || n > len(b) || n != frameHdr+len(data) {
				t.Fatalf("n = %d for %d bytes, data %d", n, len(b), len(data))
			}
			if re := appendFrame(nil, data, at); !bytes.Equal(re, b[:n]) {
				t.Fatalf("re-encoded frame differs:\n%x\n%x", re, b[:n])
			}
		case errors.Is(err, errShortFrame):
			if n != 0 && n <= len(b) {
				t.Fatalf("short frame needs %d bytes but %d were given", n, len(b))
			}
		case errors.Is(err, errBadFrame):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
