//go:build integration

package e2e

import (
	"testing"

	"github.com/rqlite/gorqlite"
)

// TestClient_Gorqlite points an unmodified rqlite client library at a real
// node: cluster discovery (/status, /nodes), execute, query, parameters,
// named parameters and transactions must all work as against rqlite.
func TestClient_Gorqlite(t *testing.T) {
	n := newNode(t)
	n.start()

	conn, err := gorqlite.Open("http://" + n.http + "/")
	if err != nil {
		t.Fatalf("gorqlite open: %v", err)
	}
	defer conn.Close()
	if leader, err := conn.Leader(); err != nil || leader != n.http {
		t.Fatalf("leader = %q, %v; want %s", leader, err, n.http)
	}

	if _, err := conn.WriteOne("CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INTEGER, big INTEGER)"); err != nil {
		t.Fatalf("create: %v", err)
	}
	// gorqlite itself decodes JSON numbers into float64, so this test keeps
	// to integers it can represent; exactness above 2^53 is checked in
	// TestAPI_WriteAndRead.
	const big = int64(1) << 52
	wr, err := conn.WriteParameterized([]gorqlite.ParameterizedStatement{
		{Query: "INSERT INTO foo (name, age, big) VALUES (?, ?, ?)", Arguments: []any{"fiona", 20, big}},
		{Query: "INSERT INTO foo (name, age) VALUES (:name, :age)", Arguments: []any{map[string]any{"name": "declan", "age": 30}}},
	})
	if err != nil {
		t.Fatalf("insert: %v (%+v)", err, wr)
	}
	if wr[0].LastInsertID != 1 || wr[1].LastInsertID != 2 || wr[1].RowsAffected != 1 {
		t.Errorf("write results = %+v", wr)
	}

	// gorqlite wraps multi-statement writes in ?transaction: the failing
	// second statement must roll back the first.
	if _, err := conn.Write([]string{
		"INSERT INTO foo (name, age) VALUES ('in-tx', 1)",
		"INSERT INTO foo (name, age) VALUES ('fiona', 2)",
	}); err == nil {
		t.Error("a failing transaction reported no error")
	}

	qr, err := conn.QueryOneParameterized(gorqlite.ParameterizedStatement{
		Query:     "SELECT id, name, age, big FROM foo WHERE age >= ? ORDER BY id",
		Arguments: []any{0},
	})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if qr.NumRows() != 2 {
		t.Fatalf("rows = %d, want 2 (the transaction must have rolled back)", qr.NumRows())
	}
	qr.Next()
	var (
		id, age int64
		name    string
		gotBig  gorqlite.NullInt64
	)
	if err := qr.Scan(&id, &name, &age, &gotBig); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if id != 1 || name != "fiona" || age != 20 || !gotBig.Valid || gotBig.Int64 != big {
		t.Errorf("row 1 = %d %q %d %+v", id, name, age, gotBig)
	}

	if err := conn.SetConsistencyLevel(gorqlite.ConsistencyLevelStrong); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryOne("SELECT COUNT(*) FROM foo")
	if err != nil || !rows.Next() {
		t.Fatalf("strong count: %v", err)
	}
	var count int64
	if err := rows.Scan(&count); err != nil || count != 2 {
		t.Errorf("count = %d, %v; want 2", count, err)
	}
}
