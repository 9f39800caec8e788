// Package redfish reads power, energy, voltage, current and temperature from
// a Redfish service (a server's BMC, a power shelf, a rack PDU's management
// controller) over HTTP(S) and emits them as greenloop's canonical series.
//
// # Authentication
//
// By default (Config.Auth "session") the collector logs in once through the
// SessionService: it POSTs UserName and Password to the Sessions collection
// the service root names in Links.Sessions (/redfish/v1/SessionService/Sessions
// when it names none), sends the returned X-Auth-Token with every request,
// keeps the session across polls, logs in again once when a request is
// answered 401 (the BMC dropped the session), and DELETEs the session (its
// Location) on Close: BMCs hold only a few sessions each. "basic" sends HTTP
// basic authentication with every request instead. Neither the token nor the
// password is ever logged or put in an error.
//
// # What is read
//
// Per chassis under /redfish/v1/Chassis (sensor labels are prefixed with the
// chassis Id, so two chassis with a PSU named "PSU1" do not collide):
//
//   - EnvironmentMetrics: PowerWatts (component "chassis", sensor <chassis>),
//     EnergykWh (same labels) and TemperatureCelsius (sensor <chassis>);
//   - PowerSubsystem/PowerSupplies/*/Metrics: InputPowerWatts, EnergykWh,
//     InputVoltage, InputCurrentAmps, TemperatureCelsius (component "psu",
//     sensor <chassis>/<PSU Id>);
//   - ThermalSubsystem/ThermalMetrics: TemperatureReadingsCelsius (sensor
//     <chassis>/<DeviceName>; component "inlet", "outlet" or "ambient" from
//     PhysicalContext);
//   - Sensors/*: by ReadingType (Power, EnergykWh, EnergyWh, EnergyJoules,
//     Temperature, Current, Voltage; taken from ReadingUnits when missing),
//     sensor <chassis>/<Sensor Id>, component from PhysicalContext;
//   - the legacy Power (PowerControl: component "chassis", sensor
//     <chassis>/<MemberId>; PowerSupplies: component "psu", sensor
//     <chassis>/<Name>) and Thermal (Temperatures, sensor <chassis>/<Name>).
//
// The same quantity often appears in several of these. The precedence is:
// EnvironmentMetrics, then PSU Metrics, then ThermalMetrics, then the
// Sensors that no excerpt above names as its DataSourceUri, then the legacy
// Power and Thermal, each legacy part only when the newer model gave nothing
// of its kind (chassis power, PSU power, temperatures); see
// chassisData.readings for the exact rules. Fans are not read: greenloop has
// no canonical fan series.
//
// Under /redfish/v1/PowerEquipment it reads every PowerDistribution of
// RackPDUs, FloorPDUs, TransferSwitches and Switchgear: its Metrics
// (PowerWatts, EnergykWh: component "inlet", sensor <id>), its Mains
// ("mains"), Branches ("branch"), Feeders ("feeder") and Outlets ("outlet"),
// each with PowerWatts, EnergykWh, CurrentAmps and Voltage readings, sensor
// <id>/<circuit id>; <id> is the rack PDU's id, or <collection>/<id> for the
// others (TransferSwitches/1). PowerShelves are not read there: a power
// shelf is also a chassis, read above.
//
// # Units and absent values
//
// Units are normalised once, in normalise: Sensors' ReadingUnits are
// honoured (W, kW, kW.h, W.h, J, Cel, K, A, mA, V, mV), including the
// quirks of real services ("C" for Cel, "kW" on an energy sensor meaning
// kW.h). Excerpts are in the unit their property names (EnergykWh is kWh). A
// value the service does not report (null, absent, not a number) is not
// emitted, and neither are entries whose Status.State is Absent or Disabled.
// Energy is emitted as a monotonic joule counter: when a device's reading
// goes down (its metrics were reset), the collector carries on from the last
// value it emitted.
//
// # Polling
//
// A BMC refreshes its sensors every few seconds and answers slowly, so a
// Collect sooner than Config.MinInterval (10 s by default; less a tolerance
// of a tenth of it, at most 1 s, for a poll loop's jitter) after the start of
// the last collection that emitted readings does not contact the service: it
// re-emits the cached readings with their original timestamps, so that no
// sample claims a freshness it does not have (a consumer sees the same
// point again, which time-series stores deduplicate). Within one Collect at
// most Config.MaxInFlight requests (4 by default) are in flight, and the
// whole collection, login included, is bounded by Config.Timeout.
// Collections are expanded with $expand=.($levels=1) when the service root
// says it supports it, which reads a Sensors collection in one request; a
// member the service did not expand is fetched on its own, and a service that
// refuses the query is asked without it from then on. The service root is
// read once (again after a collection that gave nothing), and the legacy
// Power and Thermal only when the newer model left them something to give:
// on a BMC with both models a poll is then four round trips (chassis,
// subsystems and Sensors, PSU collection and ThermalMetrics, PSU Metrics).
// The first poll logs in at the standard Sessions URI while it reads the
// root. A BMC without $expand costs one request per sensor; sensors that
// gave nothing (covered by an excerpt, Absent, of a type without a series)
// are then left out for 10 minutes. With many sensors and a slow BMC, raise
// the timeout.
//
// # Errors
//
// A linked resource that answers 404 is skipped with a logged note; any
// other failure (HTTP error, invalid JSON) is returned as an error naming
// the resource's URI while the other resources are still read. Links that
// leave the service root's host are never followed.
//
// # Why not gofish
//
// github.com/stmcginnis/gofish (v0.22) handles sessions, but decodes into
// strict typed structs (one "N/A" where a number belongs fails the whole
// resource, which real BMCs send), binds one context to the client instead
// of one per request, does not log in again on 401, and has no bound on
// requests in flight per collection. This package keeps its own small client
// over net/http and encoding/json, with lenient decoding where BMCs are
// known to misbehave, and reads only the resources that carry readings.
package redfish

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "redfish"

