//go:build integration

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/pgtest"
)

// expectMaintenance checks that a write through n is refused with 503,
// Retry-After and the reason, and that a read still works.
func expectMaintenance(t *testing.T, n *node, reason string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.url("/db/execute"), strings.NewReader(`["INSERT INTO m (v) VALUES (99)"]`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("write through %s in maintenance: HTTP %d, Retry-After %q", n.http, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	code, _, raw := n.do("POST", "/db/execute", `["INSERT INTO m (v) VALUES (99)"]`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(raw), "maintenance mode") || !strings.Contains(string(raw), reason) {
		t.Fatalf("write through %s in maintenance: HTTP %d: %s", n.http, code, raw)
	}
	if r := n.query("SELECT count(*) FROM m", "none"); len(r.Values) != 1 {
		t.Fatalf("read through %s in maintenance: %+v", n.http, r)
	}
}

// TestMaintenance_Cluster: maintenance mode switched on through a
// follower pauses writes on every node, keeps reads, shows in /status and
// /healthz, survives the leader's death, and switches off again.
func TestMaintenance_Cluster(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	leader.execute(`["CREATE TABLE m (v INTEGER)", "INSERT INTO m (v) VALUES (1)"]`)

	code, _, raw := c.followers()[0].do("POST", "/v1/maintenance", `{"enabled": true, "reason": "schema upgrade"}`)
	if code != 200 || !strings.Contains(string(raw), `"enabled":true`) {
		t.Fatalf("enable through a follower: HTTP %d: %s", code, raw)
	}
	code, _, raw = leader.do("POST", "/v1/maintenance", `{"reason": "no flag"}`)
	if code != 400 || !strings.Contains(string(raw), `is required`) {
		t.Fatalf("body without enabled: HTTP %d: %s", code, raw)
	}
	for _, n := range c.nodes {
		waitFor(t, 10*time.Second, "maintenance in /status of "+n.http, func() bool {
			_, _, raw := n.do("GET", "/status", "")
			return strings.Contains(string(raw), `"maintenance":{"enabled":true,"reason":"schema upgrade"`)
		})
		expectMaintenance(t, n, "schema upgrade")
		code, _, raw := n.do("GET", "/healthz", "")
		if code != 200 || !strings.Contains(string(raw), `"name":"maintenance","status":"degraded"`) {
			t.Fatalf("/healthz of %s in maintenance: HTTP %d: %s", n.http, code, raw)
		}
	}

	// It is cluster state: the next leader keeps it.
	leader.kill()
	next := c.leader(30 * time.Second)
	expectMaintenance(t, next, "schema upgrade")

	code, _, raw = next.do("POST", "/v1/maintenance", `{"enabled": false}`)
	if code != 200 || !strings.Contains(string(raw), `"enabled":false`) {
		t.Fatalf("disable: HTTP %d: %s", code, raw)
	}
	for _, n := range c.running() {
		n.execute(`["INSERT INTO m (v) VALUES (2)"]`)
	}
	if got := next.query("SELECT count(*) FROM m", "strong").Values[0][0]; got.(interface{ String() string }).String() != "3" {
		t.Fatalf("rows after maintenance: %v, want 3 (1 before, 2 after, none during)", got)
	}
}

// TestMaintenance_Postgres: in Postgres mode the state lives in
// PostgreSQL, so a node sharing the database sees it too.
func TestMaintenance_Postgres(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	a := newNode(t, withEnv("CAIRN_DB_URL="+url))
	b := newNode(t, withEnv("CAIRN_DB_URL="+url))
	a.start()
	b.start()
	a.execute(`["CREATE TABLE m (v INTEGER)", "INSERT INTO m (v) VALUES (1)"]`)
	if code, _, raw := a.do("POST", "/v1/maintenance", `{"enabled": true, "reason": "pg upgrade"}`); code != 200 {
		t.Fatalf("enable: HTTP %d: %s", code, raw)
	}
	expectMaintenance(t, a, "pg upgrade")
	waitFor(t, 5*time.Second, "the other node to see maintenance", func() bool {
		code, _, _ := b.do("POST", "/db/execute", `["INSERT INTO m (v) VALUES (99)"]`)
		return code == http.StatusServiceUnavailable
	})
	expectMaintenance(t, b, "pg upgrade")
	// A /db/request of reads still works; one that writes is refused.
	if code, _, raw := b.do("POST", "/db/request", `["SELECT count(*) FROM m"]`); code != 200 {
		t.Fatalf("read request in maintenance: HTTP %d: %s", code, raw)
	}
	if code, _, raw := b.do("POST", "/db/request", `["DELETE FROM m"]`); code != 503 || !strings.Contains(string(raw), "maintenance") {
		t.Fatalf("write request in maintenance: HTTP %d: %s", code, raw)
	}
	if code, _, raw := b.do("POST", "/v1/maintenance", `{"enabled": false}`); code != 200 {
		t.Fatalf("disable: HTTP %d: %s", code, raw)
	}
	waitFor(t, 5*time.Second, "writes through the first node again", func() bool {
		code, _, _ := a.do("POST", "/db/execute", `["INSERT INTO m (v) VALUES (2)"]`)
		return code == 200
	})
	if got := b.query("SELECT count(*) FROM m", "none").Values[0][0]; got.(interface{ String() string }).String() != "2" {
		t.Fatalf("rows: %v, want 2", got)
	}
}
