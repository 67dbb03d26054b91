//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// writer inserts rows with unique ids from several goroutines and records
// every id whose insert was acknowledged (HTTP 200, no statement error).
type writer struct {
	n       *node
	mu      sync.Mutex
	acked   []int64
	unknown int
}

func (w *writer) ackedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// run writes until ctx ends or the node stops answering.
func (w *writer) run(ctx context.Context, workers int, base int64) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ctx.Err() == nil; i++ {
				id := base + int64(g)*1_000_000 + i
				body := fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, ?)", %d, "row-%d"]]`, id, id)
				resp, err := client.Post(w.n.url("/db/execute"), "application/json", strings.NewReader(body))
				if err != nil {
					return // the node is gone: the outcome of this one is unknown
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r response
				if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &r) != nil || len(r.Results) != 1 || r.Results[0].Error != "" {
					w.mu.Lock()
					w.unknown++
					w.mu.Unlock()
					return
				}
				w.mu.Lock()
				w.acked = append(w.acked, id)
				w.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDurability_KillDuringWrites kills -9 a node in the middle of a stream
// of concurrent writes, three times, and checks after each restart that
// every acknowledged row is there.
func TestDurability_KillDuringWrites(t *testing.T) {
	n := newNode(t, withEnv("CAIRN_CLUSTER_SNAPSHOT_THRESHOLD=500", "CAIRN_CLUSTER_TRAILING_LOGS=100", "CAIRN_CLUSTER_SNAPSHOT_INTERVAL=200ms"))
	n.start()
	n.execute(`["CREATE TABLE acks (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"]`)

	var all []int64
	for cycle := range 3 {
		w := &writer{n: n}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.run(ctx, 8, int64(cycle)*100_000_000)
		}()
		// Let a good number of writes through, then pull the plug while
		// they are still flowing.
		target := 300 * (cycle + 1)
		waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged writes", target), func() bool { return len(w.ackedIDs()) >= target })
		n.kill()
		cancel()
		<-done
		acked := w.ackedIDs()
		all = append(all, acked...)

		n.start()
		stored := idsAt(t, n, "strong")
		lost := 0
		for _, id := range all {
			if !stored[id] {
				lost++
			}
		}
		t.Logf("cycle %d: %d acknowledged this cycle, %d in all, %d rows stored, %d lost", cycle, len(acked), len(all), len(stored), lost)
		if lost > 0 {
			t.Fatalf("cycle %d: %d of %d acknowledged writes lost after kill -9", cycle, lost, len(all))
		}
	}
}

// status fetches /status as a generic JSON object.
func (n *node) status() map[string]any {
	n.t.Helper()
	resp, err := http.Get(n.url("/status"))
	if err != nil {
		n.t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		n.t.Fatalf("decode status: %v", err)
	}
	return m
}

// TestDurability_RestartAfterSnapshot writes enough to trigger snapshots and
// log truncation, then restarts the node (cleanly, then with kill -9) and
// checks every row is still there.
func TestDurability_RestartAfterSnapshot(t *testing.T) {
	n := newNode(t, withEnv("CAIRN_CLUSTER_SNAPSHOT_THRESHOLD=100", "CAIRN_CLUSTER_TRAILING_LOGS=10", "CAIRN_CLUSTER_SNAPSHOT_INTERVAL=100ms"))
	n.start()
	n.execute(`["CREATE TABLE acks (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"]`)
	const rows = 400
	for i := range rows {
		n.execute(fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, ?)", %d, "row"]]`, i))
	}
	waitFor(t, 30*time.Second, "a snapshot", func() bool {
		idx, _ := lastSnapshotIndex(n.status()).Int64()
		return idx > 100
	})

	for _, restart := range []struct {
		name string
		down func()
	}{{"SIGTERM", n.stop}, {"SIGKILL", n.kill}} {
		restart.down()
		n.start()
		if got := len(idsAt(t, n, "strong")); got != rows {
			t.Fatalf("after %s restart: %d rows, want %d", restart.name, got, rows)
		}
		// The node takes writes again after the restart.
		n.execute(`[["INSERT INTO acks (id, payload) VALUES (?, 'post-restart')", -1]]`)
		n.execute(`["DELETE FROM acks WHERE id = -1"]`)
	}
}

// lastSnapshotIndex reads store.raft.last_snapshot_index from /status.
func lastSnapshotIndex(st map[string]any) json.Number {
	store, _ := st["store"].(map[string]any)
	raft, _ := store["raft"].(map[string]any)
	idx, _ := raft["last_snapshot_index"].(json.Number)
	return idx
}
