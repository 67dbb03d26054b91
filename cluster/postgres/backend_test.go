package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/internal/pgtest"
	"github.com/cairndb/cairn/statemachine/command"
)

// open starts a backend on url and closes it when the test ends.
func open(t *testing.T, url string, mod ...func(*Config)) *Backend {
	t.Helper()
	cfg := Config{URL: url, MaxConnections: 4, ConnectTimeout: 2 * time.Second, HealthCheckPeriod: 200 * time.Millisecond, NodeID: "1"}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// req builds a request of statements given as SQL or [SQL, params...].
func req(tx bool, stmts ...any) *command.Request {
	r := &command.Request{Transaction: tx}
	for _, s := range stmts {
		switch x := s.(type) {
		case string:
			r.Statements = append(r.Statements, &command.Statement{Sql: x})
		case []any:
			st := &command.Statement{Sql: x[0].(string)}
			for _, a := range x[1:] {
				var p *command.Param
				var err error
				if m, ok := a.(map[string]any); ok {
					for k, v := range m {
						p, err = command.NewParam(k, v)
					}
				} else {
					p, err = command.NewParam("", a)
				}
				if err != nil {
					panic(err)
				}
				st.Params = append(st.Params, p)
			}
			r.Statements = append(r.Statements, st)
		}
	}
	return r
}

func mustExec(t *testing.T, b *Backend, r *command.Request) []command.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.Execute(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if x.Error != "" {
			t.Fatalf("statement %d: %s", i+1, x.Error)
		}
	}
	return res
}