// Authentication modes of Config.Auth.
const (
	AuthSession = "session"
	AuthBasic   = "basic"
)

// Defaults of Config's zero values.
const (
	// DefaultTimeout bounds one collection.
	DefaultTimeout = 10 * time.Second
	// DefaultMinInterval is the shortest time between two collections that
	// contact the service.
	DefaultMinInterval = 10 * time.Second
	// DefaultMaxInFlight is how many requests one collection keeps in flight.
	DefaultMaxInFlight = 4
)

// maxBody bounds the size of one resource read from the service.
const maxBody = 8 << 20

// relearnIdle is how long sensors that gave nothing are left out of
// member-by-member reads before they are all read again (a PSU inserted in
// an empty bay shows up within this time).
const relearnIdle = 10 * time.Minute

// fallbackSessions is the Sessions collection when the service root names none.
const fallbackSessions = "/redfish/v1/SessionService/Sessions"

// expandQuery asks for a collection's members inline.
const expandQuery = "$expand=.($levels=1)"

// Config is one Redfish target.
type Config struct {
	// Endpoint is the service's base URL, scheme and host (and port), e.g.
	// "https://bmc-12.example"; the collector reads <Endpoint>/redfish/v1/.
	// It must not carry credentials.
	Endpoint string
	// Username and Password log in to the service.
	Username string
	Password string
	// Auth is AuthSession (or empty) or AuthBasic.
	Auth string
	// CAFile is a PEM file of CA certificates the service's TLS certificate
	// is verified against; empty means the system's roots.
	CAFile string
	// InsecureSkipVerify turns off TLS certificate verification. Only when
	// a user asks for it explicitly.
	InsecureSkipVerify bool
	// Timeout bounds one whole collection; zero means DefaultTimeout.
	Timeout time.Duration
	// MinInterval is the shortest time between two collections that contact
	// the service (less a tenth, at most 1 s, of tolerance for a poll loop's
	// jitter); sooner ones re-emit the last readings. Zero means
	// DefaultMinInterval, a negative value no minimum.
	MinInterval time.Duration
	// MaxInFlight bounds the requests in flight within one collection; zero
	// means DefaultMaxInFlight.
	MaxInFlight int
}

var (
	_ collectors.Collector = (*Collector)(nil)
	_ io.Closer            = (*Collector)(nil)
)

// ErrAuth says the service refused the credentials (HTTP 401 or 403).
var ErrAuth = errors.New("redfish: authentication failed")

// Collector reads one Redfish service. Build it with New; Close it to end
// its session.
type Collector struct {
	base        *url.URL // scheme and host of the service
	user        string
	password    string
	auth        string
	timeout     time.Duration
	minInterval time.Duration
	maxInFlight int
	client      *http.Client
	log         *slog.Logger
	now         func() time.Time

	mu       sync.Mutex              // serialises Collect and Close
	counters map[counterKey]*counter // energy counters, for resets
	cache    []collectors.Reading    // readings of the last collection that had any
	cacheAt  time.Time               // when that collection started
	noExpand bool                    // the service refused $expand
	root     *serviceRoot            // the service root, once read
	idle     map[string]bool         // sensors that gave nothing (idleSensors), not read one by one
	idleAt   time.Time               // when idle was learned afresh

	sessMu     sync.Mutex // guards the session, shared by a collection's requests
	token      string     // X-Auth-Token of the current session; never logged
	sessionLoc string     // path of the current session, for DELETE
	gen        uint64     // incremented at each login
}

