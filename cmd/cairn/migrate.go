package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cluster/postgres"
	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/statemachine/command"
)

// Adapters that let the migrations runner work on Cairn's backends: in
// process on a cluster.Backend (the Raft node, or the Postgres pool), or
// from the command line on a running node over its HTTP API.

// backendExecer runs migrations on a cluster.Backend. On the Raft node a
// transaction goes through the log (a follower forwards it to the leader)
// and reads are strong; on the Postgres pool both go to PostgreSQL.
type backendExecer struct {
	backend cluster.Backend
	dialect migrations.Dialect
	// lock serialises the runners of all nodes; nil needs none (Raft mode:
	// the runner's record row makes concurrent runs safe). See
	// postgresLock.
	lock func(ctx context.Context) (unlock func(), err error)
	// localReads reads this node's own copy (level none) instead of
	// through the log (strong): what a readiness check needs, since a
	// follower must not report ready before its own copy has the schema.
	localReads bool
}

var _ migrations.Execer = (*backendExecer)(nil)

// Dialect is the backend's SQL dialect.
func (e *backendExecer) Dialect() migrations.Dialect { return e.dialect }

// Lock takes the lock the caller supplied, if any.
func (e *backendExecer) Lock(ctx context.Context) (func(), error) {
	if e.lock == nil {
		return func() {}, nil
	}
	return e.lock(ctx)
}

// ExecTx executes stmts as one transaction (?transaction).
func (e *backendExecer) ExecTx(ctx context.Context, stmts []migrations.Statement) (int, error) {
	req := &command.Request{Transaction: true, Statements: make([]*command.Statement, len(stmts))}
	for i, s := range stmts {
		st, err := commandStatement(s.SQL, s.Args)
		if err != nil {
			return i, err
		}
		req.Statements[i] = st
	}
	results, err := e.backend.Execute(ctx, req)
	if err != nil {
		return -1, err
	}
	errs := make([]string, len(results))
	for i, r := range results {
		errs[i] = r.Error
	}
	return statementFailure(errs, len(stmts))
}

// Query runs one read at level strong, or none with localReads.
func (e *backendExecer) Query(ctx context.Context, sql string, args ...any) ([][]any, error) {
	st, err := commandStatement(sql, args)
	if err != nil {
		return nil, err
	}
	level := command.LevelStrong
	if e.localReads {
		level = command.LevelNone
	}
	results, err := e.backend.Query(ctx, &command.Request{Statements: []*command.Statement{st}}, cluster.QueryOptions{Level: level})
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("query: %d results for 1 statement", len(results))
	}
	if results[0].Error != "" {
		return nil, errors.New(results[0].Error)
	}
	return results[0].Values, nil
}

// postgresLock is the Lock of a backendExecer on the Postgres pool: a
// session advisory lock that every node's runner takes.
func postgresLock(b *postgres.Backend) func(context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		return b.Lock(ctx, migrations.AdvisoryLockKey)
	}
}

func commandStatement(sql string, args []any) (*command.Statement, error) {
	st := &command.Statement{Sql: sql, Params: make([]*command.Param, len(args))}
	for i, a := range args {
		p, err := command.NewParam("", a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		st.Params[i] = p
	}
	return st, nil
}

// statementFailure maps the per-statement errors of a transaction (as many
// as ran: a transaction stops at its first error) to what ExecTx returns.
func statementFailure(errs []string, n int) (int, error) {
	for i, e := range errs {
		if e != "" {
			return i, errors.New(e)
		}
	}
	if len(errs) != n {
		return -1, fmt.Errorf("the database answered %d results for %d statements", len(errs), n)
	}
	return -1, nil
}

// httpExecer runs migrations on a running node of a Raft cluster through
// its HTTP API, as any client would: transactions to
// /db/execute?transaction (a follower forwards them to the leader), reads
// to /db/query?level=strong. It has no lock: the runner's record row makes
// concurrent runs on several nodes safe.
//
// Arguments travel as rqlite JSON parameters, where a string of the form
// x'0a1b' is read as a blob: the runner never sends one.
type httpExecer struct {
	addr   string
	client *http.Client
}

var _ migrations.Execer = (*httpExecer)(nil)

// Dialect is SQLite: the HTTP path serves Raft mode.
func (e *httpExecer) Dialect() migrations.Dialect { return migrations.SQLite }

// Lock does nothing (see httpExecer).
func (e *httpExecer) Lock(context.Context) (func(), error) { return func() {}, nil }

// dbResult is one result of a /db answer.
type dbResult struct {
	Values [][]any `json:"values"`
	Error  string  `json:"error"`
}

// ExecTx posts the statements to /db/execute?transaction.
func (e *httpExecer) ExecTx(ctx context.Context, stmts []migrations.Statement) (int, error) {
	body := make([]any, len(stmts))
	for i, s := range stmts {
		st, err := jsonStatement(s.SQL, s.Args)
		if err != nil {
			return i, err
		}
		body[i] = st
	}
	results, err := e.post(ctx, "/db/execute?transaction", body)
	if err != nil {
		return -1, err
	}
	errs := make([]string, len(results))
	for i, r := range results {
		errs[i] = r.Error
	}
	return statementFailure(errs, len(stmts))
}

// Query posts one statement to /db/query?level=strong.
func (e *httpExecer) Query(ctx context.Context, sql string, args ...any) ([][]any, error) {
	st, err := jsonStatement(sql, args)
	if err != nil {
		return nil, err
	}
	results, err := e.post(ctx, "/db/query?level=strong", []any{st})
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("query: %d results for 1 statement", len(results))
	}
	if results[0].Error != "" {
		return nil, errors.New(results[0].Error)
	}
	rows := results[0].Values
	for _, row := range rows {
		for j, v := range row {
			if n, ok := v.(json.Number); ok {
				row[j] = jsonNumber(n)
			}
		}
	}
	return rows, nil
}

// jsonStatement is a statement as /db takes it: [sql, args...].
func jsonStatement(sql string, args []any) ([]any, error) {
	st := make([]any, 0, 1+len(args))
	st = append(st, sql)
	for i, a := range args {
		switch x := a.(type) {
		case nil, bool, int, int32, int64, float64, string:
			st = append(st, x)
		case []byte:
			// A blob is an array of byte values.
			b := make([]int, len(x))
			for k, c := range x {
				b[k] = int(c)
			}
			st = append(st, b)
		default:
			return nil, fmt.Errorf("argument %d: unsupported type %T", i+1, a)
		}
	}
	return st, nil
}

// jsonNumber is an integer when the number is one, else a float.
func jsonNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

// post sends body as JSON to the node and returns the results; an answer
// that is not 200 is an error quoting the node's message.
func (e *httpExecer) post(ctx context.Context, path string, body any) ([]dbResult, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.addr+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	client := e.client
	if client == nil {
		client = nodeClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", e.addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("node %s: read answer: %w", e.addr, err)
	}
	var out struct {
		Results []dbResult `json:"results"`
		Error   string     `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	decErr := dec.Decode(&out)
	switch {
	case resp.StatusCode != http.StatusOK && out.Error != "":
		return nil, fmt.Errorf("node %s: HTTP %d: %s", e.addr, resp.StatusCode, out.Error)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("node %s: HTTP %d: %s", e.addr, resp.StatusCode, strings.TrimSpace(string(raw)))
	case decErr != nil:
		return nil, fmt.Errorf("node %s: decode answer: %w", e.addr, decErr)
	case out.Error != "":
		return nil, fmt.Errorf("node %s: %s", e.addr, out.Error)
	}
	return out.Results, nil
}
