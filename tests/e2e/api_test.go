//go:build integration

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cairndb/cairn/internal/testproc"
)

// TestAPI_WriteAndRead writes rows through the HTTP API of a real node, with
// every kind of parameter, and reads them back in both output shapes.
func TestAPI_WriteAndRead(t *testing.T) {
	n := newNode(t)
	n.start()

	n.execute(`["CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INTEGER, big INTEGER, score REAL, photo BLOB)"]`)

	r := n.execute(`[
		["INSERT INTO people (name, age, big, score) VALUES (?, ?, ?, ?)", "fiona", 20, 9223372036854775807, 1.25],
		["INSERT INTO people (name, age, big) VALUES (:name, :age, :big)", {"name": "declan", "age": 30, "big": 9007199254740993}],
		"INSERT INTO people (name, age, big) VALUES ('min', 1, -9223372036854775808)"
	]`)
	if len(r.Results) != 3 || r.Results[0].LastInsertID != 1 || r.Results[1].LastInsertID != 2 || r.Results[0].RowsAffected != 1 {
		t.Fatalf("insert results = %+v", r.Results)
	}

	// A BLOB goes in as a hex literal (as with rqlite) and comes back as
	// base64.
	n.execute(`["INSERT INTO people (name, photo) VALUES ('blob', X'00FF10')"]`)

	t.Run("Values", func(t *testing.T) {
		q := n.query("SELECT id, name, age, big, score, photo FROM people ORDER BY id", "weak")
		if got := strings.Join(q.Columns, ","); got != "id,name,age,big,score,photo" {
			t.Errorf("columns = %s", got)
		}
		var types []string
		if err := json.Unmarshal(q.Types, &types); err != nil || strings.Join(types, ",") != "integer,text,integer,integer,real,blob" {
			t.Errorf("types = %s (%v)", q.Types, err)
		}
		if len(q.Values) != 4 {
			t.Fatalf("rows = %v", q.Values)
		}
		checks := []struct {
			row, col int
			want     string
		}{
			{0, 1, "fiona"}, {0, 3, "9223372036854775807"}, {0, 4, "1.25"},
			{1, 1, "declan"}, {1, 3, "9007199254740993"},
			{2, 3, "-9223372036854775808"},
			{3, 5, base64.StdEncoding.EncodeToString([]byte{0, 0xff, 0x10})},
		}
		for _, c := range checks {
			if got := fmt.Sprint(q.Values[c.row][c.col]); got != c.want {
				t.Errorf("row %d col %d = %s, want %s", c.row, c.col, got, c.want)
			}
		}
	})

	t.Run("Associative", func(t *testing.T) {
		code, r, raw := n.do("GET", "/db/query?associative&q="+urlQuery("SELECT name, big FROM people WHERE id = 2"), "")
		if code != http.StatusOK || len(r.Results) != 1 || len(r.Results[0].Rows) != 1 {
			t.Fatalf("HTTP %d: %s", code, raw)
		}
		row := r.Results[0].Rows[0]
		if fmt.Sprint(row["name"]) != "declan" || fmt.Sprint(row["big"]) != "9007199254740993" {
			t.Errorf("row = %v", row)
		}
		if !strings.Contains(string(raw), `"big":9007199254740993`) {
			t.Errorf("big integer not exact in %s", raw)
		}
	})

	t.Run("TransactionRollsBack", func(t *testing.T) {
		code, r, raw := n.do("POST", "/db/execute?transaction", `[
			"INSERT INTO people (name) VALUES ('in-tx')",
			"INSERT INTO people (name) VALUES ('fiona')",
			"INSERT INTO people (name) VALUES ('never')"
		]`)
		if code != http.StatusOK || len(r.Results) < 2 || !strings.Contains(r.Results[1].Error, "UNIQUE") {
			t.Fatalf("HTTP %d: %s", code, raw)
		}
		q := n.query("SELECT COUNT(*) FROM people WHERE name IN ('in-tx', 'never')", "strong")
		if fmt.Sprint(q.Values[0][0]) != "0" {
			t.Errorf("rows of a failed transaction were kept: %v", q.Values)
		}
	})

	t.Run("PerStatementErrors", func(t *testing.T) {
		code, r, raw := n.do("POST", "/db/execute", `["INSERT INTO nope VALUES (1)", "INSERT INTO people (name) VALUES ('after')"]`)
		if code != http.StatusOK || len(r.Results) != 2 || !strings.Contains(r.Results[0].Error, "no such table") || r.Results[1].Error != "" {
			t.Fatalf("HTTP %d: %s", code, raw)
		}
	})

	t.Run("Levels", func(t *testing.T) {
		for _, level := range []string{"none", "weak", "linearizable", "strong"} {
			q := n.query("SELECT COUNT(*) FROM people", level)
			if fmt.Sprint(q.Values[0][0]) != "5" {
				t.Errorf("level %s: count = %v, want 5", level, q.Values)
			}
		}
	})

	t.Run("Timings", func(t *testing.T) {
		_, _, raw := n.do("POST", "/db/query?timings", `["SELECT 1"]`)
		if !strings.Contains(string(raw), `"time"`) {
			t.Errorf("no time in %s", raw)
		}
		_, _, raw = n.do("POST", "/db/query", `["SELECT 1"]`)
		if strings.Contains(string(raw), `"time"`) {
			t.Errorf("time without ?timings: %s", raw)
		}
	})

	t.Run("Request", func(t *testing.T) {
		code, r, raw := n.do("POST", "/db/request", `["INSERT INTO people (name) VALUES ('via-request')", "SELECT name FROM people WHERE name = 'via-request'"]`)
		if code != http.StatusOK || len(r.Results) != 2 || r.Results[0].RowsAffected != 1 || len(r.Results[1].Values) != 1 {
			t.Fatalf("HTTP %d: %s", code, raw)
		}
	})

	t.Run("NonDeterministicRewritten", func(t *testing.T) {
		n.execute(`["CREATE TABLE ev (r INTEGER, ts TEXT)", "INSERT INTO ev VALUES (RANDOM(), CURRENT_TIMESTAMP)"]`)
		q1 := n.query("SELECT r, ts FROM ev", "none")
		q2 := n.query("SELECT r, ts FROM ev", "strong")
		if fmt.Sprint(q1.Values) != fmt.Sprint(q2.Values) || len(q1.Values) != 1 {
			t.Errorf("values differ: %v vs %v", q1.Values, q2.Values)
		}
	})
}

