//go:build integration

package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// authCall sends a request as userPass ("name:password", "" for none)
// and returns the status, the response headers and the body.
func authCall(t *testing.T, n *node, method, path, userPass, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if name, pw, ok := strings.Cut(userPass, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(raw)
}

// TestAuth_BasicAuth starts a node with users (one bcrypt, two plain) and
// checks, as a client would, who may do what: 401 without or with wrong
// credentials, 403 without the permission, 200 with it, the probes open
// to all; and that no password ever reaches the node's log.
func TestAuth_BasicAuth(t *testing.T) {
	const (
		adminPW  = "e2e-admin-Passw0rd"
		readerPW = "e2e-reader-Passw0rd"
		opsPW    = "e2e-ops-Passw0rd"
		wrongPW  = "e2e-Wr0ng-Passw0rd"
	)
	hash, err := bcrypt.GenerateFromPassword([]byte(readerPW), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := strings.Join([]string{
		"admin:" + adminPW + ":all",
		"reader:" + string(hash) + ":read",
		"ops:" + opsPW + ":status,backup",
	}, "\n")
	n := newNode(t, withEnv("CAIRN_AUTH_USERS="+users, "CAIRN_HTTP_ACCESS_LOG=true", "CAIRN_CLUSTER_SECRET="+testSecret))
	n.start() // waits on /readyz, which asks for no credentials

	var (
		admin  = "admin:" + adminPW
		reader = "reader:" + readerPW
		ops    = "ops:" + opsPW
	)
	if code, _, body := authCall(t, n, "POST", "/db/execute", admin, `["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES ('x')"]`); code != http.StatusOK {
		t.Fatalf("admin: create table: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path, user, body string
		want                           int
		inBody                         string
	}{
		{"LivezOpen", "GET", "/livez", "", "", 200, ""},
		{"ReadyzOpen", "GET", "/readyz", "", "", 200, ""},
		{"HealthzOpen", "GET", "/healthz", "", "", 200, ""},
		{"NoCredentials", "POST", "/db/execute", "", `["INSERT INTO t(v) VALUES ('y')"]`, 401, "authentication required"},
		{"WrongPassword", "POST", "/db/query", "admin:" + wrongPW, `["SELECT 1"]`, 401, "wrong user name or password"},
		{"UnknownUser", "GET", "/status", "mallory:" + wrongPW, "", 401, "wrong user name or password"},
		{"ReaderQueries", "POST", "/db/query", reader, `["SELECT v FROM t"]`, 200, `"x"`},
		{"ReaderQueriesAgain", "GET", "/db/query?q=SELECT+COUNT(*)+FROM+t", reader, "", 200, "results"},
		{"ReaderCannotWrite", "POST", "/db/execute", reader, `["INSERT INTO t(v) VALUES ('y')"]`, 403, "write permission"},
		{"ReaderCannotSeeStatus", "GET", "/status", reader, "", 403, "status permission"},
		{"OpsStatus", "GET", "/status", ops, "", 200, "raft"},
		{"OpsNodes", "GET", "/nodes", ops, "", 200, "api_addr"},
		{"OpsBackups", "GET", "/v1/backups", ops, "", 200, "backups"},
		{"OpsCannotQuery", "POST", "/db/query", ops, `["SELECT 1"]`, 403, "read permission"},
		{"OpsCannotMaintain", "POST", "/v1/maintenance", ops, `{"enabled": true}`, 403, "admin permission"},
		{"MetricsNeedCredentials", "GET", "/metrics", "", "", 401, ""},
		{"MetricsForOps", "GET", "/metrics", ops, "", 200, "cairn_statements_total"},
		{"AdminWrites", "POST", "/db/request", admin, `["INSERT INTO t(v) VALUES ('z')", "SELECT COUNT(*) FROM t"]`, 200, "results"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := authCall(t, n, tc.method, tc.path, tc.user, tc.body)
			if code != tc.want {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.want, body)
			}
			if got := h.Get("WWW-Authenticate"); (code == 401) != (got == `Basic realm="cairn"`) {
				t.Errorf("status %d with WWW-Authenticate %q", code, got)
			}
			if !strings.Contains(body, tc.inBody) {
				t.Errorf("body %q lacks %q", body, tc.inBody)
			}
		})
	}

	// The commands send credentials with --user or CAIRN_USER.
	if out, err := exec.Command(binary, "cluster", "status", "--addr", n.http).CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("cairn cluster status without credentials: %v: %s", err, out)
	}
	if out, err := exec.Command(binary, "cluster", "status", "--addr", n.http, "--user", ops).CombinedOutput(); err != nil {
		t.Errorf("cairn cluster status --user: %v: %s", err, out)
	}
	list := exec.Command(binary, "backup", "list", "--addr", n.http)
	list.Env = append(baseEnv(), "CAIRN_USER="+ops)
	if out, err := list.CombinedOutput(); err != nil {
		t.Errorf("cairn backup list with CAIRN_USER: %v: %s", err, out)
	}

	// A failed login is logged with the user and the remote address, and
	// its request id is on every line the request produced.
	authCall(t, n, "POST", "/db/execute", "reader:"+wrongPW, `["SELECT 1"]`, "X-Request-Id", "e2e-auth-fail-1")
	var log string
	waitFor(t, 10*time.Second, "the failed login in the log", func() bool {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			t.Fatal(err)
		}
		log = string(b)
		return strings.Count(log, "request_id=e2e-auth-fail-1") >= 2
	})
	var failLine string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "authentication failed") && strings.Contains(line, "request_id=e2e-auth-fail-1") {
			failLine = line
		}
	}
	if !strings.Contains(failLine, "user=reader") || !strings.Contains(failLine, "remote=127.0.0.1:") {
		t.Errorf("failed login line lacks the user or remote address: %q", failLine)
	}
	// The access log has an info line for a request that succeeded.
	if !strings.Contains(log, `level=INFO msg="http request"`) || !strings.Contains(log, "user=ops") {
		t.Errorf("no info-level access log line naming the user:\n%s", grepLines(log, "http request"))
	}
	for _, secret := range []string{adminPW, readerPW, opsPW, wrongPW, string(hash)} {
		if strings.Contains(log, secret) {
			t.Errorf("the node's log holds a password or hash %q", secret)
		}
	}
}
