package edge

import (
	"slices"
	"testing"

	"github.com/greenloop/greenloop/collectors"
)

func TestTypesRegistered(t *testing.T) {
	types := collectors.Types()
	for _, want := range []string{"mqtt", "i2c"} {
		if !slices.Contains(types, want) {
			t.Errorf("type %q not registered (registered: %v)", want, types)
		}
	}
	// The agent's example target builds (no broker needed: it connects in
	// the background).
	c, err := collectors.New(collectors.TargetConfig{Name: "plugs", Type: "mqtt", Broker: "tcp://127.0.0.1:1",
		Topic: "tele/+/SENSOR", Format: "tasmota"}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := c.(interface{ Close() error }); !ok {
		t.Error("mqtt collector has no Close")
	} else if err := cl.Close(); err != nil {
		t.Error(err)
	}
}
