package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// recording is a fakeStore that answers every /db call with results and
// remembers what it was asked.
type recording struct {
	fakeStore
	req  *command.Request
	opts cluster.QueryOptions
	call string
}

func newRecording(results []command.Result, err error) *recording {
	r := &recording{}
	r.execute = func(_ context.Context, req *command.Request) ([]command.Result, error) {
		r.call, r.req = "execute", req
		return results, err
	}
	r.query = func(_ context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error) {
		r.call, r.req, r.opts = "query", req, opts
		return results, err
	}
	r.request = func(_ context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error) {
		r.call, r.req, r.opts = "request", req, opts
		return results, err
	}
	return r
}

// topTime matches the top-level "time" of a /db response.
var topTime = regexp.MustCompile(`,"time":([0-9.eE+-]+)}$`)

// fooRows is a query result with every value type.
var fooRows = command.Result{
	Columns: []string{"id", "big", "min", "ratio", "name", "nothing", "data"},
	Types:   []string{"integer", "integer", "integer", "real", "text", "text", "blob"},
	Values: [][]any{
		{int64(1), int64(9007199254740993), int64(math.MinInt64), 1.5, "fiona", nil, []byte{1, 2, 255}},
		{int64(2), int64(math.MaxInt64), int64(-1), 0.25, "<b>&", nil, []byte{}},
	},
	Seconds: 0.5,
}

