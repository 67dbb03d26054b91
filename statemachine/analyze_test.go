package statemachine

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// testNow is the clock of the table tests; its literals appear in the
// expected SQL below.
var testNow = time.Date(2026, 11, 23, 10, 38, 20, 123456789, time.UTC)

const (
	nowLit       = `'2026-11-23 10:38:20.123'` // replaces 'now'
	timestampLit = `'2026-11-23 10:38:20'`     // CURRENT_TIMESTAMP
	dateLit      = `'2026-11-23'`              // CURRENT_DATE
	timeLit      = `'10:38:20'`                // CURRENT_TIME
)

// newTestRewriter returns a Rewriter with testNow and a Rand that returns
// seq in order, then 1001, 1002, ... (so random() calls become 1001, 1002...
// when seq is empty).
func newTestRewriter(seq ...int64) *Rewriter {
	next := int64(1000)
	return &Rewriter{
		Now: func() time.Time { return testNow },
		Rand: func() int64 {
			if len(seq) > 0 {
				v := seq[0]
				seq = seq[1:]
				return v
			}
			next++
			return next
		},
	}
}

// write, read and rewritten build expected analyses.
func write(sql string, returnsRows bool) Analysis {
	return Analysis{SQL: sql, ReturnsRows: returnsRows}
}

func read(sql string) Analysis {
	return Analysis{SQL: sql, ReadOnly: true, ReturnsRows: true}
}

func rewritten(sql string, returnsRows bool) Analysis {
	return Analysis{SQL: sql, ReturnsRows: returnsRows, Rewritten: true}
}

