package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cairndb/cairn/migrations"
)

// appTime is the clock of the test runners.
var appTime = time.Date(2026, 11, 23, 10, 30, 0, 123456000, time.UTC)

// schema is a small application's migrations: each builds on the last.
func schema() fstest.MapFS {
	return files(
		"0001_create_users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"+
			"CREATE TABLE audit (what TEXT);\n"+
			"CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN\n  INSERT INTO audit VALUES ('user ' || new.name);\nEND;\n",
		"0002_add_email.sql", "ALTER TABLE users ADD COLUMN email TEXT;\nCREATE UNIQUE INDEX users_email ON users (email);\n",
		"0003_seed.sql", "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com');\n",
	)
}

func mustLoad(t testing.TB, fsys fstest.MapFS) []migrations.Migration {
	t.Helper()
	ms, err := migrations.Load(fsys, migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func newRunner(ex migrations.Execer) *migrations.Runner {
	return &migrations.Runner{Execer: ex, Now: func() time.Time { return appTime }}
}

// queryInt runs a query that yields one integer.
func queryInt(t testing.TB, ex migrations.Execer, sql string) int64 {
	t.Helper()
	rows, err := ex.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: rows %v", sql, rows)
	}
	n, ok := rows[0][0].(int64)
	if !ok {
		t.Fatalf("%s: %v is %T", sql, rows[0][0], rows[0][0])
	}
	return n
}

func TestRunner_Run(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	ms := mustLoad(t, schema())

	applied, err := newRunner(ex).Run(ctx, ms)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(applied) != 3 {
		t.Fatalf("applied %d migrations, want 3: %+v", len(applied), applied)
	}
	for i, rec := range applied {
		m := ms[i]
		if rec.Version != m.Version || rec.Name != m.Name || rec.Checksum != m.Checksum || !rec.AppliedAt.Equal(appTime) {
			t.Errorf("record %d = %+v, want migration %d (%s)", i, rec, m.Version, m.Checksum)
		}
	}
	// Order mattered: 0003 uses the column and index of 0002, and fires
	// the trigger of 0001.
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM users WHERE email = 'ada@example.com'"); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM audit WHERE what = 'user ada'"); n != 1 {
		t.Errorf("audit rows = %d, want 1 (the trigger)", n)
	}

	// What the table holds, as Status reads it.
	states, err := migrations.Status(ctx, ex, ms)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if st.Record == nil || st.Changed || st.Missing || st.Migration.Version != int64(i+1) {
			t.Fatalf("state %d = %+v", i, st)
		}
		if st.Record.Checksum != ms[i].Checksum || !st.Record.AppliedAt.Equal(appTime) || st.Record.Name != ms[i].Name {
			t.Errorf("record %d = %+v", i, st.Record)
		}
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM _cairn_migrations WHERE duration_ms IS NULL OR duration_ms < 0"); n != 0 {
		t.Errorf("%d records without a duration", n)
	}
	if rows, err := ex.Query(ctx, "SELECT applied_at FROM _cairn_migrations WHERE version = 1"); err != nil || rows[0][0] != "2026-11-23T10:30:00.123456Z" {
		t.Errorf("applied_at = %v, %v", rows, err)
	}

	t.Run("AgainIsNoOp", func(t *testing.T) {
		before := ex.execCount()
		applied, err := newRunner(ex).Run(ctx, ms)
		if err != nil || len(applied) != 0 {
			t.Fatalf("Run again = %+v, %v; want nothing applied", applied, err)
		}
		if n := ex.execCount() - before; n != 0 {
			t.Errorf("a run with nothing pending wrote %d times", n)
		}
		if n := queryInt(t, ex, "SELECT COUNT(*) FROM users"); n != 1 {
			t.Errorf("users = %d after a second run, want 1", n)
		}
	})

	t.Run("NewMigration", func(t *testing.T) {
		fsys := schema()
		fsys["0004_more.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO users (name) VALUES ('bob');")}
		applied, err := newRunner(ex).Run(ctx, mustLoad(t, fsys))
		if err != nil || len(applied) != 1 || applied[0].Version != 4 {
			t.Fatalf("Run = %+v, %v; want version 4 applied", applied, err)
		}
		if n := queryInt(t, ex, "SELECT COUNT(*) FROM users"); n != 2 {
			t.Errorf("users = %d, want 2", n)
		}
	})
}

