//go:build !linux || !cgo

// Command nvmlprobe needs cgo on Linux; this build only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "nvmlprobe: built without cgo: NVML unavailable (build with CGO_ENABLED=1 on Linux)")
	os.Exit(2)
}