func TestRewriter_Analyze(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		rand []int64 // values Rand returns first
		want []Analysis
	}{
		// random()
		{
			name: "RandomTopLevel",
			in:   "INSERT INTO t(a) VALUES(random())",
			want: []Analysis{rewritten("INSERT INTO t(a) VALUES(1001)", false)},
		},
		{
			name: "RandomInSubquery",
			in:   "INSERT INTO t(a) VALUES((SELECT random()))",
			want: []Analysis{rewritten("INSERT INTO t(a) VALUES((SELECT 1001))", false)},
		},
		{
			name: "RandomInInSubquery",
			in:   "DELETE FROM t WHERE a IN (SELECT random()) OR b ISNULL AND random() ISNULL",
			want: []Analysis{rewritten("DELETE FROM t WHERE a IN (SELECT 1001) OR b ISNULL AND 1002 ISNULL", false)},
		},
		{
			name: "RandomInInsertSelect",
			in:   "INSERT INTO t(a, b) SELECT random(), b FROM u WHERE b > abs(random())",
			want: []Analysis{rewritten("INSERT INTO t(a, b) SELECT 1001, b FROM u WHERE b > abs(1002)", false)},
		},
		{
			name: "SeveralRandom",
			in:   "INSERT INTO t VALUES(random(), random() % 10, RANDOM())",
			want: []Analysis{rewritten("INSERT INTO t VALUES(1001, 1002 % 10, 1003)", false)},
		},
		{
			name: "RandomNegativeIsParenthesised",
			in:   "UPDATE t SET a = 5-random(), b = random()",
			rand: []int64{-7, -9223372036854775808},
			want: []Analysis{rewritten("UPDATE t SET a = 5-(-7), b = (-9223372036854775808)", false)},
		},
		{
			name: "RandomInCTEOfInsert",
			in:   "WITH x AS (SELECT random() AS r) INSERT INTO t SELECT r FROM x",
			want: []Analysis{rewritten("WITH x AS (SELECT 1001 AS r) INSERT INTO t SELECT r FROM x", false)},
		},
		{
			name: "RandomAsOrderByTerm",
			in:   "DELETE FROM t WHERE rowid IN (SELECT rowid FROM t ORDER BY (random()) LIMIT 1)",
			want: []Analysis{rewritten("DELETE FROM t WHERE rowid IN (SELECT rowid FROM t ORDER BY (CAST(1001 AS INTEGER)) LIMIT 1)", false)},
		},
		{
			name: "RandomInsideOrderByExpression",
			in:   "INSERT INTO t SELECT a FROM u GROUP BY random() ORDER BY a + random()",
			want: []Analysis{rewritten("INSERT INTO t SELECT a FROM u GROUP BY CAST(1001 AS INTEGER) ORDER BY a + 1002", false)},
		},
		{
			name: "RandomBlob",
			in:   "INSERT INTO t VALUES(randomblob(4), RANDOMBLOB(0x0a), randomblob(?), randomblob(-3), hex(randomblob(2)))",
			// 1001 = 0x3e9 and 1002 = 0x3ea, little-endian.
			want: []Analysis{rewritten("INSERT INTO t VALUES(X'e9030000', X'ea03000000000000eb03', randomblob(?), X'ec', hex(X'ed03'))", false)},
		},
		{
			name: "RandomWithArgumentsLeftToSQLite",
			in:   "INSERT INTO t VALUES(random(1), randomblob(1, 2))",
			want: []Analysis{write("INSERT INTO t VALUES(random(1), randomblob(1, 2))", false)},
		},
		{
			name: "RandomInReadNotRewritten",
			in:   "SELECT random(), datetime('now'), CURRENT_TIMESTAMP FROM t ORDER BY random()",
			want: []Analysis{read("SELECT random(), datetime('now'), CURRENT_TIMESTAMP FROM t ORDER BY random()")},
		},

		// 'now' and CURRENT_*
		{
			name: "NowInPlainStringUnchanged",
			in:   "INSERT INTO t VALUES('now', upper('now'), 'NOW') ON CONFLICT DO UPDATE SET a = 'now'",
			want: []Analysis{write("INSERT INTO t VALUES('now', upper('now'), 'NOW') ON CONFLICT DO UPDATE SET a = 'now'", false)},
		},
		{
			name: "DatetimeNow",
			in:   "INSERT INTO t VALUES(datetime('now'))",
			want: []Analysis{rewritten("INSERT INTO t VALUES(datetime("+nowLit+"))", false)},
		},
		{
			name: "DatetimeNowWithModifier",
			in:   "INSERT INTO t VALUES(datetime('now', '+1 day'), date('now','start of month'), time('now'))",
			want: []Analysis{rewritten("INSERT INTO t VALUES(datetime("+nowLit+", '+1 day'), date("+nowLit+",'start of month'), time("+nowLit+"))", false)},
		},
		{
			name: "Strftime",
			in:   "UPDATE t SET a = strftime('%s','now'), b = strftime('%Y'), c = strftime('%s', '2020-01-01')",
			want: []Analysis{rewritten("UPDATE t SET a = strftime('%s',"+nowLit+"), b = strftime('%Y', "+nowLit+"), c = strftime('%s', '2020-01-01')", false)},
		},
		{
			name: "JuliandayUnixepochTimediff",
			in:   "INSERT INTO t VALUES(julianday('now'), unixepoch('NOW', 'subsec'), timediff('now', '2020-01-01'), julianday('2020-01-01'))",
			want: []Analysis{rewritten("INSERT INTO t VALUES(julianday("+nowLit+"), unixepoch("+nowLit+", 'subsec'), timediff("+nowLit+", '2020-01-01'), julianday('2020-01-01'))", false)},
		},
		{
			name: "ImplicitNow",
			in:   "INSERT INTO t VALUES(date(), time(), datetime(), julianday(), unixepoch())",
			want: []Analysis{rewritten("INSERT INTO t VALUES(date("+nowLit+"), time("+nowLit+"), datetime("+nowLit+"), julianday("+nowLit+"), unixepoch("+nowLit+"))", false)},
		},
		{
			name: "DoubleQuotedNow",
			in:   `INSERT INTO t VALUES(date("now"), date(now), date(` + "`now`" + `))`,
			want: []Analysis{rewritten(`INSERT INTO t VALUES(date(`+nowLit+`), date(now), date(`+"`now`"+`))`, false)},
		},
		{
			name: "CurrentInInsert",
			in:   "INSERT INTO t(a, b, c) VALUES(CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIME)",
			want: []Analysis{rewritten("INSERT INTO t(a, b, c) VALUES("+timestampLit+", "+dateLit+", "+timeLit+")", false)},
		},
		{
			name: "CurrentInUpdateSetAndWhere",
			in:   "UPDATE t SET a = CURRENT_TIMESTAMP WHERE b < CURRENT_DATE AND c <> 'CURRENT_TIME'",
			want: []Analysis{rewritten("UPDATE t SET a = "+timestampLit+" WHERE b < "+dateLit+" AND c <> 'CURRENT_TIME'", false)},
		},
		{
			name: "CurrentAsColumnNameUnchanged",
			in:   `INSERT INTO c(current_date, "current_time") VALUES(current_date, 1); UPDATE c SET current_time = current_time`,
			want: []Analysis{
				rewritten(`INSERT INTO c(current_date, "current_time") VALUES(`+dateLit+`, 1)`, false),
				rewritten(`UPDATE c SET current_time = `+timeLit, false),
			},
		},
		{
			name: "CaseInsensitive",
			in:   "INSERT INTO t VALUES(Random(), current_timestamp, DateTime('NOW'), Current_Date, STRFTIME('%s', 'Now'))",
			want: []Analysis{rewritten("INSERT INTO t VALUES(1001, "+timestampLit+", DateTime("+nowLit+"), "+dateLit+", STRFTIME('%s', "+nowLit+"))", false)},
		},
		{
			name: "NonASCIIBeforeRewrite",
			in:   "INSERT INTO t VALUES('héllo wörld ✓', random(), CURRENT_DATE)",
			want: []Analysis{rewritten("INSERT INTO t VALUES('héllo wörld ✓', 1001, "+dateLit+")", false)},
		},
		{
			name: "CommentsKept",
			in:   "INSERT /* keep; me */ INTO t VALUES(random()) -- trailing",
			want: []Analysis{rewritten("INSERT /* keep; me */ INTO t VALUES(1001) -- trailing", false)},
		},
		{
			name: "LeadingCommentAndCRLF",
			in:   "/* é; ✓ */\r\nINSERT INTO t VALUES(random(),\r\n\tCURRENT_TIME) -- ü\r\n;\r\n",
			want: []Analysis{rewritten("/* é; ✓ */\r\nINSERT INTO t VALUES(1001,\r\n\t"+timeLit+") -- ü", false)},
		},
		{
			name: "Upsert",
			in:   "INSERT INTO t(a, b) VALUES(1, CURRENT_TIMESTAMP) ON CONFLICT(a) DO UPDATE SET b = datetime('now') WHERE b < date()",
			want: []Analysis{rewritten("INSERT INTO t(a, b) VALUES(1, "+timestampLit+") ON CONFLICT(a) DO UPDATE SET b = datetime("+nowLit+") WHERE b < date("+nowLit+")", false)},
		},

		// DDL
		{
			name: "DefaultCurrentTimestampUnchanged",
			in:   "CREATE TABLE t (id INTEGER PRIMARY KEY, created TEXT DEFAULT CURRENT_TIMESTAMP, d TEXT DEFAULT (datetime('now')), r INTEGER DEFAULT (random()))",
			want: []Analysis{write("CREATE TABLE t (id INTEGER PRIMARY KEY, created TEXT DEFAULT CURRENT_TIMESTAMP, d TEXT DEFAULT (datetime('now')), r INTEGER DEFAULT (random()))", false)},
		},
		{
			name: "TriggerBodyUnchangedAndSplit",
			in: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n" +
				"  UPDATE t SET a = CASE WHEN new.a > 0 THEN 'x;' ELSE CURRENT_TIMESTAMP END;\n" +
				"  INSERT INTO u VALUES(random());\n" +
				"END;\n" +
				"INSERT INTO t VALUES(random())",
			want: []Analysis{
				write("CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"+
					"  UPDATE t SET a = CASE WHEN new.a > 0 THEN 'x;' ELSE CURRENT_TIMESTAMP END;\n"+
					"  INSERT INTO u VALUES(random());\n"+
					"END", false),
				rewritten("INSERT INTO t VALUES(1001)", false),
			},
		},
		{
			name: "ViewUnchanged",
			in:   "CREATE VIEW v AS SELECT random() AS r, CURRENT_TIMESTAMP AS ts",
			want: []Analysis{write("CREATE VIEW v AS SELECT random() AS r, CURRENT_TIMESTAMP AS ts", false)},
		},
		{
			name: "CreateTableAsSelectRewritten",
			in:   "CREATE TABLE t2 (x DEFAULT CURRENT_TIME); CREATE TABLE t3 AS SELECT random() AS r, CURRENT_TIMESTAMP AS ts",
			want: []Analysis{
				write("CREATE TABLE t2 (x DEFAULT CURRENT_TIME)", false),
				rewritten("CREATE TABLE t3 AS SELECT 1001 AS r, "+timestampLit+" AS ts", false),
			},
		},

		// RETURNING and CTEs
		{
			name: "Returning",
			in:   "INSERT INTO t(a) VALUES(1) RETURNING id; UPDATE t SET a = 2 RETURNING *; DELETE FROM t RETURNING a, CURRENT_TIMESTAMP; DELETE FROM t",
			want: []Analysis{
				write("INSERT INTO t(a) VALUES(1) RETURNING id", true),
				write("UPDATE t SET a = 2 RETURNING *", true),
				rewritten("DELETE FROM t RETURNING a, "+timestampLit, true),
				write("DELETE FROM t", false),
			},
		},
		{
			name: "CTERead",
			in:   "WITH x AS (SELECT 1 AS a), y AS (SELECT a FROM x) SELECT a FROM y",
			want: []Analysis{read("WITH x AS (SELECT 1 AS a), y AS (SELECT a FROM x) SELECT a FROM y")},
		},
		{
			name: "CTEWrite",
			in: "WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x;" +
				"WITH x AS (SELECT 1 AS a) UPDATE t SET b = 1 WHERE a IN (SELECT a FROM x);" +
				"WITH x AS (SELECT 1 AS a) DELETE FROM t WHERE a IN (SELECT a FROM x) RETURNING a",
			want: []Analysis{
				write("WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x", false),
				write("WITH x AS (SELECT 1 AS a) UPDATE t SET b = 1 WHERE a IN (SELECT a FROM x)", false),
				write("WITH x AS (SELECT 1 AS a) DELETE FROM t WHERE a IN (SELECT a FROM x) RETURNING a", true),
			},
		},

		// Splitting
		{
			name: "SeveralStatements",
			in: "INSERT INTO t VALUES('a;b', random());\n" +
				"SELECT * FROM t WHERE a = 'it''s;' ; ;\n" +
				"-- a comment; with a semicolon\n" +
				`UPDATE "we;ird" SET a = 1 /* ; */ WHERE [x;y] = 2;` +
				"\n-- trailing comment",
			want: []Analysis{
				rewritten("INSERT INTO t VALUES('a;b', 1001)", false),
				read("SELECT * FROM t WHERE a = 'it''s;'"),
				write("-- a comment; with a semicolon\n"+`UPDATE "we;ird" SET a = 1 /* ; */ WHERE [x;y] = 2`, false),
			},
		},
		{
			name: "OneClockReadingPerCall",
			in:   "INSERT INTO t VALUES(CURRENT_TIMESTAMP); INSERT INTO t VALUES(datetime('now'))",
			want: []Analysis{
				rewritten("INSERT INTO t VALUES("+timestampLit+")", false),
				rewritten("INSERT INTO t VALUES(datetime("+nowLit+"))", false),
			},
		},
		{name: "Empty", in: ""},
		{name: "OnlyWhitespace", in: " \n\t "},
		{name: "OnlyComments", in: "-- nothing\n/* here; */ ;; ;"},

		// Statements the parser cannot handle are passed through.
		{
			name: "ParserCannotHandle",
			in: "VACUUM; ATTACH DATABASE 'x.db' AS x; DETACH x; PRAGMA foreign_keys = ON; " +
				"SELECT [a] FROM t; SELECT a FROM t WHERE a IS DISTINCT FROM random(); " +
				"CREATE TEMP TABLE x(a DEFAULT (random())); INSERT INTO t SELECT [a] FROM u RETURNING *; " +
				"WITH x AS (SELECT [a] FROM t) SELECT * FROM x; WITH x AS (SELECT [a] FROM t) DELETE FROM u; " +
				"SELECT replace([a], 'x', 'y') FROM t; SELECT [a] FROM t; DELETE FROM t",
			want: []Analysis{
				write("VACUUM", false),
				write("ATTACH DATABASE 'x.db' AS x", false),
				write("DETACH x", false),
				write("PRAGMA foreign_keys = ON", true),
				read("SELECT [a] FROM t"),
				read("SELECT a FROM t WHERE a IS DISTINCT FROM random()"),
				write("CREATE TEMP TABLE x(a DEFAULT (random()))", false),
				write("INSERT INTO t SELECT [a] FROM u RETURNING *", true),
				read("WITH x AS (SELECT [a] FROM t) SELECT * FROM x"),
				write("WITH x AS (SELECT [a] FROM t) DELETE FROM u", false),
				read("SELECT replace([a], 'x', 'y') FROM t"),
				read("SELECT [a] FROM t"),
				write("DELETE FROM t", false),
			},
		},
		{
			name: "InvalidPassedThrough",
			in:   "SELEC 1; INSERT INTO; SELECT (1",
			want: []Analysis{
				write("SELEC 1", false),
				write("INSERT INTO", false),
				read("SELECT (1"),
			},
		},

		// Classification
		{
			name: "Pragma",
			in: "PRAGMA foreign_keys; PRAGMA main.journal_mode; PRAGMA journal_mode=WAL; PRAGMA main.table_info(t); " +
				"PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize; PRAGMA user_version = 3",
			want: []Analysis{
				read("PRAGMA foreign_keys"),
				read("PRAGMA main.journal_mode"),
				write("PRAGMA journal_mode=WAL", true),
				read("PRAGMA main.table_info(t)"),
				write("PRAGMA wal_checkpoint(TRUNCATE)", true),
				write("PRAGMA optimize", true),
				write("PRAGMA user_version = 3", true),
			},
		},
		{
			name: "Explain",
			in:   "EXPLAIN QUERY PLAN SELECT * FROM t; EXPLAIN INSERT INTO t VALUES(random()); EXPLAIN VACUUM",
			want: []Analysis{
				read("EXPLAIN QUERY PLAN SELECT * FROM t"),
				read("EXPLAIN INSERT INTO t VALUES(random())"),
				read("EXPLAIN VACUUM"),
			},
		},
		{
			name: "Values",
			in:   "VALUES(1, random())",
			want: []Analysis{read("VALUES(1, random())")},
		},
		{
			name: "NotReadOnly",
			in: "BEGIN; COMMIT; ROLLBACK; SAVEPOINT s; RELEASE s; ANALYZE; REINDEX; DROP TABLE t; " +
				"ALTER TABLE t ADD COLUMN c; CREATE INDEX i ON t(a); REPLACE INTO t VALUES(1); END",
			want: []Analysis{
				write("BEGIN", false), write("COMMIT", false), write("ROLLBACK", false),
				write("SAVEPOINT s", false), write("RELEASE s", false), write("ANALYZE", false),
				write("REINDEX", false), write("DROP TABLE t", false), write("ALTER TABLE t ADD COLUMN c", false),
				write("CREATE INDEX i ON t(a)", false), write("REPLACE INTO t VALUES(1)", false), write("END", false),
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newTestRewriter(tt.rand...).Analyze(tt.in)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d analyses, want %d:\n%s", len(got), len(tt.want), formatAnalyses(got))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("statement %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func formatAnalyses(as []Analysis) string {
	var b strings.Builder
	for i, a := range as {
		fmt.Fprintf(&b, "  %d: %+v\n", i, a)
	}
	return b.String()
}

func TestRewriter_AnalyzeReadsTheClockOnce(t *testing.T) {
	calls := 0
	r := &Rewriter{Now: func() time.Time {
		calls++
		return testNow.Add(time.Duration(calls) * time.Hour)
	}}
	got, err := r.Analyze("INSERT INTO t VALUES(CURRENT_TIMESTAMP); SELECT 1; UPDATE t SET a = datetime('now')")
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Now called %d times, want 1", calls)
	}
	want := []string{
		"INSERT INTO t VALUES('2026-11-23 11:38:20')",
		"SELECT 1",
		"UPDATE t SET a = datetime('2026-11-23 11:38:20.123')",
	}
	for i, a := range got {
		if a.SQL != want[i] {
			t.Errorf("statement %d: got %q, want %q", i, a.SQL, want[i])
		}
	}

	// A batch with nothing to rewrite does not read the clock at all.
	calls = 0
	if _, err := r.Analyze("INSERT INTO t VALUES(1, 'now')"); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatalf("Now called %d times, want 0", calls)
	}
}

func TestRewriter_AnalyzeZeroValue(t *testing.T) {
	var r Rewriter // defaults: time.Now and a random source
	before := time.Now().UTC().Truncate(time.Second)
	got, err := r.Analyze("INSERT INTO t VALUES(random(), random(), CURRENT_TIMESTAMP)")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()

	const prefix = "INSERT INTO t VALUES("
	if len(got) != 1 || !got[0].Rewritten || !strings.HasPrefix(got[0].SQL, prefix) {
		t.Fatalf("unexpected analyses %+v", got)
	}
	args := strings.Split(strings.TrimSuffix(strings.TrimPrefix(got[0].SQL, prefix), ")"), ", ")
	if len(args) != 3 {
		t.Fatalf("unexpected rewrite %q", got[0].SQL)
	}
	var nums [2]int64
	for i := range nums {
		if _, err := fmt.Sscan(strings.Trim(args[i], "()"), &nums[i]); err != nil {
			t.Fatalf("random() became %q: %v", args[i], err)
		}
	}
	if nums[0] == nums[1] {
		t.Errorf("two random() calls got the same value %d", nums[0])
	}
	when, err := time.Parse(layoutTimestamp, strings.Trim(args[2], "'"))
	if err != nil {
		t.Fatalf("CURRENT_TIMESTAMP became %q: %v", args[2], err)
	}
	if when.Before(before) || when.After(after) {
		t.Errorf("CURRENT_TIMESTAMP became %v, want between %v and %v", when, before, after)
	}
}

// TestRewriter_AnalyzeDeterministicOnSQLite runs the rewritten statements on
// two databases and checks that they end up with the same rows, which the
// original statements would not.
func TestRewriter_AnalyzeDeterministicOnSQLite(t *testing.T) {
	const schema = `CREATE TABLE t (id INTEGER PRIMARY KEY, r INTEGER, b BLOB, ts TEXT, d TEXT, tm TEXT, jd REAL, ep REAL, s TEXT)`
	const batch = `
		INSERT INTO t(r, b, ts, d, tm, jd, ep, s) VALUES(
			random(), randomblob(12), CURRENT_TIMESTAMP, date('now'), time(),
			julianday('now'), unixepoch('now', 'subsec'), strftime('%Y-%m-%d %H:%M:%f', 'now'));
		INSERT INTO t(r, s) SELECT random(), datetime('now', '+1 day') FROM t;
		INSERT INTO t(r, s) VALUES(5-random(), 'now');
		UPDATE t SET s = s || CURRENT_TIME WHERE id = (SELECT id FROM t WHERE id > 1 ORDER BY random() LIMIT 1);
		DELETE FROM t WHERE r = random();
		INSERT INTO t(r) SELECT count(*) FROM t GROUP BY random();
		INSERT INTO t(r) VALUES(abs(random()) % 10) RETURNING id, r, CURRENT_DATE;
		WITH x(v) AS (SELECT random()) INSERT INTO t(r, b) SELECT v, randomblob(3) FROM x;
		CREATE TABLE t2 AS SELECT random() AS r, CURRENT_TIMESTAMP AS ts;
	`
	clock := time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	r := &Rewriter{Now: func() time.Time { return clock }} // real random source
	analyses, err := r.Analyze(schema + ";" + batch)
	if err != nil {
		t.Fatal(err)
	}
	original, err := (&Rewriter{}).Analyze(schema + ";" + batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range original { // keep the original text, classification included
		original[i].SQL = splitSQL(schema+";"+batch, nil)[i].text
	}

	dump1 := runAnalyses(t, analyses)
	dump2 := runAnalyses(t, analyses)
	if !reflect.DeepEqual(dump1, dump2) {
		t.Fatalf("replicas differ:\n%v\n%v", dump1, dump2)
	}
	if dump3 := runAnalyses(t, original); reflect.DeepEqual(dump1, dump3) {
		t.Fatal("the original statements gave identical rows; the test proves nothing")
	}

	first := dump1[0][0] // the first row of t
	for col, want := range map[int]any{
		3: "2001-02-03 04:05:06",
		4: "2001-02-03",
		5: "04:05:06",
		7: 981173106.789,
		8: "2001-02-03 04:05:06.789",
	} {
		if got := first[col]; got != want {
			t.Errorf("column %d: got %v (%T), want %v", col, got, got, want)
		}
	}
	if b, ok := first[2].([]byte); !ok || len(b) != 12 {
		t.Errorf("randomblob(12) stored %v", first[2])
	}
}

// runAnalyses executes analyses on a fresh in-memory database and returns
// the rows of t and t2.
func runAnalyses(t *testing.T, analyses []Analysis) [][][]any {
	t.Helper()
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // every connection to :memory: is its own database

	for _, a := range analyses {
		if a.ReturnsRows {
			rows, err := db.Query(a.SQL)
			if err != nil {
				t.Fatalf("%s: %v", a.SQL, err)
			}
			for rows.Next() {
			}
			if err := rows.Close(); err != nil {
				t.Fatalf("%s: %v", a.SQL, err)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s: %v", a.SQL, err)
			}
		} else if _, err := db.Exec(a.SQL); err != nil {
			t.Fatalf("%s: %v", a.SQL, err)
		}
	}
	return [][][]any{queryAll(t, db, "SELECT * FROM t ORDER BY id"), queryAll(t, db, "SELECT * FROM t2")}
}

func queryAll(t *testing.T, db *sql.DB, query string) [][]any {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzRewriter_Analyze checks that no input panics, that statements which
// are not rewritten are passed through verbatim, and that rewritten ones
// still hold everything around the replaced calls.
func FuzzRewriter_Analyze(f *testing.F) {
	for _, s := range []string{
		"INSERT INTO t VALUES(random(), CURRENT_TIMESTAMP, datetime('now'))",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; SELECT 1",
		"UPDATE t SET a = strftime('%s') WHERE b IN (SELECT random() ORDER BY random())",
		"WITH x AS (SELECT randomblob(4)) INSERT INTO t SELECT * FROM x RETURNING *",
		"SELECT 'a;b', \"c;d\", [e;f] -- g;\n/* h; */",
		"PRAGMA foreign_keys = ON; VACUUM; EXPLAIN SELECT 1",
		"INSERT INTO t VALUES('é', date(), 5-random())",
	} {
		f.Add(s)
	}
	r := newTestRewriter()
	f.Fuzz(func(t *testing.T, in string) {
		got, err := r.Analyze(in)
		if err != nil {
			t.Fatal(err)
		}
		pieces := splitSQL(in, nil)
		if len(got) != len(pieces) {
			t.Fatalf("%d analyses for %d statements", len(got), len(pieces))
		}
		for i, a := range got {
			if !a.Rewritten && a.SQL != pieces[i].text {
				t.Fatalf("statement %d changed without a rewrite: %q -> %q", i, pieces[i].text, a.SQL)
			}
			if !strings.Contains(in, pieces[i].text) {
				t.Fatalf("statement %d is not part of the input: %q", i, pieces[i].text)
			}
			if a.Rewritten && a.ReadOnly {
				t.Fatalf("read-only statement %d rewritten: %q", i, a.SQL)
			}
		}
	})
}

func BenchmarkRewriter_Analyze(b *testing.B) {
	r := &Rewriter{}
	for _, bb := range []struct{ name, sql string }{
		{"Insert", "INSERT INTO users(name, email, age) VALUES(?, ?, ?)"},
		{"InsertRewrite", "INSERT INTO events(id, kind, at, nonce) VALUES(?, ?, CURRENT_TIMESTAMP, random())"},
		{"Select", "SELECT id, name FROM users WHERE email = ? LIMIT 1"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Analyze(bb.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