func mustQuery(t *testing.T, b *Backend, r *command.Request) []command.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.Query(ctx, r, cluster.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBackend_Types checks the JSON form of PostgreSQL's types: exact
// int8 and numeric, bytea, timestamps, json/jsonb with big numbers,
// arrays, uuid.
func TestBackend_Types(t *testing.T) {
	pg := pgtest.Start(t)
	b := open(t, pg.NewDB(t))
	res := mustQuery(t, b, req(false, `SELECT
		9223372036854775807::int8 AS i8, 32767::int2 AS i2, 1.5::float8 AS f8,
		123456789012345678901234567890.000000001::numeric AS n, 'NaN'::numeric AS nan, 1e3::numeric(10,0) AS big,
		'\xdeadbeef'::bytea AS blob, true AS b, 'héllo' AS s,
		'2024-02-29 13:14:15.123456+02'::timestamptz AS ts, '2024-02-29 13:14:15'::timestamp AS tsl, '2024-02-29'::date AS d,
		'{"a": 12345678901234567890, "b": [1, null]}'::jsonb AS jb, '{"x":1.0}'::json AS j,
		ARRAY[1,2,3]::int8[] AS arr, ARRAY['a', NULL] AS tarr,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, NULL::text AS nothing`))
	r := res[0]
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	got := map[string]string{}
	for i, c := range r.Columns {
		got[c] = asJSON(t, r.Values[0][i]) + " " + r.Types[i]
	}
	want := map[string]string{
		"i8":      `9223372036854775807 int8`,
		"i2":      `32767 int2`,
		"f8":      `1.5 float8`,
		"n":       `"123456789012345678901234567890.000000001" numeric`,
		"nan":     `"NaN" numeric`,
		"big":     `"1000" numeric`,
		"blob":    `"3q2+7w==" bytea`,
		"b":       `true bool`,
		"s":       `"héllo" text`,
		"ts":      `"2024-02-29T11:14:15.123456Z" timestamptz`,
		"tsl":     `"2024-02-29T13:14:15" timestamp`,
		"d":       `"2024-02-29" date`,
		"jb":      `{"a":12345678901234567890,"b":[1,null]} jsonb`,
		"j":       `{"x":1.0} json`,
		"arr":     `[1,2,3] _int8`,
		"tarr":    `["a",null] _text`,
		"u":       `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" uuid`,
		"nothing": `null text`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
}

// TestBackend_ExecuteSemantics: params by position and by name, rows
// affected, RETURNING, per-statement errors with SQLSTATE, and the
// transaction rules of the Raft mode.
func TestBackend_ExecuteSemantics(t *testing.T) {
	pg := pgtest.Start(t)
	b := open(t, pg.NewDB(t))
	mustExec(t, b, req(false, "CREATE TABLE t (id int8 PRIMARY KEY, name text NOT NULL, at timestamptz)"))

	res := mustExec(t, b, req(false,
		[]any{"INSERT INTO t (id, name, at) VALUES ($1, $2, $3)", int64(1), "one", "2024-01-02T03:04:05Z"},
		[]any{"INSERT INTO t (id, name) VALUES (@id, @name)", map[string]any{"id": int64(2)}, map[string]any{"name": "two"}},
		[]any{"UPDATE t SET name = upper(name) WHERE id <= $1", int64(5)},
	))
	if res[0].RowsAffected != 1 || res[1].RowsAffected != 1 || res[2].RowsAffected != 2 {
		t.Fatalf("rows affected: %+v", res)
	}
	ret := mustExec(t, b, req(false, []any{"INSERT INTO t (id, name) VALUES ($1, 'three') RETURNING id, name", int64(3)}))
	if asJSON(t, ret[0].Columns) != `["id","name"]` || asJSON(t, ret[0].Values) != `[[3,"three"]]` || ret[0].RowsAffected != 1 {
		t.Fatalf("RETURNING: %+v", ret[0])
	}

	// Without a transaction a failure does not stop the others.
	ctx := context.Background()
	res, err := b.Execute(ctx, req(false,
		"INSERT INTO t (id, name) VALUES (10, 'ten')",
		"INSERT INTO t (id, name) VALUES (10, 'dup')",
		"INSERT INTO nowhere VALUES (1)",
		"INSERT INTO t (id, name) VALUES (11, 'eleven')"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Error != "" || res[3].Error != "" ||
		!strings.Contains(res[1].Error, "SQLSTATE 23505") || !strings.Contains(res[2].Error, `relation "nowhere" does not exist (SQLSTATE 42P01)`) {
		t.Fatalf("results: %+v", res)
	}

	// With one, the first failure rolls everything back and stops.
	res, err = b.Execute(ctx, req(true,
		"INSERT INTO t (id, name) VALUES (20, 'twenty')",
		"INSERT INTO t (id, name) VALUES (21, NULL)",
		"INSERT INTO t (id, name) VALUES (22, 'never')"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !strings.Contains(res[1].Error, "SQLSTATE 23502") {
		t.Fatalf("transaction results: %+v", res)
	}
	q := mustQuery(t, b, req(false, "SELECT id, name, at FROM t ORDER BY id"))
	if got := asJSON(t, q[0].Values); got != `[[1,"ONE","2024-01-02T03:04:05Z"],[2,"TWO",null],[3,"three",null],[10,"ten",null],[11,"eleven",null]]` {
		t.Fatalf("rows: %s", got)
	}
}

// TestBackend_QueryIsReadOnly: a write sent as a query is refused as a
// whole and changes nothing; several reads share one snapshot and a
// failing one does not stop the next.
func TestBackend_QueryIsReadOnly(t *testing.T) {
	pg := pgtest.Start(t)
	b := open(t, pg.NewDB(t))
	mustExec(t, b, req(false, "CREATE TABLE t (v int)", "INSERT INTO t VALUES (1)"))

	_, err := b.Query(context.Background(), req(false, "SELECT 1", "DELETE FROM t"), cluster.QueryOptions{})
	if !errors.Is(err, cluster.ErrNotReadOnly) || !strings.Contains(err.Error(), "statement 2") {
		t.Fatalf("write as query: %v", err)
	}
	res := mustQuery(t, b, req(false, "SELECT count(*) FROM t", "SELECT nope FROM t", "SELECT v FROM t"))
	if asJSON(t, res[0].Values) != `[[1]]` || !strings.Contains(res[1].Error, "SQLSTATE 42703") || asJSON(t, res[2].Values) != `[[1]]` {
		t.Fatalf("reads: %+v", res)
	}
}

// TestBackend_PoolExhaustion: with every connection held, a request waits
// for its deadline and fails with it (no hang); the stats show the wait;
// released connections serve again.
func TestBackend_PoolExhaustion(t *testing.T) {
	pg := pgtest.Start(t)
	b := open(t, pg.NewDB(t), func(c *Config) { c.MaxConnections = 2 })
	ctx := context.Background()
	var unlocks []func()
	for i := range 2 {
		u, err := b.Lock(ctx, int64(100+i))
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, u)
	}
	waitErr := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := b.Query(c, req(false, "SELECT 1"), cluster.QueryOptions{})
		waitErr <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Waiting == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := b.Stats(); st.Waiting != 1 || st.InUse != 2 || st.Max != 2 {
		t.Errorf("stats while exhausted: %+v", st)
	}
	if err := <-waitErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exhausted pool: %v", err)
	}
	for _, u := range unlocks {
		u()
	}
	res := mustQuery(t, b, req(false, "SELECT 1"))
	if asJSON(t, res[0].Values) != `[[1]]` {
		t.Fatalf("after release: %+v", res)
	}
	if st := b.Stats(); st.EmptyAcquires == 0 || st.CanceledAcquires == 0 || st.Waiting != 0 {
		t.Errorf("stats after: %+v", st)
	}
}

// TestBackend_Lock: two holders of one advisory lock never overlap.
func TestBackend_Lock(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	b1, b2 := open(t, url), open(t, url)
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		wg.Go(func() {
			unlock, err := b.Lock(context.Background(), 42)
			if err != nil {
				t.Error(err)
				return
			}
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping holders", overlaps.Load())
	}
}

// TestBackend_Recovers: PostgreSQL down at start (not ready, clean
// errors), then up (ready), restarted under load, and its database
// dropped and made again: the pool heals by itself and no call hangs.
func TestBackend_Recovers(t *testing.T) {
	pg := pgtest.Start(t)
	pg.CreateDB(t, "app")
	url := pg.URL("app")
	pg.Stop()

	b := open(t, url)
	ctx := context.Background()
	if err := b.Ready(ctx); !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("ready with PostgreSQL down: %v", err)
	}
	start := time.Now()
	if _, err := b.Execute(ctx, req(false, "SELECT 1")); !errors.Is(err, cluster.ErrUnavailable) || strings.Contains(err.Error(), pg.Password) {
		t.Fatalf("execute with PostgreSQL down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a call with PostgreSQL down took %s", d)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, b)
	mustExec(t, b, req(false, "CREATE TABLE t (v int8)"))

	// Load across a restart: every call ends (ok or a clean error) well
	// within its deadline, and writes work again afterwards.
	stop := make(chan struct{})
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := b.Execute(c, req(false, []any{"INSERT INTO t VALUES ($1)", int64(w*1_000_000 + i)}))
				cancel()
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					if errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("a call hung to its deadline: %v", err)
					}
					if !errors.Is(err, cluster.ErrUnavailable) && !errors.Is(err, cluster.ErrUnknownOutcome) {
						t.Errorf("unexpected error class: %v", err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	pg.Stop()
	time.Sleep(300 * time.Millisecond)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	before := calls.Load() - failures.Load()
	waitFor(t, 20*time.Second, "writes to succeed again after the restart", func() bool {
		return calls.Load()-failures.Load() > before+20
	})
	close(stop)
	wg.Wait()
	t.Logf("restart under load: %d calls, %d failed cleanly", calls.Load(), failures.Load())

	// Drop and make the database again.
	pg.DropDB(t, "app")
	pg.CreateDB(t, "app")
	waitFor(t, 20*time.Second, "the recreated database to serve", func() bool {
		_, err := b.Execute(ctx, req(false, "CREATE TABLE IF NOT EXISTS t2 (v int)"))
		return err == nil
	})
	res := mustQuery(t, b, req(false, "SELECT count(*) FROM t2"))
	if asJSON(t, res[0].Values) != `[[0]]` {
		t.Fatalf("recreated database: %+v", res)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOpen_BadURL: a URL pgx cannot parse is refused without its password.
func TestOpen_BadURL(t *testing.T) {
	_, err := Open(context.Background(), Config{URL: "postgres://u:s3cretpw@host:notaport/db"})
	if err == nil || strings.Contains(err.Error(), "s3cretpw") || !strings.Contains(err.Error(), "db.url") {
		t.Fatalf("bad URL: %v", err)
	}
}

func waitReady(t *testing.T, b *Backend) {
	t.Helper()
	waitFor(t, 20*time.Second, "ready", func() bool { return b.Ready(context.Background()) == nil })
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBackend_Reconfigure: the pool is rebuilt under load without failing
// a request; a URL naming another database is refused.
func TestBackend_Reconfigure(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDB(t)
	b := open(t, url, func(c *Config) { c.MaxConnections = 2 })
	mustExec(t, b, req(false, "CREATE TABLE t (v int8)"))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := b.Execute(context.Background(), req(false, []any{"INSERT INTO t VALUES ($1)", int64(w*1_000_000 + i)}))
				if err != nil || res[0].Error != "" {
					t.Errorf("during reconfigure: %v %+v", err, res)
					return
				}
				ok.Add(1)
			}
		})
	}
	waitFor(t, 10*time.Second, "writes", func() bool { return ok.Load() > 50 })
	if err := b.Reconfigure(context.Background(), Config{URL: url, MaxConnections: 6, StatementTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	n := ok.Load()
	waitFor(t, 10*time.Second, "writes on the new pool", func() bool { return ok.Load() > n+50 })
	close(stop)
	wg.Wait()
	if st := b.Stats(); st.Max != 6 {
		t.Fatalf("max connections after reconfigure: %+v", st)
	}
	res := mustQuery(t, b, req(false, "SHOW statement_timeout"))
	if asJSON(t, res[0].Values) != `[["1min"]]` {
		t.Fatalf("statement_timeout: %+v", res[0].Values)
	}
	if err := b.Reconfigure(context.Background(), Config{URL: pg.URL("postgres")}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("another database: %v", err)
	}
}

// TestBackend_StatementErrorsAreNotConnectionErrors: a statement timeout
// and a parameter PostgreSQL's type cannot hold are the statement's
// errors; the connection and the pool stay as they were.
func TestBackend_StatementErrorsAreNotConnectionErrors(t *testing.T) {
	pg := pgtest.Start(t)
	b := open(t, pg.NewDB(t), func(c *Config) { c.StatementTimeout = 200 * time.Millisecond })
	mustExec(t, b, req(false, "CREATE TABLE t (v int4)"))
	ctx := context.Background()

	res, err := b.Execute(ctx, req(false, "SELECT pg_sleep(2)", "INSERT INTO t VALUES (1)"))
	if err != nil || len(res) != 2 || !strings.Contains(res[0].Error, "SQLSTATE 57014") || res[1].Error != "" {
		t.Fatalf("statement timeout: %v %+v", err, res)
	}
	res, err = b.Execute(ctx, req(false, []any{"INSERT INTO t VALUES ($1)", int64(1) << 40}, "INSERT INTO t VALUES (2)"))
	if err != nil || len(res) != 2 || res[0].Error == "" || res[1].Error != "" {
		t.Fatalf("a parameter out of range: %v %+v", err, res)
	}
	q, err := b.Query(ctx, req(false, "SELECT pg_sleep(2)", "SELECT count(*) FROM t"), cluster.QueryOptions{})
	if err != nil || !strings.Contains(q[0].Error, "57014") || asJSON(t, q[1].Values) != `[[2]]` {
		t.Fatalf("timeout inside a read transaction: %v %+v", err, q)
	}
	if st := b.Stats(); st.Total == 0 {
		t.Errorf("the pool was reset by statement errors: %+v", st)
	}
}
