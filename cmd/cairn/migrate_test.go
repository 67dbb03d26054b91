package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cluster/postgres"
	"github.com/cairndb/cairn/internal/pgtest"
	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/server"
	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// mustRaftNode starts a single-node Raft cluster in process.
func mustRaftNode(t *testing.T) *cluster.Node {
	t.Helper()
	dir := t.TempDir()
	db, err := statemachine.OpenFresh(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := cluster.New(cluster.Config{
		ID:               "1",
		DataDir:          dir,
		RaftAddr:         addr,
		Members:          []cluster.Member{{ID: "1", RaftAddr: addr, Voter: true}},
		HeartbeatTimeout: 50 * time.Millisecond,
		ElectionTimeout:  50 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
	}, db)
	if err := n.Open(context.Background()); err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close(context.Background())
		db.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for n.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("node not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// serveAPI serves the HTTP API of b and returns its host:port.
func serveAPI(t *testing.T, b server.Store) string {
	t.Helper()
	ts := httptest.NewServer(server.New(server.Config{}, b, nil).Handler())
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// writeFiles writes name/content pairs into dir.
func writeFiles(t *testing.T, dir string, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, kv[i]), []byte(kv[i+1]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// cli runs the cairn command line in process.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommand(&out, &errb, env)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// nodeQuery reads one value through the node.
func nodeQuery(t *testing.T, b cluster.Backend, sql string) any {
	t.Helper()
	res, err := b.Query(context.Background(), &command.Request{Statements: []*command.Statement{{Sql: sql}}}, cluster.QueryOptions{Level: command.LevelStrong})
	if err != nil || len(res) != 1 || res[0].Error != "" || len(res[0].Values) != 1 {
		t.Fatalf("%s: %+v, %v", sql, res, err)
	}
	return res[0].Values[0][0]
}

const (
	createItems = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n" +
		"CREATE TABLE item_log (what TEXT);\n" +
		"CREATE TRIGGER items_log AFTER INSERT ON items BEGIN\n  INSERT INTO item_log VALUES ('added ' || new.name);\nEND;\n"
	seedItems = "INSERT INTO items (name) VALUES ('one'), ('two');\n"
)

func TestMigrate_Raft(t *testing.T) {
	node := mustRaftNode(t)
	addr := serveAPI(t, node)
	dir := t.TempDir()
	writeFiles(t, dir, "0001_create_items.sql", createItems, "0002_seed_items.sql", seedItems, "0002_seed_items.postgres.sql", "SELECT 1;", "notes.txt", "ignored")
	env := []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir}

	status := func(t *testing.T) statusReport {
		t.Helper()
		out, _, err := cli(t, env, "migrate", "status", "--json", "--addr", addr)
		if err != nil {
			t.Fatalf("migrate status: %v", err)
		}
		var r statusReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		return r
	}

	t.Run("StatusBefore", func(t *testing.T) {
		r := status(t)
		if r.Pending != 2 || r.Applied != 0 || len(r.Migrations) != 2 || r.Migrations[1].File != "0002_seed_items.sql" || r.Dialect != "sqlite" {
			t.Errorf("status = %+v", r)
		}
	})
	t.Run("Run", func(t *testing.T) {
		out, _, err := cli(t, env, "migrate", "run", "--addr", addr)
		if err != nil {
			t.Fatalf("migrate run: %v\n%s", err, out)
		}
		for _, want := range []string{"applied 0001_create_items.sql in ", "applied 0002_seed_items.sql in ", "2 applied to node " + addr} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if n := nodeQuery(t, node, "SELECT COUNT(*) FROM item_log"); n != int64(2) {
			t.Errorf("item_log rows = %v, want 2", n)
		}
	})
	t.Run("RunAgain", func(t *testing.T) {
		out, _, err := cli(t, env, "migrate", "run", "--addr", addr)
		if err != nil || !strings.Contains(out, "nothing to apply") {
			t.Fatalf("migrate run again: %v\n%s", err, out)
		}
		if n := nodeQuery(t, node, "SELECT COUNT(*) FROM items"); n != int64(2) {
			t.Errorf("items = %v, want 2", n)
		}
	})
	t.Run("StatusAfter", func(t *testing.T) {
		r := status(t)
		if r.Pending != 0 || r.Applied != 2 || r.Changed != 0 {
			t.Errorf("status = %+v", r)
		}
		for _, m := range r.Migrations {
			if m.State != "applied" || m.AppliedAt == nil || m.DurationMS == nil || m.Checksum != m.AppliedChecksum {
				t.Errorf("migration %+v", m)
			}
		}
		out, _, err := cli(t, env, "migrate", "status", "--addr", addr)
		if err != nil || !strings.Contains(out, "0002_seed_items.sql") || !strings.Contains(out, "2 applied, 0 pending") {
			t.Errorf("migrate status: %v\n%s", err, out)
		}
	})
	t.Run("ChangedFileRefused", func(t *testing.T) {
		before := status(t).Migrations[1].AppliedChecksum
		writeFiles(t, dir, "0002_seed_items.sql", seedItems+"-- edited\n", "0003_more.sql", "CREATE TABLE more (x);")
		defer writeFiles(t, dir, "0002_seed_items.sql", seedItems)
		defer os.Remove(filepath.Join(dir, "0003_more.sql"))
		out, _, err := cli(t, env, "migrate", "run", "--addr", addr)
		if err == nil {
			t.Fatalf("migrate run over a changed file succeeded:\n%s", out)
		}
		r := status(t)
		now := r.Migrations[1].Checksum
		for _, want := range []string{"0002_seed_items.sql", before, now} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name %s: %v", want, err)
			}
		}
		if r.Changed != 1 || r.Migrations[1].State != "changed" || r.Pending != 1 {
			t.Errorf("status = %+v", r)
		}
		if n := nodeQuery(t, node, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'more'"); n != int64(0) {
			t.Error("a migration was applied after the refusal")
		}
		table, _, _ := cli(t, env, "migrate", "status", "--addr", addr)
		if !strings.Contains(table, "0002_seed_items.sql changed since it was applied: checksum "+before+" applied, "+now+" now") {
			t.Errorf("status table does not explain the change:\n%s", table)
		}
	})
	t.Run("FailingMigration", func(t *testing.T) {
		writeFiles(t, dir, "0003_broken.sql", "CREATE TABLE half (x);\nINSERT INTO nosuch VALUES (1);\n")
		defer os.Remove(filepath.Join(dir, "0003_broken.sql"))
		_, _, err := cli(t, env, "migrate", "run", "--addr", addr)
		var me *migrations.MigrationError
		if !errors.As(err, &me) || me.File != "0003_broken.sql" || me.Statement != 2 || me.Line != 2 || !strings.Contains(me.Err.Error(), "no such table: nosuch") {
			t.Fatalf("error = %v, want a MigrationError at statement 2 of 0003_broken.sql", err)
		}
		if n := nodeQuery(t, node, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'"); n != int64(0) {
			t.Error("the failed migration was not rolled back")
		}
		if n := nodeQuery(t, node, "SELECT COUNT(*) FROM _cairn_migrations"); n != int64(2) {
			t.Errorf("records = %v, want 2", n)
		}
	})
}

func TestMigrate_Errors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"NoDirectory", nil, nil, "db.migrations_dir is not set"},
		{"MissingDirectory", []string{"CAIRN_DB_MIGRATIONS_DIR=" + filepath.Join(dir, "nope")}, nil, "db.migrations_dir: stat"},
		{"NodeDown", []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir}, []string{"--addr", "127.0.0.1:1"}, "pass its address with --addr"},
		{"BadConfig", []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir, "CAIRN_DB_MAX_CONNECTIONS=many"}, nil, "db.max_connections"},
		{"AddrInPostgresMode", []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir, "CAIRN_DB_URL=postgres://u@127.0.0.1:1/db"}, []string{"--addr", "127.0.0.1:1"}, "--addr is for Raft mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := cli(t, tt.env, append([]string{"migrate", "status"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("BadFileName", func(t *testing.T) {
		bad := t.TempDir()
		writeFiles(t, bad, "1-init.sql", "")
		_, _, err := cli(t, []string{"CAIRN_DB_MIGRATIONS_DIR=" + bad}, "migrate", "run", "--addr", "127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "1-init.sql: not a migration file name") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("PostgresNodeWithRaftConfig", func(t *testing.T) {
		addr := serveAPI(t, fakeStatus{mode: "postgres"})
		_, _, err := cli(t, []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir}, "migrate", "status", "--addr", addr)
		if err == nil || !strings.Contains(err.Error(), "is in postgres mode") {
			t.Errorf("error = %v", err)
		}
	})
}