func TestServer_DBResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		target  string
		body    string
		results []command.Result
		want    string // the exact body, without the trailing newline
	}{
		{
			name:    "ExecuteWrites",
			method:  http.MethodPost,
			target:  "/db/execute",
			body:    `["INSERT INTO foo(name) VALUES('fiona')", "CREATE TABLE bar (x)"]`,
			results: []command.Result{{LastInsertID: 1, RowsAffected: 1, Seconds: 0.25}, {}},
			want:    `{"results":[{"last_insert_id":1,"rows_affected":1},{}]}`,
		},
		{
			name:    "ExecuteTimings",
			method:  http.MethodPost,
			target:  "/db/execute?timings",
			body:    `["INSERT INTO foo(name) VALUES('fiona')"]`,
			results: []command.Result{{LastInsertID: 1, RowsAffected: 1, Seconds: 0.25}},
			want:    `{"results":[{"last_insert_id":1,"rows_affected":1,"time":0.25}],"time":TIME}`,
		},
		{
			name:    "ExecuteTimingsFalse",
			method:  http.MethodPost,
			target:  "/db/execute?timings=false",
			body:    `["INSERT INTO foo(name) VALUES('fiona')"]`,
			results: []command.Result{{LastInsertID: 1, RowsAffected: 1, Seconds: 0.25}},
			want:    `{"results":[{"last_insert_id":1,"rows_affected":1}]}`,
		},
		{
			name:    "ExecuteStatementError",
			method:  http.MethodPost,
			target:  "/db/execute",
			body:    `["INSERT INTO nope VALUES(1)"]`,
			results: []command.Result{{Error: "no such table: nope"}},
			want:    `{"results":[{"error":"no such table: nope"}]}`,
		},
		{
			name:    "ExecuteReturningRows",
			method:  http.MethodPost,
			target:  "/db/execute",
			body:    `["INSERT INTO foo(name) VALUES('fiona') RETURNING id"]`,
			results: []command.Result{{Columns: []string{"id"}, Types: []string{"integer"}, Values: [][]any{{int64(3)}}}},
			want:    `{"results":[{"columns":["id"],"types":["integer"],"values":[[3]]}]}`,
		},
		{
			name:    "QueryRows",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+*+FROM+foo",
			results: []command.Result{fooRows},
			want: `{"results":[{"columns":["id","big","min","ratio","name","nothing","data"],` +
				`"types":["integer","integer","integer","real","text","text","blob"],` +
				`"values":[[1,9007199254740993,-9223372036854775808,1.5,"fiona",null,"AQL/"],` +
				`[2,9223372036854775807,-1,0.25,"<b>&",null,""]]}]}`,
		},
		{
			name:    "QueryTimings",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+1&timings",
			results: []command.Result{{Columns: []string{"1"}, Types: []string{""}, Values: [][]any{{int64(1)}}, Seconds: 0.125}},
			want:    `{"results":[{"columns":["1"],"types":[""],"values":[[1]],"time":0.125}],"time":TIME}`,
		},
		{
			name:    "QueryNoRows",
			method:  http.MethodPost,
			target:  "/db/query",
			body:    `["SELECT * FROM foo WHERE 0"]`,
			results: []command.Result{{Columns: []string{"id", "name"}, Types: []string{"integer", "text"}}},
			want:    `{"results":[{"columns":["id","name"],"types":["integer","text"]}]}`,
		},
		{
			name:    "QueryNoColumns",
			method:  http.MethodPost,
			target:  "/db/query",
			body:    `["PRAGMA optimize"]`,
			results: []command.Result{{}},
			want:    `{"results":[{"columns":[],"types":[]}]}`,
		},
		{
			name:    "QueryStatementError",
			method:  http.MethodPost,
			target:  "/db/query",
			body:    `["SELECT * FROM nope"]`,
			results: []command.Result{{Error: "no such table: nope"}},
			want:    `{"results":[{"error":"no such table: nope"}]}`,
		},
		{
			name:    "QueryAssociative",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+*+FROM+foo&associative",
			results: []command.Result{fooRows},
			want: `{"results":[{"types":{"big":"integer","data":"blob","id":"integer","min":"integer","name":"text","nothing":"text","ratio":"real"},` +
				`"rows":[{"big":9007199254740993,"data":"AQL/","id":1,"min":-9223372036854775808,"name":"fiona","nothing":null,"ratio":1.5},` +
				`{"big":9223372036854775807,"data":"","id":2,"min":-1,"name":"<b>&","nothing":null,"ratio":0.25}]}]}`,
		},
		{
			name:    "QueryAssociativeNoRows",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+id+FROM+foo+WHERE+0&associative=true",
			results: []command.Result{{Columns: []string{"id"}, Types: []string{"integer"}}},
			want:    `{"results":[{"types":{"id":"integer"},"rows":[]}]}`,
		},
		{
			name:    "QueryAssociativeError",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+*+FROM+nope&associative",
			results: []command.Result{{Error: "no such table: nope"}},
			want:    `{"results":[{"rows":[],"error":"no such table: nope"}]}`,
		},
		{
			name:    "QueryBlobArray",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+data+FROM+foo&blob_array",
			results: []command.Result{{Columns: []string{"data"}, Types: []string{"blob"}, Values: [][]any{{[]byte{1, 2, 255}}, {[]byte{}}}}},
			want:    `{"results":[{"columns":["data"],"types":["blob"],"values":[[[1,2,255]],[[]]]}]}`,
		},
		{
			name:    "QueryNonFiniteFloats",
			method:  http.MethodGet,
			target:  "/db/query?q=SELECT+x+FROM+floats",
			results: []command.Result{{Columns: []string{"x"}, Types: []string{"real"}, Values: [][]any{{math.Inf(1)}, {math.Inf(-1)}, {math.NaN()}, {-0.5}}}},
			want:    `{"results":[{"columns":["x"],"types":["real"],"values":[[9e999],[-9e999],[null],[-0.5]]}]}`,
		},
		{
			name:   "RequestMixed",
			method: http.MethodPost,
			target: "/db/request",
			body:   `["INSERT INTO foo(name) VALUES('fiona')", "SELECT id FROM foo", "SELECT * FROM nope"]`,
			results: []command.Result{
				{LastInsertID: 1, RowsAffected: 1},
				{Columns: []string{"id"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}},
				{Error: "no such table: nope"},
			},
			want: `{"results":[{"last_insert_id":1,"rows_affected":1},{"columns":["id"],"types":["integer"],"values":[[1]]},{"error":"no such table: nope"}]}`,
		},
		{
			name:   "RequestAssociative",
			method: http.MethodPost,
			target: "/db/request?associative",
			body:   `["INSERT INTO foo(name) VALUES('fiona')", "SELECT id FROM foo", "SELECT * FROM nope"]`,
			results: []command.Result{
				{LastInsertID: 1, RowsAffected: 1},
				{Columns: []string{"id"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}},
				{Error: "no such table: nope"},
			},
			want: `{"results":[{"last_insert_id":1,"rows_affected":1,"rows":null},{"types":{"id":"integer"},"rows":[{"id":1}]},{"error":"no such table: nope"}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, newRecording(tc.results, nil), Config{})
			rec := serve(t, s.Handler(), tc.method, tc.target, tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			got := strings.TrimSuffix(rec.Body.String(), "\n")
			want := tc.want
			if strings.Contains(want, "TIME") {
				// The top-level time is measured: check it is a positive
				// number, then compare the rest.
				m := topTime.FindStringSubmatch(got)
				if m == nil {
					t.Fatalf("no top-level time in %s", got)
				}
				if f, err := strconv.ParseFloat(m[1], 64); err != nil || f <= 0 {
					t.Fatalf("top-level time %q is not a positive number", m[1])
				}
				got = topTime.ReplaceAllString(got, `,"time":TIME}`)
			}
			if got != want {
				t.Fatalf("body:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestServer_DBPretty(t *testing.T) {
	s, _ := newTestServer(t, newRecording([]command.Result{{LastInsertID: 1, RowsAffected: 1}}, nil), Config{})
	rec := serve(t, s.Handler(), http.MethodPost, "/db/execute?pretty", `["INSERT INTO foo VALUES(1)"]`)
	want := "{\n    \"results\": [\n        {\n            \"last_insert_id\": 1,\n            \"rows_affected\": 1\n        }\n    ]\n}\n"
	if rec.Body.String() != want {
		t.Fatalf("body:\n%s\nwant:\n%s", rec.Body, want)
	}
	rec = serve(t, s.Handler(), http.MethodPost, "/db/execute?pretty", `[]`)
	if !strings.Contains(rec.Body.String(), "\n    \"error\": ") {
		t.Errorf("error body is not pretty: %q", rec.Body)
	}
}

func TestServer_DBRequestsReachStore(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		call                       string
		want                       []*command.Statement
		tx                         bool
		opts                       cluster.QueryOptions
	}{
		{
			name: "ExecuteParams", method: http.MethodPost, target: "/db/execute",
			body: `[["INSERT INTO foo VALUES(?, ?, ?, :blob)", 9007199254740993, 9223372036854775807, -9223372036854775808, {"blob": [1, 2, 255]}]]`,
			call: "execute",
			want: []*command.Statement{stmt("INSERT INTO foo VALUES(?, ?, ?, :blob)",
				p("", int64(9007199254740993)), p("", int64(math.MaxInt64)), p("", int64(math.MinInt64)), p("blob", []byte{1, 2, 255}))},
		},
		{
			name: "ExecuteTransaction", method: http.MethodPost, target: "/db/execute?transaction",
			body: `["INSERT INTO foo VALUES(1)"]`, call: "execute", tx: true,
			want: []*command.Statement{stmt("INSERT INTO foo VALUES(1)")},
		},
		{
			name: "ExecuteTransactionTrue", method: http.MethodPost, target: "/db/execute?transaction=true&redirect",
			body: `["INSERT INTO foo VALUES(1)"]`, call: "execute", tx: true,
			want: []*command.Statement{stmt("INSERT INTO foo VALUES(1)")},
		},
		{
			name: "ExecuteTransactionFalse", method: http.MethodPost, target: "/db/execute?transaction=false",
			body: `["INSERT INTO foo VALUES(1)"]`, call: "execute",
			want: []*command.Statement{stmt("INSERT INTO foo VALUES(1)")},
		},
		{
			name: "QueryGet", method: http.MethodGet, target: "/db/query?q=" + "SELECT%20*%20FROM%20foo%20WHERE%20name%3D%27a%3Bb%27",
			call: "query", opts: cluster.QueryOptions{Level: command.LevelWeak},
			want: []*command.Statement{stmt("SELECT * FROM foo WHERE name='a;b'")},
		},
		{
			name: "QueryLevelNoneFreshness", method: http.MethodGet, target: "/db/query?q=SELECT+1&level=none&freshness=1.5s",
			call: "query", opts: cluster.QueryOptions{Level: command.LevelNone, Freshness: 1500 * time.Millisecond},
			want: []*command.Statement{stmt("SELECT 1")},
		},
		{
			name: "QueryLevelStrong", method: http.MethodPost, target: "/db/query?level=strong&transaction",
			body: `["SELECT 1", ["SELECT ?", "x"]]`, call: "query", tx: true,
			opts: cluster.QueryOptions{Level: command.LevelStrong},
			want: []*command.Statement{stmt("SELECT 1"), stmt("SELECT ?", p("", "x"))},
		},
		{
			name: "QueryLevelLinearizable", method: http.MethodGet, target: "/db/query?q=SELECT+1&level=linearizable",
			call: "query", opts: cluster.QueryOptions{Level: command.LevelLinearizable},
			want: []*command.Statement{stmt("SELECT 1")},
		},
		{
			name: "QueryLevelWeakExplicit", method: http.MethodGet, target: "/db/query?q=SELECT+1&level=weak",
			call: "query", opts: cluster.QueryOptions{Level: command.LevelWeak},
			want: []*command.Statement{stmt("SELECT 1")},
		},
		{
			name: "Request", method: http.MethodPost, target: "/db/request?level=none&transaction",
			body: `["INSERT INTO foo VALUES(1)", "SELECT * FROM foo"]`, call: "request", tx: true,
			opts: cluster.QueryOptions{Level: command.LevelNone},
			want: []*command.Statement{stmt("INSERT INTO foo VALUES(1)"), stmt("SELECT * FROM foo")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRecording([]command.Result{{}}, nil)
			s, _ := newTestServer(t, store, Config{})
			rec := serve(t, s.Handler(), tc.method, tc.target, tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
			}
			if store.call != tc.call {
				t.Fatalf("store call = %q, want %q", store.call, tc.call)
			}
			if g, w := statementsString(store.req.GetStatements()), statementsString(tc.want); g != w {
				t.Errorf("statements:\n got %s\nwant %s", g, w)
			}
			if store.req.GetTransaction() != tc.tx {
				t.Errorf("transaction = %t, want %t", store.req.GetTransaction(), tc.tx)
			}
			if store.opts != tc.opts {
				t.Errorf("options = %+v, want %+v", store.opts, tc.opts)
			}
		})
	}
}

func TestServer_DBBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		want                       string
	}{
		{"MalformedJSON", http.MethodPost, "/db/execute", `["SELECT 1",]`, 400, "malformed JSON at byte offset"},
		{"EmptyBody", http.MethodPost, "/db/execute", ``, 400, "empty request body"},
		{"EmptyArray", http.MethodPost, "/db/request", `[]`, 400, "no statements"},
		{"WrongShape", http.MethodPost, "/db/query", `[{"sql": "SELECT 1"}]`, 400, "statement 0: must be an SQL string"},
		{"IntegerTooBig", http.MethodPost, "/db/execute", `["SELECT 1", ["SELECT ?", 1, 2, 99999999999999999999]]`, 400,
			"statement 1, parameter 2: integer 99999999999999999999 is outside the signed 64-bit range"},
		{"UnknownLevel", http.MethodGet, "/db/query?q=SELECT+1&level=bogus", ``, 400, `"bogus"`},
		{"UnknownLevelOnExecute", http.MethodPost, "/db/execute?level=eventual", `["SELECT 1"]`, 400, `"eventual"`},
		{"BadFreshness", http.MethodGet, "/db/query?q=SELECT+1&level=none&freshness=soon", ``, 400, "?freshness"},
		{"NegativeFreshness", http.MethodGet, "/db/query?q=SELECT+1&level=none&freshness=-1s", ``, 400, "?freshness"},
		{"BadTimeout", http.MethodGet, "/db/query?q=SELECT+1&timeout=forever", ``, 400, "?timeout"},
		{"BadFlag", http.MethodPost, "/db/execute?transaction=maybe", `["SELECT 1"]`, 400, "?transaction"},
		{"MalformedQueryString", http.MethodGet, "/db/query?q=%zz", ``, 400, "malformed query string"},
		{"GetWithoutQ", http.MethodGet, "/db/query", ``, 400, "missing query"},
		{"GetEmptyQ", http.MethodGet, "/db/query?q=", ``, 400, "missing query"},
		{"Queue", http.MethodPost, "/db/execute?queue", `["INSERT INTO foo VALUES(1)"]`, 400, "?queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRecording(nil, nil)
			s, _ := newTestServer(t, store, Config{})
			rec := serve(t, s.Handler(), tc.method, tc.target, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if msg := errorBody(t, rec); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if store.call != "" {
				t.Errorf("the store was called (%s) for a bad request", store.call)
			}
		})
	}
}

func TestServer_DBBodyLimit(t *testing.T) {
	store := newRecording([]command.Result{{}}, nil)
	s, _ := newTestServer(t, store, Config{MaxBodySize: 64})

	rec := serve(t, s.Handler(), http.MethodPost, "/db/execute", `["`+strings.Repeat("x", 100)+`"]`)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413; body %s", rec.Code, rec.Body)
	}
	if msg := errorBody(t, rec); !strings.Contains(msg, "limit of 64 bytes") {
		t.Errorf("error %q does not name the limit", msg)
	}

	rec = serve(t, s.Handler(), http.MethodPost, "/db/execute", `["`+strings.Repeat("x", 50)+`"]`)
	if rec.Code != http.StatusOK {
		t.Fatalf("a body under the limit: status = %d; body %s", rec.Code, rec.Body)
	}

	if got := New(Config{}, store, nil).cfg.MaxBodySize; got != 10<<20 {
		t.Errorf("default MaxBodySize = %d, want 10 MiB", got)
	}
}

func TestServer_DBErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		err    error
		status int
		retry  bool
		want   []string // substrings of the error
		not    string   // a substring the error must not have
	}{
		{"NotReadOnly", "/db/query", fmt.Errorf("statement 0: %w", cluster.ErrNotReadOnly), 400, false, []string{"not read-only"}, "may or may not"},
		{"InvalidStatement", "/db/execute", fmt.Errorf("parse: %w", cluster.ErrInvalidStatement), 400, false, []string{"invalid statement"}, ""},
		{"Stale", "/db/query", cluster.ErrStale, 400, false, []string{"stale read"}, ""},
		{"NotLeader", "/db/execute", fmt.Errorf("forward: %w", cluster.ErrNotLeader), 503, true, []string{"not the leader"}, ""},
		{"NoLeader", "/db/query", cluster.ErrNoLeader, 503, true, []string{"no leader"}, ""},
		{"UnknownOutcomeExecute", "/db/execute", fmt.Errorf("apply: %w", cluster.ErrUnknownOutcome), 500, false,
			[]string{"the write may or may not have been applied", "write outcome unknown"}, ""},
		{"UnknownOutcomeRequest", "/db/request", cluster.ErrUnknownOutcome, 500, false,
			[]string{"any writes in the request may or may not have been applied"}, ""},
		{"Closed", "/db/query", cluster.ErrClosed, 503, false, []string{"backend closed"}, ""},
		{"OtherOnWrite", "/db/execute", fmt.Errorf("disk on fire"), 500, false, []string{"disk on fire", "may or may not have been applied"}, ""},
		{"OtherOnRead", "/db/query", fmt.Errorf("disk on fire"), 500, false, []string{"disk on fire"}, "may or may not"},
		{"DeadlineOnRead", "/db/query", context.DeadlineExceeded, 504, false, []string{"timed out after 30s"}, "may or may not"},
		{"CanceledOnWrite", "/db/execute", context.Canceled, 503, false, []string{"canceled", "may or may not have been applied"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, newRecording(nil, tc.err), Config{})
			rec := serve(t, s.Handler(), http.MethodPost, tc.target, `["SELECT 1"]`)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); (got == "1") != tc.retry {
				t.Errorf("Retry-After = %q, want it set: %t", got, tc.retry)
			}
			msg := errorBody(t, rec)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if tc.not != "" && strings.Contains(msg, tc.not) {
				t.Errorf("error %q contains %q", msg, tc.not)
			}
		})
	}
}

func TestServer_DBTimeout(t *testing.T) {
	block := func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("wait for commit: %w", ctx.Err())
	}
	store := &fakeStore{
		execute: func(ctx context.Context, _ *command.Request) ([]command.Result, error) { return nil, block(ctx) },
		query: func(ctx context.Context, _ *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
			return nil, block(ctx)
		},
		request: func(ctx context.Context, _ *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
			return nil, block(ctx)
		},
	}
	for _, tc := range []struct {
		name, target string
		cfg          Config
		want         string
		outcome      string
	}{
		{"Execute", "/db/execute?timeout=20ms", Config{}, "timed out after 20ms", "the write may or may not have been applied"},
		{"Request", "/db/request", Config{RequestTimeout: 20 * time.Millisecond}, "timed out after 20ms", "any writes in the request may or may not have been applied"},
		{"Query", "/db/query?timeout=1h", Config{RequestTimeout: 20 * time.Millisecond}, "timed out after 20ms", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, store, tc.cfg)
			rec := serve(t, s.Handler(), http.MethodPost, tc.target, `["INSERT INTO foo VALUES(1)"]`)
			if rec.Code != http.StatusGatewayTimeout {
				t.Fatalf("status = %d, want 504; body %s", rec.Code, rec.Body)
			}
			msg := errorBody(t, rec)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if tc.outcome != "" && !strings.Contains(msg, tc.outcome) {
				t.Errorf("error %q does not warn %q", msg, tc.outcome)
			}
			if tc.outcome == "" && strings.Contains(msg, "may or may not") {
				t.Errorf("a read's error %q warns about writes", msg)
			}
		})
	}
}

func TestServer_DBUnsupportedValue(t *testing.T) {
	results := []command.Result{{Columns: []string{"x"}, Types: []string{"text"}, Values: [][]any{{struct{}{}}}}}
	s, _ := newTestServer(t, newRecording(results, nil), Config{})
	rec := serve(t, s.Handler(), http.MethodPost, "/db/request", `["UPDATE foo SET x = 1 RETURNING x"]`)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if msg := errorBody(t, rec); !strings.Contains(msg, "unsupported value type struct {}") || !strings.Contains(msg, "were applied") {
		t.Errorf("error %q", msg)
	}
}
