//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

const acksTable = `["CREATE TABLE IF NOT EXISTS acks (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"]`

// TestCluster_WritesThroughEveryNode writes through each node of a real
// three-node cluster, followers included, and checks every row on every
// node's local copy, with rqlite's response shapes kept across forwarding.
func TestCluster_WritesThroughEveryNode(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	follower := c.followers()[0]
	follower.execute(acksTable)

	var want []int64
	for i, n := range c.nodes {
		for j := range 20 {
			id := int64(i*1000 + j)
			r := n.execute(fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, ?)", %d, "via node %d"]]`, id, i+1))
			if len(r.Results) != 1 || r.Results[0].RowsAffected != 1 || r.Results[0].LastInsertID != id {
				t.Fatalf("insert via node %d: %+v", i+1, r.Results)
			}
			want = append(want, id)
		}
	}
	c.waitConverged(want, 15*time.Second)

	t.Run("ForwardedShapes", func(t *testing.T) {
		code, r, raw := follower.do("POST", "/db/execute", `["INSERT INTO nope VALUES (1)", ["INSERT INTO acks (id, payload) VALUES (?, ?)", 99999, "x"]]`)
		if code != http.StatusOK || len(r.Results) != 2 || !strings.Contains(r.Results[0].Error, "no such table") || r.Results[1].LastInsertID != 99999 {
			t.Fatalf("forwarded execute: HTTP %d: %s", code, raw)
		}
		code, _, raw = follower.do("POST", "/db/query?associative&level=strong", `["SELECT id, payload FROM acks WHERE id = 99999"]`)
		if code != http.StatusOK || !strings.Contains(string(raw), `"rows":[{"id":99999,"payload":"x"}]`) {
			t.Fatalf("forwarded query: HTTP %d: %s", code, raw)
		}
		code, _, raw = follower.do("POST", "/db/query", `["DELETE FROM acks"]`)
		if code != http.StatusBadRequest {
			t.Fatalf("write via /db/query on a follower: HTTP %d: %s", code, raw)
		}
	})

	t.Run("ReadLevelsOnEveryNode", func(t *testing.T) {
		want := fmt.Sprint(len(want) + 1)
		for _, n := range c.nodes {
			// A follower's own copy may trail the leader by a moment.
			waitFor(t, 10*time.Second, "node "+n.http+" to apply the last write", func() bool {
				return fmt.Sprint(n.query("SELECT COUNT(*) FROM acks", "none").Values[0][0]) == want
			})
			for _, level := range []string{"none", "weak", "linearizable", "strong"} {
				q := n.query("SELECT COUNT(*) FROM acks", level)
				if got := fmt.Sprint(q.Values[0][0]); got != want {
					t.Errorf("node %s level %s: count %s, want %s", n.http, level, got, want)
				}
			}
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Post(follower.url("/db/execute?redirect"), "application/json", strings.NewReader(`["SELECT 1"]`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || !strings.Contains(resp.Header.Get("Location"), leader.http) {
			t.Errorf("?redirect on a follower: HTTP %d Location %q, want 301 to %s", resp.StatusCode, resp.Header.Get("Location"), leader.http)
		}
	})
}

// TestCluster_KillLeaderUnderLoad kills -9 the leader during a stream of
// writes sent to the followers: a new leader takes over within seconds, no
// acknowledged write is lost on the survivors, and the old leader catches
// up when it comes back.
func TestCluster_KillLeaderUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	fs := c.followers()
	fs[0].execute(acksTable)

	writers := make([]*writer, len(fs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(fs))
	for i, f := range fs {
		writers[i] = &writer{n: f}
		go func() {
			defer func() { done <- struct{}{} }()
			// Keep writing across the failover: a failed request is retried
			// by starting a new run.
			for run := int64(0); ctx.Err() == nil; run++ {
				writers[i].run(ctx, 4, int64(i+1)*1_000_000_000+run*10_000_000)
			}
		}()
	}
	acked := func() int {
		n := 0
		for _, w := range writers {
			n += len(w.ackedIDs())
		}
		return n
	}
	waitFor(t, 30*time.Second, "300 acknowledged writes", func() bool { return acked() >= 300 })
	killedAt := time.Now()
	leader.kill()
	before := acked()
	newLeader := c.leader(15 * time.Second)
	waitFor(t, 15*time.Second, "writes after the failover", func() bool { return acked() > before+50 })
	t.Logf("old leader %s killed; new leader %s; writes flowing again %s after the kill", leader.http, newLeader.http, time.Since(killedAt).Round(time.Millisecond))
	cancel()
	for range fs {
		<-done
	}

	var all []int64
	for _, w := range writers {
		all = append(all, w.ackedIDs()...)
	}
	c.waitConverged(all, 15*time.Second)

	leader.start()
	c.waitConverged(all, 30*time.Second)
	t.Logf("%d acknowledged writes, all present on every node, including the restarted one", len(all))
}

// TestCluster_WipedNodeCatchesUpBySnapshot wipes a follower's data dir
// while the cluster moves on past its log retention; the node comes back
// empty and is refilled through a snapshot install.
func TestCluster_WipedNodeCatchesUpBySnapshot(t *testing.T) {
	c := newCluster(t, 3, withEnv("CAIRN_CLUSTER_SNAPSHOT_THRESHOLD=50", "CAIRN_CLUSTER_TRAILING_LOGS=10", "CAIRN_CLUSTER_SNAPSHOT_INTERVAL=100ms"))
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)
	victim := c.followers()[0]
	victim.stop()
	if err := os.RemoveAll(victim.dataDir); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i := range 300 {
		leader.execute(fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, 'x')", %d]]`, i))
		want = append(want, int64(i))
	}
	waitFor(t, 30*time.Second, "the leader's snapshot", func() bool {
		st, ok := leader.state()
		return ok && st.Snapshot > 100
	})
	victim.start()
	c.waitConverged(want, 30*time.Second)
	st, _ := victim.state()
	if st.Snapshot == 0 {
		t.Errorf("the wiped node caught up without a snapshot install: %+v", st)
	}
	if got := scrapeMetrics(t, victim, "").sum("cairn_raft_snapshots_installed_total"); got < 1 {
		t.Errorf("cairn_raft_snapshots_installed_total on the wiped node = %v, want ≥ 1", got)
	}
	if got := scrapeMetrics(t, leader, "").sum("cairn_raft_snapshots_total"); got < 1 {
		t.Errorf("cairn_raft_snapshots_total on the leader = %v, want ≥ 1", got)
	}
}

// TestCluster_SIGTERMHandsOverLeadership stops the leader with SIGTERM: it
// transfers leadership before it exits, so writes through the other nodes
// resume quickly, and it exits cleanly.
func TestCluster_SIGTERMHandsOverLeadership(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)
	other := c.followers()[0]

	start := time.Now()
	leader.signal(syscall.SIGTERM)
	// First successful write through another node after the signal.
	var window time.Duration
	for i := 0; ; i++ {
		code, r, _ := other.do("POST", "/db/execute", fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, 'after')", %d]]`, 500000+i))
		if code == http.StatusOK && len(r.Results) == 1 && r.Results[0].Error == "" {
			window = time.Since(start)
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no write succeeded within 20s of SIGTERM to the leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := leader.wait(30 * time.Second); err != nil {
		t.Fatalf("leader did not exit cleanly: %v", err)
	}
	log, _ := os.ReadFile(leader.logPath)
	if !strings.Contains(string(log), "leadership transferred") {
		t.Errorf("the leader's log does not show a leadership transfer")
	}
	t.Logf("write-unavailability window after SIGTERM to the leader: %s", window.Round(time.Millisecond))
}

// TestCluster_WrongSecretRefused starts a cluster in which one node has the
// wrong secret: the other two refuse it (and say so without printing any
// secret), and keep serving.
func TestCluster_WrongSecretRefused(t *testing.T) {
	nodes := []*node{newNode(t), newNode(t), newNode(t)}
	var members []string
	for i, n := range nodes {
		members = append(members, fmt.Sprintf("%d %s %s", i+1, n.raft, n.http))
	}
	const wrong = "not-the-cluster-secret-at-all"
	for i, n := range nodes {
		secret := testSecret
		if i == 2 {
			secret = wrong
		}
		n.env = append(n.env, fmt.Sprintf("CAIRN_NODE_ID=%d", i+1), "CAIRN_CLUSTER_NODES="+strings.Join(members, ","), "CAIRN_CLUSTER_SECRET="+secret)
		n.startNoWait()
	}
	c := &testCluster{t: t, nodes: nodes[:2]}
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)
	leader.execute(`[["INSERT INTO acks (id, payload) VALUES (1, 'ok')"]]`)
	c.waitConverged([]int64{1}, 10*time.Second)

	waitFor(t, 20*time.Second, "a refusal in the logs", func() bool {
		for _, n := range nodes {
			b, _ := os.ReadFile(n.logPath)
			if strings.Contains(string(b), "secret") && strings.Contains(strings.ToLower(string(b)), "refus") {
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		b, _ := os.ReadFile(n.logPath)
		if strings.Contains(string(b), testSecret) || strings.Contains(string(b), wrong) {
			t.Errorf("node %s logged a secret", n.http)
		}
	}
	if st, ok := nodes[2].state(); ok && st.Applied > 0 && st.LeaderID != "" {
		t.Errorf("the node with the wrong secret joined: %+v", st)
	}
}

// membersOf reads the member ids the node's /status lists.
func membersOf(t *testing.T, n *node) []string {
	t.Helper()
	st := n.status()
	cairn, _ := st["cairn"].(map[string]any)
	ms, _ := cairn["members"].([]any)
	var ids []string
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		id, _ := mm["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// TestCluster_GrowAndShrinkUnderWrites grows a three-node cluster to five
// (the new nodes find the cluster and join it) and shrinks it back with
// `cairn cluster remove`, all while writes run; the removed nodes keep
// running and do not disturb the cluster, and no acknowledged write is lost.
func TestCluster_GrowAndShrinkUnderWrites(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)
	entry := c.nodes[0]

	w := &writer{n: entry}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for run := int64(1); ctx.Err() == nil; run++ {
			w.run(ctx, 4, run*10_000_000)
		}
	}()
	defer func() { cancel(); <-done }()

	extra := []*node{newNode(t), newNode(t)}
	var members []string
	for i, n := range append(append([]*node{}, c.nodes...), extra...) {
		members = append(members, fmt.Sprintf("%d %s %s", i+1, n.raft, n.http))
	}
	for i, n := range extra {
		n.env = append(n.env, fmt.Sprintf("CAIRN_NODE_ID=%d", i+4), "CAIRN_CLUSTER_NODES="+strings.Join(members, ","), "CAIRN_CLUSTER_SECRET="+testSecret)
		n.startNoWait()
	}
	for _, n := range extra {
		n.waitReady(60 * time.Second)
	}
	waitFor(t, 30*time.Second, "five members", func() bool { return len(membersOf(t, leader)) == 5 })
	before := len(w.ackedIDs())
	waitFor(t, 30*time.Second, "writes with five members", func() bool { return len(w.ackedIDs()) > before+100 })
	all := append(append([]*node{}, c.nodes...), extra...)
	(&testCluster{t: t, nodes: all}).waitConverged(w.ackedIDs(), 30*time.Second)

	env := []string{"CAIRN_CLUSTER_SECRET=" + testSecret}
	for _, id := range []string{"5", "4"} {
		out, code := runCairn(t, t.TempDir(), env, "cluster", "remove", id, "--addr", entry.http)
		if code != 0 {
			t.Fatalf("cairn cluster remove %s: exit %d: %s", id, code, out)
		}
	}
	waitFor(t, 30*time.Second, "three members", func() bool { return len(membersOf(t, leader)) == 3 })
	before = len(w.ackedIDs())
	waitFor(t, 30*time.Second, "writes after the shrink", func() bool { return len(w.ackedIDs()) > before+200 })
	// The removed nodes keep running; they must never lead the remaining
	// cluster nor be counted in it again.
	remaining := &testCluster{t: t, nodes: c.nodes}
	if l := remaining.leader(30 * time.Second); l == extra[0] || l == extra[1] {
		t.Errorf("a removed node leads the cluster")
	}
	if got := membersOf(t, remaining.leader(30*time.Second)); len(got) != 3 {
		t.Errorf("members after the shrink: %v", got)
	}

	out, code := runCairn(t, t.TempDir(), nil, "cluster", "status", "--addr", entry.http, "--json")
	if code != 0 || strings.Count(out, `"id"`) != 3 {
		t.Errorf("cairn cluster status: exit %d: %s", code, out)
	}
	cancel()
	<-done
	c.waitConverged(w.ackedIDs(), 30*time.Second)
	t.Logf("%d acknowledged writes across the grow and shrink, all on the three remaining nodes", len(w.ackedIDs()))
}
