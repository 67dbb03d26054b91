package cluster

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVerifyRequest(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"id":"4"}`)
	newReq := func(path string) *http.Request {
		return httptest.NewRequest("POST", path, strings.NewReader(string(body)))
	}
	cases := []struct {
		name    string
		prepare func(r *http.Request)
		secret  []byte
		body    []byte
		now     time.Time
		want    string
	}{
		{"Good", func(r *http.Request) { SignRequest(r, secret, body) }, secret, body, time.Now(), ""},
		{"Missing", func(*http.Request) {}, secret, body, time.Now(), "no X-Cairn-Auth"},
		{"WrongSecret", func(r *http.Request) { SignRequest(r, []byte("another-secret-entirely"), body) }, secret, body, time.Now(), "wrong cluster secret"},
		{"OtherBody", func(r *http.Request) { SignRequest(r, secret, []byte(`{"id":"5"}`)) }, secret, body, time.Now(), "wrong cluster secret"},
		{"Skewed", func(r *http.Request) { SignRequest(r, secret, body) }, secret, body, time.Now().Add(2 * time.Minute), "off this node's clock"},
		{"Malformed", func(r *http.Request) { r.Header.Set(AuthHeader, "v1 nonsense") }, secret, body, time.Now(), "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReq("/join")
			c.prepare(r)
			err := VerifyRequest(r, c.secret, c.body, c.now)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrUnauthenticated)):
				t.Fatalf("err = %v, want %q", err, c.want)
			case err != nil && strings.Contains(err.Error(), string(secret)):
				t.Fatalf("error reveals the secret: %v", err)
			}
		})
	}
	t.Run("OtherPath", func(t *testing.T) {
		r := newReq("/join")
		SignRequest(r, secret, body)
		r2 := newReq("/remove")
		r2.Header.Set(AuthHeader, r.Header.Get(AuthHeader))
		if err := VerifyRequest(r2, secret, body, time.Now()); err == nil {
			t.Fatal("a header signed for /join was accepted on /remove")
		}
	})
}
