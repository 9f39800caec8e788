package i2c

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"

	"github.com/greenloop/greenloop/collectors"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type result struct {
	byKey map[string]collectors.Reading // "metric{sensor}"
	err   error
}

func (r result) keys() []string {
	ks := make([]string, 0, len(r.byKey))
	for k := range r.byKey {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func collect(t *testing.T, c *Collector) result {
	t.Helper()
	res := result{byKey: map[string]collectors.Reading{}}
	res.err = c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
		var sensor string
		for _, l := range r.Labels {
			if l.Name == collectors.LabelSensor {
				sensor = l.Value
			}
		}
		if !r.Time.Equal(t0) {
			t.Errorf("%s: time %v, want %v", r, r.Time, t0)
		}
		res.byKey[r.Metric+"{"+sensor+"}"] = r
	}))
	return res
}

func newTest(t *testing.T, bus *fakeBus, devs ...Device) *Collector {
	t.Helper()
	c, err := NewWithConnector(Config{Bus: bus.bus, Devices: devs}, bus, collectors.Deps{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const (
	mW = collectors.MetricPower
	mA = collectors.MetricCurrent
	mV = collectors.MetricVoltage
	mT = collectors.MetricTemperature
	mH = MetricHumidity
)

// checkValues compares every want "metric{sensor}" → value (to 1e-9) and
// that nothing else was emitted.
func checkValues(t *testing.T, got result, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		r, ok := got.byKey[k]
		if !ok || math.Abs(r.Value-v) > 1e-9*math.Max(1, math.Abs(v)) {
			t.Errorf("%s = %v (present %v), want %v", k, r.Value, ok, v)
		}
	}
	if len(got.byKey) != len(want) {
		t.Errorf("emitted %v, want %d readings", got.keys(), len(want))
	}
}

// ina3221Regs: channel 1 20 mV across the shunt (register 4000 × 5 µV) at
// 12.000 V; channel 2 -1 mV (current flowing back) at 5.000 V; channel 3
// unconnected. Die id 0x3220 (datasheet §8.6.1.22).
func ina3221Regs() *wordRegs {
	return newWordRegs(map[uint8]uint16{
		0x01: 4000, 0x02: 12000,
		0x03: 0xFF38, 0x04: 5000, // -200 × 5 µV = -1 mV
		0xFE: 0x5449, 0xFF: 0x3220,
	})
}

func TestINA3221ShuntFromConfig(t *testing.T) {
	bus := &fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x40: ina3221Regs(), 0x41: ina3221Regs()}}
	c := newTest(t, bus, Device{Chip: "ina3221", Address: 0x40}, Device{Chip: "INA3221", Address: 0x41, ShuntOhms: 0.01})
	got := collect(t, c)
	if got.err != nil {
		t.Fatal(got.err)
	}
	checkValues(t, got, map[string]float64{
		// 0.1 Ω (the default): 20 mV / 0.1 Ω = 0.2 A, × 12 V = 2.4 W.
		mV + "{ina3221@0x40/ch1}": 12, mA + "{ina3221@0x40/ch1}": 0.2, mW + "{ina3221@0x40/ch1}": 2.4,
		mV + "{ina3221@0x40/ch2}": 5, mA + "{ina3221@0x40/ch2}": -0.01, mW + "{ina3221@0x40/ch2}": -0.05,
		// 0.01 Ω: ten times the current and the power from the same registers.
		mV + "{ina3221@0x41/ch1}": 12, mA + "{ina3221@0x41/ch1}": 2, mW + "{ina3221@0x41/ch1}": 24,
		mV + "{ina3221@0x41/ch2}": 5, mA + "{ina3221@0x41/ch2}": -0.1, mW + "{ina3221@0x41/ch2}": -0.5,
	})
	// gobot's own GetCurrent assumes 0.1 Ω and would say 200 mA for both.
	d := gi2c.NewINA3221Driver(bus, gi2c.WithBus(1), gi2c.WithAddress(0x41))
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if ma, _ := d.GetCurrent(gi2c.INA3221Channel1); ma != 200 {
		t.Errorf("gobot GetCurrent = %v mA; the test's premise (0.1 Ω fixed in gobot) changed", ma)
	}
	// The driver's configuration: all channels, continuous shunt and bus.
	if cfg := bus.devices[0x40].(*wordRegs).get(0x00); cfg&0x7007 != 0x7007 {
		t.Errorf("config register 0x%04x: channels or mode not enabled", cfg)
	}
	r := got.byKey[mW+"{ina3221@0x41/ch1}"]
	if s := r.String(); s != `greenloop_power_watts{source="i2c",sensor="ina3221@0x41/ch1"} 24` {
		t.Errorf("reading %s", s)
	}
}

