package statemachine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/cairndb/cairn/statemachine/command"
)

// ErrDBClosed is returned by every DB method after Close.
var ErrDBClosed = errors.New("database closed")

// DB is the node's SQLite database. Writes go through one dedicated
// connection (the FSM applies one entry at a time); reads use a pool of
// connections that SQLite itself keeps read-only, so a statement that slips
// past analysis still cannot write.
//
// The file runs with synchronous=OFF: it is a cache of the Raft log, not the
// source of truth. OpenFresh deletes it at every start and Raft rebuilds it
// from the latest snapshot and the log, so a crash can never leave it ahead
// of, behind, or inconsistent with the log.
type DB struct {
	path string

	// mu guards rw, w and ro: readers and writers take it shared, Replace
	// and Close take it exclusively to swap or close the handles.
	mu     sync.RWMutex
	rw     *sql.DB
	ro     *sql.DB
	closed bool

	// wmu serialises use of the write connection w (the FSM is the only
	// writer, but Execute is callable from anywhere).
	wmu sync.Mutex
	w   *writer
	// applied is the Raft index of the last entry applied (guarded by
	// wmu): Copy reads it at the same instant its copy starts.
	applied uint64
	// r serves single-statement reads with prepared statements.
	r *reader
}

// dirMode and fileMode are the permissions of everything Cairn writes.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// OpenFresh removes any database at path (with its -wal and -shm files) and
// opens an empty one. Raft refills it from its snapshot and log.
func OpenFresh(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if err := removeDBFiles(path); err != nil {
		return nil, err
	}
	return Open(path)
}

// Open opens (creating if needed) the SQLite database at path.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	db := &DB{path: path}
	if err := db.open(); err != nil {
		return nil, err
	}
	return db, nil
}

func (db *DB) open() error {
	// Create the file first so that it has our mode, not the umask's.
	f, err := os.OpenFile(db.path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	rw, err := sql.Open("sqlite", dsn(db.path, false))
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.path, err)
	}
	rw.SetMaxOpenConns(1)
	rw.SetMaxIdleConns(1)
	rw.SetConnMaxLifetime(0)
	rw.SetConnMaxIdleTime(0)
	// Open the writer now: it sets WAL mode before any reader connects.
	if err := rw.Ping(); err != nil {
		rw.Close()
		return fmt.Errorf("open database %s: %w", db.path, err)
	}
	ro, err := sql.Open("sqlite", dsn(db.path, true))
	if err != nil {
		rw.Close()
		return fmt.Errorf("open database %s read-only: %w", db.path, err)
	}
	ro.SetMaxOpenConns(8)
	ro.SetMaxIdleConns(8)
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(db.path+suffix, fileMode); err != nil && !errors.Is(err, os.ErrNotExist) {
			rw.Close()
			ro.Close()
			return fmt.Errorf("restrict %s: %w", db.path+suffix, err)
		}
	}
	w, err := newWriter(rw)
	if err != nil {
		rw.Close()
		ro.Close()
		return fmt.Errorf("open write connection: %w", err)
	}
	db.rw, db.ro, db.w, db.r = rw, ro, w, newReader(ro)
	return nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(OFF)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func removeDBFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Size is the size in bytes of the database file plus its write-ahead log.
func (db *DB) Size() int64 {
	var n int64
	for _, p := range []string{db.path, db.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	return errors.Join(db.r.stmts.close(), db.w.close(), db.ro.Close(), db.rw.Close())
}

// Execute runs the statements of req on the write connection and returns one
// result per statement. SQL errors land in the results: with
// req.Transaction, the first error rolls everything back and stops; without
// it, each statement commits on its own and execution carries on. The error
// return is for failures of the database itself.
func (db *DB) Execute(ctx context.Context, req *command.Request) ([]command.Result, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrDBClosed
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.w.execute(ctx, req)
}

// Query runs read-only statements on a read connection, all inside one read
// transaction so they see the same state.
func (db *DB) Query(ctx context.Context, req *command.Request) ([]command.Result, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrDBClosed
	}
	if stmts := req.GetStatements(); len(stmts) == 1 {
		return []command.Result{runStatement(ctx, db.r, stmts[0], true)}, nil
	}
	conn, err := db.ro.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get read connection: %w", err)
	}
	defer conn.Close()
	// Everything on this connection is a read, so every statement is run
	// for its rows, whatever analysis said.
	return run(ctx, conn, req.GetStatements(), runOptions{
		tx:          len(req.GetStatements()) > 1,
		stopOnError: req.GetTransaction(),
		rows:        true,
	})
}

