package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked is returned by Open when another process (or another Queue in
// this one) has the directory open: two writers would corrupt each other's
// segments and acknowledgements.
var ErrLocked = errors.New("queue: directory is in use by another queue")

const lockName = "lock"

// lockDir takes an exclusive, non-blocking flock on dir/lock. The lock goes
// with the file descriptor, so a crashed process never leaves it behind.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("queue: lock %s: %w", dir, err)
	}
	return f, nil
}
