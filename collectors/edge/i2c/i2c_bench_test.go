package i2c

import (
	"context"
	"testing"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"

	"github.com/greenloop/greenloop/collectors"
)

// BenchmarkCollect is one poll of an INA3221, an INA219 and a BME280 on the
// fake bus: the collector's and gobot's own cost, without bus transfers.
func BenchmarkCollect(b *testing.B) {
	bus := &fakeBus{bus: 1, devices: map[int]gi2c.Connection{
		0x40: ina3221Regs(),
		0x41: newWordRegs(map[uint8]uint16{ina219RegShunt: 3250, ina219RegBus: 0x2712}),
		0x76: boschRegs(bmeID),
	}}
	c, err := NewWithConnector(Config{Bus: 1, Devices: []Device{
		{Chip: ChipINA3221, Address: 0x40, ShuntOhms: 0.01}, {Chip: ChipINA219, Address: 0x41}, {Chip: ChipBME280, Address: 0x76},
	}}, bus, collectors.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	emit := collectors.EmitterFunc(func(collectors.Reading) { n++ })
	for b.Loop() {
		if err := c.Collect(context.Background(), emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "readings/op")
}
