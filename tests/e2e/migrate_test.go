//go:build integration

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The migrations of the e2e tests: each builds on the one before, the
// first holds a trigger body, and version 3 has a variant per dialect.
var migrationFiles = map[string]string{
	"0001_create_items.sql": "-- items, and a log a trigger fills\n" +
		"CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n" +
		"CREATE TABLE item_log (what TEXT NOT NULL);\n" +
		"CREATE TRIGGER items_log AFTER INSERT ON items BEGIN\n" +
		"  INSERT INTO item_log VALUES ('added ' || new.name);\n" +
		"END;\n",
	"0002_seed_items.sql":           "INSERT INTO items (name) VALUES ('one'), ('two; with a semicolon');\n",
	"0003_index_items.sqlite.sql":   "CREATE INDEX items_name ON items (name);\n",
	"0003_index_items.postgres.sql": "CREATE INDEX items_name ON items USING hash (name);\n",
}

// cliRun runs the binary to completion with stdout and stderr apart. It
// does not touch t, so goroutines may call it.
func cliRun(env []string, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode(), nil
	}
	return out.String(), errb.String(), 0, err
}

// migrateStatus is the part of `cairn migrate status --json` the tests
// read.
type migrateStatus struct {
	Applied    int `json:"applied"`
	Pending    int `json:"pending"`
	Changed    int `json:"changed"`
	Migrations []struct {
		Version         int64  `json:"version"`
		File            string `json:"file"`
		State           string `json:"state"`
		Checksum        string `json:"checksum"`
		AppliedChecksum string `json:"applied_checksum"`
	} `json:"migrations"`
}

// countAt counts the rows of a query on one node's own copy (level none);
// a table the node has not received yet counts -1.
func countAt(t *testing.T, n *node, sql string) int64 {
	t.Helper()
	code, r, raw := n.do("POST", "/db/query?level=none", mustJSON(t, []string{sql}))
	if code == http.StatusOK && len(r.Results) == 1 && strings.Contains(r.Results[0].Error, "no such table") {
		return -1
	}
	if code != http.StatusOK || len(r.Results) != 1 || r.Results[0].Error != "" || len(r.Results[0].Values) != 1 {
		t.Fatalf("%s on %s: HTTP %d: %s", sql, n.http, code, raw)
	}
	v, err := r.Results[0].Values[0][0].(json.Number).Int64()
	if err != nil {
		t.Fatalf("%s on %s: %v", sql, n.http, err)
	}
	return v
}

// TestMigrate_ThreeNodes runs `cairn migrate run` against the leader and a
// follower at once: every migration is applied exactly once, its tables
// and records reach every node, a second run is a no-op, and a changed
// file is refused by name with both checksums.
func TestMigrate_ThreeNodes(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	followers := c.followers()
	dir := t.TempDir()
	for name, sql := range migrationFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir}

	// Two runners at once, through different nodes.
	type outcome struct {
		stdout, stderr string
		code           int
		err            error
	}
	targets := []*node{leader, followers[0]}
	outcomes := make([]outcome, len(targets))
	var wg sync.WaitGroup
	for i, n := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outcomes[i]
			o.stdout, o.stderr, o.code, o.err = cliRun(env, "migrate", "run", "--json", "--addr", n.http)
		}()
	}
	wg.Wait()
	times := map[int64]int{}
	for i, o := range outcomes {
		if o.err != nil || o.code != 0 {
			t.Fatalf("migrate run via %s: exit %d, %v\n%s\n%s", targets[i].http, o.code, o.err, o.stdout, o.stderr)
		}
		var r struct {
			Applied []struct {
				Version int64 `json:"version"`
			} `json:"applied"`
		}
		if err := json.Unmarshal([]byte(o.stdout), &r); err != nil {
			t.Fatalf("decode %q: %v", o.stdout, err)
		}
		for _, a := range r.Applied {
			times[a.Version]++
		}
	}
	for v := int64(1); v <= 3; v++ {
		if times[v] != 1 {
			t.Errorf("version %d applied %d times by the two runners, want once (%v)", v, times[v], times)
		}
	}

	// Every node has the records and the schema, and the data once.
	for _, n := range c.nodes {
		want := map[string]int64{
			"SELECT COUNT(*) FROM _cairn_migrations":                                       3,
			"SELECT COUNT(*) FROM items":                                                   2,
			"SELECT COUNT(*) FROM item_log":                                                2,
			"SELECT COUNT(*) FROM sqlite_master WHERE name IN ('items_log', 'items_name')": 2,
		}
		for sql, w := range want {
			waitFor(t, 20*time.Second, fmt.Sprintf("%s = %d on %s", sql, w, n.http), func() bool {
				got := countAt(t, n, sql)
				if got > w {
					t.Fatalf("%s = %d on %s, want %d: a migration ran twice", sql, got, n.http, w)
				}
				return got == w
			})
		}
	}

	status := func(n *node) migrateStatus {
		t.Helper()
		out, errOut, code, err := cliRun(env, "migrate", "status", "--json", "--addr", n.http)
		if err != nil || code != 0 {
			t.Fatalf("migrate status via %s: exit %d, %v\n%s%s", n.http, code, err, out, errOut)
		}
		var st migrateStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		return st
	}
	st := status(followers[1])
	if st.Applied != 3 || st.Pending != 0 || st.Changed != 0 || len(st.Migrations) != 3 || st.Migrations[2].File != "0003_index_items.sqlite.sql" {
		t.Errorf("status = %+v", st)
	}

	// Again: a no-op that writes nothing.
	records := func() string {
		r := leader.query("SELECT version, name, checksum, applied_at, duration_ms FROM _cairn_migrations ORDER BY version", "strong")
		return mustJSON(t, r.Values)
	}
	before := records()
	out, errOut, code, err := cliRun(env, "migrate", "run", "--addr", followers[1].http)
	if err != nil || code != 0 || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("second migrate run: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if after := records(); after != before {
		t.Errorf("records changed on a second run:\nbefore %s\nafter  %s", before, after)
	}

	// A changed file is refused, by name, with both checksums.
	changed := migrationFiles["0002_seed_items.sql"] + "INSERT INTO items (name) VALUES ('three');\n"
	if err := os.WriteFile(filepath.Join(dir, "0002_seed_items.sql"), []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	out, errOut, code, err = cliRun(env, "migrate", "run", "--addr", followers[1].http)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Fatalf("migrate run over a changed file exited 0:\n%s%s", out, errOut)
	}
	for _, want := range []string{"0002_seed_items.sql", sum(migrationFiles["0002_seed_items.sql"]), sum(changed)} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the refusal does not name %s:\n%s", want, errOut)
		}
	}
	if n := countAt(t, leader, "SELECT COUNT(*) FROM items"); n != 2 {
		t.Errorf("items = %d after the refusal, want 2", n)
	}
	st = status(leader)
	var states []string
	for _, m := range st.Migrations {
		states = append(states, m.File+" "+m.State)
	}
	sort.Strings(states)
	if want := "0001_create_items.sql applied, 0002_seed_items.sql changed, 0003_index_items.sqlite.sql applied"; strings.Join(states, ", ") != want {
		t.Errorf("states = %s, want %s", strings.Join(states, ", "), want)
	}
}
