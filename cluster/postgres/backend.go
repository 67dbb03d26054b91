package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxConnections    = 5
	DefaultConnectTimeout    = 5 * time.Second
	DefaultHealthCheckPeriod = 5 * time.Second
	// readyTimeout bounds the ping of Ready.
	readyTimeout = 2 * time.Second
)

// sqlStateReadOnly is PostgreSQL's "read_only_sql_transaction".
const sqlStateReadOnly = "25006"

// Config says how to reach PostgreSQL.
type Config struct {
	// URL is a postgres:// connection URL; sslmode in it selects TLS.
	URL string
	// MaxConnections and MinConnections size the pool.
	MaxConnections int32
	MinConnections int32
	// ConnectTimeout bounds opening one connection.
	ConnectTimeout time.Duration
	// StatementTimeout, when positive, is set as PostgreSQL's
	// statement_timeout on every connection.
	StatementTimeout time.Duration
	// HealthCheckPeriod is how often idle connections are checked.
	HealthCheckPeriod time.Duration
	// NodeID and HTTPAddr identify this Cairn node in Status.
	NodeID   string
	HTTPAddr string
	// Logger receives the pool's events; nil discards them.
	Logger *slog.Logger
}

// Backend is a cluster.Backend on a PostgreSQL connection pool.
type Backend struct {
	cfg      Config
	pool     atomic.Pointer[pgxpool.Pool]
	database string // host:port/db, for Status
	// reconfigMu serialises Reconfigure; draining tracks the pools it
	// replaced until they are closed.
	reconfigMu sync.Mutex
	draining   sync.WaitGroup
	logger     *slog.Logger
	// waiting counts the calls waiting for a connection now.
	waiting atomic.Int64
	// maint caches the maintenance state (nil until read), valid while
	// maintGen has not moved on.
	maint    atomic.Pointer[maintenanceCache]
	maintGen atomic.Uint64
}

var _ cluster.Backend = (*Backend)(nil)

// Open builds the pool. It connects lazily: PostgreSQL may be down, and
// Ready says so until it is up. Errors name the problem without the
// password.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	cfg = cfg.withDefaults()
	pool, database, err := newPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		cfg:      cfg,
		database: database,
		logger:   cfg.Logger.With("component", "postgres"),
	}
	b.pool.Store(pool)
	return b, nil
}

func (c Config) withDefaults() Config {
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.HealthCheckPeriod <= 0 {
		c.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// newPool builds a pool for cfg and names its database.
func newPool(ctx context.Context, cfg Config) (*pgxpool.Pool, string, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, "", fmt.Errorf("db.url: %w", err)
	}
	pc.MaxConns = cfg.MaxConnections
	pc.MinConns = min(cfg.MinConnections, cfg.MaxConnections)
	pc.HealthCheckPeriod = cfg.HealthCheckPeriod
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if cfg.StatementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "cairn"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, "", fmt.Errorf("postgres pool: %w", err)
	}
	database := net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port))) + "/" + pc.ConnConfig.Database
	return pool, database, nil
}

// Reconfigure replaces the pool with one built for cfg (its URL must name
// the same database: a different URL needs a restart). New requests use
// the new pool at once; the old one is closed in the background once the
// requests using it are done, so none of them fails.
func (b *Backend) Reconfigure(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	pool, database, err := newPool(ctx, cfg)
	if err != nil {
		return err
	}
	if database != b.database {
		pool.Close()
		return fmt.Errorf("db.url names another database (%s, not %s): restart to change it", database, b.database)
	}
	b.reconfigMu.Lock()
	defer b.reconfigMu.Unlock()
	b.cfg.MaxConnections, b.cfg.MinConnections = cfg.MaxConnections, cfg.MinConnections
	b.cfg.ConnectTimeout, b.cfg.StatementTimeout = cfg.ConnectTimeout, cfg.StatementTimeout
	old := b.pool.Swap(pool)
	b.draining.Go(old.Close) // Close waits for every connection lent out
	b.logger.Info("connection pool rebuilt", "max_connections", cfg.MaxConnections, "min_connections", cfg.MinConnections,
		"connect_timeout", cfg.ConnectTimeout, "statement_timeout", cfg.StatementTimeout)
	return nil
}

