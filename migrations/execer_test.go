package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// dbExecer is an Execer over a real SQLite database, the one a Raft node
// applies its log to, called in process as the node's FSM would.
type dbExecer struct {
	db *statemachine.DB

	mu sync.Mutex // guards the fields below
	// execs counts ExecTx calls.
	execs int
	// beforeExec, when set, runs before every ExecTx with its statements.
	beforeExec func(stmts []migrations.Statement)
}

var _ migrations.Execer = (*dbExecer)(nil)

// mustOpenDB opens an empty database for a test.
func mustOpenDB(t testing.TB) *statemachine.DB {
	t.Helper()
	db, err := statemachine.OpenFresh(filepath.Join(t.TempDir(), "db", "cairn.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *dbExecer) Dialect() migrations.Dialect { return migrations.SQLite }

func (e *dbExecer) Lock(context.Context) (func(), error) { return func() {}, nil }

func (e *dbExecer) ExecTx(ctx context.Context, stmts []migrations.Statement) (int, error) {
	e.mu.Lock()
	e.execs++
	hook := e.beforeExec
	e.mu.Unlock()
	if hook != nil {
		hook(stmts)
	}
	req := &command.Request{Transaction: true}
	for _, s := range stmts {
		st, err := statement(s.SQL, s.Args)
		if err != nil {
			return -1, err
		}
		req.Statements = append(req.Statements, st)
	}
	res, err := e.db.Execute(ctx, req)
	if err != nil {
		return -1, err
	}
	for i, r := range res {
		if r.Error != "" {
			return i, errors.New(r.Error)
		}
	}
	return -1, nil
}

func (e *dbExecer) Query(ctx context.Context, sql string, args ...any) ([][]any, error) {
	st, err := statement(sql, args)
	if err != nil {
		return nil, err
	}
	st.ReturnsRows = true
	res, err := e.db.Query(ctx, &command.Request{Statements: []*command.Statement{st}})
	if err != nil {
		return nil, err
	}
	if res[0].Error != "" {
		return nil, errors.New(res[0].Error)
	}
	return res[0].Values, nil
}

func (e *dbExecer) execCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.execs
}

func statement(sql string, args []any) (*command.Statement, error) {
	st := &command.Statement{Sql: sql}
	for i, a := range args {
		p, err := command.NewParam("", a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		st.Params = append(st.Params, p)
	}
	return st, nil
}
