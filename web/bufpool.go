package web

import "sync"

// maxPooledBuf is the largest buffer kept for reuse; bigger ones (rare, huge
// requests) go to the garbage collector so one burst does not pin memory.
const maxPooledBuf = 16 << 20

// bufPool recycles byte buffers for request bodies, decoded payloads and
// responses. The zero value is ready to use.
type bufPool struct {
	p sync.Pool
}

// get returns an empty buffer; put it back when done with it and with
// everything that points into it.
func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if b == nil || cap(*b) > maxPooledBuf {
		return
	}
	bp.p.Put(b)
}
