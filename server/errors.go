package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// writeKind says whether a failed call may have changed data, which decides
// how a timeout or cancellation is reported.
type writeKind int

const (
	readOnly writeKind = iota // /db/query, /status, /readyz
	writes                    // /db/execute
	mayWrite                  // /db/request
)

// writeKindOf returns the write kind of a /db endpoint.
func writeKindOf(ep endpoint) writeKind {
	switch ep {
	case endpointExecute:
		return writes
	case endpointRequest:
		return mayWrite
	}
	return readOnly
}

// apiError is an error mapped to an HTTP response.
type apiError struct {
	status int
	msg    string
	// retryAfter, when positive, asks the client to retry after that many
	// seconds (Retry-After).
	retryAfter int
}

// Outcome-unknown wording, shared so that every path says it the same way.
const (
	maybeAppliedWrite   = "the write may or may not have been applied"
	maybeAppliedRequest = "any writes in the request may or may not have been applied"
)

// mapError maps an error from the Store to a status and message. This is
// the only place in Cairn where backend errors become HTTP status codes.
// timeout is the deadline the call ran under, for the 504 message.
func mapError(err error, kind writeKind, timeout time.Duration) apiError {
	switch {
	case errors.Is(err, cluster.ErrNotReadOnly), errors.Is(err, cluster.ErrInvalidStatement):
		return apiError{status: http.StatusBadRequest, msg: err.Error()}
	case errors.Is(err, cluster.ErrStale):
		return apiError{status: http.StatusBadRequest, msg: err.Error()}
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrUnavailable),
		errors.Is(err, cluster.ErrMaintenance):
		return apiError{status: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: 1}
	case errors.Is(err, cluster.ErrUnknownOutcome):
		if kind == readOnly {
			kind = writes
		}
		return apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf("%s: %v", unknownOutcome(kind), err)}
	case errors.Is(err, cluster.ErrClosed):
		return apiError{status: http.StatusServiceUnavailable, msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("timed out after %s", timeout)
		return apiError{status: http.StatusGatewayTimeout, msg: withOutcome(msg, kind)}
	case errors.Is(err, context.Canceled):
		return apiError{status: http.StatusServiceUnavailable, msg: withOutcome("request canceled (the client went away or the server is shutting down)", kind)}
	}
	return apiError{status: http.StatusInternalServerError, msg: withOutcome(err.Error(), kind)}
}

// unknownOutcome is the warning for a call of the given kind that failed
// after it may have reached the database.
func unknownOutcome(kind writeKind) string {
	if kind == mayWrite {
		return maybeAppliedRequest
	}
	return maybeAppliedWrite
}

// withOutcome appends the outcome warning to msg for a call that may have
// written.
func withOutcome(msg string, kind writeKind) string {
	if kind == readOnly {
		return msg
	}
	return msg + "; " + unknownOutcome(kind)
}
