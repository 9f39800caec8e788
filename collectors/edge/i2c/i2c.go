// Package i2c reads power monitors and environment sensors on a Linux I2C
// bus (/dev/i2c-N) with gobot's drivers and emits them as greenloop's
// canonical series with source "i2c":
//
//   - TI INA3221 (three channels) and INA219 (one): bus voltage
//     (greenloop_voltage_volts), current (greenloop_current_amperes) and
//     power (greenloop_power_watts, bus voltage × current), sensor
//     "ina3221@0x40/ch1" or "ina219@0x41", no component. The current is the
//     shunt voltage divided by the board's shunt resistance from the
//     configuration: gobot's INA3221 driver assumes 0.1 Ω, and gobot has no
//     INA219 driver, so this package has a small one.
//   - Bosch BME280 and BMP280: temperature (greenloop_temperature_celsius)
//     and, on the BME280, relative humidity (greenloop_humidity_ratio, 0–1),
//     sensor "bme280@0x76", component "ambient".
//
// No energy counter is made here: accounting integrates power (DESIGN.md).
// A device that fails to start or to read is reported in Collect's error,
// named by chip, address and bus, while the others are read; it is started
// again at the next Collect (a sensor that lost power comes back in its
// reset state). A bus that does not exist is ErrNoData.
package i2c

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"
	"gobot.io/x/gobot/v2/platforms/adaptors"
	"gobot.io/x/gobot/v2/system"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "i2c"

// Chips this package reads.
const (
	ChipINA219  = "ina219"
	ChipINA3221 = "ina3221"
	ChipBME280  = "bme280"
	ChipBMP280  = "bmp280"
)

// DefaultShuntOhms is the shunt of the usual INA219 and INA3221 breakout
// boards (R100), used when a device's ShuntOhms is zero.
const DefaultShuntOhms = 0.1

// MetricHumidity is the canonical relative humidity series (DESIGN.md).
const MetricHumidity = "greenloop_humidity_ratio"

// ComponentAmbient is the component of the environment sensors' readings.
const ComponentAmbient = "ambient"

// Device is one sensor on the bus.
type Device struct {
	// Chip is ina219, ina3221, bme280 or bmp280.
	Chip string
	// Address is the 7-bit bus address (INA219 0x40–0x4F, INA3221
	// 0x40–0x43, BME280/BMP280 0x76–0x77).
	Address int
	// ShuntOhms is the current monitor's shunt resistance; zero means
	// DefaultShuntOhms. Only for ina219 and ina3221.
	ShuntOhms float64
}

// Config is one I2C bus and its sensors.
type Config struct {
	// Bus is N in /dev/i2c-N.
	Bus int
	// Devices are the sensors on the bus.
	Devices []Device
}

// ErrClosed is returned by Collect after Close.
var ErrClosed = errors.New("i2c: collector closed")

// opener opens the bus: gobot's Linux I2C adaptor, or a fake in tests.
type opener func(bus int) (c gi2c.Connector, closeBus func() error, err error)

// Collector reads one bus. Build it with New (or NewWithConnector).
type Collector struct {
	bus  int
	open opener
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	conn     gi2c.Connector // nil until the bus is open
	closeBus func() error
	closed   bool
	devices  []*device
}

// chipAddresses are the addresses each chip can be strapped to.
var chipAddresses = map[string][2]int{
	ChipINA219:  {0x40, 0x4F},
	ChipINA3221: {0x40, 0x43},
	ChipBME280:  {0x76, 0x77},
	ChipBMP280:  {0x76, 0x77},
}

// New checks cfg and returns a collector for the Linux bus /dev/i2c-<Bus>.
// It does not open the bus: the first Collect does.
func New(cfg Config, deps collectors.Deps) (*Collector, error) {
	return newCollector(cfg, openLinuxBus, deps)
}

