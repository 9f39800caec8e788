// Package ipmi reads power, temperature, voltage, current and fan speed from
// a server's BMC over IPMI v2.0 RMCP+ (lanplus), with
// github.com/bougou/go-ipmi, and emits them as greenloop's canonical series.
//
// Each poll reads:
//
//   - DCMI Get Power Reading: the current platform input power as
//     greenloop_power_watts{component="chassis",sensor="dcmi"} (the
//     component Redfish's PowerControl uses for a server's total power), and
//     the BMC's minimum, maximum and average over its sampling period as
//     greenloop_ipmi_dcmi_power_{min,max,average}_watts, with the period in
//     greenloop_ipmi_dcmi_sampling_period_seconds. The statistics are their
//     own gauges rather than greenloop_power_watts with a "stat" label: such
//     a label would make every sum over greenloop_power_watts count the node
//     four times. The BMC chooses the window (often the time since its last
//     reset, days long), so they are not statistics of the poll interval.
//     A BMC that refuses DCMI, or drops its requests while answering the
//     others, is read without it for an hour or until the next session; a
//     reading the BMC flags as inactive is not emitted.
//   - every SDR sensor with a numeric reading in a unit greenloop stores
//     (see sensorDefs): degrees C, F or K as greenloop_temperature_celsius,
//     Volts as greenloop_voltage_volts, Amps as greenloop_current_amperes,
//     Watts as greenloop_power_watts and RPM as greenloop_fan_rpm (DESIGN.md
//     has no fan series). The metric follows the SDR's unit, not its sensor
//     type. The sensor label is the SDR's ID string (made unique when names
//     repeat); the component is "psu" for power, current and voltage on a
//     power supply entity, "inlet", "outlet" or "ambient" for temperatures
//     whose entity or name says so, and none otherwise (a board-level "Pwr
//     Consumption" sensor is not labelled chassis, so that it is not counted
//     twice with the DCMI reading).
//
// A sensor whose reading is unavailable, whose scanning is disabled, that is
// not present, or that the BMC answers with an error completion code is not
// emitted: absent, never 0. A sensor the BMC does not answer for at all while
// it still answers on the session (one behind a controller it does not
// bridge to) is skipped for an hour. The analog conversion (M, B, the R and B
// exponents, the linearization function) is go-ipmi's; a non-linear sensor
// gets its factors from the BMC for each reading.
//
// The RMCP+ session is opened on the first poll and reused by the next ones;
// after a network or session error it is closed and the next poll opens a
// new one. The SDR repository is read when the session opens and again only
// when the BMC's repository info says it changed (by record count and free
// space alone, and at least hourly, on BMCs whose repository timestamps move
// on their own), so a poll costs one Get Sensor Reading per sensor plus two
// commands. Collector is an io.Closer: Close ends the session, and the agent
// calls it on shutdown.
//
// The session runs at the highest privilege level the account has
// (Administrator, else Operator, else User, stepping down when the BMC
// refuses the role), as ipmitool's default does: the DCMI specification
// asks only for User, but some BMCs (ipmi_sim among them) answer DCMI only
// to an Administrator session. The collector sends only read commands; an
// account with the User privilege limits it to those, at the price of DCMI
// on such BMCs.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/dcmi"
	"github.com/bougou/go-ipmi/pkg/command/sensor"
	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/greenloop/greenloop/collectors"
)

// Type is the target type of this collector in the agent's configuration.
const Type = "ipmi"

// Defaults for the Config fields left zero.
const (
	DefaultPort        = 623
	DefaultCipherSuite = 17 // RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128
	DefaultTimeout     = 10 * time.Second
)

// exchangeTimeout bounds one IPMI request and its retries' each; the
// collection's timeout bounds them all together.
const (
	exchangeTimeout = time.Second
	exchangeRetries = 2
)

