package statemachine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cairndb/cairn/statemachine/command"
)

// maxCachedStatements bounds the write connection's prepared statements.
const maxCachedStatements = 512

// stmtCache keeps prepared statements by SQL text. Applications send the
// same few statements again and again; preparing each once saves SQLite's
// parser on every request (and, for writes, on every replica).
type stmtCache struct {
	prepare func(ctx context.Context, query string) (*sql.Stmt, error)

	mu sync.Mutex // guards m
	m  map[string]*sql.Stmt
}

// get returns the cached statement for query, preparing it on first use, or
// nil when query is not cached (several statements in one string, or it
// does not prepare: then running it unprepared reports the error).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if strings.Contains(query, ";") {
		return nil
	}
	st, err := c.prepare(ctx, query)
	if err != nil {
		return nil
	}
	if c.m == nil || len(c.m) >= maxCachedStatements {
		for _, old := range c.m {
			old.Close()
		}
		c.m = make(map[string]*sql.Stmt)
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// writer is the database's single write connection, held for its whole
// life, with the statements it has prepared.
type writer struct {
	conn  *sql.Conn
	stmts stmtCache
}

var _ execQuerier = (*writer)(nil)

func newWriter(pool *sql.DB) (*writer, error) {
	conn, err := pool.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	return &writer{conn: conn, stmts: stmtCache{prepare: conn.PrepareContext}}, nil
}

func (w *writer) close() error {
	return errors.Join(w.stmts.close(), w.conn.Close())
}

// ExecContext runs a statement that returns no rows.
func (w *writer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := w.stmts.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return w.conn.ExecContext(ctx, query, args...)
}

// QueryContext runs a statement that returns rows.
func (w *writer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := w.stmts.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return w.conn.QueryContext(ctx, query, args...)
}

// reader runs single read statements on the read-only pool, prepared once
// per connection by database/sql.
type reader struct {
	pool  *sql.DB
	stmts stmtCache
}

var _ execQuerier = (*reader)(nil)

func newReader(pool *sql.DB) *reader {
	return &reader{pool: pool, stmts: stmtCache{prepare: pool.PrepareContext}}
}

// ExecContext runs a statement that returns no rows.
func (r *reader) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := r.stmts.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return r.pool.ExecContext(ctx, query, args...)
}

// QueryContext runs a statement that returns rows.
func (r *reader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := r.stmts.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.pool.QueryContext(ctx, query, args...)
}

// execute applies one request.
func (w *writer) execute(ctx context.Context, req *command.Request) ([]command.Result, error) {
	results, err := run(ctx, w, req.GetStatements(), runOptions{tx: req.GetTransaction(), stopOnError: true})
	if err == nil && !batchable(req) {
		// A request that opened a transaction itself and did not end it
		// must not leave it open into the next log entry: every replica
		// rolls it back here, at the same point of the log.
		if _, rbErr := w.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil && !noTransaction(rbErr) {
			err = fmt.Errorf("end open transaction: %w", rbErr)
		}
	}
	return results, err
}

// errBatchAborted means a batch could not be applied as one transaction;
// nothing of it was kept.
var errBatchAborted = errors.New("batch aborted")

// executeBatch applies several requests inside one SQLite transaction,
// which saves a commit per log entry. A savepoint around each statement
// (each request, for a transactional one) makes every request's outcome
// exactly what applying them one by one gives: a failing statement undoes
// only itself. If SQLite aborts the whole transaction (INSERT OR ROLLBACK,
// RAISE(ROLLBACK), a failed deferred constraint at COMMIT), executeBatch
// rolls back and returns errBatchAborted, and the caller applies the
// requests one by one instead. Every request must be batchable.
func (w *writer) executeBatch(ctx context.Context, reqs []*command.Request) ([][]command.Result, error) {
	if _, err := w.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("begin batch: %w", err)
	}
	out := make([][]command.Result, len(reqs))
	for i, req := range reqs {
		res, ok := w.batchRequest(ctx, req)
		if !ok {
			return nil, w.abortBatch(ctx)
		}
		out[i] = res
	}
	if _, err := w.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, w.abortBatch(ctx)
	}
	return out, nil
}

// batchRequest runs one request inside the batch's transaction. ok is false
// when the transaction itself was lost.
func (w *writer) batchRequest(ctx context.Context, req *command.Request) ([]command.Result, bool) {
	stmts := req.GetStatements()
	results := make([]command.Result, 0, len(stmts))
	if req.GetTransaction() {
		if _, err := w.ExecContext(ctx, "SAVEPOINT cairn_request"); err != nil {
			return nil, false
		}
		for _, st := range stmts {
			res := runStatement(ctx, w, st, false)
			results = append(results, res)
			if res.Error != "" {
				if _, err := w.ExecContext(ctx, "ROLLBACK TO cairn_request"); err != nil {
					return nil, false
				}
				break
			}
		}
		_, err := w.ExecContext(ctx, "RELEASE cairn_request")
		return results, err == nil
	}
	for _, st := range stmts {
		if _, err := w.ExecContext(ctx, "SAVEPOINT cairn_statement"); err != nil {
			return nil, false
		}
		res := runStatement(ctx, w, st, false)
		results = append(results, res)
		if res.Error != "" {
			if _, err := w.ExecContext(ctx, "ROLLBACK TO cairn_statement"); err != nil {
				return nil, false
			}
		}
		if _, err := w.ExecContext(ctx, "RELEASE cairn_statement"); err != nil {
			return nil, false
		}
	}
	return results, true
}

func (w *writer) abortBatch(ctx context.Context) error {
	if _, err := w.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil && !noTransaction(err) {
		return fmt.Errorf("roll back aborted batch: %w", err)
	}
	return errBatchAborted
}

// batchable reports whether req can run inside a transaction the FSM
// opened: none of its statements manages transactions, attaches databases,
// vacuums or sets pragmas. The test is on words and errs towards false.
func batchable(req *command.Request) bool {
	for _, st := range req.GetStatements() {
		s := strings.ToUpper(st.GetSql())
		for _, word := range []string{"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH", "DETACH", "PRAGMA"} {
			if strings.Contains(s, word) {
				return false
			}
		}
		if strings.HasPrefix(strings.TrimSpace(s), "END") {
			return false
		}
	}
	return true
}
