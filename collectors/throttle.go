package collectors

import (
	"sync"
	"time"
)

// maxThrottleKeys bounds the throttle's memory: error messages that carry a
// changing detail (an address, a count) must not grow it without end.
const maxThrottleKeys = 1024

// logThrottle lets one log line per (target, message) through per window and
// counts the lines it holds back, in the manner of VictoriaMetrics'
// lib/logger throttler. It is safe for concurrent use.
type logThrottle struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[throttleKey]*throttleEntry
}

type throttleKey struct{ target, msg string }

type throttleEntry struct {
	last       time.Time // when a line for this key was last let through
	suppressed int       // lines held back since then
}

func newLogThrottle(every time.Duration, now func() time.Time) *logThrottle {
	return &logThrottle{every: every, now: now, seen: map[throttleKey]*throttleEntry{}}
}

// allow reports whether a line for (target, msg) may be logged now and, when
// it may, how many lines for the same key were held back since the last one.
func (l *logThrottle) allow(target, msg string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := throttleKey{target, msg}
	e := l.seen[k]
	if e == nil {
		if len(l.seen) >= maxThrottleKeys {
			l.prune(now)
		}
		l.seen[k] = &throttleEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) >= l.every {
		n := e.suppressed
		e.last, e.suppressed = now, 0
		return true, n
	}
	e.suppressed++
	return false, 0
}

// prune drops the keys whose window has passed and, if the map is still full,
// one more key (the counts of suppressed lines they held are lost).
func (l *logThrottle) prune(now time.Time) {
	for k, e := range l.seen {
		if now.Sub(e.last) >= l.every {
			delete(l.seen, k)
		}
	}
	for k := range l.seen {
		if len(l.seen) < maxThrottleKeys {
			break
		}
		delete(l.seen, k)
	}
}
