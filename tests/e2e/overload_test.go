//go:build integration

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowQuery takes a few tens of milliseconds of CPU on SQLite.
const slowQuery = `["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 80000) SELECT COUNT(*) FROM c"]`

// TestOverload_ShedsAndRecovers floods a node that runs at most two
// statement calls at once with 64 clients running slow queries: every
// call either succeeds or is refused quickly with 503 and Retry-After,
// the probes keep answering promptly, and once the flood ends the node
// serves normally.
func TestOverload_ShedsAndRecovers(t *testing.T) {
	const (
		clients      = 64
		queueTimeout = 100 * time.Millisecond
		// A refusal comes after the queue timeout; "quickly" leaves a
		// second for a busy two-core machine on top of it.
		refusalBound = queueTimeout + time.Second
		probeBound   = time.Second
	)
	n := newNode(t, withEnv("CAIRN_HTTP_MAX_CONCURRENT=2", "CAIRN_HTTP_QUEUE_TIMEOUT="+queueTimeout.String()))
	n.start()
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: clients + 8, MaxIdleConnsPerHost: clients + 8},
	}
	defer client.CloseIdleConnections()

	var (
		ok, refused    atomic.Int64
		slowestRefusal atomic.Int64 // nanoseconds
		unexpectedMu   sync.Mutex
		unexpected     []string
		// stop ends the flood: each client finishes the call it is in, so
		// that every answer is read and counted.
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	defer stop.Store(true)
	fail := func(msg string) {
		unexpectedMu.Lock()
		defer unexpectedMu.Unlock()
		if len(unexpected) < 10 {
			unexpected = append(unexpected, msg)
		}
	}
	for range clients {
		wg.Go(func() {
			for !stop.Load() {
				req, err := http.NewRequest(http.MethodPost, n.url("/db/query"), strings.NewReader(slowQuery))
				if err != nil {
					fail(err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail("request failed: " + err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusServiceUnavailable:
					refused.Add(1)
					for d := took.Nanoseconds(); ; {
						cur := slowestRefusal.Load()
						if d <= cur || slowestRefusal.CompareAndSwap(cur, d) {
							break
						}
					}
					if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
						fail("503 without a Retry-After in seconds: " + resp.Header.Get("Retry-After"))
					}
					var e struct{ Error string }
					if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "http.max_concurrent") {
						fail("503 that does not name the limit: " + string(body))
					}
				default:
					fail(resp.Status + ": " + string(body))
				}
			}
		})
	}

	// While the flood runs, the probes answer promptly.
	var slowestProbe time.Duration
	probe := func(path string) {
		start := time.Now()
		resp, err := client.Get(n.url(path))
		if err != nil {
			t.Errorf("GET %s during the flood: %v", path, err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		slowestProbe = max(slowestProbe, d)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s during the flood: %s", path, resp.Status)
		}
		if d > probeBound {
			t.Errorf("GET %s during the flood took %s", path, d)
		}
	}
	waitFor(t, 60*time.Second, "the flood to be shed and served", func() bool {
		probe("/livez")
		probe("/readyz")
		return refused.Load() >= 100 && ok.Load() >= 20
	})
	stop.Store(true)
	wg.Wait()

	t.Logf("%d calls served, %d refused; slowest refusal %s, slowest probe %s",
		ok.Load(), refused.Load(), time.Duration(slowestRefusal.Load()), slowestProbe)
	for _, u := range unexpected {
		t.Errorf("unexpected answer: %s", u)
	}
	if d := time.Duration(slowestRefusal.Load()); d > refusalBound {
		t.Errorf("the slowest refusal took %s, more than %s", d, refusalBound)
	}

	// Every refusal was counted, and nothing is left running or queued.
	var m metricFamilies
	waitFor(t, 10*time.Second, "no statement call in flight", func() bool {
		m = scrapeMetrics(t, n, "")
		return m.sum("cairn_statement_calls_in_flight") == 0 && m.sum("cairn_statement_calls_queued") == 0
	})
	if got := m.sum("cairn_load_shed_total", "reason", "concurrency"); got != float64(refused.Load()) {
		t.Errorf("cairn_load_shed_total{reason=concurrency} = %v, want the %d refusals seen", got, refused.Load())
	}
	if got := m.sum("cairn_http_requests_total", "endpoint", "/db/query", "code", "503"); got != float64(refused.Load()) {
		t.Errorf("cairn_http_requests_total{/db/query, 503} = %v, want %d", got, refused.Load())
	}

	// After the flood, the node serves normally.
	n.execute(`["CREATE TABLE after_flood (id INTEGER PRIMARY KEY)", "INSERT INTO after_flood VALUES (1)"]`)
	if got := n.query("SELECT COUNT(*) FROM after_flood", "weak"); len(got.Values) != 1 || got.Values[0][0].(json.Number).String() != "1" {
		t.Errorf("after the flood: %v", got.Values)
	}
}