// Close closes the pool, waiting for connections lent out to come back,
// and for pools replaced by Reconfigure to drain.
func (b *Backend) Close() {
	b.pool.Load().Close()
	b.draining.Wait()
}

// Database is "host:port/database", without credentials.
func (b *Backend) Database() string { return b.database }

// acquire lends a connection out, counting the wait.
func (b *Backend) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	b.waiting.Add(1)
	pool := b.pool.Load()
	conn, err := pool.Acquire(ctx)
	for err != nil && ctx.Err() == nil && b.pool.Load() != pool {
		// Reconfigure replaced (and is closing) the pool meanwhile.
		pool = b.pool.Load()
		conn, err = pool.Acquire(ctx)
	}
	b.waiting.Add(-1)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("wait for a database connection: %w", ctxErr)
		}
		return nil, fmt.Errorf("%w: connect to PostgreSQL at %s: %v", cluster.ErrUnavailable, b.database, err)
	}
	return conn, nil
}

// Execute runs statements that change data; in maintenance mode it
// fails with cluster.ErrMaintenance.
func (b *Backend) Execute(ctx context.Context, req *command.Request) ([]command.Result, error) {
	if err := b.checkMaintenance(ctx); err != nil {
		return nil, err
	}
	return b.run(ctx, req, false)
}

// Query runs statements in a read-only transaction; a statement that
// writes fails the request with cluster.ErrNotReadOnly. opts is ignored.
func (b *Backend) Query(ctx context.Context, req *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
	return b.run(ctx, req, true)
}

// Request runs a mix of reads and writes, as Execute does. opts is
// ignored. In maintenance mode it runs read-only, and a statement that
// writes fails it with cluster.ErrMaintenance.
func (b *Backend) Request(ctx context.Context, req *command.Request, _ cluster.QueryOptions) ([]command.Result, error) {
	if err := b.checkMaintenance(ctx); err != nil {
		if !errors.Is(err, cluster.ErrMaintenance) {
			return nil, err
		}
		res, rerr := b.run(ctx, req, true)
		if errors.Is(rerr, cluster.ErrNotReadOnly) {
			return nil, fmt.Errorf("%w: %v", err, rerr)
		}
		return res, rerr
	}
	return b.run(ctx, req, false)
}

// run executes req on one connection. readOnly wraps it in a read-only
// transaction (all statements see one snapshot).
func (b *Backend) run(ctx context.Context, req *command.Request, readOnly bool) ([]command.Result, error) {
	conn, err := b.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()

	stmts := req.GetStatements()
	stopOnError := req.GetTransaction()
	var q querier = conn
	var ptx pgx.Tx
	if stopOnError || readOnly {
		opts := pgx.TxOptions{}
		if readOnly {
			opts = pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}
		}
		if ptx, err = conn.BeginTx(ctx, opts); err != nil {
			b.noteFailure(err, conn.Conn())
			return nil, b.connError("begin", err, false)
		}
		defer ptx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
		q = ptx
	}
	results := make([]command.Result, 0, len(stmts))
	// committed says whether an earlier statement of this request has
	// already committed on its own (no transaction).
	committed := false
	for i, st := range stmts {
		var res command.Result
		var err error
		if ptx != nil && !stopOnError && len(stmts) > 1 {
			// Several reads without ?transaction: a failing statement must
			// not abort the snapshot transaction for the next ones.
			res, err = runInSavepoint(ctx, ptx, st)
		} else {
			res, err = runStatement(ctx, q, st)
		}
		if err != nil {
			if ctx.Err() != nil || connFailure(err, conn.Conn()) {
				mayHaveWritten := !readOnly && (committed || (ptx == nil && !notExecuted(err)))
				b.noteFailure(err, conn.Conn())
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				return nil, b.connError(fmt.Sprintf("statement %d", i+1), err, mayHaveWritten)
			}
			// The statement's own error: SQL (with its SQLSTATE, a
			// statement_timeout included) or a parameter pgx could not
			// encode.
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && readOnly && pgErr.Code == sqlStateReadOnly {
				return nil, fmt.Errorf("%w: statement %d: %s", cluster.ErrNotReadOnly, i+1, pgErr.Message)
			}
			res.Error = err.Error()
		}
		if ptx == nil { // autocommit: a write, since reads always run in ptx
			committed = true
		}
		results = append(results, res)
		if res.Error != "" && stopOnError {
			// The deferred Rollback undoes the transaction; later
			// statements get no result, as in Raft mode.
			return results, nil
		}
	}
	if ptx != nil {
		if err := ptx.Commit(ctx); err != nil {
			var pgErr *pgconn.PgError
			if ctx.Err() == nil && !connFailure(err, conn.Conn()) && errors.As(err, &pgErr) && len(results) > 0 {
				// A COMMIT that fails (a deferred constraint) is the
				// request's SQL error, reported on the last statement.
				results[len(results)-1].Error = pgErr.Error()
				return results, nil
			}
			b.noteFailure(err, conn.Conn())
			return nil, b.connError("commit", err, !readOnly)
		}
	}
	return results, nil
}

