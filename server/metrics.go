package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// metrics are the server's own Prometheus metrics plus those cmd adds
// (Config.Collectors).
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// stmts counts statements by kind and result; stmtLatency observes
	// each statement's own duration (command.Result.Seconds).
	stmts       *prometheus.CounterVec
	stmtLatency *prometheus.HistogramVec
	// shed counts the calls refused by load shedding, by reason.
	shed    *prometheus.CounterVec
	handler http.Handler
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_requests_total",
			Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_http_request_duration_seconds",
			Help:    "HTTP request latency by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
	m.stmts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_statements_total",
		Help: "Statements run through /db/execute, /db/query and /db/request, by endpoint (kind) and result: error for a statement that failed in SQL, and for every statement of a call that failed as a whole.",
	}, []string{"kind", "result"})
	m.stmtLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_statement_duration_seconds",
		Help:    "Time the database took for each statement, by endpoint (kind).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"kind"})
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_load_shed_total",
		Help: "Statement calls refused with 503 by load shedding, by reason: concurrency (http.max_concurrent), pool_pressure, pool_critical, pool_exhausted (Postgres mode).",
	}, []string{"reason"})
	for _, ep := range []endpoint{endpointExecute, endpointQuery, endpointRequest} {
		for _, result := range []string{"ok", "error"} {
			m.stmts.WithLabelValues(ep.String(), result)
		}
		m.stmtLatency.WithLabelValues(ep.String())
	}
	if s.limit != nil {
		m.shed.WithLabelValues(shedConcurrency)
	}
	if s.shedder != nil {
		for _, t := range poolTiers {
			m.shed.WithLabelValues(t.reason())
		}
	}
	m.registry.MustRegister(m.requests, m.latency, m.stmts, m.stmtLatency, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&raftCollector{s: s},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_statement_calls_in_flight",
			Help: "Statement calls (/db/*) running on the database now.",
		}, func() float64 { return float64(s.inFlight.Load()) }))
	if s.limit != nil {
		l := s.limit
		m.registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cairn_statement_calls_queued",
				Help: "Statement calls waiting for a slot under http.max_concurrent.",
			}, func() float64 { return float64(l.queued.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cairn_statement_calls_max",
				Help: "The limit on statement calls running at once (http.max_concurrent).",
			}, func() float64 { return float64(cap(l.slots)) }))
	}
	if s.cfg.PoolStats != nil {
		m.registry.MustRegister(&poolCollector{stats: s.cfg.PoolStats, shedder: s.shedder})
	}
	for _, c := range s.cfg.Collectors {
		m.registry.MustRegister(c)
	}
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// observe records one request. Paths outside the known routes count as
// "other", so a scanner cannot blow up the label space.
func (m *metrics) observe(s *Server, path string, status int, d time.Duration) {
	endpoint := "other"
	switch {
	case s.routes[path].handle != nil:
		endpoint = path
	case strings.HasPrefix(path, backupsPrefix):
		endpoint = backupsPrefix
	case strings.HasPrefix(path, InternalPrefix):
		endpoint = InternalPrefix
	}
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// observeStatements records the statements of one /db call: n were sent,
// results came back, or err failed the call as a whole.
func (m *metrics) observeStatements(ep endpoint, n int, results []command.Result, err error) {
	kind := ep.String()
	if err != nil {
		m.stmts.WithLabelValues(kind, "error").Add(float64(n))
		return
	}
	var ok, failed int
	latency := m.stmtLatency.WithLabelValues(kind)
	for _, r := range results {
		if r.Error != "" {
			failed++
		} else {
			ok++
		}
		latency.Observe(r.Seconds)
	}
	m.stmts.WithLabelValues(kind, "ok").Add(float64(ok))
	m.stmts.WithLabelValues(kind, "error").Add(float64(failed))
}

// poolCollector reports the connection pool (Postgres mode) at scrape
// time, with the load-shedding tier it is under.
type poolCollector struct {
	stats   func() cluster.PoolStats
	shedder *poolShedder
}

var (
	descPoolMax          = prometheus.NewDesc("cairn_db_pool_max_connections", "Most connections the pool opens (db.max_connections).", nil, nil)
	descPoolTotal        = prometheus.NewDesc("cairn_db_pool_total_connections", "Connections open now.", nil, nil)
	descPoolIdle         = prometheus.NewDesc("cairn_db_pool_idle_connections", "Open connections not lent out.", nil, nil)
	descPoolInUse        = prometheus.NewDesc("cairn_db_pool_in_use_connections", "Connections lent out to statement calls.", nil, nil)
	descPoolConstructing = prometheus.NewDesc("cairn_db_pool_constructing_connections", "Connections being opened.", nil, nil)
	descPoolWaiting      = prometheus.NewDesc("cairn_db_pool_waiting_calls", "Calls waiting for a connection now.", nil, nil)
	descPoolAcquires     = prometheus.NewDesc("cairn_db_pool_acquires_total", "Connections lent out.", nil, nil)
	descPoolEmpty        = prometheus.NewDesc("cairn_db_pool_empty_acquires_total", "Connections lent out after a wait, because none was idle.", nil, nil)
	descPoolCanceled     = prometheus.NewDesc("cairn_db_pool_canceled_acquires_total", "Waits for a connection given up (the call's deadline or client went first).", nil, nil)
	descPoolWait         = prometheus.NewDesc("cairn_db_pool_acquire_wait_seconds_total", "Total time calls waited for a connection.", nil, nil)
	descShedTier         = prometheus.NewDesc("cairn_load_shed_pool_tier", "The pool pressure statement calls are shed at: 0 none, 1 pressure, 2 critical, 3 exhausted.", nil, nil)
)

// Describe sends the descriptors of the pool metrics.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolMax, descPoolTotal, descPoolIdle, descPoolInUse, descPoolConstructing,
		descPoolWaiting, descPoolAcquires, descPoolEmpty, descPoolCanceled, descPoolWait, descShedTier} {
		ch <- d
	}
}

