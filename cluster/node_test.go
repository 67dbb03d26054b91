package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testNode is a single-node cluster on loopback with its data in dir.
type testNode struct {
	*Node
	db   *statemachine.DB
	dir  string
	addr string
}

func mustOpenNode(t testing.TB, dir, addr string) *testNode {
	t.Helper()
	db, err := statemachine.OpenFresh(filepath.Join(dir, "state_machine", "db", "cairn.db"))
	if err != nil {
		t.Fatal(err)
	}
	n := New(Config{
		ID:               "1",
		DataDir:          dir,
		RaftAddr:         addr,
		HTTPAdvertise:    "127.0.0.1:4001",
		Members:          []Member{{ID: "1", RaftAddr: addr, HTTPAddr: "127.0.0.1:4001", Voter: true}},
		HeartbeatTimeout: 50 * time.Millisecond,
		ElectionTimeout:  50 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, db)
	if err := n.Open(context.Background()); err != nil {
		db.Close()
		t.Fatalf("open node: %v", err)
	}
	tn := &testNode{Node: n, db: db, dir: dir, addr: addr}
	t.Cleanup(tn.close)
	waitReady(t, n)
	return tn
}

func (tn *testNode) close() {
	tn.Node.Close(context.Background())
	tn.db.Close()
}

func waitReady(t testing.TB, n *Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.Ready(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func req(sqls ...string) *command.Request {
	r := &command.Request{}
	for _, s := range sqls {
		r.Statements = append(r.Statements, &command.Statement{Sql: s})
	}
	return r
}

func mustExecute(t testing.TB, n *testNode, sqls ...string) []command.Result {
	t.Helper()
	res, err := n.Execute(context.Background(), req(sqls...))
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	for i, r := range res {
		if r.Error != "" {
			t.Fatalf("statement %d: %s", i, r.Error)
		}
	}
	return res
}

func TestNode_ExecuteAndReadLevels(t *testing.T) {
	n := mustOpenNode(t, t.TempDir(), freeAddr(t))
	mustExecute(t, n, "CREATE TABLE t (id INTEGER PRIMARY KEY, r INTEGER, ts TEXT)", "INSERT INTO t (r, ts) VALUES (RANDOM(), CURRENT_TIMESTAMP)")

	var first string
	for _, level := range []command.Level{command.LevelNone, command.LevelWeak, command.LevelLinearizable, command.LevelStrong} {
		t.Run(level.String(), func(t *testing.T) {
			res, err := n.Query(context.Background(), req("SELECT r, ts FROM t"), QueryOptions{Level: level})
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if len(res) != 1 || len(res[0].Values) != 1 {
				t.Fatalf("results = %+v", res)
			}
			got := fmt.Sprint(res[0].Values)
			if first == "" {
				first = got
			} else if got != first {
				t.Errorf("level %s read %s, earlier levels read %s", level, got, first)
			}
		})
	}
}

func TestNode_QueryRefusesWrites(t *testing.T) {
	n := mustOpenNode(t, t.TempDir(), freeAddr(t))
	mustExecute(t, n, "CREATE TABLE t (v)")
	_, err := n.Query(context.Background(), req("SELECT 1", "INSERT INTO t VALUES (1)"), QueryOptions{})
	if !errors.Is(err, ErrNotReadOnly) {
		t.Fatalf("err = %v, want ErrNotReadOnly", err)
	}
	res, err := n.Query(context.Background(), req("SELECT COUNT(*) FROM t"), QueryOptions{Level: command.LevelStrong})
	if err != nil || res[0].Values[0][0] != int64(0) {
		t.Fatalf("count after refused write = %v, %v", res, err)
	}
}

func TestNode_RequestMixesReadsAndWrites(t *testing.T) {
	n := mustOpenNode(t, t.TempDir(), freeAddr(t))
	mustExecute(t, n, "CREATE TABLE t (v TEXT)")
	res, err := n.Request(context.Background(), req("INSERT INTO t VALUES ('a') RETURNING v", "SELECT COUNT(*) FROM t"), QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Values[0][0] != "a" || res[1].Values[0][0] != int64(1) {
		t.Fatalf("results = %+v", res)
	}
}

func TestNode_RestartRecoversEverything(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := mustOpenNode(t, dir, addr)
	mustExecute(t, n, "CREATE TABLE t (v INTEGER)")
	for i := range 50 {
		mustExecute(t, n, fmt.Sprintf("INSERT INTO t VALUES (%d)", i))
	}
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	mustExecute(t, n, "INSERT INTO t VALUES (50)")
	n.close()

	n2 := mustOpenNode(t, dir, addr)
	res, err := n2.Query(context.Background(), req("SELECT COUNT(*), SUM(v) FROM t"), QueryOptions{Level: command.LevelStrong})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Values[0][0] != int64(51) || res[0].Values[0][1] != int64(50*51/2) {
		t.Fatalf("after restart: %v", res[0].Values)
	}
}

func TestNode_Closed(t *testing.T) {
	n := mustOpenNode(t, t.TempDir(), freeAddr(t))
	n.close()
	if _, err := n.Execute(context.Background(), req("SELECT 1")); !errors.Is(err, ErrClosed) {
		t.Errorf("execute after close: %v", err)
	}
	if _, err := n.Query(context.Background(), req("SELECT 1"), QueryOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("query after close: %v", err)
	}
	if err := n.Ready(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("ready after close: %v", err)
	}
}

func TestNode_RaftError(t *testing.T) {
	var n Node
	cases := []struct {
		name  string
		err   error
		write bool
		want  error
	}{
		{"NotLeader", raft.ErrNotLeader, true, ErrNotLeader},
		{"EnqueueTimeout", raft.ErrEnqueueTimeout, true, ErrTimeout},
		{"LeadershipLostWrite", raft.ErrLeadershipLost, true, ErrUnknownOutcome},
		{"ShutdownWrite", raft.ErrRaftShutdown, true, ErrUnknownOutcome},
		{"DeadlineWrite", context.DeadlineExceeded, true, ErrUnknownOutcome},
		{"LeadershipLostRead", raft.ErrLeadershipLost, false, ErrNoLeader},
		{"ShutdownRead", raft.ErrRaftShutdown, false, ErrClosed},
		{"TransferInProgress", raft.ErrLeadershipTransferInProgress, true, ErrNoLeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := n.raftError("apply", c.err, c.write); !errors.Is(got, c.want) {
				t.Errorf("raftError(%v, write=%v) = %v, want %v", c.err, c.write, got, c.want)
			}
		})
	}
}
