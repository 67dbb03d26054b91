package migrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"time"
)

// Table is the table applied migrations are recorded in, one row per
// version: version, name, checksum, applied_at and duration_ms.
const Table = "_cairn_migrations"

// AdvisoryLockKey is the key of the PostgreSQL advisory lock that an
// Execer's Lock takes in Postgres mode ("cairnmig" in ASCII), the same on
// every node so that their runners take turns.
const AdvisoryLockKey int64 = 0x636169726e6d6967

// Execer is what the runner needs of a database. Both Cairn backends
// satisfy it through small adapters (the Raft node and the PostgreSQL
// pool); a program can write its own over database/sql (see the example).
type Execer interface {
	// Dialect is the database's SQL dialect.
	Dialect() Dialect
	// Lock serialises the runners of every node sharing the database until
	// unlock is called: in PostgreSQL a session advisory lock on
	// AdvisoryLockKey. An Execer may return a no-op instead, as in Raft
	// mode: the runner stays correct without the lock (see Runner).
	Lock(ctx context.Context) (unlock func(), err error)
	// ExecTx runs the statements in one transaction, all or nothing. On
	// failure it returns the index of the statement that failed and its
	// error (the database's message: SQLite's text, PostgreSQL's with its
	// SQLSTATE), or -1 when the failure is not one statement's (the
	// database could not be reached, the outcome is unknown).
	ExecTx(ctx context.Context, stmts []Statement) (failed int, err error)
	// Query runs one read and returns its rows; values are int64, float64,
	// string, []byte, time.Time or nil.
	Query(ctx context.Context, sql string, args ...any) ([][]any, error)
}

// Statement is one statement of a transaction, with its positional
// arguments ($1, $2… in the SQL).
type Statement struct {
	SQL  string
	Args []any
}

// Record is an applied migration, as the migrations table holds it.
type Record struct {
	Version  int64
	Name     string
	Checksum string
	// AppliedAt is when the runner that applied it started the
	// transaction, by its clock.
	AppliedAt time.Time
	// Duration is how long the transaction took as the runner saw it,
	// from sending it to its commit being acknowledged (in Raft mode,
	// replication to a quorum included). It is recorded by a separate
	// write just after the commit, so it is zero when that write failed.
	Duration time.Duration
}

// State is the state of one version: a file, a record, or both.
type State struct {
	// Migration is the file; zero when Missing.
	Migration Migration
	// Record is the applied migration; nil when the file is pending.
	Record *Record
	// Changed means the migration was applied from a file whose checksum
	// differs from the file's now.
	Changed bool
	// Missing means the migration was applied but its file is gone.
	Missing bool
}

// ChecksumError refuses an applied migration whose file has changed since.
type ChecksumError struct {
	Version int64
	File    string
	// Applied is the checksum recorded when the migration was applied;
	// Current is the file's checksum now.
	Applied, Current string
}

// Error names the file and both checksums.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("migration %s (version %d) was applied with checksum %s, but the file now has checksum %s: an applied migration must not change (restore the file and put the change in a new migration)",
		e.File, e.Version, e.Applied, e.Current)
}

// MigrationError is a migration that failed and was rolled back.
type MigrationError struct {
	Version int64
	File    string
	// Statement is the number of the failing statement in the file, from 1;
	// Line is the line it starts on, and SQL its text.
	Statement int
	Line      int
	SQL       string
	// Err is the database's error.
	Err error
}

// Error names the file, the statement and the database's error.
func (e *MigrationError) Error() string {
	where := fmt.Sprintf("statement %d", e.Statement)
	if e.Line > 0 {
		where += fmt.Sprintf(" (line %d: %s)", e.Line, excerpt(e.SQL))
	} else {
		where += fmt.Sprintf(" (%s)", excerpt(e.SQL))
	}
	return fmt.Sprintf("migration %s failed at %s: %v; it was rolled back and no later migration was applied", e.File, where, e.Err)
}

// Unwrap returns the database's error.
func (e *MigrationError) Unwrap() error { return e.Err }

