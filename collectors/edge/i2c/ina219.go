package i2c

import (
	"errors"
	"fmt"
	"math"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"
)

// INA219 registers (TI INA219 datasheet, SBOS448, §8.6). Registers are
// 16 bits wide, most significant byte first on the wire.
const (
	ina219RegConfig      = 0x00
	ina219RegShunt       = 0x01 // signed, LSB 10 µV whatever the PGA gain
	ina219RegBus         = 0x02 // bits 15..3 × 4 mV; bit 1 CNVR, bit 0 OVF
	ina219RegCalibration = 0x05
)

// ina219Config is the configuration the driver writes: BRNG=1 (32 V bus
// range), PG=11 (gain /8, ±320 mV shunt range), BADC=SADC=0011 (12-bit, one
// sample, 532 µs), MODE=111 (shunt and bus, continuous). It is the chip's
// power-on default, written again in case another program changed it.
const ina219Config = 0x399F

// ina219ShuntFullScale is the shunt register's magnitude at the end of the
// ±320 mV range (PGA /8): 32000 × 10 µV.
const ina219ShuntFullScale = 32000

// ina219Calibration is the calibration register for a current LSB of
// (maximum expected current)/2^15 with the maximum at the shunt range's end,
// 0.32 V/R: Cal = trunc(0.04096 / (Current_LSB × R)) = trunc(0.04096 ×
// 32768 / 0.32) = 4194, whatever R is (datasheet §8.5.1, equations 1–2).
// greenloop computes the current from the shunt voltage itself; the
// calibration makes the chip's own current and power registers right for
// other readers of the same chip.
const ina219Calibration = 4194

// ina219 is a minimal driver for TI's INA219 current and power monitor on
// gobot's I2C connection (gobot has no driver for it).
type ina219 struct {
	conn gi2c.Connection
}

// start writes the configuration and the calibration.
func (d *ina219) start(c gi2c.Connector, bus, address int) error {
	conn, err := c.GetI2cConnection(address, bus)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		reg  uint8
		v    uint16
		what string
	}{
		{ina219RegConfig, ina219Config, "configuration"},
		{ina219RegCalibration, ina219Calibration, "calibration"},
	} {
		if err := writeWordBE(conn, w.reg, w.v); err != nil {
			return fmt.Errorf("write %s register: %w", w.what, err)
		}
	}
	d.conn = conn
	return nil
}

// errOverRange says the shunt voltage is at the end of the chip's range, so
// the current is unknown (larger than the range allows).
var errOverRange = errors.New("shunt voltage at the end of the ±320 mV range: current over range")

// read returns the bus voltage (V) and the shunt voltage (V).
func (d *ina219) read() (busVolts, shuntVolts float64, err error) {
	shunt, err := readWordBE(d.conn, ina219RegShunt)
	if err != nil {
		return 0, 0, fmt.Errorf("read shunt voltage: %w", err)
	}
	bus, err := readWordBE(d.conn, ina219RegBus)
	if err != nil {
		return 0, 0, fmt.Errorf("read bus voltage: %w", err)
	}
	raw := int16(shunt)
	if raw >= ina219ShuntFullScale || raw <= -ina219ShuntFullScale {
		return 0, 0, fmt.Errorf("%w (register 0x%04x)", errOverRange, shunt)
	}
	return float64(bus>>3) * 0.004, float64(raw) * 10e-6, nil
}

// readWordBE reads a 16-bit register that the chip sends most significant
// byte first: SMBus "read word" takes the first byte as the low one, so the
// bytes are swapped back.
func readWordBE(c gi2c.Connection, reg uint8) (uint16, error) {
	v, err := c.ReadWordData(reg)
	if err != nil {
		return 0, err
	}
	return v<<8 | v>>8, nil
}

// writeWordBE writes a 16-bit register most significant byte first, as
// gobot's INA3221 driver does.
func writeWordBE(c gi2c.Connection, reg uint8, v uint16) error {
	return c.WriteBlockData(reg, []byte{byte(v >> 8), byte(v)})
}

// finite reports whether v is a number (not NaN or ±Inf).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
