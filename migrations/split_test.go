package migrations

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit_SQLite(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"Empty", "", nil},
		{"OnlyComments", "-- nothing\n/* at all; */\n;;\n", nil},
		{"One", "CREATE TABLE t (x)", []string{"CREATE TABLE t (x)"}},
		{"Two", "CREATE TABLE a (x);\nCREATE TABLE b (y);\n", []string{"CREATE TABLE a (x)", "CREATE TABLE b (y)"}},
		{"CommentsAround", "-- leading\nCREATE TABLE a (x); -- trailing; not a statement\n/* block */ INSERT INTO a VALUES (1) /* inner; */ ;",
			[]string{"CREATE TABLE a (x)", "INSERT INTO a VALUES (1)"}},
		{"InnerBlockComment", "INSERT INTO a /* inner; */ VALUES (1);", []string{"INSERT INTO a /* inner; */ VALUES (1)"}},
		{"InnerLineComment", "SELECT 1 -- one;\n+ 2;", []string{"SELECT 1 -- one;\n+ 2"}},
		{"Strings", `INSERT INTO t VALUES ('a;b', 'it''s; fine');`, []string{`INSERT INTO t VALUES ('a;b', 'it''s; fine')`}},
		{"QuotedNames", "CREATE TABLE \"a;b\" (`c;d` INT, [e;f] TEXT, \"g\"\"h;\" INT);", []string{"CREATE TABLE \"a;b\" (`c;d` INT, [e;f] TEXT, \"g\"\"h;\" INT)"}},
		{"BackslashIsPlain", `INSERT INTO t VALUES ('a\'); SELECT 2`, []string{`INSERT INTO t VALUES ('a\')`, "SELECT 2"}},
		{"Trigger", "CREATE TABLE t (x);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (new.x);\n  UPDATE c SET n = n + 1;\nEND;\nSELECT 1;",
			[]string{"CREATE TABLE t (x)", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (new.x);\n  UPDATE c SET n = n + 1;\nEND", "SELECT 1"}},
		{"TempTriggerWithCase", "create temp trigger tr before delete on t begin select case when old.x > 0 then raise(abort, 'no; never') end; end; select 2",
			[]string{"create temp trigger tr before delete on t begin select case when old.x > 0 then raise(abort, 'no; never') end; end", "select 2"}},
		{"TriggerEndWithoutSemi", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", []string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"}},
		{"TriggerNamedColumns", "CREATE TABLE trigger_log (\"end\" INT, [create] INT); SELECT 1", []string{"CREATE TABLE trigger_log (\"end\" INT, [create] INT)", "SELECT 1"}},
		{"ExplainCreate", "EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2", []string{"EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", "SELECT 2"}},
		{"BlobAndParams", "INSERT INTO t VALUES (x'00ff', ?1, :a, @b, $c, 1.5e3);", []string{"INSERT INTO t VALUES (x'00ff', ?1, :a, @b, $c, 1.5e3)"}},
		{"DollarIsNotQuote", "SELECT $$; SELECT 2", []string{"SELECT $$", "SELECT 2"}},
		{"NonASCII", "CREATE TABLE café (naïve TEXT); SELECT '→;'", []string{"CREATE TABLE café (naïve TEXT)", "SELECT '→;'"}},
		{"CRLF", "CREATE TABLE a (x);\r\nCREATE TABLE b (y);\r\n", []string{"CREATE TABLE a (x)", "CREATE TABLE b (y)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := split(tt.src, SQLite)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			if s := sqls(got); !slices.Equal(s, tt.want) {
				t.Errorf("split =\n%q\nwant\n%q", s, tt.want)
			}
		})
	}
}

func TestSplit_Postgres(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"Two", "CREATE TABLE a (x int);\nCREATE TABLE b (y int);", []string{"CREATE TABLE a (x int)", "CREATE TABLE b (y int)"}},
		{"Strings", `INSERT INTO t VALUES ('a;b', 'it''s; fine', 'back\'); SELECT 2`, []string{`INSERT INTO t VALUES ('a;b', 'it''s; fine', 'back\')`, "SELECT 2"}},
		{"EscapeString", `INSERT INTO t VALUES (E'it\'s; \\', e'x''y;'); SELECT 2`, []string{`INSERT INTO t VALUES (E'it\'s; \\', e'x''y;')`, "SELECT 2"}},
		{"WordEndingInE", `SELECT some'x;'`, []string{`SELECT some'x;'`}},
		{"UnicodeString", `SELECT U&'d\0061t\+000061;'; SELECT 2`, []string{`SELECT U&'d\0061t\+000061;'`, "SELECT 2"}},
		{"QuotedName", `CREATE TABLE "a;""b" (x int); SELECT 2`, []string{`CREATE TABLE "a;""b" (x int)`, "SELECT 2"}},
		{"DollarQuote", "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\nSELECT f();",
			[]string{"CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql", "SELECT f()"}},
		{"TaggedDollarQuote", "DO $body$ BEGIN PERFORM 'x;$$'; RAISE NOTICE $$;$$; END $body$; SELECT 2",
			[]string{"DO $body$ BEGIN PERFORM 'x;$$'; RAISE NOTICE $$;$$; END $body$", "SELECT 2"}},
		{"Parameters", "PREPARE p AS SELECT $1, $2::int; SELECT 2", []string{"PREPARE p AS SELECT $1, $2::int", "SELECT 2"}},
		{"DollarInIdentifier", "SELECT a$b$ FROM t; SELECT 2", []string{"SELECT a$b$ FROM t", "SELECT 2"}},
		{"NestedComment", "SELECT 1 /* outer /* inner; */ still; */ + 1; SELECT 2 -- end;\n", []string{"SELECT 1 /* outer /* inner; */ still; */ + 1", "SELECT 2"}},
		{"BeginAtomic", "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END; SELECT 2; END;\nSELECT f(1);",
			[]string{"CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END; SELECT 2; END", "SELECT f(1)"}},
		{"OrReplaceProcedure", "create or replace procedure p() language sql begin atomic insert into t values (1); end; select 3",
			[]string{"create or replace procedure p() language sql begin atomic insert into t values (1); end", "select 3"}},
		{"CaseOutsideRoutine", "SELECT CASE WHEN true THEN 1 END; SELECT 2", []string{"SELECT CASE WHEN true THEN 1 END", "SELECT 2"}},
		{"SemicolonInParens", "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 2",
			[]string{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))", "SELECT 2"}},
		{"OperatorBeforeComment", "SELECT 1+--x;\n2; SELECT 3", []string{"SELECT 1+--x;\n2", "SELECT 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := split(tt.src, Postgres)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			if s := sqls(got); !slices.Equal(s, tt.want) {
				t.Errorf("split =\n%q\nwant\n%q", s, tt.want)
			}
		})
	}
}

