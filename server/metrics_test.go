package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// scrape reads /metrics through h, with HTTP Basic credentials when
// userPass ("name:password") is set, and parses the text format.
func scrape(t *testing.T, h http.Handler, userPass string) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if name, pw, ok := strings.Cut(userPass, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status = %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the sample of family name whose labels
// include every name/value pair of labels: a counter's or gauge's value,
// a histogram's sample count. It fails the test when there is none.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// hasLabels reports whether m has every name/value pair of labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestServer_Metrics(t *testing.T) {
	store := &fakeStore{
		execute: func(_ context.Context, req *command.Request) ([]command.Result, error) {
			out := make([]command.Result, len(req.Statements))
			for i, st := range req.Statements {
				out[i] = command.Result{RowsAffected: 1, Seconds: 0.002}
				if strings.Contains(st.Sql, "bad") {
					out[i] = command.Result{Error: "near \"bad\": syntax error", Seconds: 0.0001}
				}
			}
			return out, nil
		},
		query: func(_ context.Context, req *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
			return []command.Result{{Columns: []string{"n"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}, Seconds: 0.3}}, nil
		},
		request: func(context.Context, *command.Request, cluster.QueryOptions) ([]command.Result, error) {
			return nil, cluster.ErrNoLeader
		},
	}
	s, _ := newTestServer(t, store, Config{MaxConcurrent: 8})
	h := s.Handler()
	for _, call := range []struct{ path, body string }{
		{"/db/execute", `["INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)", "bad sql"]`},
		{"/db/execute", `["INSERT INTO t VALUES(3)"]`},
		{"/db/query", `["SELECT 1"]`},
		{"/db/request", `["INSERT INTO t VALUES(4)", "SELECT 1"]`}, // no leader: 503
		{"/db/execute", `not json`},                                // 400: never reaches the store
	} {
		serve(t, h, http.MethodPost, call.path, call.body)
	}

	fams := scrape(t, h, "")
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cairn_statements_total", []string{"kind", "execute", "result", "ok"}, 3},
		{"cairn_statements_total", []string{"kind", "execute", "result", "error"}, 1},
		{"cairn_statements_total", []string{"kind", "query", "result", "ok"}, 1},
		{"cairn_statements_total", []string{"kind", "query", "result", "error"}, 0},
		{"cairn_statements_total", []string{"kind", "request", "result", "error"}, 2},
		{"cairn_statements_total", []string{"kind", "request", "result", "ok"}, 0},
		{"cairn_statement_duration_seconds", []string{"kind", "execute"}, 4},
		{"cairn_statement_duration_seconds", []string{"kind", "query"}, 1},
		{"cairn_statement_duration_seconds", []string{"kind", "request"}, 0},
		{"cairn_http_requests_total", []string{"endpoint", "/db/execute", "code", "200"}, 2},
		{"cairn_http_requests_total", []string{"endpoint", "/db/execute", "code", "400"}, 1},
		{"cairn_http_requests_total", []string{"endpoint", "/db/request", "code", "503"}, 1},
		{"cairn_load_shed_total", []string{"reason", "concurrency"}, 0},
		{"cairn_statement_calls_in_flight", nil, 0},
		{"cairn_statement_calls_max", nil, 8},
	} {
		if got := metricValue(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	// The query's 0.3 s statement lands in the bucket of 0.5 s, not 0.25 s.
	for _, m := range fams["cairn_statement_duration_seconds"].GetMetric() {
		if !hasLabels(m, []string{"kind", "query"}) {
			continue
		}
		if got := m.GetHistogram().GetSampleSum(); got != 0.3 {
			t.Errorf("query duration sum = %v, want 0.3", got)
		}
		for _, b := range m.GetHistogram().GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 0.5 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	if _, ok := fams["cairn_db_pool_max_connections"]; ok {
		t.Error("pool metrics without Config.PoolStats")
	}
}

func TestServer_PoolMetrics(t *testing.T) {
	pool := &fakePool{}
	pool.set(cluster.PoolStats{Max: 10, Total: 7, Idle: 2, InUse: 5, Constructing: 1, Waiting: 3,
		Acquires: 100, EmptyAcquires: 12, CanceledAcquires: 4, AcquireWaitSeconds: 1.5})
	s, _ := newTestServer(t, &fakeStore{}, Config{PoolStats: pool.stats})
	closeServer(t, s)
	fams := scrape(t, s.Handler(), "")
	for name, want := range map[string]float64{
		"cairn_db_pool_max_connections":            10,
		"cairn_db_pool_total_connections":          7,
		"cairn_db_pool_idle_connections":           2,
		"cairn_db_pool_in_use_connections":         5,
		"cairn_db_pool_constructing_connections":   1,
		"cairn_db_pool_waiting_calls":              3,
		"cairn_db_pool_acquires_total":             100,
		"cairn_db_pool_empty_acquires_total":       12,
		"cairn_db_pool_canceled_acquires_total":    4,
		"cairn_db_pool_acquire_wait_seconds_total": 1.5,
		"cairn_load_shed_pool_tier":                0,
	} {
		if got := metricValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if fams["cairn_db_pool_acquires_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("cairn_db_pool_acquires_total is a %v, want a counter", fams["cairn_db_pool_acquires_total"].GetType())
	}
	for _, reason := range []string{"pool_pressure", "pool_critical", "pool_exhausted"} {
		if got := metricValue(t, fams, "cairn_load_shed_total", "reason", reason); got != 0 {
			t.Errorf("cairn_load_shed_total{reason=%s} = %v, want 0", reason, got)
		}
	}
}