// NewWithConnector returns a collector that reads the devices through c
// (any gobot I2C adaptor, or a fake bus in tests) instead of /dev/i2c-N.
func NewWithConnector(cfg Config, c gi2c.Connector, deps collectors.Deps) (*Collector, error) {
	return newCollector(cfg, func(int) (gi2c.Connector, func() error, error) {
		return c, func() error { return nil }, nil
	}, deps)
}

func newCollector(cfg Config, open opener, deps collectors.Deps) (*Collector, error) {
	deps = deps.WithDefaults()
	var errs []error
	if cfg.Bus < 0 {
		errs = append(errs, fmt.Errorf("i2c: bus %d: must be 0 or more", cfg.Bus))
	}
	if len(cfg.Devices) == 0 {
		errs = append(errs, errors.New("i2c: no devices"))
	}
	seen := map[int]bool{}
	var devs []*device
	for i, d := range cfg.Devices {
		chip := strings.ToLower(strings.TrimSpace(d.Chip))
		where := fmt.Sprintf("i2c: devices[%d] (%s at 0x%02x)", i, d.Chip, d.Address)
		rng, ok := chipAddresses[chip]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: chip must be one of ina219, ina3221, bme280, bmp280", where))
			continue
		}
		if d.Address < rng[0] || d.Address > rng[1] {
			errs = append(errs, fmt.Errorf("%s: address must be 0x%02x to 0x%02x for %s", where, rng[0], rng[1], chip))
		}
		if seen[d.Address] {
			errs = append(errs, fmt.Errorf("%s: address used twice on the bus", where))
		}
		seen[d.Address] = true
		shunt := d.ShuntOhms
		switch {
		case chip != ChipINA219 && chip != ChipINA3221:
			if shunt != 0 {
				errs = append(errs, fmt.Errorf("%s: shunt_ohms applies to ina219 and ina3221 only", where))
			}
		case !finite(shunt) || shunt < 0:
			errs = append(errs, fmt.Errorf("%s: shunt_ohms %v: must be positive", where, shunt))
		case shunt == 0:
			shunt = DefaultShuntOhms
		}
		devs = append(devs, &device{chip: chip, address: d.Address, shunt: shunt,
			name: fmt.Sprintf("%s@0x%02x", chip, d.Address)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Collector{bus: cfg.Bus, open: open, log: deps.Logger.With("target_type", Type, "bus", cfg.Bus),
		now: deps.Now, devices: devs}, nil
}

// openLinuxBus opens /dev/i2c-<bus> with gobot's I2C bus adaptor.
func openLinuxBus(bus int) (gi2c.Connector, func() error, error) {
	path := fmt.Sprintf("/dev/i2c-%d", bus)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, nil, fmt.Errorf("i2c: %s: %w (%w)", path, collectors.ErrNoData, err)
		}
		return nil, nil, fmt.Errorf("i2c: %w", err)
	}
	a := adaptors.NewI2cBusAdaptor(system.NewAccesser(), func(n int) error {
		if n != bus {
			return fmt.Errorf("bus %d is not the configured bus %d", n, bus)
		}
		return nil
	}, bus)
	if err := a.Connect(); err != nil {
		return nil, nil, fmt.Errorf("i2c: %s: %w", path, err)
	}
	return a, a.Finalize, nil
}

// Collect reads every device once. Devices that fail are named in the
// returned error; the others are emitted.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.conn == nil {
		conn, closeBus, err := c.open(c.bus)
		if err != nil {
			return err
		}
		c.conn, c.closeBus = conn, closeBus
		c.log.Info("i2c: bus open", "devices", len(c.devices))
	}
	var errs []error
	for _, d := range c.devices {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("i2c: bus %d: %s and later devices not read: %w", c.bus, d.name, err))
			break
		}
		if !d.started {
			if err := d.start(c.conn, c.bus); err != nil {
				errs = append(errs, fmt.Errorf("i2c: %s on bus %d: start: %w", d.name, c.bus, err))
				continue
			}
			d.started = true
			c.log.Info("i2c: device started", "device", d.name)
		}
		rs, err := d.read()
		if err != nil {
			d.started = false // set it up again next time: it may have been reset
			errs = append(errs, fmt.Errorf("i2c: %s on bus %d: %w", d.name, c.bus, err))
			continue
		}
		t := c.now()
		for _, r := range rs {
			emit.Emit(r.toReading(t))
		}
	}
	return errors.Join(errs...)
}