// Config is one BMC.
type Config struct {
	// Host is the BMC's address (name or IP).
	Host string
	// Port is its RMCP+ UDP port; zero means DefaultPort.
	Port int
	// Username and Password are the BMC account's. User privilege is enough
	// for the SDR sensors and, on most BMCs, DCMI.
	Username string
	Password string
	// CipherSuite is the RMCP+ cipher suite ID (IPMI 2.0 table 22-20); nil
	// means DefaultCipherSuite. Suite 3 (SHA1) is what older BMCs and
	// ipmi_sim speak.
	CipherSuite *int
	// Timeout bounds one whole collection, connection included; zero means
	// DefaultTimeout.
	Timeout time.Duration
}

var (
	_ collectors.Collector = (*Collector)(nil)
	_ io.Closer            = (*Collector)(nil)
)

// ErrAuth says the BMC refused the session: wrong user name or password,
// or an account without the privilege or cipher suite asked for.
var ErrAuth = errors.New("ipmi: session refused")

// Collector reads one BMC. Build it with New; Close it when done.
type Collector struct {
	addr     string // host:port, for messages
	host     string
	port     int
	user     string
	password string
	suite    types.CipherSuiteID
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	client session // nil until connected, and after an error
	// open opens a session at a privilege level: openLAN, or a fake in tests.
	open func(ctx context.Context, priv types.PrivilegeLevel) (session, error)
	// sdrs are the sensors of the SDR repository as repo last described it.
	sdrs     []sensorDef
	repo     repoStamp
	haveSDRs bool
	sdrsAt   time.Time // when sdrs were read
	// unstampedRepo is set when the repository's timestamps moved while
	// its records did not (some BMCs report the current time there): its
	// changes are then seen by record count, free space and age only.
	unstampedRepo bool
	// dcmiOffUntil is set when the BMC refused DCMI or did not answer it
	// while answering the rest: DCMI is not asked again on this session
	// before then.
	dcmiOffUntil time.Time
	// priv indexes privileges: the highest level the account was granted.
	priv int
}

// sdrMaxAge is how long an SDR copy is used at most when the repository
// info cannot tell changes (see Collector.unstampedRepo).
const sdrMaxAge = time.Hour

// dcmiRetry is how long a BMC that refused DCMI, or did not answer it, is
// read without it.
const dcmiRetry = time.Hour

// session is the part of go-ipmi's *client.Client the collector uses: an
// open RMCP+ session.
type session interface {
	GetDCMIPowerReading(ctx context.Context) (*dcmi.GetDCMIPowerReadingResponse, error)
	GetSDRRepoInfo(ctx context.Context) (*storage.GetSDRRepoInfoResponse, error)
	GetSDRsRaw(ctx context.Context, recordTypes ...types.SDRRecordType) ([]*types.SDR, error)
	GetSensorReading(ctx context.Context, sensorNumber uint8) (*sensor.GetSensorReadingResponse, error)
	GetSensorReadingFactors(ctx context.Context, sensorNumber uint8, reading uint8) (*sensor.GetSensorReadingFactorsResponse, error)
	Close(ctx context.Context) error
}

// repoStamp identifies a version of the SDR repository.
type repoStamp struct {
	count         uint16
	added, erased int64 // Unix seconds
	free          uint16
}

// same reports whether two stamps describe the same repository, ignoring
// the timestamps when they are not to be trusted.
func (s repoStamp) same(o repoStamp, timestamps bool) bool {
	if !timestamps {
		s.added, s.erased, o.added, o.erased = 0, 0, 0, 0
	}
	return s == o
}