// counterKey names one energy series.
type counterKey struct{ component, sensor string }

// counter turns a device's energy reading, which a reset (a PDU's
// ResetMetrics, a BMC reboot) sends back towards 0, into a monotonic one.
type counter struct {
	last   float64 // last raw reading, J
	offset float64 // sum of the readings lost to resets, J
}

// monotonic returns the energy to emit for a raw reading of series k.
func (c *Collector) monotonic(k counterKey, raw float64) float64 {
	ct, ok := c.counters[k]
	if !ok {
		c.counters[k] = &counter{last: raw}
		return raw
	}
	if raw < ct.last {
		c.log.Info("redfish: energy counter went down, taken as a reset", "host", c.base.Host,
			"component", k.component, "sensor", k.sensor)
		ct.offset += ct.last
	}
	ct.last = raw
	return ct.offset + raw
}

// New checks cfg and returns a collector for it. It does not contact the
// service.
func New(cfg Config, deps collectors.Deps) (*Collector, error) {
	deps = deps.WithDefaults()
	if cfg.Endpoint == "" {
		return nil, errors.New("redfish: no endpoint")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("redfish: endpoint: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("redfish: endpoint %q: scheme must be https or http", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("redfish: endpoint %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("redfish: endpoint must not carry credentials; set username and password instead")
	}
	if cfg.Username == "" {
		return nil, errors.New("redfish: no username")
	}
	auth := strings.ToLower(cfg.Auth)
	switch auth {
	case "":
		auth = AuthSession
	case AuthSession, AuthBasic:
	default:
		return nil, fmt.Errorf("redfish: auth %q: want %q or %q", cfg.Auth, AuthSession, AuthBasic)
	}
	if cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("redfish: max in flight %d is negative", cfg.MaxInFlight)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redfish: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redfish: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	minInterval := cfg.MinInterval
	if minInterval == 0 {
		minInterval = DefaultMinInterval
	}
	inFlight := cfg.MaxInFlight
	if inFlight == 0 {
		inFlight = DefaultMaxInFlight
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsConf,
		MaxIdleConnsPerHost: inFlight,
		MaxConnsPerHost:     inFlight + 1, // +1: Close's DELETE while a stuck request holds the others
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: timeout,
	}
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != base.Host || req.URL.Scheme != base.Scheme {
				return fmt.Errorf("redirect to another host refused (%s)", req.URL.Redacted())
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	return &Collector{
		base: base, user: cfg.Username, password: cfg.Password, auth: auth, timeout: timeout,
		minInterval: minInterval, maxInFlight: inFlight,
		client: client, log: deps.Logger, now: deps.Now,
		counters: map[counterKey]*counter{},
	}, nil
}

// Close ends the collector's session on the service (a DELETE of the
// session, bounded by the collection timeout) and releases idle connections.
// The collector may still be used: the next Collect logs in again.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.client.CloseIdleConnections()
	c.sessMu.Lock()
	token, loc := c.token, c.sessionLoc
	c.token, c.sessionLoc = "", ""
	c.gen++
	c.sessMu.Unlock()
	if token == "" {
		return nil
	}
	if loc == "" {
		c.log.Warn("redfish: session has no location, cannot log out; it will expire on the service", "host", c.base.Host)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.logout(ctx, nil, token, loc)
}

// logout DELETEs the session at loc. A session the service no longer knows
// (401, 404) is no error.
func (c *Collector) logout(ctx context.Context, sem chan struct{}, token, loc string) error {
	u, err := c.resolve(loc)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, sem, http.MethodDelete, u, token, nil)
	if err != nil {
		return fmt.Errorf("redfish: DELETE %s (logout): %w", u.Path, err)
	}
	switch {
	case resp.code/100 == 2, resp.code == http.StatusNotFound, resp.code == http.StatusUnauthorized:
		return nil
	}
	return fmt.Errorf("redfish: DELETE %s (logout): HTTP %d", u.Path, resp.code)
}

// errNotFound marks a linked resource that answered 404.
var errNotFound = errors.New("not found")

// resolve turns an @odata.id (usually an absolute path) into a URL on the
// service's host, refusing links to any other host.
func (c *Collector) resolve(ref string) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("redfish: bad link %q: %w", ref, err)
	}
	if r.IsAbs() || r.Host != "" {
		if r.Host != c.base.Host || (r.Scheme != "" && r.Scheme != c.base.Scheme) {
			return nil, fmt.Errorf("redfish: link %q leaves the service's host; not followed", r.Redacted())
		}
	}
	if !strings.HasPrefix(r.Path, "/redfish/") {
		return nil, fmt.Errorf("redfish: link %q is not under /redfish/; not followed", ref)
	}
	return &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: r.Path, RawQuery: r.RawQuery}, nil
}