func TestRunner_Run_ChangedFile(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	old := mustLoad(t, schema())
	if _, err := newRunner(ex).Run(ctx, old); err != nil {
		t.Fatal(err)
	}

	fsys := schema()
	fsys["0002_add_email.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';")}
	fsys["0004_more.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE more (x);")}
	ms := mustLoad(t, fsys)
	before := ex.execCount()
	applied, err := newRunner(ex).Run(ctx, ms)
	if err == nil {
		t.Fatalf("Run applied %+v over a changed file", applied)
	}
	var ce *migrations.ChecksumError
	if !errors.As(err, &ce) || ce.File != "0002_add_email.sql" || ce.Applied != old[1].Checksum || ce.Current != ms[1].Checksum {
		t.Fatalf("error = %#v, want a ChecksumError for 0002", err)
	}
	for _, want := range []string{"0002_add_email.sql", old[1].Checksum, ms[1].Checksum} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if n := ex.execCount() - before; n != 0 {
		t.Errorf("the refused run wrote %d times; want nothing applied", n)
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'more'"); n != 0 {
		t.Error("the pending migration after the changed one was applied")
	}

	states, err := migrations.Status(ctx, ex, ms)
	if err != nil {
		t.Fatal(err)
	}
	if !states[1].Changed || states[0].Changed || states[3].Record != nil {
		t.Errorf("states = %+v", states)
	}
}

func TestRunner_Run_FailingMigration(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	fsys := schema()
	fsys["0002_add_email.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x);\n\nINSERT INTO half VALUES (1);\nALTER TABLE nosuch ADD COLUMN y TEXT;\n")}
	ms := mustLoad(t, fsys)

	applied, err := newRunner(ex).Run(ctx, ms)
	if len(applied) != 1 || applied[0].Version != 1 {
		t.Errorf("applied = %+v, want version 1 only", applied)
	}
	var me *migrations.MigrationError
	if !errors.As(err, &me) {
		t.Fatalf("error = %v, want a MigrationError", err)
	}
	if me.File != "0002_add_email.sql" || me.Version != 2 || me.Statement != 3 || me.Line != 4 || !strings.Contains(me.Err.Error(), "no such table: nosuch") {
		t.Errorf("MigrationError = %+v", me)
	}
	for _, want := range []string{"0002_add_email.sql", "statement 3", "line 4", "ALTER TABLE nosuch", "no such table: nosuch", "rolled back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	// Rolled back: neither the table of statement 1 nor the record exist,
	// and 0003 did not run.
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'"); n != 0 {
		t.Error("statement 1 of the failed migration was not rolled back")
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM _cairn_migrations"); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
	pending, err := newRunner(ex).Pending(ctx, ms)
	if err != nil || len(pending) != 2 || pending[0].Version != 2 {
		t.Errorf("Pending = %+v, %v; want 2 and 3", pending, err)
	}
}

// TestRunner_Run_ClaimedByAnother makes a second runner find every version
// applied between its reading of the table and its transactions, as two
// nodes of a Raft cluster can: it must roll back, skip and succeed.
func TestRunner_Run_ClaimedByAnother(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	ms := mustLoad(t, schema())
	first := &dbExecer{db: db}
	second := &dbExecer{db: db}
	var firstApplied []migrations.Record
	var once sync.Once
	second.beforeExec = func(stmts []migrations.Statement) {
		if !strings.HasPrefix(stmts[0].SQL, "INSERT INTO _cairn_migrations") {
			return
		}
		once.Do(func() {
			var err error
			if firstApplied, err = newRunner(first).Run(ctx, ms); err != nil {
				t.Errorf("first runner: %v", err)
			}
		})
	}
	applied, err := newRunner(second).Run(ctx, ms)
	if err != nil {
		t.Fatalf("second runner: %v", err)
	}
	if len(applied) != 0 || len(firstApplied) != 3 {
		t.Errorf("applied: first %d, second %d; want 3 and 0", len(firstApplied), len(applied))
	}
	if n := queryInt(t, first, "SELECT COUNT(*) FROM users"); n != 1 {
		t.Errorf("users = %d, want 1: a migration ran twice", n)
	}
	if n := queryInt(t, first, "SELECT COUNT(*) FROM audit"); n != 1 {
		t.Errorf("audit = %d, want 1", n)
	}

	t.Run("DifferentFile", func(t *testing.T) {
		// The other runner applied version 4 from a different file.
		fsys := schema()
		fsys["0004_more.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE more (x);")}
		mine := mustLoad(t, fsys)
		fsys["0004_more.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE more (x, y);")}
		theirs := mustLoad(t, fsys)
		second.beforeExec = func(stmts []migrations.Statement) {
			if strings.HasPrefix(stmts[0].SQL, "INSERT INTO _cairn_migrations") {
				second.beforeExec = nil
				if _, err := newRunner(first).Run(ctx, theirs); err != nil {
					t.Errorf("first runner: %v", err)
				}
			}
		}
		_, err := newRunner(second).Run(ctx, mine)
		var ce *migrations.ChecksumError
		if !errors.As(err, &ce) || ce.Version != 4 || ce.Applied != theirs[3].Checksum || ce.Current != mine[3].Checksum {
			t.Errorf("error = %v, want a ChecksumError for version 4", err)
		}
	})
}

