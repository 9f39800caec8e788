package i2c

import (
	"context"
	"math"
	"testing"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"

	"github.com/greenloop/greenloop/collectors"
)

// FuzzINA219Registers feeds arbitrary register contents (what a chip, a
// glitching bus or another device at the address may return) through the
// INA219 driver: every reading emitted is finite and within the chip's
// ranges (bus 0–32.764 V, shunt under ±320 mV).
func FuzzINA219Registers(f *testing.F) {
	f.Add(uint16(3250), uint16(0x2712), 0.1)
	f.Add(uint16(0x8300), uint16(0xFFFF), 0.01)
	f.Fuzz(func(t *testing.T, shunt, bus uint16, ohms float64) {
		if !(ohms > 1e-6 && ohms < 1e3) {
			return
		}
		regs := newWordRegs(map[uint8]uint16{ina219RegShunt: shunt, ina219RegBus: bus})
		c, err := NewWithConnector(Config{Bus: 1, Devices: []Device{{Chip: ChipINA219, Address: 0x40, ShuntOhms: ohms}}},
			&fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x40: regs}}, collectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
			ok := !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0)
			switch r.Metric {
			case collectors.MetricVoltage:
				ok = ok && r.Value >= 0 && r.Value <= 32.764
			case collectors.MetricCurrent:
				ok = ok && math.Abs(r.Value*ohms) < 0.32
			}
			if !ok {
				t.Fatalf("shunt 0x%04x bus 0x%04x R %v: emitted %s", shunt, bus, ohms, r)
			}
		}))
	})
}

// FuzzBoschRegisters feeds arbitrary calibration and measurement registers
// through gobot's BME280 driver: the collector emits only temperatures in
// the chip's range and humidity ratios in [0, 1], never NaN.
func FuzzBoschRegisters(f *testing.F) {
	good := boschRegs(bmeID)
	f.Add(good.regs[0x88:0xA2], good.regs[0xE1:0xE8], good.regs[0xF7:0xFF])
	f.Add(make([]byte, 26), make([]byte, 7), []byte{0, 0, 0, 0x80, 0, 0, 0x80, 0})
	f.Fuzz(func(t *testing.T, calib, hcalib, data []byte) {
		regs := &byteRegs{}
		regs.setBytes(0x88, calib[:min(len(calib), 26)]...)
		regs.setBytes(0xE1, hcalib[:min(len(hcalib), 7)]...)
		regs.setBytes(0xF7, data[:min(len(data), 8)]...)
		regs.setBytes(0xD0, bmeID)
		c, err := NewWithConnector(Config{Bus: 1, Devices: []Device{{Chip: ChipBME280, Address: 0x76}}},
			&fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x76: regs}}, collectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
			ok := false
			switch r.Metric {
			case collectors.MetricTemperature:
				ok = r.Value >= -40 && r.Value <= 85
			case MetricHumidity:
				ok = r.Value >= 0 && r.Value <= 1
			}
			if !ok {
				t.Fatalf("emitted %s", r)
			}
		}))
	})
}
