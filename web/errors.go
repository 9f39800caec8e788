package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// Error is an error with the HTTP status it maps to. The central error
// handler renders it as {"error": Msg, "detail": Detail} or, on the
// Prometheus-compatible routes, as {"status":"error","errorType":...,"error":Msg}.
type Error struct {
	// Code is the HTTP status.
	Code int
	// Msg is the human-readable message.
	Msg string
	// Detail is optional structured detail, rendered as JSON.
	Detail any
	// Type is the Prometheus API errorType (bad_data, execution, timeout, ...);
	// empty means one derived from Code.
	Type string
	// Err is the cause, logged on server errors, never sent to the client.
	Err error
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds): when a client (an agent's forwarder) should try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// statusClientClosedRequest is the non-standard status Prometheus (and nginx)
// use for a request the client gave up on.
const statusClientClosedRequest = 499

// Prometheus API error types.
const (
	errBadData     = "bad_data"
	errExec        = "execution"
	errTimeout     = "timeout"
	errCanceled    = "canceled"
	errInternal    = "internal"
	errUnavailable = "unavailable"
	errNotFound    = "not_found"
	errCostLimit   = "cost_limit"
)

func promTypeFor(code int) string {
	switch code {
	case http.StatusBadRequest:
		return errBadData
	case http.StatusUnprocessableEntity:
		return errExec
	case http.StatusServiceUnavailable:
		return errUnavailable
	case http.StatusNotFound:
		return errNotFound
	case statusClientClosedRequest:
		return errCanceled
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	}
	if code >= 500 {
		return errInternal
	}
	return errBadData
}

// badData is a Prometheus "bad_data" error (HTTP 400).
func badData(format string, a ...any) *Error {
	return &Error{Code: http.StatusBadRequest, Type: errBadData, Msg: fmt.Sprintf(format, a...)}
}

// invalidParam is Prometheus' error for a parameter that does not parse.
func invalidParam(name string, err error) *Error {
	return badData("invalid parameter %q: %v", name, err)
}

type errorBody struct {
	Error  string `json:"error"`
	Detail any    `json:"detail,omitempty"`
}

type promErrorBody struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// handleError is the one place that turns an error into an HTTP response.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := toError(err)
	lvl := slog.LevelDebug
	switch {
	case routeLabel(c) == "/readyz":
		// Not ready is a state that probes poll for, not a failure.
	case e.Code >= 500:
		lvl = slog.LevelError
	case e.Code >= 400 && e.Code != http.StatusNotFound && e.Code != statusClientClosedRequest:
		lvl = slog.LevelWarn
	}
	if s.log.Enabled(c.Request().Context(), lvl) {
		attrs := []any{"method", c.Request().Method, "route", routeLabel(c), "code", e.Code, "error", e.Msg}
		if e.Err != nil {
			attrs = append(attrs, "cause", e.Err.Error())
		}
		s.log.Log(c.Request().Context(), lvl, "request failed", attrs...)
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(max(1, e.RetryAfter.Round(time.Second)/time.Second))))
	}
	var body any
	if s.routes[c.Path()].prom {
		t := e.Type
		if t == "" {
			t = promTypeFor(e.Code)
		}
		body = promErrorBody{Status: "error", ErrorType: t, Error: e.Msg}
	} else {
		body = errorBody{Error: e.Msg, Detail: e.Detail}
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(e.Code)
	} else {
		err = c.JSON(e.Code, body)
	}
	if err != nil {
		s.log.Debug("writing error response", "error", err)
	}
}

// toError maps any error to an *Error. Unknown errors become a 500 whose
// message hides the cause (which is logged instead).
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		switch m := he.Message.(type) {
		case string:
			msg = m
		case error:
			msg = m.Error()
		case json.Marshaler:
			if b, err := m.MarshalJSON(); err == nil {
				msg = string(b)
			}
		}
		return &Error{Code: he.Code, Msg: msg, Err: he.Internal}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: statusClientClosedRequest, Type: errCanceled, Msg: "request canceled", Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: http.StatusServiceUnavailable, Type: errTimeout, Msg: "request timed out", Err: err}
	}
	return &Error{Code: http.StatusInternalServerError, Type: errInternal, Msg: "internal server error", Err: err}
}
