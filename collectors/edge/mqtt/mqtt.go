// Package mqtt collects the readings that smart plugs and energy meters
// publish on an MQTT broker (Tasmota and Shelly Gen2 devices) and emits them
// as greenloop's canonical series with source "mqtt".
//
// Readings: greenloop_power_watts, greenloop_apparent_power_voltamperes,
// greenloop_power_factor_ratio, greenloop_voltage_volts,
// greenloop_current_amperes, greenloop_energy_joules_total and the device's
// greenloop_temperature_celsius, labels source "mqtt", component "outlet"
// (a plug or a metered relay), "phase" (a phase of a three-phase meter) or
// "branch" (a meter's total or a single clamp), and sensor: the Tasmota
// topic's device name ("plug-rack42", "<device>/ch2" on multi-channel
// devices) or "<shelly prefix>/<component>:<id>". Temperature and humidity
// probes (greenloop_temperature_celsius, greenloop_humidity_ratio) attached
// to a Tasmota device ("<device>/<probe>") or a Shelly
// ("<prefix>/temperature:100") have no component. See parseTasmota and parseShelly for the payloads read.
//
// MQTT is push: New connects to the broker and subscribes to the configured
// topic filters, reconnecting and subscribing again after the broker or the
// network goes away. Every message updates the latest values of its sensor;
// Collect emits, for every sensor, the values received within StaleAfter,
// each with the time it was received. A device's energy total (Tasmota
// ENERGY.Total in kWh, Shelly aenergy.total and emdata in Wh) is emitted as
// a monotonic greenloop_energy_joules_total: when a total goes down (the
// plug was reset or replaced), the counter carries on from the last value
// it emitted.
//
// A payload that does not parse on a topic the format publishes readings on
// is counted, logged (at most once per LogEvery) and returned by the next
// Collect as an error naming the topic; the other devices are unaffected.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "mqtt"

// Defaults of Config fields left zero.
const (
	// DefaultStaleAfter is twice Tasmota's default TelePeriod (300 s), so a
	// plug on factory settings is never reported stale between two messages.
	DefaultStaleAfter     = 10 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxReconnect   = time.Minute
	DefaultFirstWait      = 3 * time.Second
	DefaultMaxSensors     = 1024
	DefaultLogEvery       = time.Minute
)

// DefaultTopics are the topic filters subscribed to when Config.Topics is
// empty: Tasmota's telemetry with the default FullTopic, and Shelly's
// component statuses and RPC notifications under any one-level prefix (the
// default prefix is the device id).
var DefaultTopics = map[string][]string{
	FormatTasmota: {"tele/+/SENSOR"},
	FormatShelly:  {"+/status/+", "+/events/rpc"},
}

// Config is one MQTT target.
type Config struct {
	// Broker is the broker's URL: tcp://, mqtt:// (plain), ssl://, tls://,
	// mqtts:// (TLS), ws:// or wss:// (WebSocket), with host and port. It must
	// not carry credentials.
	Broker string
	// Topics are the topic filters to subscribe to (wildcards + and #
	// allowed); empty means DefaultTopics[Format].
	Topics []string
	// Format is the payload format: "tasmota" or "shelly".
	Format string
	// Username and Password authenticate to the broker; both may be empty.
	Username string
	Password string
	// CAFile is a PEM file of CA certificates the broker's TLS certificate is
	// verified against; empty means the system's roots.
	CAFile string
	// InsecureSkipVerify turns off TLS certificate verification. Only when a
	// user asks for it explicitly.
	InsecureSkipVerify bool
	// ClientID is the MQTT client identifier; empty means "greenloop-" and
	// random hex, so that two agents never take over each other's session.
	ClientID string
	// StaleAfter is how long a value stays current after it was received: a
	// device silent for longer is not emitted. Zero means DefaultStaleAfter.
	StaleAfter time.Duration
	// ConnectTimeout bounds one connection attempt; zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the wait between reconnection attempts (it
	// starts at 1 s and doubles); zero means DefaultMaxReconnect.
	MaxReconnectInterval time.Duration
	// FirstWait is how long the first Collect waits for the subscription, so
	// that retained messages are in; zero means DefaultFirstWait.
	FirstWait time.Duration
	// MaxSensors bounds the sensors kept (and the series emitted); messages
	// for further sensors are dropped with a logged warning. Zero means
	// DefaultMaxSensors.
	MaxSensors int
	// LogEvery is the window of the log throttle for malformed payloads and
	// dropped sensors; zero means DefaultLogEvery.
	LogEvery time.Duration
}

