package migrations_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cairndb/cairn/migrations"
)

func files(kv ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1]), Mode: 0o644}
	}
	return fsys
}

func TestLoad(t *testing.T) {
	fsys := files(
		"0002_add_email.sql", "ALTER TABLE users ADD COLUMN email TEXT;",
		"0001_create_users.sql", "-- users\nCREATE TABLE users (id INTEGER PRIMARY KEY);\n\nCREATE INDEX users_id ON users (id);\n",
		"0003_search.sql", "CREATE TABLE search (body TEXT);",
		"0003_search.postgres.sql", "CREATE TABLE search (body TEXT, tsv tsvector);",
		"0004_pg_only.postgres.sql", "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
		"0005_sqlite_only.sqlite.sql", "",
		"README.md", "not a migration",
		"sub/0009_ignored.sql", "SELECT 1",
	)
	t.Run("SQLite", func(t *testing.T) {
		ms, err := migrations.Load(fsys, migrations.SQLite)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fileNames(ms), []string{"0001_create_users.sql", "0002_add_email.sql", "0003_search.sql", "0005_sqlite_only.sqlite.sql"}; !slices.Equal(got, want) {
			t.Fatalf("files = %q, want %q", got, want)
		}
		m := ms[0]
		sum := sha256.Sum256(fsys["0001_create_users.sql"].Data)
		if m.Version != 1 || m.Name != "create_users" || m.Checksum != hex.EncodeToString(sum[:]) || m.SQL != string(fsys["0001_create_users.sql"].Data) {
			t.Errorf("migration 1 = %+v", m)
		}
		if want := []string{"CREATE TABLE users (id INTEGER PRIMARY KEY)", "CREATE INDEX users_id ON users (id)"}; !slices.Equal(m.Statements, want) {
			t.Errorf("statements = %q, want %q", m.Statements, want)
		}
		if want := []int{2, 4}; !slices.Equal(m.Lines, want) {
			t.Errorf("lines = %v, want %v", m.Lines, want)
		}
		if last := ms[3]; last.Version != 5 || last.Name != "sqlite_only" || len(last.Statements) != 0 {
			t.Errorf("empty variant = %+v", last)
		}
	})
	t.Run("Postgres", func(t *testing.T) {
		ms, err := migrations.Load(fsys, migrations.Postgres)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fileNames(ms), []string{"0001_create_users.sql", "0002_add_email.sql", "0003_search.postgres.sql", "0004_pg_only.postgres.sql"}; !slices.Equal(got, want) {
			t.Fatalf("files = %q, want %q", got, want)
		}
		if ms[2].Name != "search" || ms[2].Statements[0] != "CREATE TABLE search (body TEXT, tsv tsvector)" {
			t.Errorf("variant = %+v", ms[2])
		}
	})
	t.Run("EmptyDirectory", func(t *testing.T) {
		ms, err := migrations.Load(fstest.MapFS{}, migrations.SQLite)
		if err != nil || len(ms) != 0 {
			t.Fatalf("Load = %v, %v; want nothing", ms, err)
		}
	})
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name string
		fsys fs.FS
		want []string
	}{
		{"BadName", files("0001-init.sql", "", "init.sql", "", "0002_x.mysql.sql", "", "0003_a.b.sql", ""),
			[]string{"0001-init.sql: not a migration file name", "init.sql: not a migration file name", "0002_x.mysql.sql: not a migration file name", "0003_a.b.sql: not a migration file name"}},
		{"VersionZero", files("0000_zero.sql", ""), []string{"0000_zero.sql: the version must be a number from 1"}},
		{"VersionTooBig", files("99999999999999999999_big.sql", ""), []string{"99999999999999999999_big.sql: the version must be"}},
		{"SameVersion", files("0001_a.sql", "", "1_b.sql", ""), []string{"0001_a.sql, 1_b.sql: 2 files for version 1"}},
		{"VariantName", files("0001_a.sql", "", "0001_b.sqlite.sql", ""), []string{`0001_b.sqlite.sql: a variant of 0001_a.sql must have the same name ("a", not "b")`}},
		{"Transaction", files("0001_a.sql", "CREATE TABLE a (x);\n\nBEGIN;\nCREATE TABLE b (y);\nCOMMIT;"),
			[]string{"0001_a.sql: statement 2 (line 3: BEGIN) controls the transaction"}},
		{"Unterminated", files("0007_a.sql", "CREATE TABLE a (x);\nINSERT INTO a VALUES ('oops);\n"), []string{"0007_a.sql: line 2: unterminated quoted string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := migrations.Load(tt.fsys, migrations.SQLite)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
	t.Run("UnknownDialect", func(t *testing.T) {
		if _, err := migrations.Load(fstest.MapFS{}, "mysql"); err == nil || !strings.Contains(err.Error(), `unknown dialect "mysql"`) {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("ReadError", func(t *testing.T) {
		if _, err := migrations.Load(errFS{}, migrations.SQLite); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("Load = %v, want the read error", err)
		}
	})
}

// errFS fails every read.
type errFS struct{}

func (errFS) Open(string) (fs.File, error) { return nil, fs.ErrPermission }

func fileNames(ms []migrations.Migration) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.File)
	}
	return out
}

// TestLoad_ExampleFiles loads the example's files in both dialects: each
// picks its own variants, and the PostgreSQL function body stays whole.
func TestLoad_ExampleFiles(t *testing.T) {
	fsys := os.DirFS("testdata/example")
	for _, tt := range []struct {
		dialect migrations.Dialect
		files   []string
		last    []string
	}{
		{migrations.SQLite, []string{"0001_create_notes.sql", "0002_add_tags.sql", "0003_count_notes.sqlite.sql"},
			[]string{"CREATE TRIGGER notes_count AFTER INSERT ON notes BEGIN\n    UPDATE note_count SET n = n + 1;\nEND"}},
		{migrations.Postgres, []string{"0001_create_notes.sql", "0002_add_tags.postgres.sql", "0003_count_notes.postgres.sql"},
			[]string{"CREATE FUNCTION count_note() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    UPDATE note_count SET n = n + 1;\n    RETURN NEW;\nEND;\n$$",
				"CREATE TRIGGER notes_count AFTER INSERT ON notes\n    FOR EACH ROW EXECUTE FUNCTION count_note()"}},
	} {
		ms, err := migrations.Load(fsys, tt.dialect)
		if err != nil {
			t.Fatalf("%s: %v", tt.dialect, err)
		}
		if got := fileNames(ms); !slices.Equal(got, tt.files) {
			t.Errorf("%s: files = %q, want %q", tt.dialect, got, tt.files)
		}
		if got := ms[len(ms)-1].Statements; !slices.Equal(got, tt.last) {
			t.Errorf("%s: statements of the last = %q, want %q", tt.dialect, got, tt.last)
		}
	}
}
