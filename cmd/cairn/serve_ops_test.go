package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/server"
	"github.com/cairndb/cairn/statemachine/command"
)

// loadAuth loads a configuration whose [auth] users are entries.
func loadAuth(t *testing.T, entries []string, env ...string) (*config.Config, error) {
	t.Helper()
	quoted := make([]string, len(entries))
	for i, e := range entries {
		quoted[i] = strconv.Quote(e)
	}
	path := filepath.Join(t.TempDir(), "cairn.toml")
	text := "[auth]\nusers = [" + strings.Join(quoted, ", ") + "]\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(path, append([]string{"CAIRN_NODE_HOSTNAME=test", "CAIRN_CLUSTER_SECRET=serve-ops-test-secret-0123"}, env...))
}

// TestAuthUsers_ConfigAgreesWithServer: the configuration's check of
// auth.users (which may not import server) accepts and refuses exactly the
// entries server.NewUserSet does, with the same words.
func TestAuthUsers_ConfigAgreesWithServer(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	entries := []string{
		"a:pw:read", "a:p:w:READ, write", "a:" + string(hash) + ":admin", "a:pw:all", "a:pw:status,backup",
		"a", "a:pw", ":pw:read", "a b:pw:read", "a\x01:pw:read", strings.Repeat("a", 129) + ":pw:read",
		"a::read", "a:pw:", "a:pw: , ", "a:pw:reed", "a:$2b$10$nothash:read", "a:$2y$:read",
	}
	for _, name := range server.PermissionNames() {
		entries = append(entries, "a:pw:"+name)
	}
	for _, entry := range entries {
		for _, list := range [][]string{{entry}, {"a:pw:read", entry}} {
			_, cerr := loadAuth(t, list)
			_, serr := server.NewUserSet(list)
			if (cerr == nil) != (serr == nil) {
				t.Errorf("%q: config says %v, server says %v", list, cerr, serr)
				continue
			}
			if cerr == nil {
				continue
			}
			var ve *config.ValidationError
			if !errors.As(cerr, &ve) || len(ve.Problems) != 1 {
				t.Errorf("%q: config error %v", list, cerr)
				continue
			}
			if got := ve.Problems[0].Problem; got != serr.Error() {
				t.Errorf("%q: config says %q, server says %q", list, got, serr)
			}
		}
	}
}

func TestServerOps(t *testing.T) {
	cfg, err := loadAuth(t, []string{"app:pw:read"}, "CAIRN_HTTP_MAX_CONCURRENT=3", "CAIRN_HTTP_QUEUE_TIMEOUT=40ms",
		"CAIRN_HTTP_ACCESS_LOG=true", "CAIRN_AUTH_METRICS=false")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := newServerOps(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := ops.apply(server.Config{NodeID: "7"})
	if c.NodeID != "7" || c.MaxConcurrent != 3 || c.QueueTimeout != 40*time.Millisecond || !c.AccessLog || !c.MetricsOpen || c.Users.Len() != 1 {
		t.Errorf("apply = %+v", c)
	}

	// The defaults: 64 slots, 250 ms of queue, no users, /metrics protected
	// once there are users.
	def, err := config.Load("", []string{"CAIRN_NODE_HOSTNAME=test"})
	if err != nil {
		t.Fatal(err)
	}
	ops, err = newServerOps(def)
	if err != nil {
		t.Fatal(err)
	}
	c = ops.apply(server.Config{})
	if c.MaxConcurrent != 64 || c.QueueTimeout != 250*time.Millisecond || c.AccessLog || c.MetricsOpen || c.Users.Len() != 0 {
		t.Errorf("apply(defaults) = %+v", c)
	}
}

// TestAuthStep: a SIGHUP reload of [auth] takes effect on the running
// server.
func TestAuthStep(t *testing.T) {
	srv := server.New(server.Config{}, noStore{}, nil)
	get := func(path, user string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := get("/metrics", ""); code != http.StatusOK {
		t.Fatalf("no users: GET /metrics = %d", code)
	}
	next, err := loadAuth(t, []string{"ops:pw:status"})
	if err != nil {
		t.Fatal(err)
	}
	if err := authStep(srv)(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if code := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("after reload: GET /metrics without credentials = %d, want 401", code)
	}
	if code := get("/metrics", "ops"); code != http.StatusOK {
		t.Errorf("after reload: GET /metrics as ops = %d, want 200", code)
	}
	next, err = loadAuth(t, []string{"ops:pw:status"}, "CAIRN_AUTH_METRICS=false")
	if err != nil {
		t.Fatal(err)
	}
	if err := authStep(srv)(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if code := get("/metrics", ""); code != http.StatusOK {
		t.Errorf("auth.metrics = false: GET /metrics = %d, want 200", code)
	}
}

// noStore is a server.Store with nothing behind it.
type noStore struct{}

var errNoStore = errors.New("no store")

func (noStore) Execute(context.Context, *command.Request) ([]command.Result, error) {
	return nil, errNoStore
}

func (noStore) Query(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
	return nil, errNoStore
}

func (noStore) Request(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
	return nil, errNoStore
}

func (noStore) Status(context.Context) (cluster.Status, error) { return cluster.Status{}, errNoStore }

func (noStore) Ready(context.Context) error { return errNoStore }