// New checks cfg and returns a collector for it. It does not contact the BMC.
func New(cfg Config, deps collectors.Deps) (*Collector, error) {
	deps = deps.WithDefaults()
	if cfg.Host == "" {
		return nil, errors.New("ipmi: no host")
	}
	if _, _, err := net.SplitHostPort(cfg.Host); err == nil || strings.ContainsAny(cfg.Host, "/[]") {
		return nil, fmt.Errorf("ipmi: host %q must be a bare name or address; set the port apart", cfg.Host)
	}
	if ip := net.ParseIP(cfg.Host); ip != nil && ip.To4() == nil {
		// go-ipmi v0.9.1 joins host and port with "%s:%d".
		return nil, fmt.Errorf("ipmi: host %q: IPv6 addresses are not supported by the IPMI library; use a DNS name", cfg.Host)
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("ipmi: port %d out of range", cfg.Port)
	}
	if cfg.Username == "" {
		return nil, errors.New("ipmi: no username")
	}
	if len(cfg.Username) > 16 {
		return nil, fmt.Errorf("ipmi: username %q longer than IPMI's 16 bytes", cfg.Username)
	}
	if len(cfg.Password) > 20 {
		return nil, errors.New("ipmi: password longer than IPMI 2.0's 20 bytes")
	}
	suite := DefaultCipherSuite
	if cfg.CipherSuite != nil {
		suite = *cfg.CipherSuite
	}
	if suite < 0 || suite > 255 {
		return nil, fmt.Errorf("ipmi: cipher suite %d out of range", suite)
	}
	if _, _, _, ok := types.GetCipherSuiteAlgorithms(types.CipherSuiteID(suite)); !ok {
		return nil, fmt.Errorf("ipmi: cipher suite %d not supported (0 to 19)", suite)
	}
	if suite == 0 {
		deps.Logger.Warn("ipmi: cipher suite 0 authenticates nothing; any password is accepted", "host", cfg.Host)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Collector{
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		host: cfg.Host, port: port, user: cfg.Username, password: cfg.Password,
		suite: types.CipherSuiteID(suite), timeout: timeout,
		log: deps.Logger, now: deps.Now,
	}
	c.open = c.openLAN
	return c, nil
}

// Close ends the RMCP+ session, if one is open. A later Collect opens a new
// one.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnect(context.Background())
}

// disconnect ends the session, giving the BMC at most one exchange timeout
// (and what is left of ctx) to acknowledge; c.mu is held. With ctx already
// done it only closes the socket: the BMC drops the session after its
// inactivity timeout.
func (c *Collector) disconnect(ctx context.Context) error {
	cl := c.client
	if cl == nil {
		return nil
	}
	c.client = nil
	c.haveSDRs = false
	c.dcmiOffUntil = time.Time{}
	ctx, cancel := context.WithTimeout(ctx, min(c.timeout, exchangeTimeout))
	defer cancel()
	if err := cl.Close(ctx); err != nil {
		return fmt.Errorf("ipmi: %s: close session: %w", c.addr, err)
	}
	return nil
}

// privileges are the session privilege levels connect asks for, highest
// first.
var privileges = []types.PrivilegeLevel{
	types.PrivilegeLevelAdministrator, types.PrivilegeLevelOperator, types.PrivilegeLevelUser,
}

// connect opens a session at the highest privilege level the account has;
// c.mu is held.
func (c *Collector) connect(ctx context.Context) error {
	var err error
	for i := c.priv; i < len(privileges); i++ {
		err = c.connectAs(ctx, privileges[i])
		if err == nil {
			c.priv = i
			return nil
		}
		if !isRoleRefused(err) {
			break
		}
		c.log.Debug("ipmi: privilege level refused, trying a lower one", "host", c.addr,
			"privilege", privileges[i].String(), "err", err)
	}
	if isAuthError(err) || isRoleRefused(err) {
		return fmt.Errorf("%w by %s for user %q with cipher suite %d (%s): %w", ErrAuth, c.addr, c.user, c.suite, refusal(err), err)
	}
	if strings.Contains(err.Error(), "unpack session setup response") {
		// go-ipmi cannot parse the short error answer some BMCs give to
		// an Open Session request; it means the request was refused,
		// most often for its cipher suite.
		return fmt.Errorf("%w by %s for user %q: Open Session refused, most likely cipher suite %d is not supported "+
			"(try another, e.g. 3 for older BMCs): %w", ErrAuth, c.addr, c.user, c.suite, err)
	}
	return fmt.Errorf("ipmi: %s: open session (user %q, cipher suite %d): %w", c.addr, c.user, c.suite, err)
}