// TestRunner_Run_Concurrent starts several runners at once on one
// database, without a lock: every migration is applied exactly once.
func TestRunner_Run_Concurrent(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	ms := mustLoad(t, schema())
	const runners = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[int64]int{}
	)
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := newRunner(&dbExecer{db: db}).Run(ctx, ms)
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
			t.Errorf("version %d applied %d times by the runners, want once", m.Version, applied[m.Version])
		}
	}
	ex := &dbExecer{db: db}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM users"); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM _cairn_migrations"); n != 3 {
		t.Errorf("records = %d, want 3", n)
	}
}

func TestRunner_Run_MissingAndOutOfOrder(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	all := schema()
	// Apply 1 and 3, then offer 2: it is older than an applied version.
	only := files("0001_create_users.sql", string(all["0001_create_users.sql"].Data), "0003_x.sql", "CREATE TABLE x (a);")
	if _, err := newRunner(ex).Run(ctx, mustLoad(t, only)); err != nil {
		t.Fatal(err)
	}
	only["0002_late.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE late (a);")}
	_, err := newRunner(ex).Run(ctx, mustLoad(t, only))
	if err == nil || !strings.Contains(err.Error(), "0002_late.sql (version 2) is pending, but version 3 is already applied") {
		t.Fatalf("Run = %v, want the out-of-order migration refused", err)
	}

	// A file that disappeared is reported, and does not stop new ones.
	delete(only, "0002_late.sql")
	delete(only, "0003_x.sql")
	only["0004_y.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE y (a);")}
	ms := mustLoad(t, only)
	applied, err := newRunner(ex).Run(ctx, ms)
	if err != nil || len(applied) != 1 || applied[0].Version != 4 {
		t.Fatalf("Run = %+v, %v; want 4 applied", applied, err)
	}
	states, err := migrations.Status(ctx, ex, ms)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range states {
		switch {
		case st.Missing:
			got = append(got, fmt.Sprintf("%d missing %s", st.Record.Version, st.Record.Name))
		case st.Record != nil:
			got = append(got, fmt.Sprintf("%d applied", st.Record.Version))
		}
	}
	if want := "1 applied, 3 missing x, 4 applied"; strings.Join(got, ", ") != want {
		t.Errorf("states = %s, want %s", strings.Join(got, ", "), want)
	}
}

func TestStatus_FreshDatabase(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	ms := mustLoad(t, schema())
	states, err := migrations.Status(ctx, ex, ms)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		if st.Record != nil || st.Migration.Version != ms[i].Version {
			t.Errorf("state %d = %+v, want pending", i, st)
		}
	}
	pending, err := newRunner(ex).Pending(ctx, ms)
	if err != nil || len(pending) != 3 {
		t.Errorf("Pending = %d, %v; want 3", len(pending), err)
	}
	if ex.execCount() != 0 {
		t.Error("Status or Pending wrote to the database")
	}
	if n := queryInt(t, ex, "SELECT COUNT(*) FROM sqlite_master WHERE name = '_cairn_migrations'"); n != 0 {
		t.Error("Status created the migrations table")
	}
}

func TestRunner_Run_Unsorted(t *testing.T) {
	ms := mustLoad(t, schema())
	ms[0], ms[1] = ms[1], ms[0]
	_, err := newRunner(&dbExecer{db: mustOpenDB(t)}).Run(context.Background(), ms)
	if err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("Run = %v, want out of order", err)
	}
}

// TestSQLite_DollarPlaceholders checks what the runner relies on: SQLite
// (through the statemachine) binds $1, $2… to positional arguments by
// number, even out of order.
func TestSQLite_DollarPlaceholders(t *testing.T) {
	ctx := context.Background()
	ex := &dbExecer{db: mustOpenDB(t)}
	if _, err := ex.ExecTx(ctx, []migrations.Statement{
		{SQL: "CREATE TABLE p (a, b)"},
		{SQL: "INSERT INTO p (b, a) VALUES ($2, $1)", Args: []any{"first", int64(2)}},
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := ex.Query(ctx, "SELECT a, b FROM p WHERE a = $1", "first")
	if err != nil || len(rows) != 1 || rows[0][0] != "first" || rows[0][1] != int64(2) {
		t.Errorf("rows = %v, %v; want [first 2]", rows, err)
	}
}