func TestINA3221Errors(t *testing.T) {
	over := ina3221Regs()
	over.set(0x01, 0x7FF8) // 32760 × 5 µV = 163.8 mV: full scale
	notINA := newWordRegs(map[uint8]uint16{0xFF: 0x2260})
	bus := &fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x40: over, 0x42: notINA, 0x43: ina3221Regs()}}
	c := newTest(t, bus, Device{Chip: ChipINA3221, Address: 0x40}, Device{Chip: ChipINA3221, Address: 0x41},
		Device{Chip: ChipINA3221, Address: 0x42}, Device{Chip: ChipINA3221, Address: 0x43})
	got := collect(t, c)
	for _, want := range []string{
		"i2c: ina3221@0x40 on bus 1: channel 1: shunt voltage 163.80 mV at the end",
		"i2c: ina3221@0x41 on bus 1: start: no device at 0x41",
		"i2c: ina3221@0x42 on bus 1: start: die id 0x2260 is not an INA3221's (0x3220)",
	} {
		if got.err == nil || !strings.Contains(got.err.Error(), want) {
			t.Errorf("error %v; want it to contain %q", got.err, want)
		}
	}
	if len(got.byKey) != 6 || math.Abs(got.byKey[mA+"{ina3221@0x43/ch1}"].Value-0.2) > 1e-12 {
		t.Errorf("the good device: %v", got.keys())
	}
	// The failing chip is started again and read once it answers properly.
	over.set(0x01, 4000)
	if got = collect(t, c); len(got.byKey) != 12 {
		t.Errorf("after recovery: %v, err %v", got.keys(), got.err)
	}
}

func TestINA219(t *testing.T) {
	f := func(shuntOhms float64, shuntReg, busReg uint16, want map[string]float64, wantErr string) {
		t.Helper()
		regs := newWordRegs(map[uint8]uint16{ina219RegShunt: shuntReg, ina219RegBus: busReg})
		bus := &fakeBus{bus: 3, devices: map[int]gi2c.Connection{0x45: regs}}
		c := newTest(t, bus, Device{Chip: ChipINA219, Address: 0x45, ShuntOhms: shuntOhms})
		got := collect(t, c)
		if wantErr != "" {
			if got.err == nil || !strings.Contains(got.err.Error(), wantErr) {
				t.Errorf("error %v, want %q", got.err, wantErr)
			}
		} else if got.err != nil {
			t.Errorf("Collect: %v", got.err)
		}
		checkValues(t, got, want)
		if cfg, cal := regs.get(ina219RegConfig), regs.get(ina219RegCalibration); cfg != 0x399F || cal != 4194 {
			t.Errorf("config 0x%04x calibration %d, want 0x399F and 4194", cfg, cal)
		}
	}
	// 3250 × 10 µV = 32.5 mV; bus (0x2712 >> 3) × 4 mV = 5.000 V (CNVR set).
	f(0.1, 3250, 0x2712, map[string]float64{mV + "{ina219@0x45}": 5, mA + "{ina219@0x45}": 0.325, mW + "{ina219@0x45}": 1.625}, "")
	f(0.05, 3250, 0x2712, map[string]float64{mV + "{ina219@0x45}": 5, mA + "{ina219@0x45}": 0.65, mW + "{ina219@0x45}": 3.25}, "")
	// Current flowing back: -500 × 10 µV = -5 mV; bus 12.004 V (3001 × 4 mV) with OVF clear.
	f(0.1, 0xFE0C, 3001<<3, map[string]float64{mV + "{ina219@0x45}": 12.004, mA + "{ina219@0x45}": -0.05, mW + "{ina219@0x45}": -0.6002}, "")
	f(0.1, 32000, 0x2712, map[string]float64{}, "ina219@0x45 on bus 3: shunt voltage at the end of the ±320 mV range")
	f(0.1, 0x8300, 0x2712, map[string]float64{}, "current over range") // -32000
}

// The calibration makes the chip's own current register agree with the
// current computed from the shunt voltage: Current = Shunt × Cal / 4096
// (datasheet equation 4) in units of Current_LSB = 0.32 V / R / 2^15.
func TestINA219CalibrationMatchesShunt(t *testing.T) {
	for _, r := range []float64{0.1, 0.01, 0.002, 1} {
		for _, shunt := range []int{1, 3250, -500, 31999} {
			fromShunt := float64(shunt) * 10e-6 / r
			currentLSB := 0.32 / r / 32768
			chipCurrent := float64(shunt*ina219Calibration/4096) * currentLSB
			if d := math.Abs(chipCurrent - fromShunt); d > currentLSB+1e-4*math.Abs(fromShunt) {
				t.Errorf("R %v Ω, shunt %d: chip current %v A, from the shunt %v A (LSB %v A)", r, shunt, chipCurrent, fromShunt, currentLSB)
			}
		}
	}
}