func TestSplit_Errors(t *testing.T) {
	tests := []struct {
		name    string
		dialect Dialect
		src     string
		want    string
	}{
		{"SQLiteString", SQLite, "SELECT 1;\n\nSELECT 'abc;\n", "line 3: unterminated quoted string"},
		{"SQLiteIdent", SQLite, "SELECT [abc", "line 1: unterminated quoted identifier"},
		{"SQLiteComment", SQLite, "SELECT 1;\n/* no end", "line 2: unterminated /* comment"},
		{"SQLiteTrigger", SQLite, "SELECT 1;\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;\n", "line 2: CREATE TRIGGER has no END"},
		{"PostgresEscapeString", Postgres, `SELECT E'abc\'`, "line 1: unterminated quoted string"},
		{"PostgresDollar", Postgres, "SELECT 1;\nDO $x$ BEGIN END $y$;", "line 2: unterminated dollar-quoted string (no closing $x$)"},
		{"PostgresNestedComment", Postgres, "/* a /* b */ SELECT 1", "line 1: unterminated /* comment"},
		{"PostgresBeginAtomic", Postgres, "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT 1;", "line 1: the BEGIN of a function or procedure body has no END"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := split(tt.src, tt.dialect)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("split error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSplit_Lines(t *testing.T) {
	src := "-- header\n\nCREATE TABLE a (x);\n\n/* two\nlines */ CREATE TABLE b (\n  y\n); CREATE TABLE c (z)"
	for _, d := range []Dialect{SQLite, Postgres} {
		got, err := split(src, d)
		if err != nil {
			t.Fatal(err)
		}
		var lines []int
		for _, p := range got {
			lines = append(lines, p.line)
		}
		if want := []int{3, 6, 8}; !slices.Equal(lines, want) {
			t.Errorf("%s: lines = %v, want %v", d, lines, want)
		}
	}
}

func TestTransactionControl(t *testing.T) {
	tests := []struct {
		sql      string
		sqlite   bool
		postgres bool
	}{
		{"BEGIN", true, true},
		{"begin immediate transaction", true, true},
		{"/* c */ COMMIT", true, true},
		{"END TRANSACTION", true, true},
		{"ROLLBACK", true, true},
		{"ROLLBACK TRANSACTION", true, true},
		{"ROLLBACK TO SAVEPOINT s", false, false},
		{"ROLLBACK TRANSACTION TO s", false, false},
		{"START TRANSACTION", false, true},
		{"ABORT", false, true},
		{"SAVEPOINT s", false, false},
		{"RELEASE s", false, false},
		{"CREATE TABLE begin_log (x)", false, false},
		{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END", false, false},
		{`"BEGIN"`, false, false},
	}
	for _, tt := range tests {
		if got := transactionControl(tt.sql, SQLite); got != tt.sqlite {
			t.Errorf("sqlite %q: %v, want %v", tt.sql, got, tt.sqlite)
		}
		if got := transactionControl(tt.sql, Postgres); got != tt.postgres {
			t.Errorf("postgres %q: %v, want %v", tt.sql, got, tt.postgres)
		}
	}
}

func sqls(ps []piece) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.sql)
	}
	return out
}

// FuzzSplit checks, for both dialects, that splitting never panics, that
// every statement is a trimmed, non-empty piece of the input in order, and
// that splitting the statements joined again gives the same statements.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"CREATE TABLE a (x); INSERT INTO a VALUES ('x;y');",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END; SELECT 1",
		"DO $x$ BEGIN PERFORM 1; END $x$; SELECT E'\\'';",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT (1; 2)",
		"/* a /* b */ */ -- c\n SELECT \"x;\"\"\" [y;] `z;`; $1; ?2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		for _, d := range []Dialect{SQLite, Postgres} {
			got, err := split(src, d)
			if err != nil {
				continue
			}
			at := 0
			for _, p := range got {
				if p.sql == "" || isSpace(p.sql[0]) || isSpace(p.sql[len(p.sql)-1]) {
					t.Fatalf("%s: statement %q is empty or untrimmed", d, p.sql)
				}
				i := strings.Index(src[at:], p.sql)
				if i < 0 {
					t.Fatalf("%s: statement %q is not a piece of the input after offset %d", d, p.sql, at)
				}
				at += i + len(p.sql)
			}
			joined := strings.Join(sqls(got), ";\n")
			again, err := split(joined, d)
			if err != nil {
				t.Fatalf("%s: the joined statements do not split: %v\n%q", d, err, joined)
			}
			if !slices.Equal(sqls(again), sqls(got)) {
				t.Fatalf("%s: split(join(split(src))) =\n%q\nwant\n%q", d, sqls(again), sqls(got))
			}
		}
	})
}
