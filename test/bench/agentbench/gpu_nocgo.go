//go:build linux && !cgo

package main

import (
	"errors"

	"github.com/greenloop/greenloop/collectors"
)

// mockGPU needs cgo: the gpu collector's NVML backend is built only with it.
func mockGPU() (collectors.Collector, int, error) {
	return nil, 0, errors.New("the footprint phase needs cgo (the NVML mock): build with CGO_ENABLED=1")
}
