// Package redfish reads power, energy and temperature from a Redfish service
// (a server's BMC, a rack PDU's management controller) over HTTP(S) with basic
// authentication, and emits them as greenloop's canonical series.
//
// Per chassis under /redfish/v1/Chassis it reads:
//
//   - EnvironmentMetrics: PowerWatts.Reading (greenloop_power_watts,
//     component "chassis", sensor <chassis id>), EnergykWh.Reading
//     (greenloop_energy_joules_total, kWh × 3.6e6, same labels) and
//     TemperatureCelsius.Reading (greenloop_temperature_celsius, sensor
//     <chassis id>, no component);
//   - legacy Power: PowerControl[*].PowerConsumedWatts (component "chassis",
//     sensor <chassis id>/<MemberId or Name>), only when EnvironmentMetrics
//     gave no chassis power, so that the chassis' power is counted once; and
//     PowerSupplies[*].PowerInputWatts (component "psu", sensor <Name>, or
//     <MemberId> when the name is empty or "nil");
//   - legacy Thermal: Temperatures[*].ReadingCelsius, component "inlet" for
//     PhysicalContext Intake, "outlet" for Exhaust, "ambient" for Room, none
//     otherwise; sensor <Name> (or <MemberId>).
//
// Under /redfish/v1/PowerEquipment/RackPDUs/* it reads the PDU's Metrics
// (PowerWatts, EnergykWh: component "inlet", sensor <pdu id>), its Branches
// (component "branch") and Outlets (component "outlet"), each with
// PowerWatts, EnergykWh, CurrentAmps and Voltage readings, sensor
// <pdu id>/<branch or outlet id>.
//
// Energy is emitted as a monotonic counter: when a device's reading goes
// down (its metrics were reset), the collector carries on from the last
// value it emitted.
//
// Values are taken from the property they sit in (EnergykWh is kWh whatever
// a sensor's ReadingUnits says); DataSourceUri links to Sensors are not
// followed. A value the service does not report (null, absent, not a number)
// is not emitted, and neither are entries whose Status.State is Absent or
// Disabled. A linked resource that answers 404 is skipped with a logged note;
// any other failure (HTTP error, invalid JSON) is returned as an error naming
// the resource's URI while the other resources are still read. Links that
// leave the service root's host are never followed.
package redfish

import (
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
	"strings"
	"sync"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/internal/sample"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "redfish"

// DefaultTimeout bounds one collection when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxBody bounds the size of one resource read from the service.
const maxBody = 8 << 20

// Config is one Redfish target.
type Config struct {
	// Endpoint is the service's base URL, scheme and host (and port), e.g.
	// "https://bmc-12.example"; the collector reads <Endpoint>/redfish/v1/.
	// It must not carry credentials.
	Endpoint string
	// Username and Password are sent with HTTP basic authentication.
	Username string
	Password string
	// CAFile is a PEM file of CA certificates the service's TLS certificate
	// is verified against; empty means the system's roots.
	CAFile string
	// InsecureSkipVerify turns off TLS certificate verification. Only when
	// a user asks for it explicitly.
	InsecureSkipVerify bool
	// Timeout bounds one whole collection; zero means DefaultTimeout.
	Timeout time.Duration
}

// ErrAuth says the service refused the credentials (HTTP 401 or 403).
var ErrAuth = errors.New("redfish: authentication failed")

// Collector reads one Redfish service. Build it with New.
type Collector struct {
	base     *url.URL // scheme and host of the service
	user     string
	password string
	timeout  time.Duration
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	counters map[counterKey]*counter // energy counters, for resets
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
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsConf,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
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
		base: base, user: cfg.Username, password: cfg.Password, timeout: timeout,
		client: client, log: deps.Logger, now: deps.Now,
		counters: map[counterKey]*counter{},
	}, nil
}