func (c *Collector) connectAs(ctx context.Context, priv types.PrivilegeLevel) error {
	start := time.Now()
	cl, err := c.open(ctx, priv)
	if err != nil {
		return err
	}
	c.log.Debug("ipmi: session open", "host", c.addr, "privilege", priv.String(), "took", time.Since(start))
	c.client = cl
	return nil
}

// openLAN opens an RMCP+ session with go-ipmi.
func (c *Collector) openLAN(ctx context.Context, priv types.PrivilegeLevel) (session, error) {
	cl, err := client.NewClient(c.host, c.port, c.user, c.password)
	if err != nil {
		return nil, err
	}
	cl.WithInterface(client.InterfaceLanplus).
		WithTimeout(min(exchangeTimeout, c.timeout)).
		WithRetry(exchangeRetries).
		WithCipherSuiteID(c.suite).
		WithMaxPrivilegeLevel(priv)
	if err := cl.Connect(ctx); err != nil {
		// No session to end; this closes the UDP socket at once.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = cl.Close(done)
		return nil, err
	}
	return cl, nil
}

// authStatuses are the RAKP status codes (IPMI 2.0 table 13-15) that mean
// the BMC refused the user, the password or the cipher suite.
var authStatuses = []types.RmcpStatusCode{
	types.RmcpStatusCodeInvalidAuthAlg, types.RmcpStatusCodeInvalidIntegrityAlg,
	types.RmcpStatusCodeNoMatchingAuthPayload, types.RmcpStatusCodeNoMatchingIntegrityPayload,
	types.RmcpStatusCodeInvalidNameLength, types.RmcpStatusCodeUnauthorizedName,
	types.RmcpStatusCodeInvalidIntegrityCheckValue, types.RmcpStatusCodeInvalidConfidentAlg,
	types.RmcpStatusCodeNoCipherSuiteMatch,
}

// roleStatuses are the RAKP status codes that refuse the privilege level.
var roleStatuses = []types.RmcpStatusCode{
	types.RmcpStatusCodeInvalidRole, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
}

// hasStatus reports whether err carries one of the RAKP status codes.
// go-ipmi v0.9.1 flattens the errors of its cipher suite attempts with %v,
// so the error's text is checked when its chain has no RmcpStatusError.
func hasStatus(err error, codes []types.RmcpStatusCode) bool {
	var st *types.RmcpStatusError
	if errors.As(err, &st) {
		return slices.Contains(codes, st.StatusCode())
	}
	msg := err.Error()
	for _, code := range codes {
		if strings.Contains(msg, types.NewRmcpStatusError(code).Error()) {
			return true
		}
	}
	return false
}

// isAuthError reports whether a Connect error means the BMC rejected the
// credentials or the cipher suite (a RAKP status code, or an HMAC that does
// not match the password) rather than not answering.
func isAuthError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(err.Error(), client.ErrRAKPAuthentication.Error()) {
		return true
	}
	return hasStatus(err, authStatuses)
}

// refusal says in words why the BMC refused a session.
func refusal(err error) string {
	switch {
	case errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(err.Error(), client.ErrRAKPAuthentication.Error()):
		// Many BMCs answer an unknown user like a wrong password, so
		// as not to tell which user names exist.
		return "wrong user name or password"
	case hasStatus(err, []types.RmcpStatusCode{types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidNameLength}):
		return "unknown or disabled user"
	case hasStatus(err, []types.RmcpStatusCode{types.RmcpStatusCodeInvalidIntegrityCheckValue}):
		return "wrong password or BMC key"
	case isRoleRefused(err):
		return "no privilege level allowed"
	default:
		return "cipher suite not accepted"
	}
}

// isRoleRefused reports whether a Connect error says the account may not
// have the privilege level asked for (RAKP status 09h or 0Ah, or Set
// Session Privilege Level completion code 80h or 81h).
func isRoleRefused(err error) bool {
	if err == nil {
		return false
	}
	if re, ok := types.IsResponseError(err); ok {
		return re.CompletionCode() == 0x80 || re.CompletionCode() == 0x81
	}
	return hasStatus(err, roleStatuses)
}

