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
	"sync/atomic"
	"testing"
	"time"
)

// steadyLoad inserts rows with unique ids into table acks through a set of
// nodes, carrying on through failures (a node that stops, an election, a
// database restart), and records every id whose insert was acknowledged.
// A call that fails with 5xx or a connection error is counted and retried
// with the next id: its outcome is not relied on.
type steadyLoad struct {
	t *testing.T
	// sql is the insert with two placeholders (id, payload).
	sql string

	mu    sync.Mutex
	acked []int64

	failures atomic.Int64
	// slow counts calls that took longer than 10 s: none should.
	slow atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoad runs workers goroutines, spread over nodes, until stop.
func startLoad(t *testing.T, sql string, workers int, nodes ...*node) *steadyLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &steadyLoad{t: t, sql: sql, cancel: cancel}
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range workers {
		n := nodes[w%len(nodes)]
		l.wg.Go(func() {
			for i := int64(0); ctx.Err() == nil; i++ {
				id := int64(w)*1_000_000 + i
				body := fmt.Sprintf(`[[%q, %d, %q]]`, l.sql, id, n.http)
				start := time.Now()
				resp, err := client.Post(n.url("/db/execute"), "application/json", strings.NewReader(body))
				if time.Since(start) > 10*time.Second {
					l.slow.Add(1)
				}
				if err != nil {
					l.failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r response
				if resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &r) == nil && len(r.Results) == 1 && r.Results[0].Error == "" {
					l.mu.Lock()
					l.acked = append(l.acked, id)
					l.mu.Unlock()
					continue
				}
				if resp.StatusCode < 500 {
					t.Errorf("node %s: HTTP %d: %s", n.http, resp.StatusCode, raw)
					return
				}
				l.failures.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return l
}

// count is the number of acknowledged writes so far.
func (l *steadyLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// stop ends the load and returns the acknowledged ids.
func (l *steadyLoad) stop() []int64 {
	l.cancel()
	l.wg.Wait()
	if s := l.slow.Load(); s > 0 {
		l.t.Errorf("%d calls took more than 10 s", s)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.acked...)
}

// waitMore waits until n more writes than now have been acknowledged.
func (l *steadyLoad) waitMore(n int, timeout time.Duration, what string) {
	l.t.Helper()
	base := l.count()
	waitFor(l.t, timeout, what, func() bool { return l.count() >= base+n })
}

// requireIDs fails unless every id is in got.
func requireIDs(t *testing.T, where string, want []int64, got map[int64]bool) {
	t.Helper()
	for _, id := range want {
		if !got[id] {
			t.Fatalf("acknowledged id %d missing %s (%d acknowledged, %d present)", id, where, len(want), len(got))
		}
	}
}
