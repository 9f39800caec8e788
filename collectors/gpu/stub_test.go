//go:build !linux || !cgo

package gpu

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/collectors"
)

func TestStubSaysOnceAndHasNoData(t *testing.T) {
	var logs bytes.Buffer
	c, err := collectors.New(collectors.TargetConfig{Name: "gpus", Type: Type},
		collectors.Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		n := 0
		err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ }))
		if !errors.Is(err, collectors.ErrNoData) || !errors.Is(err, ErrNoCgo) || n != 0 {
			t.Fatalf("%d readings, error %v; want none and ErrNoData", n, err)
		}
	}
	if got := strings.Count(logs.String(), "built without cgo: NVML unavailable"); got != 1 {
		t.Errorf("said it %d times, want once:\n%s", got, logs.String())
	}
}
