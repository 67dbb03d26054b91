//go:build integration

package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOps_SIGTERMLeaderUnderLoad stops the leader with SIGTERM while
// writes flow through every node: it hands leadership over and exits
// cleanly, and no acknowledged write is lost, on the survivors nor on the
// old leader once it is back.
func TestOps_SIGTERMLeaderUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)

	load := startLoad(t, "INSERT INTO acks (id, payload) VALUES (?, ?)", 6, c.nodes...)
	load.waitMore(200, 30*time.Second, "writes before SIGTERM")
	leader.signal(syscall.SIGTERM)
	if err := leader.wait(30 * time.Second); err != nil {
		t.Fatalf("the leader did not exit cleanly on SIGTERM: %v", err)
	}
	load.waitMore(200, 30*time.Second, "writes after the hand-over")
	acked := load.stop()
	t.Logf("%d writes acknowledged, %d failed (refused or cut off by the stop)", len(acked), load.failures.Load())

	for _, n := range c.running() {
		n := n
		waitFor(t, 30*time.Second, "survivor "+n.http+" to hold every acknowledged write", func() bool {
			got := idsAt(t, n, "none")
			for _, id := range acked {
				if !got[id] {
					return false
				}
			}
			return true
		})
	}
	leader.start()
	waitFor(t, 30*time.Second, "the old leader to catch up", func() bool {
		got := idsAt(t, leader, "none")
		for _, id := range acked {
			if !got[id] {
				return false
			}
		}
		return true
	})
}

// TestOps_ProbesWhenQuorumIsLost stops two of three nodes: the last one
// stays live (/livez 200), is not ready (/readyz 503) and unhealthy
// (/healthz 503 naming the lost quorum); with a second node back, all
// three probes pass again.
func TestOps_ProbesWhenQuorumIsLost(t *testing.T) {
	c := newCluster(t, 3, withEnv("CAIRN_HTTP_ACCESS_LOG=true"))

	// On the way: a write through a follower is logged on the leader under
	// the client's request id.
	leader := c.leader(30 * time.Second)
	follower := c.followers()[0]
	req, _ := http.NewRequest("POST", follower.url("/db/execute"), strings.NewReader(`["CREATE TABLE rid (v INTEGER)"]`))
	req.Header.Set("X-Request-Id", "e2e-forwarded-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "e2e-forwarded-42" {
		t.Fatalf("write through a follower: HTTP %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	waitFor(t, 10*time.Second, "the forwarded request in the leader's log", func() bool {
		return strings.Contains(leader.logText(), "request_id=e2e-forwarded-42")
	})

	for _, n := range c.nodes {
		for _, p := range []string{"/livez", "/readyz", "/healthz"} {
			if code, _, raw := n.do("GET", p, ""); code != 200 {
				t.Fatalf("%s on %s with all nodes up: HTTP %d: %s", p, n.http, code, raw)
			}
		}
	}
	last := c.nodes[2]
	c.nodes[0].stop()
	c.nodes[1].stop()

	waitFor(t, 30*time.Second, "/healthz to name the lost quorum", func() bool {
		code, _, raw := last.do("GET", "/healthz", "")
		return code == http.StatusServiceUnavailable && strings.Contains(string(raw), "quorum lost")
	})
	if code, _, raw := last.do("GET", "/livez", ""); code != 200 {
		t.Fatalf("/livez without quorum: HTTP %d: %s", code, raw)
	}
	code, _, raw := last.do("GET", "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(raw), "leader not ok") {
		t.Fatalf("/readyz without quorum: HTTP %d: %s", code, raw)
	}
	if code, _, raw := last.do("GET", "/readyz?noleader", ""); code != 200 {
		t.Fatalf("/readyz?noleader without quorum: HTTP %d: %s", code, raw)
	}

	c.nodes[0].start()
	for _, n := range c.running() {
		n.waitReady(30 * time.Second)
		waitFor(t, 30*time.Second, "/healthz of "+n.http+" to pass again", func() bool {
			code, _, _ := n.do("GET", "/healthz", "")
			return code == 200
		})
	}
}
