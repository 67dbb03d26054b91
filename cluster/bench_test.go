package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cairndb/cairn/statemachine/command"
)

// BenchmarkNode_QueryWeak measures a point read at level weak on a
// single-node cluster, without HTTP.
func BenchmarkNode_QueryWeak(b *testing.B) {
	n := mustOpenNode(b, b.TempDir(), freeAddr(b))
	ctx := context.Background()
	mustExecute(b, n, "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
	for range 100 {
		mustExecute(b, n, "INSERT INTO t (k, v) VALUES (1, 'value')")
	}
	p, _ := command.NewParam("", int64(5))
	r := &command.Request{Statements: []*command.Statement{{Sql: "SELECT id, k, v FROM t WHERE id = ?", Params: []*command.Param{p}}}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.Query(ctx, r, QueryOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkNode_Execute measures single-statement writes from many
// goroutines on a single-node cluster: Raft batches them into shared log
// appends (group commit).
func BenchmarkNode_Execute(b *testing.B) {
	n := mustOpenNode(b, b.TempDir(), freeAddr(b))
	ctx := context.Background()
	mustExecute(b, n, "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := req(fmt.Sprintf("INSERT INTO t (k, v) VALUES (%d, 'value')", seq.Add(1)))
			if _, err := n.Execute(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