// response is what do returns: the body only for a 2xx status.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends one request, holding a slot of sem (when not nil) while it is in
// flight. token, when set, goes in X-Auth-Token; in basic mode the
// credentials go with every request but a login.
func (c *Collector) do(ctx context.Context, sem chan struct{}, method string, u *url.URL, token string, body []byte) (*response, error) {
	if sem != nil {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case token != "":
		req.Header.Set("X-Auth-Token", token)
	case c.auth == AuthBasic:
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the caller names the URL, once
		}
		return nil, err
	}
	defer resp.Body.Close()
	r := &response{code: resp.StatusCode, header: resp.Header}
	if resp.StatusCode/100 != 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return r, nil
	}
	r.body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(r.body) > maxBody {
		return nil, fmt.Errorf("resource larger than %d bytes", maxBody)
	}
	return r, nil
}

// session returns the current token and its generation.
func (c *Collector) session() (string, uint64) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.token, c.gen
}

// Collect reads every chassis and rack PDU once and emits their readings,
// or re-emits the last ones when the last collection was less than
// MinInterval ago. A resource that cannot be read is named in the returned
// error; the others are still emitted. A service that reports nothing
// returns an error wrapping collectors.ErrNoData.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.now()
	if c.cache != nil && c.minInterval > 0 && !at.Before(c.cacheAt) && at.Sub(c.cacheAt) < c.minInterval-jitter(c.minInterval) {
		for _, x := range c.cache {
			x.Labels = slices.Clone(x.Labels) // the emitter may keep them
			emit.Emit(x)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r := &run{c: c, ctx: ctx, sem: make(chan struct{}, c.maxInFlight), sessions: fallbackSessions}
	relearn := c.idle == nil || at.Before(c.idleAt) || at.Sub(c.idleAt) >= relearnIdle
	if !relearn {
		r.idle = c.idle
	}
	// The service root only names where things are: read once, and again
	// after a collection that gave nothing.
	// Without a session, log in at the standard Sessions URI while the root
	// is read (most services use it): one round trip less on the first poll.
	// When the root names another URI and that login failed, log in there
	// (so at most two attempts, and only on such a service).
	var loginErr error
	speculative := false
	if token, gen := c.session(); c.auth == AuthSession && token == "" && c.root == nil {
		speculative = true
		var wg sync.WaitGroup
		wg.Go(func() { loginErr = r.login(gen) })
		var root serviceRoot
		err := r.getJSON("/redfish/v1/", &root)
		wg.Wait()
		if err != nil {
			return err
		}
		c.root = &root
	}
	if c.root == nil {
		var root serviceRoot
		if err := r.getJSON("/redfish/v1/", &root); err != nil {
			return err
		}
		c.root = &root
	}
	root := *c.root
	if root.Links.Sessions.ID != "" {
		r.sessions = root.Links.Sessions.ID
	}
	r.expand = root.canExpand() && !c.noExpand
	if speculative && loginErr != nil && uriPath(r.sessions) == uriPath(fallbackSessions) {
		return loginErr
	}
	if c.auth == AuthSession {
		if token, gen := c.session(); token == "" {
			if err := r.login(gen); err != nil {
				return err
			}
		}
	}
	var chassisRs, pduRs []reading
	var wg sync.WaitGroup
	if root.Chassis.ID != "" {
		wg.Go(func() { chassisRs = r.allChassis(root.Chassis.ID) })
	}
	if root.PowerEquipment.ID != "" {
		wg.Go(func() { pduRs = r.powerEquipment(root.PowerEquipment.ID) })
	}
	wg.Wait()
	if r.expandRefused {
		c.noExpand = true
	}
	if relearn {
		c.idle, c.idleAt = make(map[string]bool, len(r.learned)), at
	}
	for _, u := range r.learned {
		c.idle[u] = true
	}
	if err := ctx.Err(); err != nil {
		r.fail(fmt.Errorf("redfish: %s: collection stopped: %w", c.base.Host, err))
	}
	out := make([]collectors.Reading, 0, len(chassisRs)+len(pduRs))
	for _, x := range slices.Concat(chassisRs, pduRs) {
		if x.metric == collectors.MetricEnergy {
			x.value = c.monotonic(counterKey{x.component, x.sensor}, x.value)
		}
		out = append(out, x.toReading(at))
	}
	for _, x := range out {
		y := x
		y.Labels = slices.Clone(x.Labels)
		emit.Emit(y)
	}
	if len(out) > 0 {
		c.cache, c.cacheAt = out, at
	} else {
		c.root = nil
	}
	if len(out) == 0 && len(r.errs) == 0 {
		return fmt.Errorf("redfish: %s reports no power, energy or temperature: %w", c.base.Host, collectors.ErrNoData)
	}
	slices.SortFunc(r.errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(r.errs...)
}

// jitter is how much sooner than MinInterval a Collect may come and still
// contact the service: a poll loop ticking every MinInterval calls a little
// early now and then, and must not fall back to one fetch in two ticks.
func jitter(minInterval time.Duration) time.Duration {
	return min(minInterval/10, time.Second)
}

// run is the state of one collection, shared by its goroutines.
type run struct {
	c        *Collector
	ctx      context.Context
	sem      chan struct{} // bounds the requests in flight
	sessions string        // path of the Sessions collection
	expand   bool          // ask collections for their members inline

	idle map[string]bool // sensors not to read one by one (Collector.idle), read-only

	mu            sync.Mutex
	errs          []error
	expandRefused bool
	learned       []string // idle sensors seen in this collection

	relogged bool // guarded by c.sessMu: the one login again after a 401 is spent
}

func (r *run) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// login creates a session, unless another request of the collection did so
// since generation gen was current. A login that replaces a session refused
// with 401 is allowed once per collection.
func (r *run) login(gen uint64) error {
	c := r.c
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.gen != gen {
		return nil
	}
	oldToken, oldLoc := c.token, c.sessionLoc
	if oldToken != "" {
		if r.relogged {
			return fmt.Errorf("%w: a new session for user %q was refused too", ErrAuth, c.user)
		}
		r.relogged = true
	}
	u, err := c.resolve(r.sessions)
	if err != nil {
		return fmt.Errorf("redfish: Sessions collection: %w", err)
	}
	body, err := json.Marshal(struct{ UserName, Password string }{c.user, c.password})
	if err != nil {
		return fmt.Errorf("redfish: login request: %w", err)
	}
	resp, err := c.do(r.ctx, r.sem, http.MethodPost, u, "", body)
	if err != nil {
		return fmt.Errorf("redfish: POST %s (login as %q): %w", u.Path, c.user, err)
	}
	switch {
	case resp.code == http.StatusUnauthorized || resp.code == http.StatusForbidden, resp.code == http.StatusBadRequest:
		return fmt.Errorf("%w: POST %s: HTTP %d for user %q", ErrAuth, u.Path, resp.code, c.user)
	case resp.code/100 != 2:
		return fmt.Errorf("redfish: POST %s (login as %q): HTTP %d; set auth: basic if the service has no SessionService", u.Path, c.user, resp.code)
	}
	token := resp.header.Get("X-Auth-Token")
	if token == "" {
		return fmt.Errorf("redfish: POST %s (login as %q): no X-Auth-Token in the answer", u.Path, c.user)
	}
	loc := resp.header.Get("Location")
	if loc == "" {
		var s link
		if json.Unmarshal(resp.body, &s) == nil {
			loc = s.ID
		}
	}
	c.sessionLoc = ""
	if loc != "" {
		if lu, err := c.resolve(loc); err == nil {
			c.sessionLoc = lu.Path
		} else {
			c.log.Warn("redfish: session location not usable, cannot log out", "host", c.base.Host, "err", err)
		}
	}
	c.token = token
	c.gen++
	c.log.Debug("redfish: logged in", "host", c.base.Host, "user", c.user, "session", c.sessionLoc)
	if oldToken != "" && oldLoc != "" && oldLoc != c.sessionLoc {
		// The old session was refused, so it is most likely gone; make sure.
		if err := c.logout(r.ctx, r.sem, oldToken, oldLoc); err != nil {
			c.log.Info("redfish: old session not deleted", "host", c.base.Host, "err", err)
		}
	}
	return nil
}

// fetch GETs ref and returns its body; errors name the resource's path. In
// session mode a 401 logs in again, once per collection, and retries.
func (r *run) fetch(ref string) ([]byte, error) {
	c := r.c
	u, err := c.resolve(ref)
	if err != nil {
		return nil, err
	}
	for retried := false; ; retried = true {
		token, gen := c.session()
		resp, err := c.do(r.ctx, r.sem, http.MethodGet, u, token, nil)
		if err != nil {
			return nil, fmt.Errorf("redfish: GET %s: %w", u.Path, err)
		}
		switch {
		case resp.code == http.StatusUnauthorized && c.auth == AuthSession && !retried:
			if err := r.login(gen); err != nil {
				return nil, fmt.Errorf("redfish: GET %s: %w", u.Path, err)
			}
			continue
		case resp.code == http.StatusUnauthorized || resp.code == http.StatusForbidden:
			return nil, fmt.Errorf("%w: GET %s: HTTP %d for user %q", ErrAuth, u.Path, resp.code, c.user)
		case resp.code == http.StatusNotFound:
			return nil, fmt.Errorf("redfish: GET %s: %w", u.Path, errNotFound)
		case resp.code != http.StatusOK:
			return nil, fmt.Errorf("redfish: GET %s: HTTP %d", u.Path, resp.code)
		}
		return resp.body, nil
	}
}

// getJSON reads the resource at ref into v.
func (r *run) getJSON(ref string, v any) error {
	body, err := r.fetch(ref)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("redfish: GET %s: invalid JSON: %w", uriPath(ref), err)
	}
	return nil
}

// get reads a resource; a 404 is logged and skipped, other errors are kept.
// It returns the error, nil when v was filled.
func (r *run) get(ref string, v any) error {
	return r.note(r.getJSON(ref, v))
}

// note keeps err for Collect's answer, or logs it when it is a 404; the
// context's end is reported once, by Collect.
func (r *run) note(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, errNotFound):
		r.c.log.Info("redfish: linked resource missing, skipped", "host", r.c.base.Host, "err", err)
	case r.ctx.Err() != nil:
	default:
		r.fail(err)
	}
	return err
}

