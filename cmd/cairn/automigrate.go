package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/migrations"
)

// migrateRetry is how often a node retries migrations that could not run
// yet (no leader, PostgreSQL down) and rechecks a follower's schema.
const migrateRetry = 500 * time.Millisecond

// loadMigrations reads db.migrations_dir for dialect; none when unset.
func loadMigrations(cfg *config.Config, dialect migrations.Dialect) ([]migrations.Migration, error) {
	if cfg.DB.MigrationsDir == "" {
		return nil, nil
	}
	ms, err := migrations.Load(os.DirFS(cfg.DB.MigrationsDir), dialect)
	if err != nil {
		return nil, fmt.Errorf("db.migrations_dir %s: %w", cfg.DB.MigrationsDir, err)
	}
	return ms, nil
}

// schemaGate keeps a node unready until its copy of the schema holds
// every migration, and with db.auto_migrate applies them: in Raft mode on
// the leader only (through the log), in Postgres mode on every node under
// the advisory lock.
type schemaGate struct {
	ms []migrations.Migration
	// run applies pending migrations; nil without auto_migrate.
	run *migrations.Runner
	// check reads this node's own copy.
	check migrations.Execer
	// mayRun says whether this node should apply them now (the leader).
	mayRun func() bool
	logger *slog.Logger

	current atomic.Bool
	mu      sync.Mutex
	problem error // why the schema is not current, for /readyz
}

// newSchemaGate builds the gate for the node's backend.
func newSchemaGate(cfg *config.Config, backend cluster.Backend, dialect migrations.Dialect, lock func(context.Context) (func(), error), mayRun func() bool, logger *slog.Logger) (*schemaGate, error) {
	ms, err := loadMigrations(cfg, dialect)
	if err != nil {
		return nil, err
	}
	g := &schemaGate{ms: ms, mayRun: mayRun, logger: logger.With("component", "migrations"),
		check: &backendExecer{backend: backend, dialect: dialect, localReads: true}}
	if cfg.DB.AutoMigrate {
		g.run = &migrations.Runner{Execer: &backendExecer{backend: backend, dialect: dialect, lock: lock}, Logger: logger}
	}
	if len(ms) == 0 {
		g.current.Store(true)
	}
	return g, nil
}

// loop applies and checks migrations until the schema is current or ctx
// ends.
func (g *schemaGate) loop(ctx context.Context) {
	if g.current.Load() {
		return
	}
	t := time.NewTicker(migrateRetry)
	defer t.Stop()
	for {
		current, refused := g.step(ctx)
		if current {
			g.logger.Info("schema is current", "migrations", len(g.ms))
			return
		}
		if refused {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// step makes one attempt; it reports whether the schema is current, or
// whether the migrations were refused (a changed file, a failing
// migration), which retrying cannot mend.
func (g *schemaGate) step(ctx context.Context) (current, refused bool) {
	if g.run != nil && g.mayRun() {
		if _, err := g.run.Run(ctx, g.ms); err != nil {
			g.setProblem(fmt.Errorf("migrations: %w", err))
			var ce *migrations.ChecksumError
			var me *migrations.MigrationError
			if errors.As(err, &ce) || errors.As(err, &me) && !transient(me) {
				// Retrying will not help; the operator must act.
				g.logger.Error("migrations refused; this node stays unready until the files are fixed and it restarts", "error", err)
				return false, true
			}
			g.logger.Warn("migrations could not run yet; retrying", "error", err)
			return false, false
		}
	}
	states, err := migrations.Status(ctx, g.check, g.ms)
	if err != nil {
		g.setProblem(fmt.Errorf("check migrations: %w", err))
		return false, false
	}
	var pending []migrations.Migration
	for _, st := range states {
		switch {
		case st.Changed:
			err := &migrations.ChecksumError{Version: st.Record.Version, File: st.Migration.File, Applied: st.Record.Checksum, Current: st.Migration.Checksum}
			g.setProblem(fmt.Errorf("migrations: %w", err))
			g.logger.Error("migrations refused; this node stays unready until the file is restored and it restarts", "error", err)
			return false, true
		case st.Record == nil && !st.Missing:
			pending = append(pending, st.Migration)
		}
	}
	switch {
	case len(pending) > 0:
		if g.run == nil {
			g.setProblem(fmt.Errorf("%d migrations pending, starting with %s; db.auto_migrate is off: run `cairn migrate run`", len(pending), pending[0].File))
		} else {
			g.setProblem(fmt.Errorf("%d migrations pending, starting with %s", len(pending), pending[0].File))
		}
		return false, false
	}
	g.current.Store(true)
	g.setProblem(nil)
	return true, false
}

func (g *schemaGate) setProblem(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.problem = err
}

// transient reports whether a failed migration failed for a reason that
// passes: PostgreSQL's transaction rollbacks (class 40: deadlock,
// serialization failure) and a lock it could not get (55P03), caused by
// other traffic. Another attempt may succeed.
func transient(me *migrations.MigrationError) bool {
	msg := me.Err.Error()
	return strings.Contains(msg, "(SQLSTATE 40") || strings.Contains(msg, "(SQLSTATE 55P03)")
}

// ready is nil once the schema is current.
func (g *schemaGate) ready(context.Context) error {
	if g.current.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.problem != nil {
		return g.problem
	}
	return errors.New("migrations: not checked yet")
}
