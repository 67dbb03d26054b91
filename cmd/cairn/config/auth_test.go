package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestLoad_HTTPLimits(t *testing.T) {
	c := mustLoad(t, "[http]\nmax_concurrent = 0\nqueue_timeout = \"1s\"\naccess_log = true\n")
	if c.HTTP.MaxConcurrent != 0 || c.HTTP.QueueTimeout != time.Second || !c.HTTP.AccessLog {
		t.Errorf("HTTP = %+v", c.HTTP)
	}
	c = mustLoad(t, "", "CAIRN_HTTP_MAX_CONCURRENT=2", "CAIRN_HTTP_QUEUE_TIMEOUT=50ms", "CAIRN_HTTP_ACCESS_LOG=true")
	if c.HTTP.MaxConcurrent != 2 || c.HTTP.QueueTimeout != 50*time.Millisecond || !c.HTTP.AccessLog {
		t.Errorf("HTTP from env = %+v", c.HTTP)
	}
	_, err := load(t, "", "CAIRN_HTTP_MAX_CONCURRENT=-1", "CAIRN_HTTP_QUEUE_TIMEOUT=-5ms")
	wantProblem(t, err, "http.max_concurrent", "env CAIRN_HTTP_MAX_CONCURRENT", "must not be negative")
	wantProblem(t, err, "http.queue_timeout", "negative")
}

func TestConfig_AuthUsers(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, env string
		want      []string
	}{
		{"One", "app:pw:read,write", []string{"app:pw:read,write"}},
		{"Two", "app:pw:read,write,ops:pw2:all", []string{"app:pw:read,write", "ops:pw2:all"}},
		{"Newlines", "app:pw:read, write\nops:pw2:status,backup\n", []string{"app:pw:read,write", "ops:pw2:status,backup"}},
		{"ColonInPassword", "app:p:w:read", []string{"app:p:w:read"}},
		{"Bcrypt", "app:" + string(hash) + ":read,write", []string{"app:" + string(hash) + ":read,write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, "", "CAIRN_AUTH_USERS="+tc.env, "CAIRN_CLUSTER_SECRET="+testSecret)
			if got := c.AuthUsers(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AuthUsers() = %q, want %q", got, tc.want)
			}
		})
	}
	// A TOML array keeps its entries as written.
	c := mustLoad(t, "[auth]\nusers = [\"app:pw:read,write\", \"ops:pw2:all\"]\nmetrics = false\n", "CAIRN_CLUSTER_SECRET="+testSecret)
	if got := c.AuthUsers(); !reflect.DeepEqual(got, []string{"app:pw:read,write", "ops:pw2:all"}) || c.Auth.Metrics {
		t.Errorf("AuthUsers() = %q, metrics %t", got, c.Auth.Metrics)
	}
}

func TestLoad_AuthUsersInvalid(t *testing.T) {
	const pw = "hunter2-secret"
	for _, tc := range []struct {
		name, users string
		want        []string
	}{
		{"Shape", `["ok:x:read", "alice-` + pw + `"]`, []string{`entry 2: want "name:password:permissions"`}},
		{"Permission", `["ok:x:read", "bob:` + pw + `:read,wirte"]`, []string{`entry 2 (user "bob"): unknown permission "wirte"`, "want read, write, status, backup, admin, all"}},
		{"NoPermission", `["bob:` + pw + `:"]`, []string{`entry 1 (user "bob"): no permissions`}},
		{"EmptyPassword", `["bob::read"]`, []string{`entry 1 (user "bob"): the password is empty`}},
		{"BadHash", `["bob:$2b$10$` + pw + `:read"]`, []string{`entry 1 (user "bob"): the password starts like a bcrypt hash but is not a valid one`}},
		{"Duplicate", `["bob:x:read", "bob:` + pw + `:write"]`, []string{`entry 2 (user "bob"): the user is declared twice`}},
		{"BlankName", `["b b:` + pw + `:read"]`, []string{`entry 1: the user name contains a blank`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, "[auth]\nusers = "+tc.users+"\n")
			wantProblem(t, err, "auth.users", tc.want...)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password:\n%v", err)
			}
		})
	}
	// A piece of the variable that is not a permission is not glued to
	// the entry before it.
	_, err := load(t, "", "CAIRN_AUTH_USERS=app:x:read,"+pw)
	wantProblem(t, err, "auth.users", `entry 2: want "name:password:permissions"`)

	_, err = load(t, "", "CAIRN_AUTH_USERS=ok:x:read,bob:"+pw+":wirte")
	wantProblem(t, err, "auth.users", "env CAIRN_AUTH_USERS", `entry 2 (user "bob"): unknown permission "wirte"`)
	if strings.Contains(err.Error(), pw) {
		t.Errorf("the error shows the password:\n%v", err)
	}
}

func TestConfig_AuthUsersRedacted(t *testing.T) {
	const pw = "hunter2-secret"
	c := mustLoad(t, "", "CAIRN_AUTH_USERS=app:"+pw+":read", "CAIRN_CLUSTER_SECRET="+testSecret)
	for _, out := range []string{c.Redacted(), mustJSON(t, c), c.String()} {
		if strings.Contains(out, pw) || !strings.Contains(out, "[redacted]") {
			t.Errorf("auth.users not redacted:\n%s", out)
		}
	}
}

// TestConfig_AuthUsersNeedSecret: users without a cluster secret are
// refused, since the node-to-node endpoints would bypass them.
func TestConfig_AuthUsersNeedSecret(t *testing.T) {
	_, err := load(t, "", "CAIRN_AUTH_USERS=app:pw:read")
	ps := problems(t, err)
	if len(ps) != 1 || ps[0].Key != "cluster.secret" || !strings.Contains(ps[0].Problem, "auth.users") {
		t.Fatalf("problems = %+v", ps)
	}
	// Postgres mode has no node-to-node endpoints.
	mustLoad(t, "", "CAIRN_AUTH_USERS=app:pw:read", "CAIRN_DB_URL=postgres://u:p@localhost/db")
}