// members reads the collection at ref and returns its members, decoded as
// T, with the URI each was read from, in collection order, leaving out those
// that could not be read and those in skip that would need a request of
// their own. With expand it asks for the members inline and
// fetches only those the service left as links; a service that refuses the
// query is asked again without it. The collection is decoded once, straight
// into T: a BMC's Sensors collection is the largest thing read.
func members[T any, P headed[T]](r *run, ref string, skip map[string]bool) ([]T, []string) {
	var coll struct {
		Members []T `json:"Members"`
	}
	read := func(u string) error {
		body, err := r.fetch(u)
		if err != nil {
			return err
		}
		ms, skipped, err := decodeMembers[T](body)
		if err != nil {
			return fmt.Errorf("redfish: GET %s: invalid JSON: %w", uriPath(u), err)
		}
		if skipped != nil {
			r.fail(fmt.Errorf("redfish: GET %s: member skipped: %w", uriPath(u), skipped))
		}
		coll.Members = ms
		return nil
	}
	expanded := false
	if r.expand {
		u := ref + "?" + expandQuery
		if strings.Contains(ref, "?") {
			u = ref + "&" + expandQuery
		}
		err := read(u)
		switch {
		case err == nil:
			expanded = true
		case r.ctx.Err() != nil, errors.Is(err, ErrAuth), errors.Is(err, errNotFound):
			r.note(err)
			return nil, nil
		default:
			r.c.log.Info("redfish: $expand refused, reading members one by one", "host", r.c.base.Host, "err", err)
			r.mu.Lock()
			r.expandRefused = true
			r.mu.Unlock()
		}
	}
	if !expanded && r.note(read(ref)) != nil {
		return nil, nil
	}
	refs := make([]string, len(coll.Members))
	var wg sync.WaitGroup
	for i := range coll.Members {
		h := P(&coll.Members[i]).hd()
		refs[i] = string(h.ODataID)
		if refs[i] == "" || (expanded && !h.bare()) {
			continue
		}
		if skip[uriPath(refs[i])] {
			refs[i] = ""
			continue
		}
		wg.Go(func() {
			var v T
			if r.get(refs[i], &v) == nil {
				coll.Members[i] = v
			} else {
				refs[i] = ""
			}
		})
	}
	wg.Wait()
	out := coll.Members[:0]
	outRefs := refs[:0]
	for i, m := range coll.Members {
		if refs[i] != "" {
			out = append(out, m)
			outRefs = append(outRefs, refs[i])
		}
	}
	return out, outRefs
}