// Errors Collect returns, to check with errors.Is.
var (
	// ErrMalformed wraps the errors about payloads that did not parse.
	ErrMalformed = errMalformed
	// ErrNotConnected says the client is not connected (and subscribed) to
	// the broker right now; the readings received before are still emitted.
	ErrNotConnected = errors.New("mqtt: not connected to the broker")
	// ErrClosed is returned by Collect after Close.
	ErrClosed = errors.New("mqtt: collector closed")
)

// Collector keeps the latest readings published on one broker. Build it with
// New and stop it with Close.
type Collector struct {
	format     string
	topics     []string
	broker     string // redacted URL, for messages
	staleAfter time.Duration
	firstWait  time.Duration
	maxSensors int
	logEvery   time.Duration
	log        *slog.Logger
	now        func() time.Time
	client     paho.Client

	subscribed chan struct{} // closed at the first successful subscription
	subOnce    sync.Once
	waited     atomic.Bool // the first Collect has waited for subscribed
	connected  atomic.Bool // connected and subscribed
	closed     atomic.Bool
	malformed  atomic.Uint64

	mu         sync.Mutex
	sensors    map[string]*sensorState
	bad        map[string]*badTopic // malformed payloads since the last Collect
	lastErr    error                // last connection or subscription error
	refused    error                // subscriptions the broker refused at the last connection
	logLast    map[string]time.Time // throttle: when each kind of line was last logged
	logHeld    map[string]int       // throttle: lines held back since
	droppedNew uint64               // messages for sensors over MaxSensors
}

// sensorState holds the latest values of one sensor.
type sensorState struct {
	component string
	values    [numFields]value
	energy    energyCounter
}

type value struct {
	v  float64
	at time.Time // when it was received; zero: never
}

// energyCounter turns a device's energy total, which a reset or a new
// device sends back down, into a monotonic counter.
type energyCounter struct {
	seen   bool
	last   float64 // last raw total, J
	offset float64 // totals lost to resets, J
}

func (c *energyCounter) next(raw float64) (v float64, reset bool) {
	if c.seen && raw < c.last {
		c.offset += c.last
		reset = true
	}
	c.seen, c.last = true, raw
	return c.offset + raw, reset
}

type badTopic struct {
	count int
	err   error // the latest
}