// Close releases idle connections.
func (c *Collector) Close() error {
	c.client.CloseIdleConnections()
	return nil
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

// get reads the resource at ref into v. Errors name the resource's path.
func (c *Collector) get(ctx context.Context, ref string, v any) error {
	u, err := c.resolve(ref)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("redfish: GET %s: %w", u.Path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, once
		}
		return fmt.Errorf("redfish: GET %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%w: GET %s: HTTP %d for user %q", ErrAuth, u.Path, resp.StatusCode, c.user)
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("redfish: GET %s: %w", u.Path, errNotFound)
	case resp.StatusCode != http.StatusOK:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("redfish: GET %s: HTTP %d", u.Path, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("redfish: GET %s: %w", u.Path, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("redfish: GET %s: resource larger than %d bytes", u.Path, maxBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("redfish: GET %s: invalid JSON: %w", u.Path, err)
	}
	return nil
}

// Collect reads every chassis and rack PDU once and emits their readings.
// A resource that cannot be read is named in the returned error; the others
// are still emitted. A service that reports nothing returns an error wrapping
// collectors.ErrNoData.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var root serviceRoot
	if err := c.get(ctx, "/redfish/v1/", &root); err != nil {
		return err
	}
	r := &run{c: c, ctx: ctx, emit: emit, at: c.now()}
	if root.Chassis.ID != "" {
		var coll collection
		if err := r.get(root.Chassis.ID, &coll); err == nil {
			for _, m := range coll.Members {
				if ctx.Err() != nil {
					break
				}
				r.chassis(m.ID)
			}
		}
	}
	if root.PowerEquipment.ID != "" && ctx.Err() == nil {
		r.powerEquipment(root.PowerEquipment.ID)
	}
	if err := ctx.Err(); err != nil {
		r.errs = append(r.errs, fmt.Errorf("redfish: %s: collection stopped: %w", c.base.Host, err))
	}
	if r.n == 0 && len(r.errs) == 0 {
		return fmt.Errorf("redfish: %s reports no power, energy or temperature: %w", c.base.Host, collectors.ErrNoData)
	}
	return errors.Join(r.errs...)
}

// run is the state of one collection.
type run struct {
	c    *Collector
	ctx  context.Context
	emit collectors.Emitter
	at   time.Time
	n    int // readings emitted
	errs []error
}

// get reads a resource; a 404 is logged and skipped, other errors are kept.
// It returns the error, nil when v was filled.
func (r *run) get(ref string, v any) error {
	err := r.c.get(r.ctx, ref, v)
	switch {
	case err == nil:
	case errors.Is(err, errNotFound):
		r.c.log.Info("redfish: linked resource missing, skipped", "host", r.c.base.Host, "err", err)
	case r.ctx.Err() != nil:
		// Reported once by Collect.
	default:
		r.errs = append(r.errs, err)
	}
	return err
}

func (r *run) put(rs []reading) {
	for _, x := range rs {
		if x.metric == collectors.MetricEnergy {
			x.value = r.c.monotonic(counterKey{x.component, x.sensor}, x.value)
		}
		r.emit.Emit(x.toReading(r.at))
		r.n++
	}
}

func (r *run) chassis(ref string) {
	var ch chassis
	if r.get(ref, &ch) != nil {
		return
	}
	id := ch.Id
	if id == "" {
		id = lastSegment(ref)
	}
	chassisPower := false
	if ch.EnvironmentMetrics.ID != "" {
		var em environmentMetrics
		if r.get(ch.EnvironmentMetrics.ID, &em) == nil {
			rs := em.readings(id)
			for _, x := range rs {
				if x.metric == collectors.MetricPower {
					chassisPower = true
				}
			}
			r.put(rs)
		}
	}
	if ch.Power.ID != "" {
		var p power
		if r.get(ch.Power.ID, &p) == nil {
			r.put(p.readings(id, !chassisPower))
		}
	}
	if ch.Thermal.ID != "" {
		var t thermal
		if r.get(ch.Thermal.ID, &t) == nil {
			r.put(t.readings())
		}
	}
}

func (r *run) powerEquipment(ref string) {
	var pe struct {
		RackPDUs link `json:"RackPDUs"`
	}
	if r.get(ref, &pe) != nil || pe.RackPDUs.ID == "" {
		return
	}
	var coll collection
	if r.get(pe.RackPDUs.ID, &coll) != nil {
		return
	}
	for _, m := range coll.Members {
		if r.ctx.Err() != nil {
			return
		}
		r.rackPDU(m.ID)
	}
}

func (r *run) rackPDU(ref string) {
	var pdu powerDistribution
	if r.get(ref, &pdu) != nil {
		return
	}
	id := pdu.Id
	if id == "" {
		id = lastSegment(ref)
	}
	if pdu.Status.off() {
		return
	}
	if pdu.Metrics.ID != "" {
		var m circuit
		if r.get(pdu.Metrics.ID, &m) == nil {
			r.put(m.readings("inlet", id))
		}
	}
	for _, sub := range []struct {
		l         link
		component string
	}{{pdu.Branches, "branch"}, {pdu.Outlets, "outlet"}} {
		if sub.l.ID == "" {
			continue
		}
		var coll collection
		if r.get(sub.l.ID, &coll) != nil {
			continue
		}
		for _, m := range coll.Members {
			if r.ctx.Err() != nil {
				return
			}
			var ci circuit
			if r.get(m.ID, &ci) != nil {
				continue
			}
			cid := ci.Id
			if cid == "" {
				cid = lastSegment(m.ID)
			}
			r.put(ci.readings(sub.component, id+"/"+cid))
		}
	}
}

func lastSegment(ref string) string {
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
