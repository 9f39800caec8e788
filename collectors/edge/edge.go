// Package edge links in the collectors for edge sites' own sensors: smart
// plugs and energy meters on an MQTT broker (target type "mqtt", package
// edge/mqtt) and power monitors and environment sensors on an I2C bus
// (target type "i2c", package edge/i2c). Import it for its side effect of
// registering both types.
package edge

import (
	_ "github.com/greenloop/greenloop/collectors/edge/i2c"  // registers "i2c"
	_ "github.com/greenloop/greenloop/collectors/edge/mqtt" // registers "mqtt"
)
