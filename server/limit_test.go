package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockingStore answers /db/query only once a value is sent on gate (or
// gate is closed); status and ready answer at once.
func blockingStore(gate chan struct{}) *fakeStore {
	return &fakeStore{
		query: func(ctx context.Context, req *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []command.Result{{Columns: []string{"1"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}}}, nil
		},
		status: func(context.Context) (cluster.Status, error) { return cluster.Status{Mode: "raft", NodeID: "1"}, nil },
		ready:  func(context.Context) error { return nil },
	}
}

// startCall serves one request in the background; the recorder is
// complete once done is closed.
func startCall(t *testing.T, h http.Handler, method, target, body string) (rec *httptest.ResponseRecorder, done chan struct{}) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec, done = httptest.NewRecorder(), make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	return rec, done
}

// closeServer closes s at the end of the test, failing it if Close
// does not return promptly (a background goroutine that never stops).
func closeServer(t *testing.T, s *Server) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func TestServer_ConcurrencyLimit(t *testing.T) {
	const query = `["SELECT 1"]`

	t.Run("QueueThenRetryAfter", func(t *testing.T) {
		gate := make(chan struct{})
		const queueTimeout = 50 * time.Millisecond
		s, _ := newTestServer(t, blockingStore(gate), Config{MaxConcurrent: 1, QueueTimeout: queueTimeout})
		closeServer(t, s)
		h := s.Handler()
		first, firstDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the first call to run", func() bool { return s.inFlight.Load() == 1 })

		start := time.Now()
		rec := serve(t, h, http.MethodPost, "/db/query", query)
		waited := time.Since(start)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("second call: status = %d, want 503: %s", rec.Code, rec.Body)
		}
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, "http.max_concurrent") || !strings.Contains(msg, "1 statement requests") {
			t.Errorf("error %q does not name the limit", msg)
		}
		if waited < queueTimeout {
			t.Errorf("refused after %s, before the queue timeout of %s", waited, queueTimeout)
		}

		close(gate)
		<-firstDone
		if first.Code != http.StatusOK {
			t.Errorf("first call: status = %d: %s", first.Code, first.Body)
		}
		fams := scrape(t, h, "")
		if got := metricValue(t, fams, "cairn_load_shed_total", "reason", "concurrency"); got != 1 {
			t.Errorf("cairn_load_shed_total{reason=concurrency} = %v, want 1", got)
		}
		// The slot came back: a new call runs.
		if rec := serve(t, h, http.MethodPost, "/db/query", query); rec.Code != http.StatusOK {
			t.Errorf("call after the flood: status = %d: %s", rec.Code, rec.Body)
		}
	})

	t.Run("QueuedCallGetsTheFreedSlot", func(t *testing.T) {
		gate := make(chan struct{})
		s, _ := newTestServer(t, blockingStore(gate), Config{MaxConcurrent: 1, QueueTimeout: time.Minute})
		closeServer(t, s)
		h := s.Handler()
		first, firstDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the first call to run", func() bool { return s.inFlight.Load() == 1 })
		second, secondDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the second call to queue", func() bool { return s.limit.queued.Load() == 1 })
		if got := metricValue(t, scrape(t, h, ""), "cairn_statement_calls_queued"); got != 1 {
			t.Errorf("cairn_statement_calls_queued = %v, want 1", got)
		}
		gate <- struct{}{} // the first call finishes
		<-firstDone
		gate <- struct{}{} // then the second, which took its slot
		<-secondDone
		for i, rec := range []*httptest.ResponseRecorder{first, second} {
			if rec.Code != http.StatusOK {
				t.Errorf("call %d: status = %d: %s", i, rec.Code, rec.Body)
			}
		}
	})

	t.Run("NoQueue", func(t *testing.T) {
		gate := make(chan struct{})
		s, _ := newTestServer(t, blockingStore(gate), Config{MaxConcurrent: 1})
		closeServer(t, s)
		h := s.Handler()
		_, firstDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the first call to run", func() bool { return s.inFlight.Load() == 1 })
		if rec := serve(t, h, http.MethodPost, "/db/query", query); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status = %d, want 503 at once", rec.Code)
		}
		close(gate)
		<-firstDone
	})

	t.Run("ClientDeadlineWhileQueued", func(t *testing.T) {
		gate := make(chan struct{})
		s, _ := newTestServer(t, blockingStore(gate), Config{MaxConcurrent: 1, QueueTimeout: time.Minute})
		closeServer(t, s)
		h := s.Handler()
		_, firstDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the first call to run", func() bool { return s.inFlight.Load() == 1 })
		rec := serve(t, h, http.MethodPost, "/db/query?timeout=20ms", query)
		if rec.Code != http.StatusGatewayTimeout {
			t.Errorf("status = %d, want 504 (the call's own deadline): %s", rec.Code, rec.Body)
		}
		close(gate)
		<-firstDone
	})

	t.Run("OtherEndpointsExempt", func(t *testing.T) {
		gate := make(chan struct{})
		s, _ := newTestServer(t, blockingStore(gate), Config{MaxConcurrent: 1, QueueTimeout: time.Minute})
		closeServer(t, s)
		h := s.Handler()
		_, firstDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "the first call to run", func() bool { return s.inFlight.Load() == 1 })
		_, queuedDone := startCall(t, h, http.MethodPost, "/db/query", query)
		waitUntil(t, 5*time.Second, "a call to queue", func() bool { return s.limit.queued.Load() == 1 })
		for _, path := range []string{"/livez", "/readyz", "/healthz", "/metrics", "/status"} {
			start := time.Now()
			rec := serve(t, h, http.MethodGet, path, "")
			if rec.Code != http.StatusOK {
				t.Errorf("GET %s under full load: status = %d: %s", path, rec.Code, rec.Body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("GET %s under full load took %s", path, d)
			}
		}
		close(gate)
		<-firstDone
		<-queuedDone
	})

	t.Run("PanicGivesTheSlotBack", func(t *testing.T) {
		var calls atomic.Int32
		store := &fakeStore{query: func(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return []command.Result{}, nil
		}}
		s, _ := newTestServer(t, store, Config{MaxConcurrent: 1})
		closeServer(t, s)
		if rec := serve(t, s.Handler(), http.MethodPost, "/db/query", query); rec.Code != http.StatusInternalServerError {
			t.Fatalf("status = %d, want 500", rec.Code)
		}
		if rec := serve(t, s.Handler(), http.MethodPost, "/db/query", query); rec.Code != http.StatusOK {
			t.Errorf("after a panic: status = %d, want 200 (the slot must come back): %s", rec.Code, rec.Body)
		}
	})

	t.Run("Unlimited", func(t *testing.T) {
		gate := make(chan struct{})
		s, _ := newTestServer(t, blockingStore(gate), Config{})
		closeServer(t, s)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { serve(t, s.Handler(), http.MethodPost, "/db/query", query) })
		}
		waitUntil(t, 5*time.Second, "20 calls running at once", func() bool { return s.inFlight.Load() == 20 })
		close(gate)
		wg.Wait()
	})
}

func TestClassifyPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   cluster.PoolStats
		want poolTier
	}{
		{"Idle", cluster.PoolStats{Max: 10}, tierNone},
		{"AllBusyNoneWaiting", cluster.PoolStats{Max: 10, InUse: 10}, tierNone},
		{"OneWaiterIsNormal", cluster.PoolStats{Max: 10, InUse: 10, Waiting: 1}, tierNone},
		{"WaitersButFreeConnections", cluster.PoolStats{Max: 10, InUse: 5, Waiting: 8}, tierNone},
		{"Pressure", cluster.PoolStats{Max: 10, InUse: 8, Waiting: 3}, tierPressure},
		{"PressureAt75Percent", cluster.PoolStats{Max: 4, InUse: 3, Waiting: 2}, tierPressure},
		{"NoMoreWaitersThanFree", cluster.PoolStats{Max: 4, InUse: 3, Waiting: 1}, tierNone},
		{"Below75Percent", cluster.PoolStats{Max: 4, InUse: 2, Waiting: 4}, tierNone},
		{"Critical", cluster.PoolStats{Max: 10, InUse: 9, Waiting: 5}, tierCritical},
		{"CriticalFewWaiters", cluster.PoolStats{Max: 10, InUse: 9, Waiting: 4}, tierPressure},
		{"Exhausted", cluster.PoolStats{Max: 10, InUse: 10, Waiting: 10}, tierExhausted},
		{"AllBusyManyWaitingButNotMax", cluster.PoolStats{Max: 10, InUse: 10, Waiting: 9}, tierCritical},
		{"SmallPool", cluster.PoolStats{Max: 5, InUse: 5, Waiting: 5}, tierExhausted},
		{"SmallPoolCritical", cluster.PoolStats{Max: 5, InUse: 5, Waiting: 3}, tierCritical},
		{"SmallPoolPressure", cluster.PoolStats{Max: 5, InUse: 4, Waiting: 2}, tierPressure},
		{"SingleConnection", cluster.PoolStats{Max: 1, InUse: 1, Waiting: 1}, tierExhausted},
		{"NoPool", cluster.PoolStats{}, tierNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyPool(tc.st); got != tc.want {
				t.Errorf("classifyPool(%+v) = %s, want %s", tc.st, got, tc.want)
			}
		})
	}
}

// fakePool is a PoolStats func whose answer the test sets.
type fakePool struct {
	st    atomic.Pointer[cluster.PoolStats]
	calls atomic.Int64
}

func (p *fakePool) set(st cluster.PoolStats) { p.st.Store(&st) }

