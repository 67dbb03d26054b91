//go:build integration

package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/pgtest"
)

// writeMigrationDir writes migrationFiles into a new directory.
func writeMigrationDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, sql := range migrationFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAutoMigrate_Cluster: three nodes started with db.migrations_dir
// apply the migrations once, through the leader, and every node becomes
// ready only with the schema in its own copy. A node restarted after a
// file changed refuses to become ready and names the file.
func TestAutoMigrate_Cluster(t *testing.T) {
	dir := writeMigrationDir(t)
	c := newCluster(t, 3, withEnv("CAIRN_DB_MIGRATIONS_DIR="+dir))
	for _, n := range c.nodes {
		// Ready (newCluster waited for it) means the schema is there.
		if got := countAt(t, n, "SELECT count(*) FROM _cairn_migrations"); got != 3 {
			t.Fatalf("%s is ready with %d migrations recorded, want 3", n.http, got)
		}
		if got := countAt(t, n, "SELECT count(*) FROM items"); got != 2 {
			t.Fatalf("%s: %d seeded items, want 2 (applied once)", n.http, got)
		}
	}
	// Restarting does not apply anything again.
	follower := c.followers()[0]
	follower.stop()
	follower.start()
	if got := countAt(t, follower, "SELECT count(*) FROM items"); got != 2 {
		t.Fatalf("after a restart: %d items, want 2", got)
	}

	// A changed file: the restarted node stays unready and says why.
	if err := os.WriteFile(filepath.Join(dir, "0002_seed_items.sql"), []byte("INSERT INTO items (name) VALUES ('changed');\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leader := c.leader(30 * time.Second)
	leader.stop()
	leader.startNoWait()
	waitFor(t, 30*time.Second, "the node to refuse the changed migration", func() bool {
		resp, err := http.Get(leader.url("/readyz"))
		if err != nil {
			return false // not listening yet
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(raw), "0002_seed_items.sql")
	})
	if got := countAt(t, c.followers()[0], "SELECT count(*) FROM items"); got != 2 {
		t.Fatalf("after the refusal: %d items, want 2", got)
	}
}

// TestAutoMigrate_PostgresConcurrent: two nodes on one PostgreSQL start at
// the same moment with the same migrations; the advisory lock lets exactly
// one apply each, and both become ready.
func TestAutoMigrate_PostgresConcurrent(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	dir := t.TempDir()
	for name, sql := range map[string]string{
		"0001_create_items.sql":         "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);\n",
		"0002_seed_items.sql":           "INSERT INTO items (name) VALUES ('one'), ('two; with a semicolon');\n",
		"0003_index_items.sqlite.sql":   "CREATE INDEX items_name ON items (name);\n",
		"0003_index_items.postgres.sql": "CREATE INDEX items_name ON items USING hash (name);\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var nodes []*node
	for range 2 {
		nodes = append(nodes, newNode(t, withEnv("CAIRN_DB_URL="+url, "CAIRN_DB_MIGRATIONS_DIR="+dir)))
	}
	for _, n := range nodes {
		n.startNoWait()
	}
	for _, n := range nodes {
		n.waitReady(30 * time.Second)
	}
	for _, n := range nodes {
		if got := countAt(t, n, "SELECT count(*) FROM _cairn_migrations"); got != 3 {
			t.Fatalf("%s: %d migrations recorded, want 3", n.http, got)
		}
		if got := countAt(t, n, "SELECT count(*) FROM items"); got != 2 {
			t.Fatalf("%s: %d items, want 2 (each migration once)", n.http, got)
		}
		if got := countAt(t, n, "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_name' AND indexdef LIKE '%hash%'"); got != 1 {
			t.Fatalf("%s: the postgres variant of 0003 was not applied", n.http)
		}
	}
	applied := 0
	for _, n := range nodes {
		applied += strings.Count(n.logText(), "msg=\"applied migration\"")
	}
	if applied != 3 {
		t.Errorf("%d applied-migration log lines across both nodes, want 3", applied)
		for _, n := range nodes {
			t.Logf("%s:\n%s", n.http, lastLines(n.logText(), 20))
		}
	}
}
