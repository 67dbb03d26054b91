package cluster

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerifyRequest covers every way a signed request is accepted or
// refused, for all the endpoints that use it (ForwardPath, /join, /remove).
func TestVerifyRequest(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"id":"4"}`)
	now := time.Now()
	signed := func(method, path string, key, b []byte) *http.Request {
		r := httptest.NewRequest(method, path, bytes.NewReader(b))
		signRequest(r, key, b, now)
		return r
	}
	good := signed("POST", "/join", secret, body).Header.Get(AuthHeader)
	f := strings.Fields(good)
	cases := []struct {
		name   string
		method string // of the request received; POST when empty
		path   string // of the request received; /join when empty
		header string // as received; none when empty
		secret []byte // the receiver's
		body   []byte // as received
		now    time.Time
		want   string // "" for success, else part of the error
	}{
		{name: "Good", header: good, secret: secret, body: body, now: now},
		{name: "SkewWithinLimit", header: good, secret: secret, body: body, now: now.Add(MaxAuthSkew - time.Second)},
		{name: "SignedAheadWithinLimit", header: good, secret: secret, body: body, now: now.Add(-MaxAuthSkew + time.Second)},
		{name: "Skewed", header: good, secret: secret, body: body, now: now.Add(MaxAuthSkew + time.Second), want: "off this node's clock"},
		{name: "SignedAhead", header: good, secret: secret, body: body, now: now.Add(-MaxAuthSkew - time.Second), want: "off this node's clock"},
		{name: "BadMAC", header: f[0] + " " + f[1] + " " + strings.Repeat("ab", 32), secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "WrongSecret", header: signed("POST", "/join", []byte("another-secret-entirely"), body).Header.Get(AuthHeader), secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "ReplayedWithOtherBody", header: good, secret: secret, body: []byte(`{"id":"5"}`), now: now, want: "bad MAC"},
		{name: "ReplayedWithNoBody", header: good, secret: secret, now: now, want: "bad MAC"},
		{name: "ReplayedOnOtherPath", path: "/remove", header: good, secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "ReplayedOnForwardPath", path: ForwardPath, header: good, secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "ReplayedWithOtherMethod", method: "DELETE", header: good, secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "OtherTimestamp", header: f[0] + " " + strconv.FormatInt(now.UnixMilli()+1, 10) + " " + f[2], secret: secret, body: body, now: now, want: "bad MAC"},
		{name: "Missing", secret: secret, body: body, now: now, want: "no X-Cairn-Auth header"},
		{name: "OtherScheme", header: "v2 " + f[1] + " " + f[2], secret: secret, body: body, now: now, want: "malformed X-Cairn-Auth header"},
		{name: "TooFewFields", header: "v1 " + f[2], secret: secret, body: body, now: now, want: "malformed X-Cairn-Auth header"},
		{name: "TooManyFields", header: good + " extra", secret: secret, body: body, now: now, want: "malformed X-Cairn-Auth header"},
		{name: "BadTimestamp", header: "v1 yesterday " + f[2], secret: secret, body: body, now: now, want: "malformed timestamp"},
		{name: "NegativeTimestamp", header: "v1 -5 " + f[2], secret: secret, body: body, now: now, want: "malformed timestamp"},
		{name: "NotHex", header: "v1 " + f[1] + " " + strings.Repeat("zz", 32), secret: secret, body: body, now: now, want: "malformed MAC"},
		{name: "ShortMAC", header: "v1 " + f[1] + " " + f[2][:32], secret: secret, body: body, now: now, want: "malformed MAC"},
		{name: "SecretAsMAC", header: "v1 " + f[1] + " " + string(secret), secret: secret, body: body, now: now, want: "malformed MAC"},
		// A node without a secret (a single node) accepts what a CLI
		// without one signs, and nothing signed with a real secret.
		{name: "EmptySecret", header: signed("POST", "/join", nil, body).Header.Get(AuthHeader), body: body, now: now},
		{name: "EmptySecretRefusesRealOne", header: good, body: body, now: now, want: "bad MAC"},
		{name: "RealSecretRefusesEmptyOne", header: signed("POST", "/join", nil, body).Header.Get(AuthHeader), secret: secret, body: body, now: now, want: "bad MAC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path := c.method, c.path
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = "/join"
			}
			r := httptest.NewRequest(method, path, bytes.NewReader(c.body))
			if c.header != "" {
				r.Header.Set(AuthHeader, c.header)
			}
			err := VerifyRequest(r, c.secret, c.body, c.now)
			if c.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
	t.Run("Format", func(t *testing.T) {
		if len(f) != 3 || f[0] != "v1" || f[1] != strconv.FormatInt(now.UnixMilli(), 10) || len(f[2]) != 64 {
			t.Fatalf("header = %q, want v1 <unix ms> <64 hex digits>", good)
		}
		if strings.Contains(good, string(secret)) {
			t.Fatal("header holds the secret")
		}
	})
	t.Run("SignRequestUsesTheClock", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/join", bytes.NewReader(body))
		SignRequest(r, secret, body)
		if err := VerifyRequest(r, secret, body, time.Now()); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
}