func urlQuery(s string) string {
	return strings.NewReplacer(" ", "%20", "=", "%3D", "'", "%27", ",", "%2C", "*", "%2A").Replace(s)
}

// TestAPI_BadInput sends every kind of bad request to a real node: each gets
// a clear error with a fitting status, and the node keeps serving with its
// data intact.
func TestAPI_BadInput(t *testing.T) {
	n := newNode(t, withEnv("CAIRN_HTTP_MAX_BODY_SIZE=4096"))
	n.start()
	n.execute(`["CREATE TABLE t (v TEXT)", "INSERT INTO t VALUES ('kept')"]`)

	cases := []struct {
		name, method, path, body string
		code                     int
		contains                 string
	}{
		{"MalformedJSON", "POST", "/db/execute", `["INSERT INTO t VALUES (1)"`, 400, "JSON"},
		{"NotAnArray", "POST", "/db/execute", `{"sql": "x"}`, 400, ""},
		{"BadParamType", "POST", "/db/execute", `[["INSERT INTO t VALUES (?)", {"a": {"nested": 1}}]]`, 400, ""},
		{"IntegerTooBig", "POST", "/db/execute", `[["INSERT INTO t VALUES (?)", 99999999999999999999]]`, 400, ""},
		{"UnknownLevel", "POST", "/db/query?level=eventual", `["SELECT 1"]`, 400, "eventual"},
		{"WriteOnQuery", "POST", "/db/query", `["INSERT INTO t VALUES ('sneaky')"]`, 400, "read-only"},
		{"Oversized", "POST", "/db/execute", `["INSERT INTO t VALUES ('` + strings.Repeat("x", 5000) + `')"]`, 413, ""},
		{"WrongMethod", "DELETE", "/db/execute", ``, 405, ""},
		{"SQLError", "POST", "/db/execute", `["INSERT INTO missing VALUES (1)"]`, 200, "no such table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, raw := n.do(c.method, c.path, c.body)
			if code != c.code {
				t.Errorf("HTTP %d, want %d: %s", code, c.code, raw)
			}
			if c.code != 200 && !strings.Contains(string(raw), `"error"`) {
				t.Errorf("no error field in %s", raw)
			}
			if c.contains != "" && !strings.Contains(string(raw), c.contains) {
				t.Errorf("answer %s does not mention %q", raw, c.contains)
			}
		})
	}

	q := n.query("SELECT v FROM t", "strong")
	if len(q.Values) != 1 || fmt.Sprint(q.Values[0][0]) != "kept" {
		t.Errorf("after bad input rows = %v, want only 'kept'", q.Values)
	}
}

// TestServe_FilePermissions checks the data directory is 0700 and every file
// in it 0600.
func TestServe_FilePermissions(t *testing.T) {
	n := newNode(t)
	n.start()
	n.execute(`["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"]`)
	n.stop()
	testproc.CheckPrivate(t, n.dataDir)
}