// Close closes the bus. Collect returns ErrClosed afterwards.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.closeBus != nil {
		if err := c.closeBus(); err != nil {
			return fmt.Errorf("i2c: close bus %d: %w", c.bus, err)
		}
	}
	return nil
}

// device is one configured sensor and its driver.
type device struct {
	chip    string
	address int
	shunt   float64 // Ω, current monitors only
	name    string  // chip@0xNN

	started bool
	ina3221 *gi2c.INA3221Driver
	ina219  ina219
	bmp     *gi2c.BMP280Driver // BMP280, or the BMP280 part of a BME280
	bme     *gi2c.BME280Driver
	conn    gi2c.Connection // raw access, for identity and status checks
}

// Identity registers.
const (
	ina3221RegDieID  = 0xFF
	ina3221DieID     = 0x3220
	boschRegChipID   = 0xD0
	bme280ChipID     = 0x60
	boschRegTempMSB  = 0xFA
	bmp280ChipIDLow  = 0x56 // BMP280 samples report 0x56 or 0x57, mass production 0x58
	bmp280ChipIDHigh = 0x58
)

// start identifies the chip and starts its driver.
func (d *device) start(c gi2c.Connector, bus int) error {
	conn, err := c.GetI2cConnection(d.address, bus)
	if err != nil {
		return err
	}
	d.conn = conn
	opts := []func(gi2c.Config){gi2c.WithBus(bus), gi2c.WithAddress(d.address)}
	switch d.chip {
	case ChipINA3221:
		id, err := readWordBE(conn, ina3221RegDieID)
		if err != nil {
			return fmt.Errorf("read die id: %w", err)
		}
		if id != ina3221DieID {
			return fmt.Errorf("die id 0x%04x is not an INA3221's (0x%04x)", id, ina3221DieID)
		}
		d.ina3221 = gi2c.NewINA3221Driver(c, opts...)
		return d.ina3221.Start()
	case ChipINA219:
		return d.ina219.start(c, bus, d.address)
	case ChipBME280, ChipBMP280:
		id, err := conn.ReadByteData(boschRegChipID)
		if err != nil {
			return fmt.Errorf("read chip id: %w", err)
		}
		if d.chip == ChipBME280 {
			if id != bme280ChipID {
				return fmt.Errorf("chip id 0x%02x is not a BME280's (0x%02x)", id, bme280ChipID)
			}
			d.bme = gi2c.NewBME280Driver(c, opts...)
			d.bmp = d.bme.BMP280Driver
			return d.bme.Start()
		}
		if id < bmp280ChipIDLow || id > bmp280ChipIDHigh {
			return fmt.Errorf("chip id 0x%02x is not a BMP280's (0x%02x)", id, bmp280ChipIDHigh)
		}
		d.bmp = gi2c.NewBMP280Driver(c, opts...)
		return d.bmp.Start()
	}
	return fmt.Errorf("unknown chip %q", d.chip)
}

// reading is one value before it gets a time.
type reading struct {
	metric    string
	component string
	sensor    string
	value     float64
}

func (x reading) toReading(t time.Time) collectors.Reading {
	ls := make([]sample.Label, 0, 3)
	ls = append(ls, sample.Label{Name: collectors.LabelSource, Value: Type})
	if x.component != "" {
		ls = append(ls, sample.Label{Name: collectors.LabelComponent, Value: x.component})
	}
	ls = append(ls, sample.Label{Name: collectors.LabelSensor, Value: x.sensor})
	return collectors.Reading{Metric: x.metric, Labels: ls, Value: x.value, Time: t}
}