// decodeMembers decodes a collection's Members as T in one pass; when that
// fails (a member that is not an object, a property of a type T does not
// tolerate), it decodes them one by one and leaves out, reporting the last
// error as skipped, those that do not decode.
func decodeMembers[T any](body []byte) (ms []T, skipped, err error) {
	var strict struct {
		Members []T `json:"Members"`
	}
	if json.Unmarshal(body, &strict) == nil {
		return strict.Members, nil, nil
	}
	var loose struct {
		Members []json.RawMessage `json:"Members"`
	}
	if err := json.Unmarshal(body, &loose); err != nil {
		return nil, nil, err
	}
	for _, m := range loose.Members {
		var v T
		if err := json.Unmarshal(m, &v); err != nil {
			skipped = err
			continue
		}
		ms = append(ms, v)
	}
	return ms, skipped, nil
}

// allChassis reads every chassis of the collection at ref, concurrently.
func (r *run) allChassis(ref string) []reading {
	ms, refs := members[chassis](r, ref, nil)
	out := make([][]reading, len(ms))
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { out[i] = r.chassis(refs[i], ms[i]) })
	}
	wg.Wait()
	return slices.Concat(out...)
}

// chassis reads one chassis' resources, concurrently, and applies the
// precedence between them (chassisData.readings).
func (r *run) chassis(ref string, ch chassis) []reading {
	d := chassisData{id: string(ch.Id)}
	if d.id == "" {
		d.id = lastSegment(ref)
	}
	// The newer model first; the legacy resources, after it, only for what
	// it did not give (chassisData.readings), or at once on a chassis that
	// has only them.
	newer := ch.EnvironmentMetrics.ID != "" || ch.PowerSubsystem.ID != "" || ch.ThermalSubsystem.ID != "" || ch.Sensors.ID != ""
	var wg sync.WaitGroup
	legacy := func(withPower, withThermal bool) {
		if withPower && ch.Power.ID != "" {
			wg.Go(func() {
				var p power
				if r.get(ch.Power.ID, &p) == nil {
					d.power = &p
				}
			})
		}
		if withThermal && ch.Thermal.ID != "" {
			wg.Go(func() {
				var t thermal
				if r.get(ch.Thermal.ID, &t) == nil {
					d.thermal = &t
				}
			})
		}
	}
	if !newer {
		legacy(true, true)
	}
	if ch.EnvironmentMetrics.ID != "" {
		wg.Go(func() {
			var em environmentMetrics
			if r.get(ch.EnvironmentMetrics.ID, &em) == nil {
				d.env = &em
			}
		})
	}
	var linkedSensors []sensor
	if ch.PowerSubsystem.ID != "" {
		wg.Go(func() { d.psus, linkedSensors = r.powerSupplies(ch.PowerSubsystem.ID, ref) })
	}
	if ch.ThermalSubsystem.ID != "" {
		wg.Go(func() {
			var ts struct {
				ThermalMetrics link `json:"ThermalMetrics"`
			}
			if r.get(ch.ThermalSubsystem.ID, &ts) != nil || ts.ThermalMetrics.ID == "" {
				return
			}
			var tm thermalMetrics
			if r.get(ts.ThermalMetrics.ID, &tm) == nil {
				d.thermalMetrics = &tm
			}
		})
	}
	if ch.Sensors.ID != "" {
		wg.Go(func() { d.sensors = r.sensors(ch.Sensors.ID) })
	}
	wg.Wait()
	if ch.Sensors.ID == "" {
		d.sensors = linkedSensors
	}
	if newer {
		_, need, _ := d.newModel()
		legacy(need.power(), need.temps)
		wg.Wait()
	}
	if len(d.sensors) > 0 {
		_, _, covered := d.newModel()
		idle := d.idleSensors(covered)
		r.mu.Lock()
		r.learned = append(r.learned, idle...)
		r.mu.Unlock()
	}
	return d.readings()
}

