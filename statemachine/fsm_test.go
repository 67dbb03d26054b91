package statemachine

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine/command"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func mustApply(t *testing.T, f *FSM, index uint64, typ command.Type, stmts ...*command.Statement) *ApplyResult {
	t.Helper()
	b, err := command.Encode(typ, &command.Request{Statements: stmts})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b}).(*ApplyResult)
	if !ok || r.Err != nil {
		t.Fatalf("apply %d: %+v", index, r)
	}
	return r
}

func TestFSM_SnapshotRestore(t *testing.T) {
	db := mustOpenDB(t)
	f := NewFSM(db, filepath.Join(t.TempDir(), "tmp"), nil)
	mustApply(t, f, 1, command.Type_TYPE_EXECUTE, stmt("CREATE TABLE t (v INTEGER)"))
	mustApply(t, f, 2, command.Type_TYPE_EXECUTE, stmt("INSERT INTO t VALUES (1)"), stmt("INSERT INTO t VALUES (2)"))
	if f.LastApplied() != 2 {
		t.Errorf("LastApplied = %d", f.LastApplied())
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Writes after Snapshot returns must not leak into it.
	mustApply(t, f, 3, command.Type_TYPE_EXECUTE, stmt("INSERT INTO t VALUES (3)"))
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()

	db2 := mustOpenDB(t)
	f2 := NewFSM(db2, filepath.Join(t.TempDir(), "tmp"), nil)
	if err := f2.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r := mustApply(t, f2, 3, command.Type_TYPE_QUERY, stmt("SELECT v FROM t ORDER BY v"))
	want := [][]any{{int64(1)}, {int64(2)}}
	if !reflect.DeepEqual(r.Results[0].Values, want) {
		t.Errorf("restored rows = %v, want %v", r.Results[0].Values, want)
	}
}

func TestFSM_ApplyCorruptEntryPanics(t *testing.T) {
	f := NewFSM(mustOpenDB(t), t.TempDir(), nil)
	defer func() {
		if recover() == nil {
			t.Error("a corrupt entry did not panic")
		}
	}()
	f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte{0xff, 0xff, 0xff}})
}

func TestFSM_SQLErrorIsAResult(t *testing.T) {
	f := NewFSM(mustOpenDB(t), t.TempDir(), nil)
	r := mustApply(t, f, 1, command.Type_TYPE_EXECUTE, stmt("INSERT INTO missing VALUES (1)"))
	if r.Results[0].Error == "" {
		t.Error("SQL error not reported in the result")
	}

}
