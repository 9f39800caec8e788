package queue

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// On-disk layout.
//
// A segment file starts with segMagic and is followed by frames. A frame is
//
//	[0:4]   data length, uint32 little endian
//	[4:8]   CRC32C (Castagnoli) over bytes [0:4], [8:16] and the data
//	[8:16]  append time, Unix nanoseconds, int64 little endian
//	[16:]   data
//
// The checksum covers the length, so a torn or overwritten length is caught
// before it is trusted for anything but a bounds check.
const (
	segMagic = "GLQSEG1\n"
	segHdr   = int64(len(segMagic))
	frameHdr = 16

	// maxFrameData bounds a record independently of Options.MaxBytes, so a
	// corrupt length can never make a reader allocate gigabytes.
	maxFrameData = 256 << 20
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)

	// errShortFrame means the buffer ends inside a frame: at the end of a
	// file it is a torn write.
	errShortFrame = errors.New("queue: short frame")
	// errBadFrame means the bytes are not a valid frame (bad length or
	// checksum).
	errBadFrame = errors.New("queue: corrupt frame")
)

// appendFrame appends the framed record to dst and returns the result.
func appendFrame(dst, data []byte, appendedNanos int64) []byte {
	var h [frameHdr]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(appendedNanos))
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, data)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, data...)
}

// decodeFrame decodes the frame at the start of b. data aliases b. n is the
// frame's length on success; with errShortFrame it is the number of bytes the
// frame needs when the header could be read, else 0.
func decodeFrame(b []byte) (data []byte, appendedNanos int64, n int, err error) {
	if len(b) < frameHdr {
		return nil, 0, 0, errShortFrame
	}
	l := binary.LittleEndian.Uint32(b[0:4])
	if l > maxFrameData {
		return nil, 0, 0, errBadFrame
	}
	n = frameHdr + int(l)
	if len(b) < n {
		return nil, 0, n, errShortFrame
	}
	crc := crc32.Update(0, castagnoli, b[0:4])
	crc = crc32.Update(crc, castagnoli, b[8:16])
	crc = crc32.Update(crc, castagnoli, b[frameHdr:n])
	if crc != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, 0, 0, errBadFrame
	}
	return b[frameHdr:n], int64(binary.LittleEndian.Uint64(b[8:16])), n, nil
}

// frameTime returns the append time in a frame header that decodeFrame
// accepted.
func frameTime(h []byte) int64 { return int64(binary.LittleEndian.Uint64(h[8:16])) }