// New checks cfg and starts a client that connects to the broker in the
// background (retrying until Close), so that a broker that is down at start
// is not an error here.
func New(cfg Config, deps collectors.Deps) (*Collector, error) {
	deps = deps.WithDefaults()
	if cfg.Format != FormatTasmota && cfg.Format != FormatShelly {
		return nil, fmt.Errorf("mqtt: format %q: must be %q or %q", cfg.Format, FormatTasmota, FormatShelly)
	}
	if cfg.Broker == "" {
		return nil, errors.New("mqtt: no broker")
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("mqtt: broker %q: scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("mqtt: broker %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("mqtt: broker URL must not carry credentials; set username and password instead")
	}
	topics := cfg.Topics
	if len(topics) == 0 {
		topics = DefaultTopics[cfg.Format]
	}
	var errs []error
	for _, t := range topics {
		if err := checkFilter(t); err != nil {
			errs = append(errs, fmt.Errorf("mqtt: topic %q: %w", t, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	clientID := cfg.ClientID
	if clientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		clientID = "greenloop-" + hex.EncodeToString(b[:])
	}
	c := &Collector{
		format:     cfg.Format,
		topics:     slices.Clone(topics),
		broker:     u.Redacted(),
		staleAfter: orDefault(cfg.StaleAfter, DefaultStaleAfter),
		firstWait:  orDefault(cfg.FirstWait, DefaultFirstWait),
		maxSensors: cfg.MaxSensors,
		logEvery:   orDefault(cfg.LogEvery, DefaultLogEvery),
		log:        deps.Logger.With("target_type", Type, "broker", u.Redacted()),
		now:        deps.Now,
		subscribed: make(chan struct{}),
		sensors:    map[string]*sensorState{},
		bad:        map[string]*badTopic{},
		logLast:    map[string]time.Time{},
		logHeld:    map[string]int{},
	}
	if c.maxSensors <= 0 {
		c.maxSensors = DefaultMaxSensors
	}
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(clientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetTLSConfig(tlsConf).
		SetCleanSession(true).
		SetOrderMatters(true). // in order: an energy total must not be seen out of order
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(orDefault(cfg.ConnectTimeout, DefaultConnectTimeout)).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(orDefault(cfg.MaxReconnectInterval, DefaultMaxReconnect)).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onLost)
	c.client = paho.NewClient(opts)
	c.client.Connect() // completes in the background; onConnect subscribes
	c.log.Info("mqtt: connecting", "topics", c.topics, "format", c.format, "client_id", clientID)
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// checkFilter applies the MQTT rules for a topic filter: not empty, # only
// as the last level, + and # only as whole levels.
func checkFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New("# must be a whole level and the last one")
		}
		if strings.Contains(l, "+") && l != "+" {
			return errors.New("+ must be a whole level")
		}
	}
	return nil
}

// onConnect subscribes after every (re)connection: the session is clean, so
// the broker forgot the subscriptions.
func (c *Collector) onConnect(cl paho.Client) {
	filters := make(map[string]byte, len(c.topics))
	for _, t := range c.topics {
		filters[t] = 0
	}
	tok := cl.SubscribeMultiple(filters, c.onMessage)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		err := tok.Error()
		if err == nil {
			err = errors.New("no SUBACK within 30s")
		}
		c.setErr(fmt.Errorf("subscribe %v: %w", c.topics, err))
		c.log.Error("mqtt: subscribe failed", "topics", c.topics, "err", err)
		return
	}
	var refused []error
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for t, code := range st.Result() {
			if code == 0x80 { // SUBACK failure: the broker's ACL denies the filter
				refused = append(refused, fmt.Errorf("mqtt: broker %s refused the subscription to %q", c.broker, t))
				c.log.Error("mqtt: subscribe refused", "topic", t)
			}
		}
	}
	c.mu.Lock()
	c.refused = errors.Join(refused...)
	c.mu.Unlock()
	c.connected.Store(true)
	c.subOnce.Do(func() { close(c.subscribed) })
	c.log.Info("mqtt: connected and subscribed", "topics", c.topics)
}

func (c *Collector) onLost(_ paho.Client, err error) {
	c.connected.Store(false)
	c.setErr(fmt.Errorf("connection lost: %w", err))
	c.log.Warn("mqtt: connection lost, reconnecting", "err", err)
}

func (c *Collector) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// onMessage parses one message and stores its values. It runs on paho's
// goroutines.
func (c *Collector) onMessage(_ paho.Client, m paho.Message) {
	c.handle(m.Topic(), m.Payload())
}

func (c *Collector) handle(topic string, payload []byte) {
	us, err := parse(c.format, topic, payload)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.malformed.Add(1)
		b := c.bad[topic]
		if b == nil {
			if len(c.bad) >= c.maxSensors {
				return // counted; the error lists enough topics already
			}
			b = &badTopic{}
			c.bad[topic] = b
		}
		b.count++
		b.err = err
		if ok, held := c.allowLog("malformed", now); ok {
			c.log.Warn("mqtt: malformed payload", "topic", topic, "err", err, "held_back", held)
		}
		return
	}
	for _, u := range us {
		st := c.sensors[u.sensor]
		if st == nil {
			if len(c.sensors) >= c.maxSensors {
				c.droppedNew++
				if ok, held := c.allowLog("too many sensors", now); ok {
					c.log.Warn("mqtt: too many sensors, message dropped", "max_sensors", c.maxSensors,
						"sensor", u.sensor, "held_back", held)
				}
				continue
			}
			st = &sensorState{component: u.component}
			c.sensors[u.sensor] = st
		}
		for f := field(0); f < numFields; f++ {
			if !u.has[f] {
				continue
			}
			v := u.values[f]
			if f == fieldEnergy {
				var reset bool
				if v, reset = st.energy.next(v); reset {
					if ok, held := c.allowLog("reset", now); ok {
						c.log.Info("mqtt: energy total went down, taken as a reset", "sensor", u.sensor,
							"topic", topic, "held_back", held)
					}
				}
			}
			st.values[f] = value{v: v, at: now}
		}
	}
}

