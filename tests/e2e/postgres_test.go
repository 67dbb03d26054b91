//go:build integration

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/pgtest"
)

// apiCase is one request of the API suite that both backends must answer
// alike.
type apiCase struct {
	name   string
	method string
	path   string
	body   string
	// code is the expected HTTP status.
	code int
	// want is the normalised JSON of the results (see normalise), or ""
	// when only the status matters.
	want string
}

// apiSuite runs in order on a fresh database. Its SQL is the dialect both
// backends agree on: $N placeholders, @name parameters, BIGINT/TEXT.
var apiSuite = []apiCase{
	{"create", "POST", "/db/execute", `["CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty BIGINT, price DOUBLE PRECISION)"]`, 200, `[{}]`},
	{"insert positional", "POST", "/db/execute", `[["INSERT INTO items (id, name, qty, price) VALUES ($1, $2, $3, $4)", 1, "apple", 5, 1.5]]`, 200, `[{"rows_affected":1}]`},
	{"insert named", "POST", "/db/execute", `[["INSERT INTO items (id, name, qty) VALUES (@id, @name, @qty)", {"id": 2, "name": "pear", "qty": null}]]`, 200, `[{"rows_affected":1}]`},
	{"big integer exact", "POST", "/db/execute", `[["INSERT INTO items (id, name, qty) VALUES ($1, 'big', $2)", 3, 9007199254740993]]`, 200, `[{"rows_affected":1}]`},
	{"errors do not stop others", "POST", "/db/execute", `["INSERT INTO items (id, name) VALUES (4, 'kiwi')", "INSERT INTO items (id, name) VALUES (1, 'dup')", "INSERT INTO items (id, name) VALUES (5, 'plum')"]`, 200, `[{"rows_affected":1},{"error":true},{"rows_affected":1}]`},
	{"transaction rolls back", "POST", "/db/execute?transaction", `["INSERT INTO items (id, name) VALUES (6, 'fig')", "INSERT INTO items (id, name) VALUES (7, NULL)", "INSERT INTO items (id, name) VALUES (8, 'never')"]`, 200, `[{"rows_affected":1},{"error":true}]`},
	{"update count", "POST", "/db/execute", `[["UPDATE items SET qty = $1 WHERE id IN (4, 5)", 7]]`, 200, `[{"rows_affected":2}]`},
	{"query rows", "GET", "/db/query?q=" + urlQuery("SELECT id, name, qty, price FROM items ORDER BY id"), "", 200,
		`[{"columns":["id","name","qty","price"],"values":[[1,"apple",5,1.5],[2,"pear",null,null],[3,"big",9007199254740993,null],[4,"kiwi",7,null],[5,"plum",7,null]]}]`},
	{"query params and level", "POST", "/db/query?level=strong", `[["SELECT name FROM items WHERE qty = $1 ORDER BY id", 7]]`, 200, `[{"columns":["name"],"values":[["kiwi"],["plum"]]}]`},
	{"query associative", "POST", "/db/query?associative&level=weak", `["SELECT id, name FROM items WHERE id < 3 ORDER BY id"]`, 200, `[{"rows":[{"id":1,"name":"apple"},{"id":2,"name":"pear"}]}]`},
	{"query empty", "POST", "/db/query?level=none", `["SELECT id FROM items WHERE id > 100"]`, 200, `[{"columns":["id"]}]`},
	{"query statement error", "POST", "/db/query", `["SELECT nope FROM items", "SELECT count(*) AS n FROM items"]`, 200, `[{"error":true},{"columns":["n"],"values":[[5]]}]`},
	{"write as query refused", "POST", "/db/query", `["DELETE FROM items"]`, 400, ""},
	{"request mixes", "POST", "/db/request", `[["INSERT INTO items (id, name) VALUES ($1, 'lime')", 9], "SELECT count(*) AS n FROM items"]`, 200, `[{"rows_affected":1},{"columns":["n"],"values":[[6]]}]`},
	{"returning", "POST", "/db/execute", `["INSERT INTO items (id, name) VALUES (10, 'date') RETURNING id, name"]`, 200, `[{"columns":["id","name"],"values":[[10,"date"]]}]`},
	{"malformed JSON", "POST", "/db/execute", `["INSERT`, 400, ""},
	{"delete all", "POST", "/db/execute", `["DELETE FROM items"]`, 200, `[{"rows_affected":7}]`},
}

