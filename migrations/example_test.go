package migrations_test

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/cairndb/cairn/migrations"
)

// The program's migrations, compiled into its binary.
//
//go:embed testdata/example/*.sql
var exampleFiles embed.FS

// A program that imports Cairn as a library ships its migrations inside
// its binary with embed.FS and applies them at start with a Runner. Here
// the Execer is a few lines over database/sql and SQLite; with a Cairn
// backend it is an adapter of the same size.
func Example() {
	ctx := context.Background()

	fsys, err := fs.Sub(exampleFiles, "testdata/example")
	if err != nil {
		log.Fatal(err)
	}
	ms, err := migrations.Load(fsys, migrations.SQLite)
	if err != nil {
		log.Fatal(err)
	}

	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database

	runner := &migrations.Runner{Execer: sqlExecer{db}}
	applied, err := runner.Run(ctx, ms)
	if err != nil {
		log.Fatal(err)
	}
	for _, rec := range applied {
		fmt.Printf("applied %d %s\n", rec.Version, rec.Name)
	}

	// Running again is a no-op.
	applied, err = runner.Run(ctx, ms)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied on the second run:", len(applied))

	// The schema is there: the trigger of version 3 counts notes.
	if _, err := db.ExecContext(ctx, "INSERT INTO notes (body, tags) VALUES ('hello', 'greeting')"); err != nil {
		log.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM note_count").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("notes:", n)
	// Output:
	// applied 1 create_notes
	// applied 2 add_tags
	// applied 3 count_notes
	// applied on the second run: 0
	// notes: 1
}

// sqlExecer is a migrations.Execer over a database/sql handle.
type sqlExecer struct {
	db *sql.DB
}

func (sqlExecer) Dialect() migrations.Dialect { return migrations.SQLite }

// Lock does nothing: one process runs the migrations. Over PostgreSQL,
// take pg_advisory_lock(migrations.AdvisoryLockKey) on a dedicated
// connection and release it in unlock.
func (sqlExecer) Lock(context.Context) (func(), error) { return func() {}, nil }

func (e sqlExecer) ExecTx(ctx context.Context, stmts []migrations.Statement) (int, error) {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return -1, err
	}
	defer tx.Rollback()
	for i, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.SQL, s.Args...); err != nil {
			return i, err
		}
	}
	return -1, tx.Commit()
}

func (e sqlExecer) Query(ctx context.Context, query string, args ...any) ([][]any, error) {
	rows, err := e.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
