package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNodeClient_CredentialsFollowRedirect: a follower's redirect to the
// leader at another host keeps the command's credentials.
func TestNodeClient_CredentialsFollowRedirect(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "pw:with:colons" {
			http.Error(w, "no credentials", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer leader.Close()
	// Another host name for the same server, as a real leader would have.
	leaderURL := strings.Replace(leader.URL, "127.0.0.1", "localhost", 1)
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, leaderURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer follower.Close()

	apiUser = "ops:pw:with:colons"
	defer func() { apiUser = "" }()
	req, _ := http.NewRequest("POST", follower.URL+"/v1/backups", nil)
	authorize(req)
	resp, err := nodeClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the redirect: HTTP %d", resp.StatusCode)
	}
}
