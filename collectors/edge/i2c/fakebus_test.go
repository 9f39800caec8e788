package i2c

import (
	"errors"
	"fmt"
	"sync"

	gi2c "gobot.io/x/gobot/v2/drivers/i2c"
)

// fakeBus is a register-level I2C bus for gobot's drivers: an i2c.Connector
// whose devices are register maps.
type fakeBus struct {
	bus     int
	devices map[int]gi2c.Connection
}

func (b *fakeBus) GetI2cConnection(addr, bus int) (gi2c.Connection, error) {
	if bus != b.bus {
		return nil, fmt.Errorf("no bus %d", bus)
	}
	if d, ok := b.devices[addr]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("no device at 0x%02x on bus %d", addr, bus)
}

func (b *fakeBus) DefaultI2cBus() int { return b.bus }

var errNACK = errors.New("remote I/O error (no ACK)")

// wordRegs is a TI-style chip (INA219, INA3221): 16-bit registers, one
// address per register, most significant byte first on the wire.
type wordRegs struct {
	mu   sync.Mutex
	regs map[uint8]uint16
	ptr  uint8
	fail bool // every transfer fails, as a chip that stopped answering
}

func newWordRegs(regs map[uint8]uint16) *wordRegs {
	if regs == nil {
		regs = map[uint8]uint16{}
	}
	return &wordRegs{regs: regs}
}

func (d *wordRegs) get(r uint8) uint16 { d.mu.Lock(); defer d.mu.Unlock(); return d.regs[r] }
func (d *wordRegs) set(r uint8, v uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.regs[r] = v
}

func (d *wordRegs) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errNACK
	}
	v := d.regs[d.ptr]
	for i := range p {
		p[i] = []byte{byte(v >> 8), byte(v)}[i%2]
	}
	return len(p), nil
}

func (d *wordRegs) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errNACK
	}
	if len(p) == 0 {
		return 0, nil
	}
	d.ptr = p[0]
	if len(p) >= 3 {
		d.regs[d.ptr] = uint16(p[1])<<8 | uint16(p[2])
	}
	return len(p), nil
}

func (d *wordRegs) Close() error { return nil }
func (d *wordRegs) ReadByte() (byte, error) {
	b := []byte{0}
	_, err := d.Read(b)
	return b[0], err
}
func (d *wordRegs) ReadByteData(r uint8) (uint8, error) {
	if err := d.WriteByte(r); err != nil {
		return 0, err
	}
	return d.ReadByte()
}

// ReadWordData is SMBus "read word": the first byte on the wire (the
// register's most significant) is the word's low byte.
func (d *wordRegs) ReadWordData(r uint8) (uint16, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errNACK
	}
	v := d.regs[r]
	return v>>8 | v<<8, nil
}

func (d *wordRegs) ReadBlockData(r uint8, b []byte) error {
	if err := d.WriteByte(r); err != nil {
		return err
	}
	_, err := d.Read(b)
	return err
}
func (d *wordRegs) WriteByte(v byte) error { _, err := d.Write([]byte{v}); return err }
func (d *wordRegs) WriteBytes(b []byte) error {
	_, err := d.Write(b)
	return err
}
func (d *wordRegs) WriteByteData(r, v uint8) error { _, err := d.Write([]byte{r, 0, v}); return err }
func (d *wordRegs) WriteWordData(r uint8, v uint16) error {
	_, err := d.Write([]byte{r, byte(v), byte(v >> 8)})
	return err
}
func (d *wordRegs) WriteBlockData(r uint8, b []byte) error {
	_, err := d.Write(append([]byte{r}, b...))
	return err
}

// byteRegs is a Bosch-style chip (BME280, BMP280): 8-bit registers, reads
// and writes auto-increment the register address.
type byteRegs struct {
	mu   sync.Mutex
	regs [256]byte
	ptr  uint8
}

func (d *byteRegs) setBytes(r uint8, b ...byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(d.regs[r:], b)
}

func (d *byteRegs) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range p {
		p[i] = d.regs[d.ptr]
		d.ptr++
	}
	return len(p), nil
}

func (d *byteRegs) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	d.ptr = p[0]
	for _, b := range p[1:] {
		d.regs[d.ptr] = b
		d.ptr++
	}
	return len(p), nil
}

func (d *byteRegs) Close() error { return nil }
func (d *byteRegs) ReadByte() (byte, error) {
	b := []byte{0}
	_, err := d.Read(b)
	return b[0], err
}
func (d *byteRegs) ReadByteData(r uint8) (uint8, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.regs[r], nil
}
func (d *byteRegs) ReadWordData(r uint8) (uint16, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return uint16(d.regs[r]) | uint16(d.regs[r+1])<<8, nil
}
func (d *byteRegs) ReadBlockData(r uint8, b []byte) error {
	if _, err := d.Write([]byte{r}); err != nil {
		return err
	}
	_, err := d.Read(b)
	return err
}
func (d *byteRegs) WriteByte(v byte) error         { _, err := d.Write([]byte{v}); return err }
func (d *byteRegs) WriteBytes(b []byte) error      { _, err := d.Write(b); return err }
func (d *byteRegs) WriteByteData(r, v uint8) error { _, err := d.Write([]byte{r, v}); return err }
func (d *byteRegs) WriteWordData(r uint8, v uint16) error {
	_, err := d.Write([]byte{r, byte(v), byte(v >> 8)})
	return err
}
func (d *byteRegs) WriteBlockData(r uint8, b []byte) error {
	_, err := d.Write(append([]byte{r}, b...))
	return err
}