// Bosch's BMP280 datasheet (BST-BMP280-DS001, §3.12) calibration example,
// and BME280 humidity trimming values of a real part's magnitude.
const (
	digT1, digT2, digT3                                          = 27504, 26435, -1000
	digP1, digP2, digP3, digP4, digP5, digP6, digP7, digP8       = 36477, -10685, 3024, 2855, 140, -7, 15500, -14600
	digP9                                                        = 6000
	digH1, digH2, digH3, digH4, digH5, digH6                     = 75, 362, 0, 313, 50, 30
	adcT, adcP, adcH                                             = 519888, 415148, 30000
	_                                                            = digP1 + digP2 + digP3 + digP4 + digP5 + digP6 + digP7 + digP8 + digP9
	bmeID, bmpID                                           uint8 = 0x60, 0x58
)

func boschRegs(chipID uint8) *byteRegs {
	d := &byteRegs{}
	calib := make([]byte, 24)
	for i, v := range []int{digT1, digT2, digT3, digP1, digP2, digP3, digP4, digP5, digP6, digP7, digP8, digP9} {
		binary.LittleEndian.PutUint16(calib[2*i:], uint16(int16(v)))
		if i == 0 || i == 3 { // dig_T1 and dig_P1 are unsigned
			binary.LittleEndian.PutUint16(calib[2*i:], uint16(v))
		}
	}
	d.setBytes(0x88, calib...)
	d.setBytes(0xD0, chipID)
	d.setBytes(0xA1, digH1)
	// 0xE1..0xE7: H2 (LE), H3, H4[11:4], H5[3:0]<<4|H4[3:0], H5[11:4], H6.
	d.setBytes(0xE1, byte(digH2&0xFF), byte(digH2>>8), digH3,
		byte(digH4>>4), byte(digH5&0xF)<<4|byte(digH4&0xF), byte(digH5>>4), digH6)
	d.setBytes(0xF7, byte(adcP>>12), byte(adcP>>4&0xFF), byte(adcP&0xF)<<4) // press_msb, lsb, xlsb
	d.setBytes(0xFA, byte(adcT>>12), byte(adcT>>4&0xFF), byte(adcT&0xF)<<4) // temp_msb, lsb, xlsb
	d.setBytes(0xFD, byte(adcH>>8), byte(adcH&0xFF))                        // hum_msb, lsb
	return d
}

// boschTemperature is the datasheet's double-precision compensation
// (BMP280 §8.1, BME280 §8.1), independent of gobot's float32 one.
func boschTemperature(adc float64) (celsius, tFine float64) {
	var1 := (adc/16384.0 - digT1/1024.0) * digT2
	var2 := (adc/131072.0 - digT1/8192.0) * (adc/131072.0 - digT1/8192.0) * digT3
	return (var1 + var2) / 5120.0, math.Trunc(var1 + var2)
}

// boschHumidity is BME280 §8.1's bme280_compensate_humidity_double, in %RH.
func boschHumidity(adc, tFine float64) float64 {
	h := tFine - 76800.0
	h = (adc - (digH4*64.0 + digH5/16384.0*h)) * (digH2 / 65536.0 * (1.0 + digH6/67108864.0*h*(1.0+digH3/67108864.0*h)))
	h *= 1.0 - digH1*h/524288.0
	return min(max(h, 0), 100)
}

