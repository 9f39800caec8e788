package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// client is the HTTP plumbing every API provider shares: rate limiting, a
// quota cool-down after 429, status-to-error mapping, bounded bodies, and
// errors that never carry the query string (ENTSO-E puts its token there).
type client struct {
	name string
	opt  Options
	lim  *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
	requests     int // sent, for logs and tests
}

func newClient(name string, opt Options) *client {
	return &client{name: name, opt: opt, lim: rate.NewLimiter(rate.Limit(opt.RateLimit), opt.Burst)}
}

// wait takes a token from the bucket, sleeping on the injected clock until one is free.
func (c *client) wait(ctx context.Context) error {
	now := c.opt.Clock.Now()
	r := c.lim.ReserveN(now, 1)
	if !r.OK() {
		return fmt.Errorf("%s: rate limiter refuses requests (burst %d)", c.name, c.opt.Burst)
	}
	if d := r.DelayFrom(now); d > 0 {
		if err := c.opt.Clock.Sleep(ctx, d); err != nil {
			r.CancelAt(c.opt.Clock.Now())
			return fmt.Errorf("%s: waiting for the rate limiter: %w", c.name, err)
		}
	}
	return nil
}

// response is a successful answer.
type response struct {
	status   int
	body     []byte
	endpoint string
}

// do sends req (built by the caller, with ctx) and returns the body of a 2xx
// answer. Statuses in accept are returned as responses too (ENTSO-E answers
// "no data" with 400 and an XML acknowledgement).
func (c *client) do(ctx context.Context, req *http.Request, accept ...int) (*response, error) {
	endpoint := req.URL.Path
	if err := c.checkQuota(); err != nil {
		return nil, err
	}
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "greenloop")
	}
	start := c.opt.Clock.Now()
	resp, err := c.opt.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the full URL, token included
		}
		return nil, fmt.Errorf("%s: %s %s: %w", c.name, req.Method, redact(req.URL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opt.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the response from %s: %w", c.name, endpoint, err)
	}
	c.opt.Logger.DebugContext(ctx, "carbon provider request", "provider", c.name, "endpoint", endpoint,
		"status", resp.StatusCode, "bytes", len(body), "duration", c.opt.Clock.Now().Sub(start))
	if int64(len(body)) > c.opt.MaxResponseBytes {
		return nil, &ResponseError{Provider: c.name, Endpoint: endpoint, Status: resp.StatusCode,
			Err: fmt.Errorf("body larger than %d bytes", c.opt.MaxResponseBytes)}
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return nil, &AuthError{Provider: c.name, Endpoint: endpoint, Status: s}
	case s == http.StatusTooManyRequests:
		return nil, c.quota(resp.Header.Get("Retry-After"))
	default:
		ok := false
		for _, a := range accept {
			ok = ok || a == s
		}
		if !ok {
			return nil, &ResponseError{Provider: c.name, Endpoint: endpoint, Status: s, Err: errors.New(snippet(body))}
		}
	}
	return &response{status: resp.StatusCode, body: body, endpoint: endpoint}, nil
}

func (c *client) checkQuota() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opt.Clock.Now()
	if now.Before(c.blockedUntil) {
		return &QuotaError{Provider: c.name, RetryAfter: c.blockedUntil.Sub(now), Until: c.blockedUntil}
	}
	return nil
}

// quota records a 429 and builds its error.
func (c *client) quota(retryAfter string) error {
	now := c.opt.Clock.Now()
	d := parseRetryAfter(retryAfter, now)
	e := &QuotaError{Provider: c.name, RetryAfter: d, Until: now.Add(d)}
	if d > 0 {
		c.mu.Lock()
		if e.Until.After(c.blockedUntil) {
			c.blockedUntil = e.Until
		}
		c.mu.Unlock()
	}
	c.opt.Logger.Warn("carbon provider quota exceeded", "provider", c.name, "retry_after", d)
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP-date (RFC 9110 §10.2.3);
// anything else, or a date in the past, is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 7*24*3600 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact returns the URL without its query and user info.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery = ""
	v.User = nil
	v.Fragment = ""
	return v.String()
}

// snippet is the start of a body, on one line, for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}

func (c *client) newRequest(ctx context.Context, path string, q url.Values) (*http.Request, error) {
	u, err := url.Parse(strings.TrimSuffix(c.opt.BaseURL, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("%s: base URL: %w", c.name, err)
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
}
