package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// mustBcrypt hashes password at the lowest cost, to keep tests fast.
func mustBcrypt(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// mustUsers builds a UserSet, failing the test on an error.
func mustUsers(t *testing.T, entries ...string) *UserSet {
	t.Helper()
	u, err := NewUserSet(entries)
	if err != nil {
		t.Fatalf("NewUserSet: %v", err)
	}
	return u
}

// call sends one request as user:password ("" for no credentials).
func call(t *testing.T, h http.Handler, method, target, userPass, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if name, pw, ok := strings.Cut(userPass, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// okStore answers every call successfully.
func okStore() *fakeStore {
	rows := []command.Result{{Columns: []string{"1"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}}}
	return &fakeStore{
		execute: func(context.Context, *command.Request) ([]command.Result, error) {
			return []command.Result{{RowsAffected: 1}}, nil
		},
		query: func(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
			return rows, nil
		},
		request: func(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
			return rows, nil
		},
		status: func(context.Context) (cluster.Status, error) { return cluster.Status{Mode: "raft", NodeID: "1"}, nil },
		ready:  func(context.Context) error { return nil },
	}
}

func TestServer_Auth(t *testing.T) {
	const (
		readerPW = "reader-bcrypt-pw"
		writerPW = "writer-plain:pw" // a plain password may hold ':'
		opsPW    = "ops-pw"
		rootPW   = "root-pw"
	)
	users := mustUsers(t,
		"reader:"+mustBcrypt(t, readerPW)+":read",
		"writer:"+writerPW+":read,write",
		"ops:"+opsPW+":status, backup",
		"root:"+rootPW+":all",
	)
	s, logs := newTestServer(t, okStore(), Config{Users: users})
	h := s.Handler()

	for _, tc := range []struct {
		name, method, path, user string
		want                     int
		// inError must appear in the error message of a 401 or 403.
		inError string
	}{
		{"NoCredentials", "POST", "/db/query", "", 401, "authentication required"},
		{"UnknownUser", "POST", "/db/query", "nobody:Wr0ngPass", 401, "wrong user name or password"},
		{"WrongPlainPassword", "POST", "/db/execute", "writer:Wr0ngPass", 401, "wrong user name or password"},
		{"WrongBcryptPassword", "POST", "/db/query", "reader:Wr0ngPass", 401, "wrong user name or password"},
		{"BcryptRead", "POST", "/db/query", "reader:" + readerPW, 200, ""},
		{"BcryptReadAgain", "GET", "/db/query?q=SELECT+1", "reader:" + readerPW, 200, ""},
		{"ReaderCannotWrite", "POST", "/db/execute", "reader:" + readerPW, 403, `user "reader" lacks the write permission`},
		{"ReaderCannotRequest", "POST", "/db/request", "reader:" + readerPW, 403, "write"},
		{"ReaderCannotStatus", "GET", "/status", "reader:" + readerPW, 403, "status"},
		{"PlainWrite", "POST", "/db/execute", "writer:" + writerPW, 200, ""},
		{"PlainRequest", "POST", "/db/request", "writer:" + writerPW, 200, ""},
		{"OpsStatus", "GET", "/status", "ops:" + opsPW, 200, ""},
		{"OpsNodes", "GET", "/nodes", "ops:" + opsPW, 200, ""},
		{"OpsMetrics", "GET", "/metrics", "ops:" + opsPW, 200, ""},
		{"OpsBackups", "GET", "/v1/backups", "ops:" + opsPW, 501, ""},
		{"OpsCannotRead", "POST", "/db/query", "ops:" + opsPW, 403, "read"},
		{"OpsCannotMaintain", "POST", "/v1/maintenance", "ops:" + opsPW, 403, "admin"},
		{"WriterCannotBackup", "GET", "/v1/backups", "writer:" + writerPW, 403, "backup"},
		{"MetricsNeedCredentials", "GET", "/metrics", "", 401, "authentication required"},
		{"MetricsNeedStatus", "GET", "/metrics", "writer:" + writerPW, 403, "status"},
		{"RootEverything", "POST", "/db/execute", "root:" + rootPW, 200, ""},
		{"RootStatus", "GET", "/status", "root:" + rootPW, 200, ""},
		{"UnknownPathAfterLogin", "GET", "/nope", "reader:" + readerPW, 404, ""},
		{"UnknownPathNeedsLogin", "GET", "/nope", "", 401, ""},
		{"Livez", "GET", "/livez", "", 200, ""},
		{"Readyz", "GET", "/readyz", "", 200, ""},
		{"Healthz", "GET", "/healthz", "", 200, ""},
		{"ProbesIgnoreBadCredentials", "GET", "/livez", "nobody:x", 200, ""},
		{"InternalHasItsOwnAuth", "POST", "/internal/raft", "", 404, ""},
		{"JoinHasItsOwnAuth", "POST", "/join", "", 501, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(t, h, tc.method, tc.path, tc.user, `["SELECT 1"]`)
			if rec.Code != tc.want {
				t.Fatalf("%s %s as %q: status = %d, want %d: %s", tc.method, tc.path, tc.user, rec.Code, tc.want, rec.Body)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if (rec.Code == http.StatusUnauthorized) != (challenge == `Basic realm="cairn"`) {
				t.Errorf("status %d with WWW-Authenticate %q", rec.Code, challenge)
			}
			if tc.inError != "" {
				if msg := errorBody(t, rec); !strings.Contains(msg, tc.inError) {
					t.Errorf("error %q lacks %q", msg, tc.inError)
				}
			}
		})
	}

	t.Run("Logs", func(t *testing.T) {
		var failed, withUser int
		for _, l := range logs.lines(t) {
			raw, _ := json.Marshal(l)
			for _, pw := range []string{readerPW, writerPW, opsPW, rootPW, "Wr0ngPass"} {
				if strings.Contains(string(raw), pw) {
					t.Errorf("a log line holds a password: %s", raw)
				}
			}
			if l["msg"] == "authentication failed" {
				failed++
				if l[logKeyUser] == nil || l[logKeyRemote] == nil || l[logKeyRequestID] == nil || l["level"] != "WARN" {
					t.Errorf("failed login line lacks user, remote, request id or WARN: %s", raw)
				}
			}
			if l["msg"] == "http request" && l[logKeyUser] == "ops" {
				withUser++
			}
		}
		if failed != 3 {
			t.Errorf("%d failed logins logged, want 3 (unknown user, two wrong passwords)", failed)
		}
		if withUser == 0 {
			t.Error("no request line names the authenticated user")
		}
	})

	t.Run("MetricsOpen", func(t *testing.T) {
		s, _ := newTestServer(t, okStore(), Config{Users: users, MetricsOpen: true})
		if rec := call(t, s.Handler(), "GET", "/metrics", "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET /metrics without credentials: status = %d, want 200", rec.Code)
		}
		if rec := call(t, s.Handler(), "GET", "/status", "", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("GET /status without credentials: status = %d, want 401", rec.Code)
		}
		s.SetMetricsOpen(false)
		if rec := call(t, s.Handler(), "GET", "/metrics", "", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("after SetMetricsOpen(false): status = %d, want 401", rec.Code)
		}
	})

	t.Run("SetUsers", func(t *testing.T) {
		s, _ := newTestServer(t, okStore(), Config{})
		h := s.Handler()
		if rec := call(t, h, "POST", "/db/execute", "", `["X"]`); rec.Code != http.StatusOK {
			t.Fatalf("no users: status = %d, want 200", rec.Code)
		}
		s.SetUsers(mustUsers(t, "app:pw:write"))
		if rec := call(t, h, "POST", "/db/execute", "", `["X"]`); rec.Code != http.StatusUnauthorized {
			t.Errorf("after SetUsers: status = %d, want 401", rec.Code)
		}
		if rec := call(t, h, "POST", "/db/execute", "app:pw", `["X"]`); rec.Code != http.StatusOK {
			t.Errorf("after SetUsers, as app: status = %d, want 200", rec.Code)
		}
		s.SetUsers(mustUsers(t))
		if rec := call(t, h, "POST", "/db/execute", "", `["X"]`); rec.Code != http.StatusOK {
			t.Errorf("empty set: status = %d, want 200 (auth off)", rec.Code)
		}
		s.SetUsers(nil)
		if rec := call(t, h, "POST", "/db/execute", "", `["X"]`); rec.Code != http.StatusOK {
			t.Errorf("nil set: status = %d, want 200 (auth off)", rec.Code)
		}
	})
}

func TestUserSet_Authenticate(t *testing.T) {
	hash := mustBcrypt(t, "s3cret")
	u := mustUsers(t, "b:"+hash+":read", "p:plain:write")
	ctx := context.Background()
	for i := range 3 { // the second and third hit the cache of verified passwords
		if perms, ok := u.authenticate(ctx, "b", "s3cret"); !ok || perms != PermRead {
			t.Errorf("bcrypt, try %d: perms %v, ok %t", i, perms, ok)
		}
		if _, ok := u.authenticate(ctx, "b", "s3cret-not"); ok {
			t.Errorf("bcrypt, try %d: a wrong password passed", i)
		}
	}
	if perms, ok := u.authenticate(ctx, "p", "plain"); !ok || perms != PermWrite {
		t.Errorf("plain: perms %v, ok %t", perms, ok)
	}
	for _, bad := range [][2]string{{"p", "plai"}, {"p", "plainx"}, {"p", ""}, {"x", "plain"}, {"", ""}} {
		if _, ok := u.authenticate(ctx, bad[0], bad[1]); ok {
			t.Errorf("authenticate(%q, %q) passed", bad[0], bad[1])
		}
	}
	// A bcrypt check waits for a slot no longer than its context.
	for range cap(u.bcryptSlots) {
		u.bcryptSlots <- struct{}{}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := u.authenticate(canceled, "b", "other"); ok {
		t.Error("a check without a bcrypt slot passed")
	}
}

func TestNewUserSet(t *testing.T) {
	hash := mustBcrypt(t, "pw")
	t.Run("Valid", func(t *testing.T) {
		u := mustUsers(t, "a:pw:read", "  b:p:w:d:READ, Write ", "c:"+hash+":admin", "d:x:status,backup")
		if u.Len() != 4 {
			t.Fatalf("Len = %d, want 4", u.Len())
		}
		for name, want := range map[string]Permission{"a": PermRead, "b": PermRead | PermWrite, "c": PermAll, "d": PermStatus | PermBackup} {
			if got := u.users[name].perms; got != want {
				t.Errorf("user %s: perms %v, want %v", name, got, want)
			}
		}
		if u.users["b"].hash != nil || u.users["c"].hash == nil {
			t.Error("plain and bcrypt passwords told apart wrongly")
		}
		if (*UserSet)(nil).Len() != 0 || mustUsers(t).Len() != 0 {
			t.Error("a nil or empty set has users")
		}
	})

	for _, tc := range []struct {
		name, entry, want string
	}{
		{"NoColon", "alice", `entry 2: want "name:password:permissions"`},
		{"OneColon", "alice:secretpw", `entry 2: want "name:password:permissions"`},
		{"EmptyName", ":secretpw:read", "entry 2: the user name is empty"},
		{"BlankInName", "al ice:secretpw:read", "entry 2: the user name contains a blank"},
		{"EmptyPassword", "alice::read", `entry 2 (user "alice"): the password is empty`},
		{"NoPermissions", "alice:secretpw:", `entry 2 (user "alice"): no permissions`},
		{"UnknownPermission", "alice:secretpw:read,wirte", `entry 2 (user "alice"): unknown permission "wirte" (want read, write, status, backup, admin, all)`},
		{"BadHash", "alice:$2b$10$secretpw:read", `entry 2 (user "alice"): the password starts like a bcrypt hash but is not a valid one`},
		{"Duplicate", "first:secretpw:read", `entry 2 (user "first"): the user is declared twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewUserSet([]string{"first:pw:read", tc.entry})
			if err == nil {
				t.Fatalf("entry %q accepted", tc.entry)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to start with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("error %q shows the password", err)
			}
			var ue *UserEntryError
			if !errors.As(err, &ue) || ue.Entry != 2 {
				t.Errorf("error %v is not a *UserEntryError of entry 2", err)
			}
		})
	}

	t.Run("EveryBadEntry", func(t *testing.T) {
		_, err := NewUserSet([]string{"a", "b:pw:read", "c:pw:nope"})
		joined, ok := err.(interface{ Unwrap() []error })
		if !ok || len(joined.Unwrap()) != 2 {
			t.Fatalf("error = %v, want two entry errors", err)
		}
	})
}

func TestPermission(t *testing.T) {
	for _, tc := range []struct {
		p    Permission
		want string
	}{
		{PermRead, "read"}, {PermRead | PermWrite, "read,write"}, {PermAll, "admin"}, {PermAdmin, "admin"}, {0, "none"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
	for _, name := range PermissionNames() {
		if _, err := ParsePermission(name); err != nil {
			t.Errorf("ParsePermission(%q): %v", name, err)
		}
	}
	if p, _ := ParsePermission("all"); p != PermAll {
		t.Errorf("all = %v", p)
	}
	if !PermAll.Has(PermRead|PermBackup) || PermRead.Has(PermWrite) {
		t.Error("Has is wrong")
	}
}

func TestServer_AccessLog(t *testing.T) {
	for _, tc := range []struct {
		accessLog bool
		want      string
	}{{false, "DEBUG"}, {true, "INFO"}} {
		s, logs := newTestServer(t, okStore(), Config{AccessLog: tc.accessLog})
		serve(t, s.Handler(), http.MethodGet, "/livez", "")
		serve(t, s.Handler(), http.MethodPost, "/db/execute", `["INSERT INTO t VALUES(1)"]`)
		serve(t, s.Handler(), http.MethodGet, "/nope", "")
		lines := logs.lines(t)
		if len(lines) != 3 {
			t.Fatalf("access_log %t: %d log lines, want 3", tc.accessLog, len(lines))
		}
		for i, want := range []string{tc.want, tc.want, "INFO"} {
			if got := lines[i]["level"]; got != want {
				t.Errorf("access_log %t: line %d (%v) level %v, want %s", tc.accessLog, i, lines[i][logKeyPath], got, want)
			}
		}
	}
}

func TestServer_RequestIDInEveryLine(t *testing.T) {
	s, logs := newTestServer(t, okStore(), Config{Users: mustUsers(t, "a:pw:read")})
	req := httptest.NewRequest(http.MethodPost, "/db/query", strings.NewReader(`["SELECT 1"]`))
	req.Header.Set(requestIDHeader, "req-77")
	req.SetBasicAuth("a", "not-it")
	s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	lines := logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (failed login, request): %v", len(lines), lines)
	}
	for _, l := range lines {
		if l[logKeyRequestID] != "req-77" {
			t.Errorf("line %q: request_id = %v, want req-77", l["msg"], l[logKeyRequestID])
		}
	}
	// Logging with a request's context adds its ID once.
	ctx := context.WithValue(context.Background(), requestInfoKey{}, &requestInfo{id: "req-78"})
	s.logger.InfoContext(ctx, "one")
	s.logger.InfoContext(ctx, "two", logKeyRequestID, "explicit")
	lines = logs.lines(t)[2:]
	if lines[0][logKeyRequestID] != "req-78" || lines[1][logKeyRequestID] != "explicit" {
		t.Errorf("lines = %v", lines)
	}
}