// powerReadings are a current monitor's readings from its bus voltage (V)
// and shunt voltage (V) across a shunt of r Ω.
func powerReadings(sensor string, busVolts, shuntVolts, r float64) []reading {
	amps := shuntVolts / r
	return []reading{
		{metric: collectors.MetricVoltage, sensor: sensor, value: busVolts},
		{metric: collectors.MetricCurrent, sensor: sensor, value: amps},
		{metric: collectors.MetricPower, sensor: sensor, value: busVolts * amps},
	}
}

// ina3221ShuntFullScaleMV is the end of the INA3221's shunt range, 163.8 mV.
const ina3221ShuntFullScaleMV = 163.8

func (d *device) read() ([]reading, error) {
	switch d.chip {
	case ChipINA3221:
		var out []reading
		for ch := gi2c.INA3221Channel1; ch <= gi2c.INA3221Channel3; ch++ {
			shuntMV, err := d.ina3221.GetShuntVoltage(ch)
			if err != nil {
				return nil, fmt.Errorf("channel %d: read shunt voltage: %w", ch, err)
			}
			busV, err := d.ina3221.GetBusVoltage(ch)
			if err != nil {
				return nil, fmt.Errorf("channel %d: read bus voltage: %w", ch, err)
			}
			if shuntMV == 0 && busV == 0 {
				continue // nothing connected to this channel
			}
			if math.Abs(shuntMV) >= ina3221ShuntFullScaleMV {
				return nil, fmt.Errorf("channel %d: shunt voltage %.2f mV at the end of the ±163.8 mV range: current over range", ch, shuntMV)
			}
			out = append(out, powerReadings(fmt.Sprintf("%s/ch%d", d.name, ch), busV, shuntMV/1000, d.shunt)...)
		}
		return out, nil
	case ChipINA219:
		busV, shuntV, err := d.ina219.read()
		if err != nil {
			return nil, err
		}
		return powerReadings(d.name, busV, shuntV, d.shunt), nil
	case ChipBME280, ChipBMP280:
		// In sleep mode (after a power cycle the chip is reset to it) the
		// data registers hold 0x80000: no measurement.
		raw := make([]byte, 3)
		if err := d.conn.ReadBlockData(boschRegTempMSB, raw); err != nil {
			return nil, fmt.Errorf("read temperature: %w", err)
		}
		if raw[0] == 0x80 && raw[1] == 0 && raw[2]&0xF0 == 0 {
			return nil, errors.New("no temperature measurement (chip in sleep mode or reset)")
		}
		t32, err := d.bmp.Temperature()
		if err != nil {
			return nil, fmt.Errorf("read temperature: %w", err)
		}
		// gobot computes in float32; the chip resolves 0.01 °C.
		celsius := math.Round(float64(t32)*100) / 100
		if !(celsius >= -40 && celsius <= 85) { // NaN too
			return nil, fmt.Errorf("temperature %.2f °C outside the chip's range (-40 to 85 °C): bad calibration data?", celsius)
		}
		out := []reading{{metric: collectors.MetricTemperature, component: ComponentAmbient, sensor: d.name, value: celsius}}
		if d.bme != nil {
			h32, err := d.bme.Humidity()
			if err != nil {
				return nil, fmt.Errorf("read humidity: %w", err)
			}
			if !finite(float64(h32)) {
				return nil, fmt.Errorf("humidity %v: bad calibration data?", h32)
			}
			// Bosch's compensation clamps to 0–100 %RH; gobot's does not.
			pct := min(max(float64(h32), 0), 100)
			out = append(out, reading{metric: MetricHumidity, component: ComponentAmbient, sensor: d.name,
				value: math.Round(pct*1000) / 1e5})
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown chip %q", d.chip)
}
