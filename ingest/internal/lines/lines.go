// Package lines splits the bodies of line-oriented import formats.
package lines

import "bytes"

// Each calls fn with every "\n"-separated line of data and its 1-based
// number; the separator is not part of the line, and a last line without
// one is still passed.
func Each(data []byte, fn func(lineNo int, line []byte)) {
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		fn(lineNo, line)
	}
}