// Collect reads the DCMI power reading and the SDR sensors once. Readings
// taken before a failure are emitted; the error names the BMC. A BMC with
// nothing greenloop stores returns an error wrapping collectors.ErrNoData.
func (c *Collector) Collect(ctx context.Context, emit collectors.Emitter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.client == nil {
		if err := c.connect(ctx); err != nil {
			return err
		}
	}
	n, err := c.collect(ctx, emit)
	if err != nil {
		// The session may be gone (BMC reset, session timeout, network):
		// start afresh next time.
		if cerr := c.disconnect(ctx); cerr != nil {
			c.log.Debug("ipmi: closing the failed session", "host", c.addr, "err", cerr)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("ipmi: %s: collection stopped after %s: %w", c.addr, c.timeout, errors.Join(ctx.Err(), err))
		}
		return err
	}
	if n == 0 {
		return fmt.Errorf("ipmi: %s reports no power, temperature, voltage, current or fan reading: %w", c.addr, collectors.ErrNoData)
	}
	return nil
}

// collect reads everything over the open session and returns how many
// readings it emitted. An error means the session is not usable.
func (c *Collector) collect(ctx context.Context, emit collectors.Emitter) (int, error) {
	cl := c.client
	at := c.now()
	n := 0
	var dcmiErr error
	if !at.Before(c.dcmiOffUntil) {
		pr, err := cl.GetDCMIPowerReading(ctx)
		switch {
		case err == nil:
			for _, r := range dcmiReadings(pr.CurrentPower, pr.MinimumPower, pr.MaximumPower, pr.AveragePower,
				time.Duration(pr.ReportingPeriod)*time.Millisecond, pr.PowerMeasurementActive, at) {
				emit.Emit(r)
				n++
			}
			if !pr.PowerMeasurementActive {
				c.log.Debug("ipmi: DCMI power measurement inactive", "host", c.addr)
			}
		case isCompletionCode(err):
			c.dcmiOffUntil = at.Add(dcmiRetry)
			c.log.Info("ipmi: BMC refuses DCMI Get Power Reading; reading SDR sensors only", "host", c.addr,
				"retry_after", dcmiRetry, "err", err)
		case ctx.Err() != nil:
			return n, fmt.Errorf("ipmi: %s: DCMI power reading: %w", c.addr, err)
		default:
			// Some BMCs drop DCMI requests instead of refusing them. If
			// the SDR commands below get answers, that was it; if not,
			// the session is gone and the error below says so.
			dcmiErr = err
		}
	}
	if err := c.refreshSDRs(ctx); err != nil {
		return n, err
	}
	if dcmiErr != nil {
		c.dcmiOffUntil = at.Add(dcmiRetry)
		c.log.Info("ipmi: BMC does not answer DCMI Get Power Reading; reading SDR sensors only", "host", c.addr,
			"retry_after", dcmiRetry, "err", dcmiErr)
	}
	for i, d := range c.sdrs {
		if at.Before(d.skipUntil) {
			continue
		}
		v, ok, err := c.read(ctx, d)
		switch {
		case err != nil && (ctx.Err() != nil || !c.alive(ctx)):
			return n, err
		case err != nil:
			// BMCs drop requests for sensors behind controllers they do
			// not bridge to, and answer the rest.
			c.sdrs[i].skipUntil = at.Add(dcmiRetry)
			c.log.Info("ipmi: BMC does not answer for a sensor; skipping it", "host", c.addr, "sensor", d.label,
				"owner", fmt.Sprintf("0x%02x", d.owner), "retry_after", dcmiRetry, "err", err)
		case ok:
			emit.Emit(d.reading(v, at))
			n++
		}
	}
	return n, nil
}

// alive reports whether the BMC still answers on the session, after a
// request of it went unanswered.
func (c *Collector) alive(ctx context.Context) bool {
	_, err := c.client.GetSDRRepoInfo(ctx)
	return err == nil || isCompletionCode(err)
}

