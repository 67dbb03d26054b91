//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricFamilies is one parsed scrape of /metrics.
type metricFamilies map[string]*dto.MetricFamily

// scrapeMetrics reads a node's /metrics, with HTTP Basic credentials when
// userPass ("name:password") is set, and parses it with Prometheus' text
// parser.
func scrapeMetrics(t testing.TB, n *node, userPass string) metricFamilies {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.url("/metrics"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if name, pw, ok := strings.Cut(userPass, ":"); ok {
		req.SetBasicAuth(name, pw)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", n.http, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s", n.http, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", n.http, err)
	}
	return fams
}

// sum adds up the samples of family name whose labels include every
// name/value pair of labels: counter and gauge values, histogram sample
// counts. A family or sample that is missing counts 0.
func (m metricFamilies) sum(name string, labels ...string) float64 {
	total := 0.0
	for _, s := range m[name].GetMetric() {
		if !sampleHas(s, labels) {
			continue
		}
		switch {
		case s.GetCounter() != nil:
			total += s.GetCounter().GetValue()
		case s.GetGauge() != nil:
			total += s.GetGauge().GetValue()
		case s.GetHistogram() != nil:
			total += float64(s.GetHistogram().GetSampleCount())
		case s.GetUntyped() != nil:
			total += s.GetUntyped().GetValue()
		}
	}
	return total
}

// sampleHas reports whether a sample has every name/value pair of labels.
func sampleHas(s *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range s.GetLabel() {
			found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetrics_Cluster sends a known number of statements to one follower
// of a three-node cluster and checks every node's /metrics: the follower
// counts exactly those statements (forwarded calls reach the leader
// through /internal/ and are not counted twice), and exactly one node
// says it leads.
func TestMetrics_Cluster(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(30 * time.Second)
	var follower, other *node
	for _, n := range c.nodes {
		switch {
		case n == leader:
		case follower == nil:
			follower = n
		default:
			other = n
		}
	}
	follower.execute(`["CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, v TEXT)"]`)
	// Let the table reach every node, so that the reads below at level
	// none find it on the follower.
	waitFor(t, 30*time.Second, "the table on the follower", func() bool {
		code, r, _ := follower.do("POST", "/db/query?level=none", `["SELECT COUNT(*) FROM m"]`)
		return code == http.StatusOK && len(r.Results) == 1 && r.Results[0].Error == ""
	})

	before := map[*node]metricFamilies{}
	for _, n := range c.nodes {
		before[n] = scrapeMetrics(t, n, "")
	}

	const writes = 5 // requests of two inserts each
	for i := range writes {
		follower.execute(fmt.Sprintf(`[["INSERT INTO m(v) VALUES(?)", "a%d"], ["INSERT INTO m(v) VALUES(?)", "b%d"]]`, i, i))
	}
	code, r, raw := follower.do("POST", "/db/execute", `["INSERT INTO no_such_table VALUES(1)"]`)
	if code != http.StatusOK || len(r.Results) != 1 || r.Results[0].Error == "" {
		t.Fatalf("failing insert: HTTP %d: %s", code, raw)
	}
	const reads = 3
	for range reads {
		follower.query("SELECT COUNT(*) FROM m", "none")
		follower.query("SELECT COUNT(*) FROM m", "weak")
	}

	after := map[*node]metricFamilies{}
	for _, n := range c.nodes {
		after[n] = scrapeMetrics(t, n, "")
	}
	delta := func(n *node, name string, labels ...string) float64 {
		return after[n].sum(name, labels...) - before[n].sum(name, labels...)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cairn_statements_total", []string{"kind", "execute", "result", "ok"}, 2 * writes},
		{"cairn_statements_total", []string{"kind", "execute", "result", "error"}, 1},
		{"cairn_statements_total", []string{"kind", "query", "result", "ok"}, 2 * reads},
		{"cairn_statements_total", []string{"kind", "query", "result", "error"}, 0},
		{"cairn_statements_total", []string{"kind", "request"}, 0},
		{"cairn_statement_duration_seconds", []string{"kind", "execute"}, 2*writes + 1},
		{"cairn_statement_duration_seconds", []string{"kind", "query"}, 2 * reads},
		{"cairn_http_requests_total", []string{"endpoint", "/db/execute", "code", "200"}, writes + 1},
		{"cairn_http_requests_total", []string{"endpoint", "/db/query", "code", "200"}, 2 * reads},
		{"cairn_load_shed_total", nil, 0},
	} {
		if got := delta(follower, tc.name, tc.labels...); got != tc.want {
			t.Errorf("follower %s: %s%v went up by %v, want %v", follower.http, tc.name, tc.labels, got, tc.want)
		}
	}
	for _, n := range []*node{leader, other} {
		if got := delta(n, "cairn_statements_total"); got != 0 {
			t.Errorf("node %s: cairn_statements_total went up by %v, want 0 (the statements were sent to %s)", n.http, got, follower.http)
		}
	}
	// The follower's requests reached the leader through /internal/.
	if got := delta(leader, "cairn_http_requests_total", "endpoint", "/internal/"); got < writes {
		t.Errorf("leader: cairn_http_requests_total{endpoint=/internal/} went up by %v, want at least %d", got, writes)
	}

	// Exactly one node leads, by both Raft gauges, and it is the leader
	// /status names. (A scrape races an election only if one happens, so
	// wait for a consistent view rather than take the first.)
	waitFor(t, 30*time.Second, "exactly one leader in the raft gauges", func() bool {
		leaders, states := 0.0, 0.0
		var leading *node
		for _, n := range c.nodes {
			m := scrapeMetrics(t, n, "")
			if m.sum("cairn_raft_leader") == 1 {
				leading = n
			}
			leaders += m.sum("cairn_raft_leader")
			states += m.sum("cairn_raft_state", "state", "Leader")
		}
		return leaders == 1 && states == 1 && leading == c.leader(30*time.Second)
	})
}