// Runner applies pending migrations in version order, each in its own
// transaction, and records each in the migrations table. Running it again
// is a no-op. Before applying anything it refuses an applied migration
// whose file changed (a *ChecksumError per file) and a pending migration
// older than an applied one; a failing migration rolls back and stops the
// run with a *MigrationError.
//
// Concurrent runners on one database are safe even when Lock is a no-op:
// the row that records a migration is the first statement of its
// transaction, so when two runners apply the same version, the second one's
// transaction fails on the table's primary key and rolls back whole; the
// runner then reads the table, finds the version applied by the other (with
// the same checksum, or it refuses) and carries on.
type Runner struct {
	// Execer is the database.
	Execer Execer
	// Logger receives a line per migration applied; nil discards.
	Logger *slog.Logger
	// Now is the clock applied_at is taken from; nil means time.Now.
	// The runner computes applied_at itself (and passes it as a
	// parameter) so that every replica records the same value.
	Now func() time.Time
}

// The runner's own statements, in placeholders both dialects accept.
const (
	selectRecords  = "SELECT version, name, checksum, applied_at, duration_ms FROM " + Table + " ORDER BY version"
	insertRecord   = "INSERT INTO " + Table + " (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)"
	updateDuration = "UPDATE " + Table + " SET duration_ms = $1 WHERE version = $2"
)

// createTable returns the DDL of the migrations table in dialect d.
func createTable(d Dialect) string {
	if d == Postgres {
		return "CREATE TABLE IF NOT EXISTS " + Table + " (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL, duration_ms BIGINT)"
	}
	return "CREATE TABLE IF NOT EXISTS " + Table + " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms INTEGER)"
}

// tableExists returns the query that counts migrations tables in dialect d.
func tableExists(d Dialect) string {
	if d == Postgres {
		return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '" + Table + "'"
	}
	return "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '" + Table + "'"
}

// timeLayout is how the runner writes applied_at: RFC 3339 in UTC with
// microseconds, which PostgreSQL's timestamptz accepts and which sorts as
// text in SQLite.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// Run applies the pending migrations of ms (as Load returns them) and
// returns the ones this runner applied; versions another runner applied
// meanwhile are not among them. On error, the records of the migrations
// applied before it are returned with it.
func (r *Runner) Run(ctx context.Context, ms []Migration) ([]Record, error) {
	if r.Execer == nil {
		return nil, errors.New("migrations runner: no Execer")
	}
	if err := checkSorted(ms); err != nil {
		return nil, err
	}
	log := r.logger()
	unlock, err := r.Execer.Lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer unlock()

	recs, exists, err := readRecords(ctx, r.Execer)
	if err != nil {
		return nil, err
	}
	if !exists {
		if _, err := r.Execer.ExecTx(ctx, []Statement{{SQL: createTable(r.Execer.Dialect())}}); err != nil {
			return nil, fmt.Errorf("create table %s: %w", Table, err)
		}
		// Another runner may have recorded migrations since the check.
		if recs, _, err = readRecords(ctx, r.Execer); err != nil {
			return nil, err
		}
	}

	states := merge(ms, recs)
	var (
		refused    []error
		pending    []Migration
		newest     *Record
		appliedCnt int
	)
	for _, st := range states {
		switch {
		case st.Missing:
			log.Warn("applied migration has no file", "version", st.Record.Version, "name", st.Record.Name)
		case st.Changed:
			refused = append(refused, &ChecksumError{Version: st.Migration.Version, File: st.Migration.File, Applied: st.Record.Checksum, Current: st.Migration.Checksum})
		case st.Record == nil:
			pending = append(pending, st.Migration)
		}
		if st.Record != nil {
			newest = st.Record
			appliedCnt++
		}
	}
	if len(refused) > 0 {
		return nil, errors.Join(refused...)
	}
	if len(pending) > 0 && newest != nil && pending[0].Version < newest.Version {
		return nil, fmt.Errorf("migration %s (version %d) is pending, but version %d is already applied: add new migrations with higher versions than every applied one",
			pending[0].File, pending[0].Version, newest.Version)
	}
	if len(pending) == 0 {
		log.Info("schema is current", "applied", appliedCnt)
		return nil, nil
	}

	var applied []Record
	for _, m := range pending {
		if err := ctx.Err(); err != nil {
			return applied, fmt.Errorf("migrate: %w", err)
		}
		rec, err := r.apply(ctx, log, m)
		if err != nil {
			return applied, err
		}
		if rec != nil {
			applied = append(applied, *rec)
		}
	}
	return applied, nil
}