// connFailure reports whether err, met on conn, is a failure of the
// connection or the server rather than the statement's own error: the
// connection is closed, or PostgreSQL answered with a connection exception
// (class 08), an administrator or crash shutdown (57P01–57P03), or a FATAL
// or PANIC error. A statement timeout or cancellation (57014) and a
// parameter pgx could not encode are the statement's errors.
func connFailure(err error, conn *pgx.Conn) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03",
			pgErr.Severity == "FATAL", pgErr.Severity == "PANIC":
			return true
		}
		return false
	}
	return conn == nil || conn.IsClosed()
}

// notExecuted reports whether a failed statement certainly did not run:
// nothing was sent, or the server ended the session (admin or crash
// shutdown, starting up) instead of running it; a statement in flight
// there is rolled back with its session.
func notExecuted(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "08006", "08001", "08004":
			return true
		}
	}
	return false
}

// noteFailure drops every pooled connection after a connection failure:
// when PostgreSQL restarts or the database is dropped, all of them are
// dead, and each would fail one more request before the health check
// found it. Connections lent out are closed when they come back.
func (b *Backend) noteFailure(err error, conn *pgx.Conn) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || !connFailure(err, conn) {
		return
	}
	b.logger.Warn("PostgreSQL connection failed; resetting the pool", "database", b.database, "error", err)
	b.pool.Load().Reset()
}