func TestBoschSensors(t *testing.T) {
	wantC, tFine := boschTemperature(adcT)
	if math.Abs(wantC-25.08) > 0.005 || tFine != 128422 {
		t.Fatalf("reference formula: %v °C, t_fine %v; the datasheet says 25.08 °C, 128422", wantC, tFine)
	}
	wantRH := boschHumidity(adcH, tFine) / 100
	bus := &fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x76: boschRegs(bmeID), 0x77: boschRegs(bmpID)}}
	c := newTest(t, bus, Device{Chip: ChipBME280, Address: 0x76}, Device{Chip: ChipBMP280, Address: 0x77})
	got := collect(t, c)
	if got.err != nil {
		t.Fatal(got.err)
	}
	if len(got.byKey) != 3 {
		t.Errorf("readings %v, want temperature and humidity of the BME280, temperature of the BMP280", got.keys())
	}
	for _, s := range []string{"bme280@0x76", "bmp280@0x77"} {
		if v := got.byKey[mT+"{"+s+"}"].Value; v != 25.08 {
			t.Errorf("%s temperature %v, want 25.08 (datasheet; reference %.4f)", s, v, wantC)
		}
	}
	h := got.byKey[mH+"{bme280@0x76}"]
	if math.Abs(h.Value-wantRH) > 2e-5 || math.Abs(wantRH-0.55) > 0.001 {
		t.Errorf("humidity ratio %v, reference %v (about 0.55)", h.Value, wantRH)
	}
	if s := h.String(); !strings.HasPrefix(s, `greenloop_humidity_ratio{source="i2c",component="ambient",sensor="bme280@0x76"} 0.55`) {
		t.Errorf("reading %s", s)
	}
}

func TestBoschErrors(t *testing.T) {
	asleep := boschRegs(bmeID)
	asleep.setBytes(0xFA, 0x80, 0x00, 0x00) // reset value: no measurement
	bus := &fakeBus{bus: 1, devices: map[int]gi2c.Connection{0x76: boschRegs(bmpID), 0x77: asleep}}
	c := newTest(t, bus, Device{Chip: ChipBME280, Address: 0x76}, Device{Chip: ChipBME280, Address: 0x77})
	got := collect(t, c)
	for _, want := range []string{
		"i2c: bme280@0x76 on bus 1: start: chip id 0x58 is not a BME280's (0x60)",
		"i2c: bme280@0x77 on bus 1: no temperature measurement",
	} {
		if got.err == nil || !strings.Contains(got.err.Error(), want) {
			t.Errorf("error %v; want it to contain %q", got.err, want)
		}
	}
	if len(got.byKey) != 0 {
		t.Errorf("emitted %v", got.keys())
	}
	asleep.setBytes(0xFA, byte(adcT>>12), byte(adcT>>4&0xFF), 0)
	got = collect(t, c)
	if _, ok := got.byKey[mT+"{bme280@0x77}"]; !ok {
		t.Errorf("after the chip measures again: %v, err %v", got.keys(), got.err)
	}
}

func TestNewRejects(t *testing.T) {
	_, err := New(Config{Bus: -1, Devices: []Device{
		{Chip: "ina226", Address: 0x40},
		{Chip: ChipINA3221, Address: 0x44},
		{Chip: ChipINA219, Address: 0x40, ShuntOhms: -0.1},
		{Chip: ChipINA219, Address: 0x41, ShuntOhms: math.NaN()},
		{Chip: ChipBME280, Address: 0x76, ShuntOhms: 0.1},
		{Chip: ChipBMP280, Address: 0x76},
	}}, collectors.Deps{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"bus -1", "devices[0] (ina226 at 0x40): chip must be one of",
		"devices[1] (ina3221 at 0x44): address must be 0x40 to 0x43",
		"devices[2] (ina219 at 0x40): shunt_ohms -0.1: must be positive",
		"devices[3] (ina219 at 0x41): shunt_ohms NaN",
		"devices[4] (bme280 at 0x76): shunt_ohms applies to ina219 and ina3221 only",
		"devices[5] (bmp280 at 0x76): address used twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant it to contain %q", err, want)
		}
	}
	if _, err := New(Config{Bus: 1}, collectors.Deps{}); err == nil || !strings.Contains(err.Error(), "no devices") {
		t.Errorf("no devices: %v", err)
	}
}

// A bus that does not exist is absent hardware, not a failure.
func TestNoSuchBus(t *testing.T) {
	c, err := New(Config{Bus: 250, Devices: []Device{{Chip: ChipINA219, Address: 0x40}}}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) { t.Errorf("emitted %s", r) }))
	if !errors.Is(err, collectors.ErrNoData) || !strings.Contains(err.Error(), "/dev/i2c-250") {
		t.Errorf("Collect: %v, want ErrNoData naming /dev/i2c-250", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Collect(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	c, err := collectors.New(collectors.TargetConfig{Name: "edge-board", Type: Type, Bus: 1,
		Devices: []collectors.I2CDevice{{Chip: "ina3221", Address: 0x40, ShuntOhms: 0.01}, {Chip: "bme280", Address: 0x76}}},
		collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ic := c.(*Collector)
	if len(ic.devices) != 2 || ic.devices[0].shunt != 0.01 || ic.devices[1].name != "bme280@0x76" {
		t.Errorf("devices %+v %+v", ic.devices[0], ic.devices[1])
	}
}