// execQuerier is what a statement runs on.
type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// runOptions says how run treats a batch.
type runOptions struct {
	// tx runs the batch inside one transaction.
	tx bool
	// stopOnError ends the batch at the first failing statement, rolling
	// the transaction back.
	stopOnError bool
	// rows runs every statement for its rows.
	rows bool
}

// run executes the statements on conn. A failing statement's result carries
// its error; with stopOnError inside a transaction, everything is rolled
// back and later statements get no result.
func run(ctx context.Context, conn execQuerier, stmts []*command.Statement, o runOptions) ([]command.Result, error) {
	results := make([]command.Result, 0, len(stmts))
	tx := o.tx
	if tx {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	for _, st := range stmts {
		res := runStatement(ctx, conn, st, o.rows)
		results = append(results, res)
		if tx && o.stopOnError && res.Error != "" {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil && !noTransaction(err) {
				return results, fmt.Errorf("rollback: %w", err)
			}
			return results, nil
		}
	}
	if tx {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
			if _, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil && !noTransaction(rbErr) {
				return results, fmt.Errorf("commit: %w (rollback: %v)", err, rbErr)
			}
			// A COMMIT that fails (say, a deferred foreign key) is the
			// request's SQL error: report it on the last statement.
			if n := len(results); n > 0 {
				results[n-1].Error = err.Error()
			}
		}
	}
	return results, nil
}

// noTransaction reports whether err says no transaction was open, which a
// statement such as an explicit COMMIT or ROLLBACK inside the batch causes.
func noTransaction(err error) bool {
	return strings.Contains(err.Error(), "no transaction is active")
}

func runStatement(ctx context.Context, q execQuerier, st *command.Statement, rows bool) command.Result {
	start := time.Now()
	args := make([]any, len(st.GetParams()))
	for i, p := range st.GetParams() {
		if p.GetName() != "" {
			args[i] = sql.Named(strings.TrimLeft(p.GetName(), ":@$"), p.GoValue())
		} else {
			args[i] = p.GoValue()
		}
	}
	var res command.Result
	if rows || st.GetReturnsRows() {
		res = queryRows(ctx, q, st.GetSql(), args)
	} else {
		r, err := q.ExecContext(ctx, st.GetSql(), args...)
		if err != nil {
			res.Error = sqlError(err)
		} else {
			res.LastInsertID, _ = r.LastInsertId()
			res.RowsAffected, _ = r.RowsAffected()
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res
}

func queryRows(ctx context.Context, q execQuerier, query string, args []any) command.Result {
	var res command.Result
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		res.Error = sqlError(err)
		return res
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		res.Error = sqlError(err)
		return res
	}
	colTypes, err := rows.ColumnTypes()
	if err != nil {
		res.Error = sqlError(err)
		return res
	}
	res.Columns = cols
	res.Types = make([]string, len(cols))
	for i, ct := range colTypes {
		res.Types[i] = strings.ToLower(ct.DatabaseTypeName())
	}
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			res.Error = sqlError(err)
			return res
		}
		for i, v := range row {
			row[i] = normalize(v, res.Types[i])
			if res.Types[i] == "" {
				res.Types[i] = typeOf(row[i])
			}
		}
		res.Values = append(res.Values, row)
	}
	if err := rows.Err(); err != nil {
		res.Error = sqlError(err)
		return res
	}
	return res
}

// normalize turns what the driver returns into one of nil, int64, float64,
// string or []byte. The driver parses text in DATE/DATETIME/TIMESTAMP
// columns into time.Time; it is printed back in SQLite's own format.
func normalize(v any, declType string) any {
	switch x := v.(type) {
	case nil, int64, float64, string:
		return x
	case []byte:
		if x == nil {
			return []byte{}
		}
		return x
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case time.Time:
		return formatTime(x, declType)
	}
	return fmt.Sprint(v)
}

func formatTime(t time.Time, declType string) string {
	layout := "2006-01-02 15:04:05"
	switch {
	case declType == "date" && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0:
		layout = "2006-01-02"
	case t.Nanosecond() != 0:
		layout = "2006-01-02 15:04:05.999999999"
	}
	if _, off := t.Zone(); off != 0 {
		layout += "-07:00"
	}
	return t.Format(layout)
}

// typeOf names the SQLite storage class of a value, for columns without a
// declared type (expressions, aggregates).
func typeOf(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "real"
	case string:
		return "text"
	case []byte:
		return "blob"
	}
	return ""
}

// sqlError is the message shown to the client for a statement's error:
// SQLite's own message (as rqlite shows it), without the driver's
// "generic description: … (code)" wrapping.
func sqlError(err error) string {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err.Error()
	}
	msg := strings.TrimSuffix(se.Error(), " (SQLITE_BUSY)")
	msg = strings.TrimSuffix(msg, fmt.Sprintf(" (%d)", se.Code()))
	if _, detail, ok := strings.Cut(msg, ": "); ok {
		return detail
	}
	return msg
}