// apply runs one migration. It returns nil and no error when another runner
// applied the same migration first.
func (r *Runner) apply(ctx context.Context, log *slog.Logger, m Migration) (*Record, error) {
	now := r.now().UTC()
	stmts := make([]Statement, 0, 1+len(m.Statements))
	// The claim comes first: a concurrent runner's copy of this
	// transaction fails on it before running anything.
	stmts = append(stmts, Statement{SQL: insertRecord, Args: []any{m.Version, m.Name, m.Checksum, now.Format(timeLayout)}})
	for _, s := range m.Statements {
		stmts = append(stmts, Statement{SQL: s})
	}
	log.Info("applying migration", "version", m.Version, "file", m.File, "statements", len(m.Statements))
	start := time.Now()
	failed, err := r.Execer.ExecTx(ctx, stmts)
	took := time.Since(start)
	if err != nil {
		switch {
		case failed == 0:
			return nil, r.claimFailed(ctx, log, m, err)
		case failed >= 1 && failed <= len(m.Statements):
			line := 0
			if len(m.Lines) == len(m.Statements) {
				line = m.Lines[failed-1]
			}
			return nil, &MigrationError{Version: m.Version, File: m.File, Statement: failed, Line: line, SQL: m.Statements[failed-1], Err: err}
		}
		return nil, fmt.Errorf("apply migration %s: %w (run again: a migration that was applied is recorded and skipped)", m.File, err)
	}
	if _, err := r.Execer.ExecTx(ctx, []Statement{{SQL: updateDuration, Args: []any{took.Milliseconds(), m.Version}}}); err != nil {
		log.Warn("record the duration of a migration", "version", m.Version, "file", m.File, "error", err)
	}
	log.Info("applied migration", "version", m.Version, "file", m.File, "duration", took.Round(time.Millisecond))
	return &Record{Version: m.Version, Name: m.Name, Checksum: m.Checksum, AppliedAt: now, Duration: took}, nil
}

// claimFailed handles a migration whose record could not be inserted:
// nil when another runner applied it (from the same file), an error
// otherwise.
func (r *Runner) claimFailed(ctx context.Context, log *slog.Logger, m Migration, claimErr error) error {
	recs, _, err := readRecords(ctx, r.Execer)
	if err != nil {
		return fmt.Errorf("record migration %s in %s: %w (then: %w)", m.File, Table, claimErr, err)
	}
	for _, rec := range recs {
		if rec.Version != m.Version {
			continue
		}
		if rec.Checksum != m.Checksum {
			return &ChecksumError{Version: m.Version, File: m.File, Applied: rec.Checksum, Current: m.Checksum}
		}
		log.Info("migration applied by another runner", "version", m.Version, "file", m.File)
		return nil
	}
	return fmt.Errorf("record migration %s in %s: %w", m.File, Table, claimErr)
}

