package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cairndb/cairn/cluster/postgres"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/server"
)

// postgresNoBackups is what backup commands and endpoints answer in
// Postgres mode.
const postgresNoBackups = "this node runs in Postgres mode (db.url): PostgreSQL owns durability, so Cairn takes no backups; use pg_dump or pgBackRest"

// newPostgres opens the pool of Postgres mode from the [db] section.
func newPostgres(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*postgres.Backend, error) {
	return postgres.Open(ctx, postgresConfig(cfg, logger))
}

// postgresConfig is the pool configuration of the [db] section.
func postgresConfig(cfg *config.Config, logger *slog.Logger) postgres.Config {
	return postgres.Config{
		URL:              cfg.DB.URL,
		MaxConnections:   int32(cfg.DB.MaxConnections),
		MinConnections:   int32(cfg.DB.MinConnections),
		ConnectTimeout:   cfg.DB.ConnectTimeout,
		StatementTimeout: cfg.DB.StatementTimeout,
		NodeID:           cfg.Node.ID,
		HTTPAddr:         cfg.Node.HTTPAdvertise,
		Logger:           logger,
	}
}

// servePostgres runs a node in Postgres mode until ctx is cancelled: the
// HTTP API on a PostgreSQL pool, no Raft, no backups. PostgreSQL need not
// be up at start: /readyz says so until it is.
func servePostgres(ctx context.Context, cfg *config.Config, ops serverOps, reload *reloader, logs *logOutput, logger *slog.Logger) error {
	pg, err := newPostgres(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer pg.Close()
	gate, err := newSchemaGate(cfg, pg, migrations.Postgres, postgresLock(pg), func() bool { return true }, logger)
	if err != nil {
		return err
	}
	// The node's background loops stop when it shuts down.
	var bg sync.WaitGroup
	bgCtx, stopBg := context.WithCancel(ctx)
	defer func() { stopBg(); bg.Wait() }()
	bg.Go(func() { gate.loop(bgCtx) })
	reload.on(logStep(logs), "log.level", "log.format")
	reload.on(func(ctx context.Context, next *config.Config) error {
		pc := postgresConfig(next, logger)
		pc.URL = cfg.DB.URL // a new db.url needs a restart
		return pg.Reconfigure(ctx, pc)
	}, "db.max_connections", "db.min_connections", "db.connect_timeout", "db.statement_timeout")

	c := baseServerConfig(cfg, ops)
	c.BackupsDisabled = postgresNoBackups
	c.PoolStats = pg.Stats
	c.Ready = gate.ready
	srv := server.New(c, pg, logger)
	reload.on(authStep(srv), "auth.users", "auth.metrics")
	bg.Go(func() { reload.run(bgCtx) })
	if err := srv.Listen(cfg.Node.HTTPAddr); err != nil {
		return fmt.Errorf("listen for http on %s: %w", cfg.Node.HTTPAddr, err)
	}
	logger.Info("cairn node started in Postgres mode", "version", version, "http", srv.URL(), "database", pg.Database(),
		"max_connections", cfg.DB.MaxConnections)
	if err := pg.Ready(ctx); err != nil {
		logger.Warn("PostgreSQL is not reachable yet; serving and reporting not ready until it is", "error", err)
	}

	awaitStop(ctx, srv, logger)
	stopBg()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Close(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("close http: %w", err))
	}
	pg.Close()
	logger.Info("stopped")
	return errors.Join(errs...)
}