// Collect reads the pool's statistics.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descPoolMax, float64(st.Max))
	gauge(descPoolTotal, float64(st.Total))
	gauge(descPoolIdle, float64(st.Idle))
	gauge(descPoolInUse, float64(st.InUse))
	gauge(descPoolConstructing, float64(st.Constructing))
	gauge(descPoolWaiting, float64(st.Waiting))
	counter(descPoolAcquires, float64(st.Acquires))
	counter(descPoolEmpty, float64(st.EmptyAcquires))
	counter(descPoolCanceled, float64(st.CanceledAcquires))
	counter(descPoolWait, st.AcquireWaitSeconds)
	if c.shedder != nil {
		gauge(descShedTier, float64(c.shedder.current()))
	}
}

// raftCollector reads the store's status at scrape time.
type raftCollector struct {
	s *Server
}

var (
	descState = prometheus.NewDesc("cairn_raft_state", "1 for the node's current Raft state.", []string{"state"}, nil)
	descTerm  = prometheus.NewDesc("cairn_raft_term", "Current Raft term.", nil, nil)
	descIndex = prometheus.NewDesc("cairn_raft_index", "Raft log indexes by kind (commit, applied, last_log, last_snapshot).", []string{"kind"}, nil)
	descLead  = prometheus.NewDesc("cairn_raft_leader", "1 when this node is the leader.", nil, nil)
	descLast  = prometheus.NewDesc("cairn_raft_last_contact_seconds", "Time since the leader was last heard from (0 on the leader).", nil, nil)
	descDB    = prometheus.NewDesc("cairn_db_size_bytes", "Size of the SQLite database and its write-ahead log.", nil, nil)
)

// Describe sends the descriptors of the Raft metrics.
func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descIndex, descLead, descLast, descDB} {
		ch <- d
	}
}

// Collect reads the store's status; it sends nothing outside Raft mode.
func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.s.store.Status(ctx)
	if err != nil || st.Mode != "raft" {
		return
	}
	ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, st.State)
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(st.Term))
	for kind, v := range map[string]uint64{"commit": st.CommitIndex, "applied": st.AppliedIndex, "last_log": st.LastLogIndex, "last_snapshot": st.LastSnapshotIndex} {
		ch <- prometheus.MustNewConstMetric(descIndex, prometheus.GaugeValue, float64(v), kind)
	}
	leader := 0.0
	if st.State == "Leader" {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLead, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, st.LastContact.Seconds())
	ch <- prometheus.MustNewConstMetric(descDB, prometheus.GaugeValue, float64(st.DBSize))
}