// Pending returns the migrations of ms that are not applied, in order. It
// writes nothing, so it suits readiness checks; it does not compare
// checksums (Status does).
func (r *Runner) Pending(ctx context.Context, ms []Migration) ([]Migration, error) {
	if r.Execer == nil {
		return nil, errors.New("migrations runner: no Execer")
	}
	recs, _, err := readRecords(ctx, r.Execer)
	if err != nil {
		return nil, err
	}
	applied := make(map[int64]bool, len(recs))
	for _, rec := range recs {
		applied[rec.Version] = true
	}
	var out []Migration
	for _, m := range ms {
		if !applied[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Status returns the state of every version among the files ms and the
// records of the database, in version order. It writes nothing: on a
// database without the migrations table every file is pending.
func Status(ctx context.Context, ex Execer, ms []Migration) ([]State, error) {
	recs, _, err := readRecords(ctx, ex)
	if err != nil {
		return nil, err
	}
	return merge(ms, recs), nil
}

// merge pairs files and records by version.
func merge(ms []Migration, recs []Record) []State {
	byVersion := make(map[int64]*Record, len(recs))
	for i := range recs {
		byVersion[recs[i].Version] = &recs[i]
	}
	out := make([]State, 0, len(ms)+len(recs))
	for _, m := range ms {
		st := State{Migration: m}
		if rec := byVersion[m.Version]; rec != nil {
			st.Record = rec
			st.Changed = rec.Checksum != m.Checksum
			delete(byVersion, m.Version)
		}
		out = append(out, st)
	}
	for _, rec := range byVersion {
		out = append(out, State{Record: rec, Missing: true})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].version() < out[j].version() })
	return out
}

func (s State) version() int64 {
	if s.Record != nil {
		return s.Record.Version
	}
	return s.Migration.Version
}

// checkSorted refuses migrations out of version order or with a version
// twice (Load never returns such a list; a hand-made one might).
func checkSorted(ms []Migration) error {
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			return fmt.Errorf("migrations out of order: %s (version %d) after %s (version %d)", ms[i].File, ms[i].Version, ms[i-1].File, ms[i-1].Version)
		}
	}
	return nil
}

// readRecords reads the migrations table; exists is false (and there are
// no records) when the table does not exist.
func readRecords(ctx context.Context, ex Execer) (recs []Record, exists bool, err error) {
	rows, err := ex.Query(ctx, tableExists(ex.Dialect()))
	if err != nil {
		return nil, false, fmt.Errorf("look for table %s: %w", Table, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return nil, false, fmt.Errorf("look for table %s: unexpected result %v", Table, rows)
	}
	if n, err := toInt64(rows[0][0]); err != nil {
		return nil, false, fmt.Errorf("look for table %s: %w", Table, err)
	} else if n == 0 {
		return nil, false, nil
	}
	rows, err = ex.Query(ctx, selectRecords)
	if err != nil {
		return nil, true, fmt.Errorf("read %s: %w", Table, err)
	}
	recs = make([]Record, 0, len(rows))
	for _, row := range rows {
		rec, err := parseRecord(row)
		if err != nil {
			return nil, true, fmt.Errorf("read %s: %w", Table, err)
		}
		recs = append(recs, rec)
	}
	return recs, true, nil
}

func parseRecord(row []any) (Record, error) {
	if len(row) != 5 {
		return Record{}, fmt.Errorf("want 5 columns, got %d", len(row))
	}
	var (
		rec Record
		err error
		ok  bool
	)
	if rec.Version, err = toInt64(row[0]); err != nil {
		return Record{}, fmt.Errorf("version: %w", err)
	}
	if rec.Name, ok = row[1].(string); !ok {
		return Record{}, fmt.Errorf("version %d: name is %T, not text", rec.Version, row[1])
	}
	if rec.Checksum, ok = row[2].(string); !ok {
		return Record{}, fmt.Errorf("version %d: checksum is %T, not text", rec.Version, row[2])
	}
	if rec.AppliedAt, err = toTime(row[3]); err != nil {
		return Record{}, fmt.Errorf("version %d: applied_at: %w", rec.Version, err)
	}
	if row[4] != nil {
		ms, err := toInt64(row[4])
		if err != nil {
			return Record{}, fmt.Errorf("version %d: duration_ms: %w", rec.Version, err)
		}
		rec.Duration = time.Duration(ms) * time.Millisecond
	}
	return rec, nil
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
}

// timeLayouts are the forms applied_at may come back in: the runner's own
// (SQLite stores the text), and PostgreSQL's timestamptz as text.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02 15:04:05.999999999",
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, x); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%v (%T) is not a time", v, v)
}