// ExecuteBatch applies several requests as Execute would one by one, but
// inside one SQLite transaction when it can (see writer.executeBatch), and
// records index as the Raft index the database now reflects.
func (db *DB) ExecuteBatch(ctx context.Context, reqs []*command.Request, index uint64) ([][]command.Result, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrDBClosed
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	defer func() { db.applied = max(db.applied, index) }()
	if len(reqs) > 1 && allBatchable(reqs) {
		out, err := db.w.executeBatch(ctx, reqs)
		if !errors.Is(err, errBatchAborted) {
			return out, err
		}
	}
	out := make([][]command.Result, len(reqs))
	for i, req := range reqs {
		res, err := db.w.execute(ctx, req)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

func allBatchable(reqs []*command.Request) bool {
	for _, r := range reqs {
		if !batchable(r) {
			return false
		}
	}
	return true
}

// Copy writes a consistent copy of the database to path with SQLite's
// online backup, from a read connection so writes carry on meanwhile.
//
// It returns the Raft index the copy reflects: the copy's read
// transaction starts between two applied batches, at an instant when that
// index is exactly what the database holds, and SQLite's online backup
// then reads that one snapshot while writes carry on.
func (db *DB) Copy(ctx context.Context, path string) (uint64, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return 0, ErrDBClosed
	}
	conn, err := db.ro.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("get read connection: %w", err)
	}
	defer conn.Close()
	db.wmu.Lock()
	index := db.applied
	_, err = conn.ExecContext(ctx, "BEGIN")
	if err == nil {
		// The first read fixes the transaction's snapshot.
		_, err = conn.ExecContext(ctx, "SELECT COUNT(*) FROM sqlite_master")
	}
	db.wmu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("start read transaction: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err := copyConn(ctx, conn, path); err != nil {
		return 0, err
	}
	return index, nil
}

// AppliedIndex is the Raft index of the last entry applied.
func (db *DB) AppliedIndex() uint64 {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.applied
}

func (db *DB) setApplied(index uint64) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	db.applied = index
}

// copyWriter is Copy on the write connection: nothing can change the
// database while it runs. The FSM uses it for snapshots.
func (db *DB) copyWriter(ctx context.Context, path string) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrDBClosed
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return copyConn(ctx, db.w.conn, path)
}

type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// copyConn copies the database behind conn to path.
func copyConn(_ context.Context, conn *sql.Conn, path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old copy: %w", err)
	}
	err := conn.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("driver connection %T cannot back up", dc)
		}
		bk, err := b.NewBackup(path)
		if err != nil {
			return fmt.Errorf("start backup: %w", err)
		}
		// One step copies every page under one read lock: the copy is
		// the database as of one instant.
		_, stepErr := bk.Step(-1)
		if err := errors.Join(stepErr, bk.Finish()); err != nil {
			return fmt.Errorf("copy pages: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy database to %s: %w", path, err)
	}
	if err := os.Chmod(path, fileMode); err != nil {
		return fmt.Errorf("restrict copy: %w", err)
	}
	return nil
}

// Replace swaps the database for the SQLite file at src (which it moves),
// waiting for running statements to finish first. src must be on the same
// file system as the database.
func (db *DB) Replace(src string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrDBClosed
	}
	if err := errors.Join(db.r.stmts.close(), db.w.close(), db.ro.Close(), db.rw.Close()); err != nil {
		return fmt.Errorf("close database for replace: %w", err)
	}
	if err := removeDBFiles(db.path); err != nil {
		return err
	}
	if err := os.Rename(src, db.path); err != nil {
		return fmt.Errorf("move %s into place: %w", src, err)
	}
	if err := db.open(); err != nil {
		db.closed = true
		return fmt.Errorf("reopen after replace: %w", err)
	}
	return nil
}

// ReplaceFrom writes r to a temporary file beside the database, checks that
// it is a SQLite database, and swaps it in with Replace.
func (db *DB) ReplaceFrom(r io.Reader) error {
	tmp := db.path + ".restore"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := CheckFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return db.Replace(tmp)
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// CheckFile reports whether path is a SQLite database file (or empty, which
// SQLite treats as an empty database).
func CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	defer f.Close()
	hdr := make([]byte, len(sqliteMagic))
	n, err := io.ReadFull(f, hdr)
	if n == 0 && (errors.Is(err, io.EOF)) {
		return nil
	}
	if err != nil || string(hdr) != sqliteMagic {
		return fmt.Errorf("check %s: not a SQLite database", path)
	}
	return nil
}
