package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairndb/cairn/backup"
)

// Error is a failed S3 call, explained for an operator. It matches its
// Kind (ErrUnreachable, ErrCredentials, ErrAccessDenied, ErrNoBucket or
// backup.ErrNotFound) with errors.Is, and unwraps to the SDK's error.
type Error struct {
	Op   string // "s3 put NAME", "s3 list", …
	Kind error
	Msg  string // what went wrong, in words; never the secret
	Err  error  // from the SDK
}

func (e *Error) Error() string { return e.Op + ": " + e.Msg }

// Unwrap returns the kind and the SDK's error.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// explain turns an SDK error into an error that says what to fix. object
// is true for calls on one object, where a 404 means that object is
// missing.
func (s *Store) explain(op string, err error, object bool) error {
	// The SDK's text around a context error says nothing more.
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: interrupted: %w", op, ctxErr)
		}
	}
	attempts := ""
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) && maxErr.Attempt > 1 {
		attempts = fmt.Sprintf(" after %d attempts", maxErr.Attempt)
	}

	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		what := "unreachable"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			what = "unreachable (timed out)"
		}
		return &Error{Op: op, Kind: ErrUnreachable, Err: err,
			Msg: fmt.Sprintf("s3 endpoint %s %s%s: %s", s.endpoint, what, attempts, transportDetail(sendErr))}
	}

	code, status := errorCode(err), httpStatus(err)
	detail := apiDetail(err, code, status)
	switch {
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound": // the latter is versitygw's (HTTP 404)
		return &Error{Op: op, Kind: ErrCredentials, Err: err,
			Msg: fmt.Sprintf("s3 credentials rejected: %s is unknown to %s (%s)", s.who(), s.endpoint, detail)}
	case code == "SignatureDoesNotMatch":
		return &Error{Op: op, Kind: ErrCredentials, Err: err,
			Msg: fmt.Sprintf("s3 credentials rejected: the secret key does not match %s (%s)", s.who(), detail)}
	case code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired":
		return &Error{Op: op, Kind: ErrCredentials, Err: err,
			Msg: fmt.Sprintf("s3 credentials rejected: the session token of %s is not valid (%s)", s.who(), detail)}
	case code == "RequestTimeTooSkewed":
		return &Error{Op: op, Kind: ErrCredentials, Err: err,
			Msg: fmt.Sprintf("s3 request rejected: this machine's clock is too far from %s's (%s)", s.endpoint, detail)}
	case code == "NoSuchBucket":
		return &Error{Op: op, Kind: ErrNoBucket, Err: err,
			Msg: fmt.Sprintf("s3 bucket %q does not exist at %s (%s)", s.cfg.Bucket, s.endpoint, detail)}
	case object && (code == "NoSuchKey" || code == "NotFound" && status == http.StatusNotFound):
		// "NotFound" is the SDK's code for a 404 without a body (HEAD).
		// Any other 404 code (NoSuchBucket above, a store's own) is not a
		// missing backup.
		return &Error{Op: op, Kind: backup.ErrNotFound, Err: err,
			Msg: fmt.Sprintf("backup not found in s3://%s/%s", s.cfg.Bucket, s.cfg.Prefix)}
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return &Error{Op: op, Kind: ErrAccessDenied, Err: err,
			Msg: fmt.Sprintf("s3 access denied to %s on bucket %q (%s)", s.who(), s.cfg.Bucket, detail)}
	case status == http.StatusForbidden:
		// A HEAD response has no body, hence no code.
		return &Error{Op: op, Kind: ErrAccessDenied, Err: err,
			Msg: fmt.Sprintf("s3 access denied to %s on bucket %q: wrong key or secret, or no permission (%s)", s.who(), s.cfg.Bucket, detail)}
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		return fmt.Errorf("%s: s3 bucket %q is not served by %s in region %q: check the url and region (%s): %w",
			op, s.cfg.Bucket, s.endpoint, s.cfg.Region, detail, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// who names the credentials in a message: the access key id, never the
// secret.
func (s *Store) who() string {
	if s.cfg.Key == "" {
		return "the access key id of the AWS default credentials"
	}
	return fmt.Sprintf("access key id %q", s.cfg.Key)
}

// transportDetail is the most telling part of a transport error: the
// network operation that failed when there is one.
func transportDetail(err *smithyhttp.RequestSendError) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	if err.Err != nil {
		return err.Err.Error()
	}
	return err.Error()
}

// apiDetail is "CODE: message, HTTP status, request id", as far as known.
func apiDetail(err error, code string, status int) string {
	d := code
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorMessage() != "" {
		d += ": " + apiErr.ErrorMessage()
	}
	if status != 0 {
		if d != "" {
			d += ", "
		}
		d += fmt.Sprintf("HTTP %d", status)
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.ServiceRequestID() != "" {
		d += ", request id " + respErr.ServiceRequestID()
	}
	return d
}

// errorCode is the S3 error code in err, or "".
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of the response in err, or 0.
func httpStatus(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}