// refreshSDRs reads the SDR repository when there is no copy yet or the
// repository info differs from the copy's.
func (c *Collector) refreshSDRs(ctx context.Context) error {
	cl := c.client
	now := c.now()
	info, err := cl.GetSDRRepoInfo(ctx)
	var stamp repoStamp
	switch {
	case err == nil:
		stamp = repoStamp{
			count: info.RecordCount, added: info.MostRecentAdditionTime.Unix(), erased: info.MostRecentEraseTime.Unix(),
			free: info.FreeSpaceBytes,
		}
		fresh := !c.unstampedRepo || now.Sub(c.sdrsAt) < sdrMaxAge
		if c.haveSDRs && fresh && stamp.same(c.repo, !c.unstampedRepo) {
			return nil
		}
	case isCompletionCode(err):
		// No repository info: keep the copy we have, for a while.
		if c.haveSDRs && now.Sub(c.sdrsAt) < sdrMaxAge {
			return nil
		}
	default:
		return fmt.Errorf("ipmi: %s: SDR repository info: %w", c.addr, err)
	}
	start := time.Now()
	sdrs, err := cl.GetSDRsRaw(ctx, types.SDRRecordTypeFullSensor, types.SDRRecordTypeCompactSensor)
	if err != nil {
		return fmt.Errorf("ipmi: %s: reading the SDR repository: %w", c.addr, err)
	}
	defs := sensorDefs(sdrs)
	sameDefs := slices.EqualFunc(defs, c.sdrs, func(a, b sensorDef) bool {
		b.skipUntil = a.skipUntil
		return a == b
	})
	if c.haveSDRs && !c.unstampedRepo && stamp.same(c.repo, false) && sameDefs {
		c.unstampedRepo = true
		c.log.Debug("ipmi: SDR repository timestamps move without changes; ignoring them", "host", c.addr)
	}
	c.sdrs, c.repo, c.haveSDRs, c.sdrsAt = defs, stamp, true, now
	c.log.Debug("ipmi: SDR repository read", "host", c.addr, "records", len(sdrs), "sensors", len(c.sdrs),
		"took", time.Since(start))
	return nil
}

// read returns sensor d's current value. ok is false when the sensor has
// no usable reading (not present, scanning disabled, reading unavailable,
// an error completion code, a value that converts to no number). err is
// only for failures of the session itself.
func (c *Collector) read(ctx context.Context, d sensorDef) (v float64, ok bool, err error) {
	cmd := (&client.CommandContext{}).WithResponderAddr(d.owner).WithResponderLUN(d.lun)
	ctx = client.WithCommandContext(ctx, cmd)
	res, err := c.client.GetSensorReading(ctx, d.number)
	switch {
	case err == nil:
	case isCompletionCode(err):
		c.log.Debug("ipmi: sensor not read", "host", c.addr, "sensor", d.label, "err", err)
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("ipmi: %s: reading sensor %q (0x%02x): %w", c.addr, d.label, d.number, err)
	}
	if res.SensorScanningDisabled || res.ReadingUnavailable {
		return 0, false, nil
	}
	factors := d.factors
	if d.nonLinear {
		fr, err := c.client.GetSensorReadingFactors(ctx, d.number, res.Reading)
		switch {
		case err == nil:
			factors = fr.ReadingFactors
		case isCompletionCode(err):
			c.log.Debug("ipmi: no reading factors for non-linear sensor", "host", c.addr, "sensor", d.label, "err", err)
			return 0, false, nil
		default:
			return 0, false, fmt.Errorf("ipmi: %s: reading factors of sensor %q (0x%02x): %w", c.addr, d.label, d.number, err)
		}
	}
	v, ok = d.convert(res.Reading, factors)
	return v, ok, nil
}

// isCompletionCode reports whether err is the BMC's answer with an error
// completion code (the BMC is there and talking), as opposed to a network
// or session failure.
func isCompletionCode(err error) bool {
	_, ok := types.IsResponseError(err)
	return ok
}