// connError wraps a failure that is not an SQL error. mayHaveWritten says
// whether a write may have reached PostgreSQL before it, in which case the
// outcome is unknown rather than "unavailable".
func (b *Backend) connError(what string, err error, mayHaveWritten bool) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if mayHaveWritten {
			return fmt.Errorf("%s: %w: %w", what, cluster.ErrUnknownOutcome, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if mayHaveWritten {
		return fmt.Errorf("%s: %w: connection to PostgreSQL lost: %v", what, cluster.ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: %s: PostgreSQL at %s: %v", cluster.ErrUnavailable, what, b.database, err)
}

// querier is a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// runStatement runs one statement and collects its rows, if any. A
// *pgconn.PgError is an SQL error of the statement; any other error is a
// failure of the connection.
func runStatement(ctx context.Context, q querier, st *command.Statement) (command.Result, error) {
	start := time.Now()
	var res command.Result
	args, err := statementArgs(st)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	rows, err := q.Query(ctx, st.GetSql(), args...)
	if err != nil {
		res.Seconds = time.Since(start).Seconds()
		return res, err
	}
	fields := rows.FieldDescriptions()
	if len(fields) > 0 {
		res.Columns = make([]string, len(fields))
		res.Types = make([]string, len(fields))
		tm := rows.Conn().TypeMap()
		for i, f := range fields {
			res.Columns[i] = f.Name
			res.Types[i] = typeName(tm, f.DataTypeOID)
		}
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			rows.Close()
			return res, err
		}
		raw := rows.RawValues()
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = jsonValue(v, fields[i], raw[i])
		}
		res.Values = append(res.Values, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		res.Values = nil
		res.Seconds = time.Since(start).Seconds()
		return res, err
	}
	if tag := rows.CommandTag(); !tag.Select() {
		// Writes, RETURNING included, report their count; a SELECT's
		// count is its rows.
		res.RowsAffected = tag.RowsAffected()
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// runInSavepoint runs one statement inside a savepoint of tx, rolled back
// when the statement fails in SQL, so that tx stays usable.
func runInSavepoint(ctx context.Context, tx pgx.Tx, st *command.Statement) (command.Result, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return command.Result{}, err
	}
	res, err := runStatement(ctx, sp, st)
	if err != nil {
		if !connFailure(err, tx.Conn()) {
			if rbErr := sp.Rollback(ctx); rbErr != nil {
				return res, rbErr
			}
		}
		return res, err
	}
	return res, sp.Commit(ctx)
}

// statementArgs turns the statement's parameters into pgx arguments:
// positional ones in order ($1, $2…), named ones as pgx.NamedArgs (@name).
func statementArgs(st *command.Statement) ([]any, error) {
	params := st.GetParams()
	if len(params) == 0 {
		return nil, nil
	}
	if params[0].GetName() == "" {
		args := make([]any, len(params))
		for i, p := range params {
			if p.GetName() != "" {
				return nil, errors.New("parameters mix names and positions")
			}
			args[i] = p.GoValue()
		}
		return args, nil
	}
	named := make(pgx.NamedArgs, len(params))
	for _, p := range params {
		if p.GetName() == "" {
			return nil, errors.New("parameters mix names and positions")
		}
		named[strings.TrimLeft(p.GetName(), ":@$")] = p.GoValue()
	}
	return []any{named}, nil
}

// Ready pings PostgreSQL: nil when a connection answers.
func (b *Backend) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	conn, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.Ping(ctx); err != nil {
		b.noteFailure(err, conn.Conn())
		return fmt.Errorf("%w: ping PostgreSQL at %s: %v", cluster.ErrUnavailable, b.database, err)
	}
	return nil
}

// Status describes the node and its pool. It reads the maintenance state
// from PostgreSQL at most once a second, and leaves it out when
// PostgreSQL cannot be reached.
func (b *Backend) Status(ctx context.Context) (cluster.Status, error) {
	ps := b.Stats()
	st := cluster.Status{
		Mode:     "postgres",
		NodeID:   b.cfg.NodeID,
		HTTPAddr: b.cfg.HTTPAddr,
		Database: b.database,
		Pool:     &ps,
	}
	mctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if m, err := b.Maintenance(mctx); err == nil {
		st.Maintenance = m
	}
	return st, nil
}

// Stats reports the pool's counters.
func (b *Backend) Stats() cluster.PoolStats {
	s := b.pool.Load().Stat()
	return cluster.PoolStats{
		Max:                s.MaxConns(),
		Total:              s.TotalConns(),
		Idle:               s.IdleConns(),
		InUse:              s.AcquiredConns(),
		Constructing:       s.ConstructingConns(),
		Waiting:            max(b.waiting.Load(), 0),
		Acquires:           s.AcquireCount(),
		EmptyAcquires:      s.EmptyAcquireCount(),
		CanceledAcquires:   s.CanceledAcquireCount(),
		AcquireWaitSeconds: s.AcquireDuration().Seconds(),
	}
}

// Lock takes the PostgreSQL session advisory lock key on a connection of
// its own, blocking until it is free or ctx is done, and returns the
// function that releases it. Every Cairn node sharing the database
// serialises on it (the migration runner uses it). If the connection dies,
// PostgreSQL releases the lock itself.
func (b *Backend) Lock(ctx context.Context, key int64) (unlock func(), err error) {
	conn, err := b.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("advisory lock %d: %w", key, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		conn.Release()
		return nil, fmt.Errorf("advisory lock %d: %w", key, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			// Closing the connection ends the session, which frees the
			// lock.
			b.logger.Warn("advisory unlock failed; closing the connection", "key", key, "error", err)
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}