// allowLog is the log throttle: one line per kind per LogEvery, and how
// many were held back since the last one. c.mu is held.
func (c *Collector) allowLog(kind string, now time.Time) (bool, int) {
	last, ok := c.logLast[kind]
	if ok && now.Sub(last) < c.logEvery {
		c.logHeld[kind]++
		return false, 0
	}
	held := c.logHeld[kind]
	c.logLast[kind], c.logHeld[kind] = now, 0
	return true, held
}

// Malformed returns how many payloads did not parse since New.
func (c *Collector) Malformed() uint64 { return c.malformed.Load() }

// Collect emits the values received within StaleAfter, sensors in name
// order. The first call waits up to FirstWait (or ctx) for the
// subscription. It returns an error wrapping ErrMalformed naming the topics
// whose payloads did not parse since the last call, one wrapping
// ErrNotConnected while the broker is unreachable, and one wrapping
// collectors.ErrNoData when there was nothing current to emit.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.waited.Swap(true) {
		t := time.NewTimer(c.firstWait)
		select {
		case <-c.subscribed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	now := c.now()
	c.mu.Lock()
	names := make([]string, 0, len(c.sensors))
	for n := range c.sensors {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []collectors.Reading
	for _, n := range names {
		st := c.sensors[n]
		for f := field(0); f < numFields; f++ {
			v := st.values[f]
			if v.at.IsZero() || now.Sub(v.at) > c.staleAfter {
				continue
			}
			out = append(out, collectors.Reading{Metric: f.metric(), Labels: labels(st.component, n), Value: v.v, Time: v.at})
		}
	}
	var errs []error
	if len(c.bad) > 0 {
		topics := make([]string, 0, len(c.bad))
		for t := range c.bad {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		const maxListed = 5
		for i, t := range topics {
			if i == maxListed {
				errs = append(errs, fmt.Errorf("mqtt: %w on %d more topics", ErrMalformed, len(topics)-maxListed))
				break
			}
			b := c.bad[t]
			errs = append(errs, fmt.Errorf("mqtt: topic %q (%d payloads since the last collection): %w", t, b.count, b.err))
		}
		clear(c.bad)
	}
	lastErr := c.lastErr
	if c.refused != nil {
		errs = append(errs, c.refused)
	}
	c.mu.Unlock()

	for _, r := range out {
		emit.Emit(r)
	}
	if !c.connected.Load() {
		err := fmt.Errorf("%w %s", ErrNotConnected, c.broker)
		if lastErr != nil {
			err = fmt.Errorf("%w: %w", err, lastErr)
		}
		errs = append(errs, err)
	}
	if len(out) == 0 && len(errs) == 0 {
		return fmt.Errorf("mqtt: no reading on %v in the last %s: %w", c.topics, c.staleAfter, collectors.ErrNoData)
	}
	return errors.Join(errs...)
}

func labels(component, sensor string) []sample.Label {
	ls := make([]sample.Label, 0, 3)
	ls = append(ls, sample.Label{Name: collectors.LabelSource, Value: Type})
	if component != "" {
		ls = append(ls, sample.Label{Name: collectors.LabelComponent, Value: component})
	}
	return append(ls, sample.Label{Name: collectors.LabelSensor, Value: sensor})
}

// Close disconnects from the broker and stops reconnecting. Collect returns
// ErrClosed afterwards.
func (c *Collector) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.client.Disconnect(250)
	c.connected.Store(false)
	c.log.Info("mqtt: disconnected")
	return nil
}
