package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AuthHeader carries the proof that a node-to-node or operator HTTP request
// was made by someone who knows the cluster secret:
//
//	X-Cairn-Auth: v1 <unix milliseconds> <hex HMAC-SHA256>
//
// The MAC covers the method, the path, the timestamp and the SHA-256 of the
// body, so a captured header cannot be replayed against another endpoint or
// with another body, and only within MaxAuthSkew of its time. The secret
// itself never travels. Forwarded requests (ForwardPath), /join and /remove
// all use it.
const AuthHeader = "X-Cairn-Auth"

// authScheme is the first field of AuthHeader: the version of the MAC
// input below.
const authScheme = "v1"

// MaxAuthSkew is how far a signed request's time may be from the
// receiver's clock, either way.
const MaxAuthSkew = time.Minute

// ErrUnauthenticated means a request's proof of the cluster secret is
// missing or wrong.
var ErrUnauthenticated = errors.New("not authenticated with the cluster secret")

// SignRequest sets AuthHeader on req for body (which must be what req
// sends). An empty secret signs with the empty key, which only a node
// without a secret accepts.
func SignRequest(req *http.Request, secret, body []byte) {
	signRequest(req, secret, body, time.Now())
}

// signRequest is SignRequest at time t.
func signRequest(req *http.Request, secret, body []byte, t time.Time) {
	ts := strconv.FormatInt(t.UnixMilli(), 10)
	req.Header.Set(AuthHeader, authScheme+" "+ts+" "+hex.EncodeToString(requestMAC(secret, req.Method, req.URL.Path, ts, body)))
}

// VerifyRequest checks r's AuthHeader against body and the secret at now.
// The error wraps ErrUnauthenticated and says what is wrong without
// revealing anything secret. A receiver that wants to refuse a bad header
// before reading the body runs checkAuthHeader, then requestAuth.checkMAC:
// VerifyRequest is exactly those two steps.
func VerifyRequest(r *http.Request, secret, body []byte, now time.Time) error {
	a, err := checkAuthHeader(r, now)
	if err != nil {
		return err
	}
	return a.checkMAC(r, secret, body)
}

// requestAuth is an AuthHeader that checkAuthHeader found well formed and
// timely; only its MAC is left to check.
type requestAuth struct {
	ts  string // the timestamp field, exactly as signed
	mac []byte
}

// checkAuthHeader parses r's AuthHeader and refuses it when it is missing,
// malformed, or signed more than MaxAuthSkew away from now. It needs no
// body, so it costs the receiver nothing to run before reading one.
func checkAuthHeader(r *http.Request, now time.Time) (requestAuth, error) {
	h := r.Header.Get(AuthHeader)
	if h == "" {
		return requestAuth{}, fmt.Errorf("%w: no %s header", ErrUnauthenticated, AuthHeader)
	}
	f := strings.Fields(h)
	if len(f) != 3 || f[0] != authScheme {
		return requestAuth{}, fmt.Errorf("%w: malformed %s header (want %q, a timestamp and a MAC)", ErrUnauthenticated, AuthHeader, authScheme)
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ms <= 0 {
		return requestAuth{}, fmt.Errorf("%w: malformed timestamp in %s header", ErrUnauthenticated, AuthHeader)
	}
	mac, err := hex.DecodeString(f[2])
	if err != nil || len(mac) != sha256.Size {
		return requestAuth{}, fmt.Errorf("%w: malformed MAC in %s header", ErrUnauthenticated, AuthHeader)
	}
	skew := now.Sub(time.UnixMilli(ms))
	if skew < 0 {
		skew = -skew
	}
	if skew > MaxAuthSkew {
		return requestAuth{}, fmt.Errorf("%w: request time is %s off this node's clock (at most %s allowed)", ErrUnauthenticated, skew.Round(time.Second), MaxAuthSkew)
	}
	return requestAuth{ts: f[1], mac: mac}, nil
}

// checkMAC refuses r unless the MAC matches its method, path and body
// under secret.
func (a requestAuth) checkMAC(r *http.Request, secret, body []byte) error {
	if !hmac.Equal(a.mac, requestMAC(secret, r.Method, r.URL.Path, a.ts, body)) {
		return fmt.Errorf("%w: bad MAC (is the cluster secret the same on every node and in the CLI?)", ErrUnauthenticated)
	}
	return nil
}

// requestMAC is HMAC-SHA256(secret, "cairn-http-v1\n" method "\n" path "\n"
// ts "\n" hex(SHA-256(body))). The input is unambiguous: a method holds no
// newline, ts only digits and the hash 64 hex digits, so the path is
// whatever lies between, newlines included.
func requestMAC(secret []byte, method, path, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "cairn-http-v1\n%s\n%s\n%s\n%x", method, path, ts, sum)
	return m.Sum(nil)
}