// normalise keeps what both backends must agree on: columns, values or
// rows, rows_affected, and whether a statement failed (not its wording,
// nor types, timings or last_insert_id, which PostgreSQL does not have).
func normalise(t *testing.T, raw []byte) string {
	t.Helper()
	var body struct {
		Results []map[string]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	out := make([]map[string]json.RawMessage, len(body.Results))
	for i, r := range body.Results {
		m := map[string]json.RawMessage{}
		for _, k := range []string{"columns", "values", "rows", "rows_affected"} {
			if v, ok := r[k]; ok {
				m[k] = v
			}
		}
		if _, ok := r["error"]; ok {
			m["error"] = json.RawMessage("true")
		}
		out[i] = m
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runAPISuite runs apiSuite against n.
func runAPISuite(t *testing.T, n *node) {
	for _, c := range apiSuite {
		code, _, raw := n.do(c.method, c.path, c.body)
		if code != c.code {
			t.Fatalf("%s: HTTP %d, want %d: %s", c.name, code, c.code, raw)
		}
		if c.want == "" {
			var e struct{ Error string }
			if json.Unmarshal(raw, &e) != nil || e.Error == "" {
				t.Errorf("%s: HTTP %d without an error message: %s", c.name, code, raw)
			}
			continue
		}
		if got := normalise(t, raw); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s\n(raw %s)", c.name, got, c.want, raw)
		}
	}
}

// TestAPI_BothBackends runs one request suite against a Raft node and a
// Postgres-mode node: same requests, same results.
func TestAPI_BothBackends(t *testing.T) {
	pg := pgtest.Start(t)
	backends := map[string]func() *node{
		"raft": func() *node { return newNode(t) },
		"postgres": func() *node {
			return newNode(t, withEnv("CAIRN_DB_URL="+pg.NewDB(t)))
		},
	}
	for _, name := range []string{"raft", "postgres"} {
		t.Run(name, func(t *testing.T) {
			n := backends[name]()
			n.t = t
			n.start()
			runAPISuite(t, n)
		})
	}
}

// TestPostgres_Types checks PostgreSQL's types in JSON through the HTTP
// API, and that SQL errors carry SQLSTATE.
func TestPostgres_Types(t *testing.T) {
	pg := pgtest.Start(t)
	n := newNode(t, withEnv("CAIRN_DB_URL="+pg.NewDB(t)))
	n.start()
	n.execute(`["CREATE TABLE v (id int8 PRIMARY KEY, n numeric, b bytea, ts timestamptz, j jsonb, a int8[], ok boolean)"]`)
	n.execute(`[["INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7)", 9223372036854775807, "12345678901234567890.000000000001", "\\x0001ff", "2024-05-06T07:08:09.5+02:00", "{\"big\": 123456789012345678901}", "{1,2}", true]]`)
	code, _, raw := n.do("GET", "/db/query?q="+urlQuery("SELECT * FROM v"), "")
	if code != 200 {
		t.Fatalf("HTTP %d: %s", code, raw)
	}
	want := `"values":[[9223372036854775807,"12345678901234567890.000000000001","AAH/","2024-05-06T05:08:09.5Z",{"big":123456789012345678901},[1,2],true]]`
	if !strings.Contains(string(raw), want) || !strings.Contains(string(raw), `"types":["int8","numeric","bytea","timestamptz","jsonb","_int8","bool"]`) {
		t.Fatalf("got %s\nwant values %s", raw, want)
	}
	code, r, raw := n.do("POST", "/db/execute", `["INSERT INTO v (id) VALUES (9223372036854775807)"]`)
	if code != 200 || len(r.Results) != 1 || !strings.Contains(r.Results[0].Error, "duplicate key value violates unique constraint") || !strings.Contains(r.Results[0].Error, "SQLSTATE 23505") {
		t.Fatalf("duplicate: HTTP %d: %s", code, raw)
	}
}

// TestPostgres_NoRaftNoBackups: the backup and cluster surfaces answer
// that the node is in Postgres mode, pointing to PostgreSQL's tools; the
// password in db.url shows up nowhere.
func TestPostgres_NoRaftNoBackups(t *testing.T) {
	pg := pgtest.Start(t)
	n := newNode(t, withEnv("CAIRN_DB_URL="+pg.NewDB(t)))
	n.start()

	code, _, raw := n.do("GET", "/v1/backups", "")
	if code != http.StatusNotImplemented || !strings.Contains(string(raw), "pg_dump") {
		t.Errorf("GET /v1/backups: HTTP %d: %s", code, raw)
	}
	code, _, raw = n.do("POST", "/join", `{"id":"2","addr":"127.0.0.1:1"}`)
	if code != http.StatusNotImplemented || !strings.Contains(string(raw), "Postgres mode") {
		t.Errorf("POST /join: HTTP %d: %s", code, raw)
	}
	out, err := exec.Command(binary, "cluster", "status", "--addr", n.http).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "postgres mode") {
		t.Errorf("cairn cluster status: %v: %s", err, out)
	}
	out, err = exec.Command(binary, "backup", "list", "--addr", n.http).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pg_dump") {
		t.Errorf("cairn backup list: %v: %s", err, out)
	}
	code, _, raw = n.do("GET", "/status", "")
	if code != 200 || !strings.Contains(string(raw), `"mode":"postgres"`) || !strings.Contains(string(raw), `"pool":{`) {
		t.Errorf("/status: HTTP %d: %s", code, raw)
	}
	code, _, raw = n.do("GET", "/healthz", "")
	if code != 200 || !strings.Contains(string(raw), `"in_use"`) {
		t.Errorf("/healthz: HTTP %d: %s", code, raw)
	}
	for _, p := range []string{"/status", "/healthz", "/readyz"} {
		if _, _, raw := n.do("GET", p, ""); bytes.Contains(raw, []byte(pg.Password)) {
			t.Errorf("%s shows the database password: %s", p, raw)
		}
	}
	n.stop()
	if b, _ := os.ReadFile(n.logPath); bytes.Contains(b, []byte(pg.Password)) {
		t.Errorf("the log shows the database password:\n%s", b)
	}
}

