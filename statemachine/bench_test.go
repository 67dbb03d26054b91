package statemachine

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine/command"
)

// insertEntries encodes n log entries of one parameterised INSERT each.
func insertEntries(b *testing.B, n int) []*raft.Log {
	b.Helper()
	logs := make([]*raft.Log, n)
	for i := range logs {
		k, _ := command.NewParam("", int64(i))
		v, _ := command.NewParam("", fmt.Sprintf("value-%d", i))
		data, err := command.Encode(command.Type_TYPE_EXECUTE, &command.Request{Statements: []*command.Statement{
			{Sql: "INSERT INTO bench (k, v) VALUES (?, ?)", Params: []*command.Param{k, v}},
		}})
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &raft.Log{Index: uint64(i + 2), Type: raft.LogCommand, Data: data}
	}
	return logs
}

func mustBenchFSM(b *testing.B) *FSM {
	b.Helper()
	db, err := OpenFresh(filepath.Join(b.TempDir(), "db", "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	f := NewFSM(db, b.TempDir(), nil)
	create, _ := command.Encode(command.Type_TYPE_EXECUTE, &command.Request{Statements: []*command.Statement{
		{Sql: "CREATE TABLE bench (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)"},
	}})
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: create})
	return f
}

// BenchmarkFSM_Apply applies single-INSERT entries one at a time, as
// raft.FSM.Apply does.
func BenchmarkFSM_Apply(b *testing.B) {
	f := mustBenchFSM(b)
	logs := insertEntries(b, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if r := f.Apply(logs[i]).(*ApplyResult); r.Err != nil || r.Results[0].Error != "" {
			b.Fatalf("apply: %+v", r)
		}
	}
}

// BenchmarkFSM_ApplyBatch applies the same entries in batches of 32, as
// Raft hands them over under concurrent load.
func BenchmarkFSM_ApplyBatch(b *testing.B) {
	f := mustBenchFSM(b)
	logs := insertEntries(b, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		batch := logs[i:min(i+32, b.N)]
		for _, r := range f.ApplyBatch(batch) {
			if r := r.(*ApplyResult); r.Err != nil || r.Results[0].Error != "" {
				b.Fatalf("apply: %+v", r)
			}
		}
	}
}
