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
// itself never travels.
const AuthHeader = "X-Cairn-Auth"

// MaxAuthSkew is how far a signed request's time may be from the
// receiver's clock.
const MaxAuthSkew = time.Minute

// ErrUnauthenticated means a request's proof of the cluster secret is
// missing or wrong.
var ErrUnauthenticated = errors.New("not authenticated with the cluster secret")

// SignRequest sets AuthHeader on req for body (which must be what req
// sends).
func SignRequest(req *http.Request, secret, body []byte) {
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	req.Header.Set(AuthHeader, "v1 "+ts+" "+hex.EncodeToString(requestMAC(secret, req.Method, req.URL.Path, ts, body)))
}

// VerifyRequest checks r's AuthHeader against body and the secret. The
// error says what is wrong without revealing anything secret.
func VerifyRequest(r *http.Request, secret, body []byte, now time.Time) error {
	h := r.Header.Get(AuthHeader)
	if h == "" {
		return fmt.Errorf("%w: no %s header", ErrUnauthenticated, AuthHeader)
	}
	parts := strings.Fields(h)
	if len(parts) != 3 || parts[0] != "v1" {
		return fmt.Errorf("%w: malformed %s header", ErrUnauthenticated, AuthHeader)
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrUnauthenticated)
	}
	if skew := now.Sub(time.UnixMilli(ms)); skew > MaxAuthSkew || skew < -MaxAuthSkew {
		return fmt.Errorf("%w: request time is %s off this node's clock (limit %s)", ErrUnauthenticated, skew.Round(time.Second), MaxAuthSkew)
	}
	got, err := hex.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, requestMAC(secret, r.Method, r.URL.Path, parts[1], body)) {
		return fmt.Errorf("%w: wrong cluster secret", ErrUnauthenticated)
	}
	return nil
}

func requestMAC(secret []byte, method, path, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "cairn-http-v1\n%s\n%s\n%s\n%x", method, path, ts, sum)
	return m.Sum(nil)
}