func (p *fakePool) stats() cluster.PoolStats {
	p.calls.Add(1)
	return *p.st.Load()
}

func TestServer_PoolShedding(t *testing.T) {
	const query = `["SELECT 1"]`
	calm := cluster.PoolStats{Max: 4, Total: 4, Idle: 4}
	pressed := cluster.PoolStats{Max: 4, Total: 4, InUse: 3, Waiting: 2}
	exhausted := cluster.PoolStats{Max: 4, Total: 4, InUse: 4, Waiting: 9}

	newPoolServer := func(t *testing.T, pool *fakePool, ran *atomic.Int64) *Server {
		store := &fakeStore{query: func(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
			ran.Add(1)
			return []command.Result{}, nil
		}}
		s, _ := newTestServer(t, store, Config{PoolStats: pool.stats, ShedProbeInterval: 5 * time.Millisecond})
		return s
	}

	t.Run("TiersAndRecovery", func(t *testing.T) {
		pool := &fakePool{}
		pool.set(calm)
		var ran atomic.Int64
		s := newPoolServer(t, pool, &ran)
		closeServer(t, s)
		h := s.Handler()
		if rec := serve(t, h, http.MethodPost, "/db/query", query); rec.Code != http.StatusOK {
			t.Fatalf("calm pool: status = %d: %s", rec.Code, rec.Body)
		}

		pool.set(pressed)
		rec := serve(t, h, http.MethodPost, "/db/query", query)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
			t.Fatalf("pressed pool: status = %d, Retry-After = %q, want 503 and 2", rec.Code, rec.Header().Get("Retry-After"))
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, "pressure") || !strings.Contains(msg, "3 of 4 connections") {
			t.Errorf("error %q does not describe the pool", msg)
		}

		// The probe sees the pool get worse: the Retry-After grows.
		pool.set(exhausted)
		waitUntil(t, 5*time.Second, "Retry-After: 5", func() bool {
			rec := serve(t, h, http.MethodPost, "/db/query", query)
			return rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "5"
		})
		if got := metricValue(t, scrape(t, h, ""), "cairn_load_shed_pool_tier"); got != float64(tierExhausted) {
			t.Errorf("cairn_load_shed_pool_tier = %v, want %d", got, tierExhausted)
		}
		if n := ran.Load(); n != 1 {
			t.Errorf("the store ran %d calls, want only the one before the pressure", n)
		}

		// Shedding stops by itself once the pressure is gone, without a
		// request having to find out.
		pool.set(calm)
		waitUntil(t, 5*time.Second, "the recovery probe to stop shedding", func() bool { return s.shedder.current() == tierNone })
		if rec := serve(t, h, http.MethodPost, "/db/query", query); rec.Code != http.StatusOK {
			t.Fatalf("after recovery: status = %d: %s", rec.Code, rec.Body)
		}
		// The probe has returned: the pool is no longer polled. (An
		// absence can only be watched for a while: four probe intervals.)
		before := pool.calls.Load()
		time.Sleep(20 * time.Millisecond)
		if after := pool.calls.Load(); after != before {
			t.Errorf("the pool was polled %d more times after recovery", after-before)
		}

		fams := scrape(t, h, "")
		if got := metricValue(t, fams, "cairn_load_shed_total", "reason", "pool_pressure"); got < 1 {
			t.Errorf("cairn_load_shed_total{reason=pool_pressure} = %v, want at least 1", got)
		}
		if got := metricValue(t, fams, "cairn_load_shed_total", "reason", "pool_exhausted"); got < 1 {
			t.Errorf("cairn_load_shed_total{reason=pool_exhausted} = %v, want at least 1", got)
		}
		if got := metricValue(t, fams, "cairn_db_pool_max_connections"); got != 4 {
			t.Errorf("cairn_db_pool_max_connections = %v, want 4", got)
		}
	})

	t.Run("ExemptEndpoints", func(t *testing.T) {
		pool := &fakePool{}
		pool.set(exhausted)
		var ran atomic.Int64
		s := newPoolServer(t, pool, &ran)
		closeServer(t, s)
		if rec := serve(t, s.Handler(), http.MethodPost, "/db/query", query); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
		for _, path := range []string{"/livez", "/metrics"} {
			if rec := serve(t, s.Handler(), http.MethodGet, path, ""); rec.Code != http.StatusOK {
				t.Errorf("GET %s while shedding: status = %d", path, rec.Code)
			}
		}
	})

	t.Run("CloseStopsTheProbe", func(t *testing.T) {
		pool := &fakePool{}
		pool.set(exhausted)
		var ran atomic.Int64
		s := newPoolServer(t, pool, &ran)
		if rec := serve(t, s.Handler(), http.MethodPost, "/db/query", query); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil { // waits for the probe
			t.Fatalf("close: %v", err)
		}
		if s.spawn(func(context.Context) {}) {
			t.Error("spawn ran a goroutine after Close")
		}
	})
}