// TestPostgres_DownAtStart: with PostgreSQL down, the node starts, is
// live and not ready (503 naming the database), answers requests with 503
// and Retry-After at once, and becomes ready when PostgreSQL comes up.
func TestPostgres_DownAtStart(t *testing.T) {
	pg := pgtest.Start(t)
	pg.CreateDB(t, "app")
	pg.Stop()
	n := newNode(t, withEnv("CAIRN_DB_URL="+pg.URL("app"), "CAIRN_DB_CONNECT_TIMEOUT=1s"))
	n.startNoWait()
	waitFor(t, 20*time.Second, "/livez", func() bool {
		resp, err := http.Get(n.url("/livez"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	code, _, raw := n.do("GET", "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(raw), "database unavailable") {
		t.Fatalf("/readyz with PostgreSQL down: HTTP %d: %s", code, raw)
	}
	code, _, raw = n.do("GET", "/healthz", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with PostgreSQL down: HTTP %d: %s", code, raw)
	}
	start := time.Now()
	resp, err := http.Post(n.url("/db/execute"), "application/json", strings.NewReader(`["SELECT 1"]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || time.Since(start) > 5*time.Second {
		t.Fatalf("execute with PostgreSQL down: HTTP %d after %s, Retry-After %q: %s", resp.StatusCode, time.Since(start), resp.Header.Get("Retry-After"), body)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	n.waitReady(30 * time.Second)
	n.execute(`["CREATE TABLE t (v int)", "INSERT INTO t VALUES (1)"]`)
}

// TestPostgres_TwoNodesSurviveRestart: two Cairn nodes on one PostgreSQL
// take writes from the same client loop; PostgreSQL restarts in the
// middle. Every call ends quickly with success or a clean 5xx, both nodes
// serve again by themselves, and every acknowledged write is there, read
// back through each node.
func TestPostgres_TwoNodesSurviveRestart(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	nodes := []*node{
		newNode(t, withEnv("CAIRN_DB_URL="+url, "CAIRN_DB_MAX_CONNECTIONS=3")),
		newNode(t, withEnv("CAIRN_DB_URL="+url, "CAIRN_DB_MAX_CONNECTIONS=3")),
	}
	for _, n := range nodes {
		n.start()
	}
	nodes[0].execute(`["CREATE TABLE acks (id BIGINT PRIMARY KEY, node TEXT)"]`)

	load := startLoad(t, "INSERT INTO acks (id, node) VALUES ($1, $2)", 6, nodes...)
	load.waitMore(100, 20*time.Second, "writes before the restart")
	pg.Stop()
	time.Sleep(500 * time.Millisecond)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	load.waitMore(200, 30*time.Second, "writes after the restart")
	acked := load.stop()
	t.Logf("%d writes acknowledged, %d failed cleanly across the restart", len(acked), load.failures.Load())

	for _, n := range nodes {
		n.waitReady(10 * time.Second)
		requireIDs(t, "through node "+n.http, acked, idsAt(t, n, "strong"))
	}
}
