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
)

// metrics are the server's own Prometheus metrics plus those cmd adds
// (Config.Collectors).
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
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
	m.registry.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&raftCollector{s: s})
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

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descIndex, descLead, descLast, descDB} {
		ch <- d
	}
}

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
