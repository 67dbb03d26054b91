package statemachine

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine/command"
)

// TestFSM_ApplyBatchMatchesOneByOne applies the same log, full of failing
// statements, transactions that roll back, and statements that make SQLite
// abort a whole transaction, once entry by entry and then in batches of
// several sizes: every entry's results and the final data must be the
// same, whatever the batching.
func TestFSM_ApplyBatchMatchesOneByOne(t *testing.T) {
	entries := [][]string{
		{"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, n INTEGER CHECK (n >= 0))"},
		{"CREATE TABLE parent (id INTEGER PRIMARY KEY)", "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"},
		{"CREATE TABLE guarded (v INTEGER)", "CREATE TRIGGER no_neg BEFORE INSERT ON guarded WHEN NEW.v < 0 BEGIN SELECT RAISE(ROLLBACK, 'negative'); END"},
		{"INSERT INTO t (v, n) VALUES ('a', 1)"},
		{"INSERT INTO t (v, n) VALUES ('a', 2)"}, // UNIQUE fails, alone
		{"INSERT INTO t (v, n) VALUES ('b', 1)", "INSERT INTO t (v, n) VALUES ('c', -1)", "INSERT INTO t (v, n) VALUES ('d', 1)"}, // CHECK fails in the middle
		{"tx", "INSERT INTO t (v, n) VALUES ('e', 1)", "INSERT INTO t (v, n) VALUES ('a', 1)"},                                    // transaction rolls back
		{"tx", "INSERT INTO t (v, n) VALUES ('f', 1)", "UPDATE t SET n = n + 1 WHERE v = 'a'"},
		{"INSERT OR ROLLBACK INTO t (v, n) VALUES ('a', 9)"}, // aborts the whole transaction
		{"INSERT INTO t (v, n) VALUES ('g', 1)"},
		{"INSERT INTO guarded VALUES (1)"},
		{"INSERT INTO guarded VALUES (-1)"}, // RAISE(ROLLBACK)
		{"INSERT INTO guarded VALUES (2)"},
		{"tx", "INSERT INTO child VALUES (1, 42)"}, // deferred FK fails at COMMIT
		{"PRAGMA foreign_keys"},
		{"INSERT INTO t (v, n) VALUES ('h', 1) RETURNING id, v"},
		{"DELETE FROM t WHERE v = 'b'"},
		{"INSERT INTO nowhere VALUES (1)"},
		{"SELECT COUNT(*) FROM t"},
	}
	var logs []*raft.Log
	for i, e := range entries {
		req := &command.Request{}
		if e[0] == "tx" {
			req.Transaction, e = true, e[1:]
		}
		for _, sql := range e {
			st := stmt(sql)
			req.Statements = append(req.Statements, st)
		}
		b, err := command.Encode(command.Type_TYPE_EXECUTE, req)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
	}

	apply := func(batch int) ([][]command.Result, []command.Result) {
		f := NewFSM(mustOpenDB(t), t.TempDir(), nil)
		var got [][]command.Result
		for i := 0; i < len(logs); i += batch {
			for _, r := range f.ApplyBatch(logs[i:min(i+batch, len(logs))]) {
				ar := r.(*ApplyResult)
				if ar.Err != nil {
					t.Fatalf("batch %d: %v", batch, ar.Err)
				}
				for j := range ar.Results {
					ar.Results[j].Seconds = 0
				}
				got = append(got, ar.Results)
			}
		}
		final := mustQuery(t, f.db,
			stmt("SELECT id, v, n FROM t ORDER BY id"),
			stmt("SELECT v FROM guarded ORDER BY v"),
			stmt("SELECT COUNT(*) FROM child"))
		for j := range final {
			final[j].Seconds = 0
		}
		return got, final
	}
	want, wantFinal := apply(1)
	for _, size := range []int{2, 3, 5, 8, len(logs)} {
		t.Run(fmt.Sprintf("Batch%d", size), func(t *testing.T) {
			got, final := apply(size)
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("entry %d %v:\n got %+v\nwant %+v", i, entries[i], got[i], want[i])
				}
			}
			if !reflect.DeepEqual(final, wantFinal) {
				t.Errorf("final data:\n got %+v\nwant %+v", final, wantFinal)
			}
		})
	}
	// The log above must really exercise failures.
	if want[4][0].Error == "" || want[8][0].Error == "" || want[11][0].Error == "" {
		t.Fatalf("expected failures did not happen: %+v %+v %+v", want[4], want[8], want[11])
	}
}
