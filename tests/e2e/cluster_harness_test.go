//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testSecret is the cluster secret of test clusters.
const testSecret = "e2e-cluster-secret-0123456789"

// testCluster is a set of cairn processes that were given the same
// cluster.nodes.
type testCluster struct {
	t     *testing.T
	nodes []*node
}

// newCluster prepares n nodes (ids 1..n) with identical membership and
// starts them all; extra options apply to every node.
func newCluster(t *testing.T, size int, opts ...nodeOption) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for range size {
		c.nodes = append(c.nodes, newNode(t, opts...))
	}
	var members []string
	for i, n := range c.nodes {
		members = append(members, fmt.Sprintf("%d %s %s", i+1, n.raft, n.http))
	}
	for i, n := range c.nodes {
		n.env = append(n.env,
			fmt.Sprintf("CAIRN_NODE_ID=%d", i+1),
			"CAIRN_CLUSTER_NODES="+strings.Join(members, ","),
			"CAIRN_CLUSTER_SECRET="+testSecret,
		)
	}
	for _, n := range c.nodes {
		n.startNoWait()
	}
	for _, n := range c.nodes {
		n.waitReady(60 * time.Second)
	}
	return c
}

// nodeState is what the tests read of a node's /status.
type nodeState struct {
	ID       string
	State    string
	LeaderID string
	Term     uint64
	Applied  uint64
	Commit   uint64
	Snapshot uint64
}

// state reads a node's /status; ok is false when the node does not answer.
func (n *node) state() (nodeState, bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(n.url("/status"))
	if err != nil {
		return nodeState{}, false
	}
	defer resp.Body.Close()
	var st struct {
		Cairn struct {
			NodeID string `json:"node_id"`
			State  string `json:"state"`
			Leader struct {
				ID string `json:"id"`
			} `json:"leader"`
			Term         uint64 `json:"term"`
			CommitIndex  uint64 `json:"commit_index"`
			AppliedIndex uint64 `json:"applied_index"`
			Snapshot     uint64 `json:"last_snapshot_index"`
		} `json:"cairn"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nodeState{}, false
	}
	c := st.Cairn
	return nodeState{ID: c.NodeID, State: c.State, LeaderID: c.Leader.ID, Term: c.Term, Applied: c.AppliedIndex, Commit: c.CommitIndex, Snapshot: c.Snapshot}, true
}

// leader waits until the running nodes agree on a leader and returns it.
func (c *testCluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	var found *node
	waitFor(c.t, timeout, "a leader all running nodes agree on", func() bool {
		found = nil
		leaderID := ""
		for _, n := range c.running() {
			st, ok := n.state()
			if !ok || st.LeaderID == "" || (leaderID != "" && st.LeaderID != leaderID) {
				return false
			}
			leaderID = st.LeaderID
			if st.State == "Leader" {
				found = n
			}
		}
		return found != nil
	})
	return found
}

// followers returns the running nodes other than the leader.
func (c *testCluster) followers() []*node {
	c.t.Helper()
	l := c.leader(30 * time.Second)
	var fs []*node
	for _, n := range c.running() {
		if n != l {
			fs = append(fs, n)
		}
	}
	return fs
}

// running returns the nodes whose process is up.
func (c *testCluster) running() []*node {
	var rs []*node
	for _, n := range c.nodes {
		n.mu.Lock()
		up := n.cmd != nil
		n.mu.Unlock()
		if up {
			rs = append(rs, n)
		}
	}
	return rs
}

// idsAt reads every id of table acks through one node at a read level
// ("none": that node's own copy); a node that has not received the table
// yet has none.
func idsAt(t testing.TB, n *node, level string) map[int64]bool {
	t.Helper()
	code, r, raw := n.do("POST", "/db/query?level="+level, `["SELECT id FROM acks"]`)
	if code == http.StatusOK && len(r.Results) == 1 && strings.Contains(r.Results[0].Error, "no such table") {
		return map[int64]bool{}
	}
	if code != http.StatusOK || len(r.Results) != 1 || r.Results[0].Error != "" {
		t.Fatalf("read ids on %s: HTTP %d: %s", n.http, code, raw)
	}
	ids := make(map[int64]bool, len(r.Results[0].Values))
	for _, row := range r.Results[0].Values {
		v, err := row[0].(json.Number).Int64()
		if err != nil {
			t.Fatalf("id %v: %v", row[0], err)
		}
		ids[v] = true
	}
	return ids
}

// waitConverged waits until every running node's local copy of acks holds
// every id in want, and fails naming the first missing id otherwise.
func (c *testCluster) waitConverged(want []int64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, n := range c.running() {
		for {
			have := idsAt(c.t, n, "none")
			missing := int64(-1)
			for _, id := range want {
				if !have[id] {
					missing = id
					break
				}
			}
			if missing < 0 {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %s lacks acknowledged id %d (has %d rows, want at least %d)", n.http, missing, len(have), len(want))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