// powerSupplies reads a PowerSubsystem's PSUs and their Metrics. A link
// that points elsewhere (the DMTF power-shelf mockup links PowerSubsystem
// to the Sensors collection) is followed to the URI the specification
// mandates, <chassis>/PowerSubsystem, instead; when it points to a Sensors
// collection, that collection's sensors are returned for a chassis that
// links no Sensors of its own.
func (r *run) powerSupplies(ref, chassisRef string) ([]psuData, []sensor) {
	var ps struct {
		Type          str               `json:"@odata.type"`
		PowerSupplies link              `json:"PowerSupplies"`
		Members       []json.RawMessage `json:"Members"`
	}
	if r.get(ref, &ps) != nil {
		return nil, nil
	}
	var sensors []sensor
	if ps.PowerSupplies.ID == "" {
		std := uriPath(chassisRef) + "/PowerSubsystem"
		if uriPath(ref) == std {
			return nil, nil
		}
		r.c.log.Info("redfish: PowerSubsystem link does not lead to a PowerSubsystem, reading the standard URI",
			"host", r.c.base.Host, "link", ref, "uri", std)
		if strings.Contains(string(ps.Type), "SensorCollection") {
			sensors = r.sensors(ref)
		}
		ps.PowerSupplies = link{}
		if r.get(std, &ps) != nil || ps.PowerSupplies.ID == "" {
			return nil, sensors
		}
	}
	ms, refs := members[powerSupply](r, ps.PowerSupplies.ID, nil)
	out := make([]psuData, len(ms))
	var wg sync.WaitGroup
	for i, p := range ms {
		out[i] = psuData{id: entryName(p.Id, str(lastSegment(refs[i])), i), status: p.Status}
		if p.Status.off() || p.Metrics.ID == "" {
			continue
		}
		wg.Go(func() {
			var pm powerSupplyMetrics
			if r.get(p.Metrics.ID, &pm) == nil {
				out[i].metrics = &pm
			}
		})
	}
	wg.Wait()
	return out, sensors
}

