//go:build !linux || !cgo

package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/greenloop/greenloop/collectors"
)

// ErrNoCgo says the binary was built without cgo (or not for Linux), so NVML
// cannot be loaded.
var ErrNoCgo = errors.New("nvml: built without cgo: NVML unavailable")

// Collector is the NVML collector of a build without cgo: it reads nothing.
type Collector struct {
	log  *slog.Logger
	once sync.Once
}

func newDefault(deps collectors.Deps) *Collector { return &Collector{log: deps.Logger} }

// Collect logs once that NVML is unavailable in this build and returns an
// error wrapping collectors.ErrNoData and ErrNoCgo.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.once.Do(func() {
		c.log.Info("nvml: built without cgo: NVML unavailable, GPUs are not read (build with CGO_ENABLED=1 on Linux)")
	})
	return fmt.Errorf("%w: %w", ErrNoCgo, collectors.ErrNoData)
}

// Close does nothing.
func (c *Collector) Close() error { return nil }
