package statemachine

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairndb/cairn/statemachine/command"
)

func mustOpenDB(t *testing.T) *DB {
	t.Helper()
	db, err := OpenFresh(filepath.Join(t.TempDir(), "db", "db.sqlite"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func stmt(sql string, params ...any) *command.Statement {
	st := &command.Statement{Sql: sql}
	for _, p := range params {
		var name string
		if np, ok := p.(namedParam); ok {
			name, p = np.name, np.v
		}
		cp, err := command.NewParam(name, p)
		if err != nil {
			panic(err)
		}
		st.Params = append(st.Params, cp)
	}
	st.ReturnsRows = strings.HasPrefix(strings.ToUpper(sql), "SELECT") || strings.Contains(strings.ToUpper(sql), "RETURNING")
	return st
}

type namedParam struct {
	name string
	v    any
}

func mustExec(t *testing.T, db *DB, tx bool, stmts ...*command.Statement) []command.Result {
	t.Helper()
	res, err := db.Execute(context.Background(), &command.Request{Transaction: tx, Statements: stmts})
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	return res
}

func mustQuery(t *testing.T, db *DB, stmts ...*command.Statement) []command.Result {
	t.Helper()
	res, err := db.Query(context.Background(), &command.Request{Statements: stmts})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return res
}

func TestDB_Execute(t *testing.T) {
	db := mustOpenDB(t)
	res := mustExec(t, db, false,
		stmt("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, f REAL, b BLOB)"),
		stmt("INSERT INTO t (name, n, f, b) VALUES (?, ?, ?, ?)", "fiona", int64(math.MaxInt64), 1.5, []byte{0, 1, 255}),
		stmt("INSERT INTO t (name, n) VALUES (:name, :n)", namedParam{"name", "declan"}, namedParam{"n", int64(9007199254740993)}),
		stmt("INSERT INTO nope VALUES (1)"),
		stmt("INSERT INTO t (name) VALUES ('after error')"),
	)
	if len(res) != 5 {
		t.Fatalf("got %d results, want 5", len(res))
	}
	if res[1].LastInsertID != 1 || res[1].RowsAffected != 1 || res[2].LastInsertID != 2 {
		t.Errorf("insert results: %+v %+v", res[1], res[2])
	}
	if !strings.Contains(res[3].Error, "no such table: nope") {
		t.Errorf("error result = %q, want no such table", res[3].Error)
	}
	if res[4].Error != "" || res[4].LastInsertID != 3 {
		t.Errorf("statement after an error outside a transaction must run: %+v", res[4])
	}

	q := mustQuery(t, db, stmt("SELECT id, name, n, f, b FROM t ORDER BY id"))
	if q[0].Error != "" {
		t.Fatalf("query error: %s", q[0].Error)
	}
	if got := strings.Join(q[0].Columns, ","); got != "id,name,n,f,b" {
		t.Errorf("columns = %s", got)
	}
	if got := strings.Join(q[0].Types, ","); got != "integer,text,integer,real,blob" {
		t.Errorf("types = %s", got)
	}
	row := q[0].Values[0]
	if row[2] != int64(math.MaxInt64) || row[3] != 1.5 || !bytes.Equal(row[4].([]byte), []byte{0, 1, 255}) {
		t.Errorf("row 1 = %#v", row)
	}
	if q[0].Values[1][2] != int64(9007199254740993) {
		t.Errorf("big integer came back as %#v", q[0].Values[1][2])
	}
	if q[0].Values[2][4] != nil {
		t.Errorf("NULL came back as %#v", q[0].Values[2][4])
	}
}

func TestDB_ExecuteTransaction(t *testing.T) {
	db := mustOpenDB(t)
	mustExec(t, db, false, stmt("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
	res := mustExec(t, db, true,
		stmt("INSERT INTO t (v) VALUES ('a')"),
		stmt("INSERT INTO t (v) VALUES ('a')"),
		stmt("INSERT INTO t (v) VALUES ('c')"),
	)
	if len(res) != 2 || !strings.Contains(res[1].Error, "UNIQUE") {
		t.Fatalf("transaction results = %+v, want 2 with a UNIQUE error last", res)
	}
	q := mustQuery(t, db, stmt("SELECT COUNT(*) FROM t"))
	if q[0].Values[0][0] != int64(0) {
		t.Errorf("rows after rolled-back transaction = %v, want 0", q[0].Values[0][0])
	}

	// A batch that opens a transaction itself and never ends it must not
	// leave it open for the next batch.
	mustExec(t, db, false, stmt("BEGIN"), stmt("INSERT INTO t (v) VALUES ('dangling')"))
	mustExec(t, db, false, stmt("INSERT INTO t (v) VALUES ('next')"))
	q = mustQuery(t, db, stmt("SELECT v FROM t ORDER BY v"))
	if len(q[0].Values) != 1 || q[0].Values[0][0] != "next" {
		t.Errorf("rows = %v, want only 'next'", q[0].Values)
	}
}

func TestDB_QueryIsReadOnly(t *testing.T) {
	db := mustOpenDB(t)
	mustExec(t, db, false, stmt("CREATE TABLE t (v TEXT)"))
	res := mustQuery(t, db, stmt("INSERT INTO t VALUES ('x')"))
	if !strings.Contains(res[0].Error, "readonly") {
		t.Errorf("write through a read connection: error = %q, want readonly", res[0].Error)
	}
	q := mustQuery(t, db, stmt("SELECT (SELECT COUNT(*) FROM t) AS n, datetime('2026-01-02') AS d"))
	if q[0].Values[0][0] != int64(0) || q[0].Types[0] != "integer" || q[0].Types[1] != "text" {
		t.Errorf("query = %+v", q[0])
	}
}

func TestDB_DateColumnsStayText(t *testing.T) {
	db := mustOpenDB(t)
	mustExec(t, db, false,
		stmt("CREATE TABLE t (d DATE, ts DATETIME, b BOOLEAN)"),
		stmt("INSERT INTO t VALUES ('2026-11-23', '2026-11-23 10:38:20', 1)"),
	)
	q := mustQuery(t, db, stmt("SELECT d, ts, b FROM t"))
	row := q[0].Values[0]
	if row[0] != "2026-11-23" || row[1] != "2026-11-23 10:38:20" || row[2] != int64(1) {
		t.Errorf("row = %#v", row)
	}
}

func TestDB_CopyAndReplace(t *testing.T) {
	db := mustOpenDB(t)
	mustExec(t, db, false, stmt("CREATE TABLE t (v INTEGER)"), stmt("INSERT INTO t VALUES (42)"))
	dst := filepath.Join(t.TempDir(), "copy.db")
	if _, err := db.Copy(context.Background(), dst); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy file: %v %v", fi, err)
	}
	mustExec(t, db, false, stmt("INSERT INTO t VALUES (43)"))

	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := db.ReplaceFrom(f); err != nil {
		t.Fatalf("replace: %v", err)
	}
	q := mustQuery(t, db, stmt("SELECT v FROM t"))
	if len(q[0].Values) != 1 || q[0].Values[0][0] != int64(42) {
		t.Errorf("after replace rows = %v, want [[42]]", q[0].Values)
	}

	if err := db.ReplaceFrom(strings.NewReader("this is not a database")); err == nil || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Errorf("replace with garbage: err = %v", err)
	}
	q = mustQuery(t, db, stmt("SELECT v FROM t"))
	if len(q[0].Values) != 1 {
		t.Errorf("a refused replace changed the data: %v", q[0].Values)
	}
}

func TestDB_FileModes(t *testing.T) {
	db := mustOpenDB(t)
	mustExec(t, db, false, stmt("CREATE TABLE t (v)"))
	for _, p := range []string{db.Path(), filepath.Dir(db.Path())} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestDB_CopyUnderWrites copies the database again and again while batches
// of writes are applied, and checks that every copy holds exactly the rows
// of the index Copy reported: the pairing a backup relies on.
func TestDB_CopyUnderWrites(t *testing.T) {
	db := mustOpenDB(t)
	ctx := context.Background()
	if _, err := db.ExecuteBatch(ctx, []*command.Request{{Statements: []*command.Statement{stmt("CREATE TABLE t (i INTEGER PRIMARY KEY)")}}}, 1); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Entry index i inserts row i; batches of 1 to 5 entries, as the
		// FSM would apply them, until the copies are done.
		idx := uint64(1)
		for b := 0; ; b++ {
			select {
			case <-stop:
				return
			default:
			}
			var reqs []*command.Request
			for range b%5 + 1 {
				idx++
				reqs = append(reqs, &command.Request{Statements: []*command.Statement{stmt("INSERT INTO t VALUES (?)", int64(idx))}})
			}
			if _, err := db.ExecuteBatch(ctx, reqs, idx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	dir := t.TempDir()
	for n := range 25 {
		path := filepath.Join(dir, fmt.Sprintf("copy-%d.db", n))
		index, err := db.Copy(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		q := mustQuery(t, c, stmt("SELECT COUNT(*), COALESCE(MAX(i), 1) FROM t"))
		c.Close()
		if q[0].Values[0][0] != int64(index-1) || q[0].Values[0][1] != int64(index) {
			t.Fatalf("copy %d at index %d holds %v rows (max id %v), want %d rows up to %d", n, index, q[0].Values[0][0], q[0].Values[0][1], index-1, index)
		}
	}
}