// sensors reads a Sensors collection.
func (r *run) sensors(ref string) []sensor {
	ms, refs := members[sensor](r, ref, r.idle)
	for i := range ms {
		ms[i].ref = refs[i]
	}
	return ms
}

// powerEquipmentKinds are the PowerDistribution collections under
// PowerEquipment, with the prefix their equipment's sensor names get (rack
// PDUs keep the bare id, as they always had).
var powerEquipmentKinds = []struct{ key, prefix string }{
	{"RackPDUs", ""}, {"FloorPDUs", "FloorPDUs/"}, {"TransferSwitches", "TransferSwitches/"}, {"Switchgear", "Switchgear/"},
}

func (r *run) powerEquipment(ref string) []reading {
	var pe map[string]json.RawMessage
	if r.get(ref, &pe) != nil {
		return nil
	}
	type item struct {
		ref, prefix string
		pd          powerDistribution
	}
	var items []item
	for _, kind := range powerEquipmentKinds {
		var l link
		if raw, ok := pe[kind.key]; !ok || json.Unmarshal(raw, &l) != nil || l.ID == "" {
			continue
		}
		ms, refs := members[powerDistribution](r, l.ID, nil)
		for i := range ms {
			items = append(items, item{ref: refs[i], prefix: kind.prefix, pd: ms[i]})
		}
	}
	out := make([][]reading, len(items)) // in collection and member order, whatever answers first
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { out[i] = r.powerDistribution(it.ref, it.pd, it.prefix) })
	}
	wg.Wait()
	return slices.Concat(out...)
}

// powerDistribution reads a rack PDU, floor PDU, transfer switch or
// switchgear: its Metrics (component "inlet"), Mains ("mains"), Branches
// ("branch"), Feeders ("feeder") and Outlets ("outlet").
func (r *run) powerDistribution(ref string, pdu powerDistribution, prefix string) []reading {
	id := string(pdu.Id)
	if id == "" {
		id = lastSegment(ref)
	}
	id = prefix + id
	if pdu.Status.off() {
		return nil
	}
	var inlet []reading
	subs := []struct {
		l         link
		component string
	}{{pdu.Mains, "mains"}, {pdu.Branches, "branch"}, {pdu.Feeders, "feeder"}, {pdu.Outlets, "outlet"}}
	parts := make([][]reading, len(subs))
	var wg sync.WaitGroup
	if pdu.Metrics.ID != "" {
		wg.Go(func() {
			var m circuit
			if r.get(pdu.Metrics.ID, &m) == nil {
				inlet = m.readings("inlet", id)
			}
		})
	}
	for i, sub := range subs {
		if sub.l.ID == "" {
			continue
		}
		wg.Go(func() {
			cs, refs := members[circuit](r, sub.l.ID, nil)
			for j, ci := range cs {
				cid := string(ci.Id)
				if cid == "" {
					cid = lastSegment(refs[j])
				}
				parts[i] = append(parts[i], ci.readings(sub.component, id+"/"+cid)...)
			}
		})
	}
	wg.Wait()
	return slices.Concat(append([][]reading{inlet}, parts...)...)
}

func lastSegment(ref string) string {
	if i := strings.IndexByte(ref, '?'); i >= 0 {
		ref = ref[:i]
	}
	ref = strings.TrimRight(ref, "/")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

// reading is one extracted value, before it gets a time.
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