// fakeStatus is a Store that only answers /status.
type fakeStatus struct {
	server.Store
	mode string
}

func (f fakeStatus) Status(context.Context) (cluster.Status, error) {
	return cluster.Status{Mode: f.mode}, nil
}

// TestBackendExecer_Raft runs the runner in process on a Raft node, as
// auto-migrate at start does.
func TestBackendExecer_Raft(t *testing.T) {
	node := mustRaftNode(t)
	ex := &backendExecer{backend: node, dialect: migrations.SQLite}
	ms, err := migrations.Load(os.DirFS("../../migrations/testdata/example"), migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	r := &migrations.Runner{Execer: ex, Now: func() time.Time { return at }}
	applied, err := r.Run(context.Background(), ms)
	if err != nil || len(applied) != len(ms) {
		t.Fatalf("Run = %+v, %v", applied, err)
	}
	pending, err := r.Pending(context.Background(), ms)
	if err != nil || len(pending) != 0 {
		t.Errorf("Pending = %+v, %v", pending, err)
	}
	// A readiness check reads the node's own copy.
	local := &migrations.Runner{Execer: &backendExecer{backend: node, dialect: migrations.SQLite, localReads: true}}
	if pending, err := local.Pending(context.Background(), ms); err != nil || len(pending) != 0 {
		t.Errorf("Pending on the local copy = %+v, %v", pending, err)
	}
	states, err := migrations.Status(context.Background(), ex, ms)
	if err != nil || len(states) != len(ms) || !states[0].Record.AppliedAt.Equal(at) {
		t.Errorf("Status = %+v, %v", states, err)
	}
	failed, err := ex.ExecTx(context.Background(), []migrations.Statement{{SQL: "INSERT INTO notes (body) VALUES ($1)", Args: []any{"x"}}, {SQL: "INSERT INTO nosuch VALUES (1)"}})
	if failed != 1 || err == nil || !strings.Contains(err.Error(), "no such table: nosuch") {
		t.Errorf("ExecTx = %d, %v; want statement 1 failed", failed, err)
	}
	if n := nodeQuery(t, node, "SELECT COUNT(*) FROM notes"); n != int64(0) {
		t.Errorf("notes = %v: the failed transaction was not rolled back", n)
	}
}

// TestMigrate_Postgres runs several runners at once, each on its own pool
// as separate nodes would, on one PostgreSQL database: the advisory lock
// makes them take turns and every migration is applied once. Then the
// command line, in Postgres mode, finds nothing left to do.
func TestMigrate_Postgres(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir,
		"0001_create_items.sql", "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);\nCREATE TABLE item_log (what TEXT);\n",
		"0001_create_items.sqlite.sql", createItems,
		"0002_log_items.postgres.sql", "CREATE FUNCTION log_item() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  INSERT INTO item_log VALUES ('added ' || NEW.name);\n  RETURN NEW;\nEND;\n$$;\n"+
			"CREATE TRIGGER items_log AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION log_item();\n",
		"0003_seed_items.sql", seedItems,
	)
	ms, err := migrations.Load(os.DirFS(dir), migrations.Postgres)
	if err != nil {
		t.Fatal(err)
	}

	const nodes = 3
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[int64]int{}
	)
	for i := range nodes {
		b, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConnections: 2, ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		ex := &backendExecer{backend: b, dialect: migrations.Postgres, lock: postgresLock(b)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := (&migrations.Runner{Execer: ex}).Run(ctx, ms)
			if err != nil {
				t.Errorf("runner %d: %v", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				applied[r.Version]++
			}
		}()
	}
	wg.Wait()
	for _, m := range ms {
		if applied[m.Version] != 1 {
			t.Errorf("version %d applied %d times, want once", m.Version, applied[m.Version])
		}
	}

	b, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := nodeQuery(t, b, "SELECT COUNT(*) FROM item_log"); n != int64(2) {
		t.Errorf("item_log = %v, want 2 (the trigger of 0002 fired for each seeded item, once)", n)
	}

	env := []string{"CAIRN_DB_MIGRATIONS_DIR=" + dir, "CAIRN_DB_URL=" + url}
	out, _, err := cli(t, env, "migrate", "run")
	if err != nil || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("migrate run: %v\n%s", err, out)
	}
	out, _, err = cli(t, env, "migrate", "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Applied != 3 || r.Pending != 0 || r.Dialect != "postgres" || r.Migrations[1].File != "0002_log_items.postgres.sql" || r.Migrations[0].AppliedAt == nil {
		t.Errorf("status = %s", out)
	}

	t.Run("FailingMigration", func(t *testing.T) {
		writeFiles(t, dir, "0004_broken.sql", "CREATE TABLE half (x int);\nINSERT INTO half VALUES ('not a number');\n")
		_, _, err := cli(t, env, "migrate", "run")
		var me *migrations.MigrationError
		if !errors.As(err, &me) || me.File != "0004_broken.sql" || me.Statement != 2 || !strings.Contains(err.Error(), "SQLSTATE 22P02") {
			t.Fatalf("error = %v, want a MigrationError with the SQLSTATE", err)
		}
		if n := nodeQuery(t, b, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'half'"); n != int64(0) {
			t.Error("the failed migration was not rolled back")
		}
	})
}
