package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/restore"
	"github.com/cairndb/cairn/server"
	"github.com/cairndb/cairn/statemachine"
)

func newServeCommand(env []string) *cobra.Command {
	var (
		path         string
		validateOnly bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a node",
		Long: `Run a Cairn node. With no configuration at all it runs a single-node
cluster with its data in ./cairn-data, HTTP on 127.0.0.1:4001 and Raft on
127.0.0.1:4002. Every key of the TOML file can be set with CAIRN_<SECTION>_<KEY>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				path = lookupEnv(env, "CAIRN_CONFIG")
			}
			cfg, err := config.Load(path, env)
			if validateOnly {
				return reportValidation(cmd.OutOrStdout(), cfg, err)
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", err)}
			}
			return serve(cmd.Context(), cfg, path, env, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (TOML); also CAIRN_CONFIG")
	cmd.Flags().BoolVar(&validateOnly, "validate-only", false, "check the configuration and environment, print the result and exit")
	return cmd
}

func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// reportValidation prints the effective configuration, or every problem.
func reportValidation(w io.Writer, cfg *config.Config, err error) error {
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", err)}
	}
	fmt.Fprintln(w, "configuration is valid; effective values (secrets redacted):")
	fmt.Fprintln(w, cfg.Redacted())
	return nil
}

// newLogger builds a command's logger from the [log] section.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	return newLogOutput(c, w).logger()
}

// Paths of a node's files under node.data_dir.
func dbPath(dataDir string) string {
	return filepath.Join(dataDir, "state_machine", "db", "cairn.db")
}

// serve runs a node until ctx is cancelled (SIGINT/SIGTERM), then shuts it
// down in rqlite's order: HTTP, leadership hand-over, Raft, database.
// path and env are where the configuration came from, read again on
// SIGHUP.
func serve(ctx context.Context, cfg *config.Config, path string, env []string, logw io.Writer) error {
	logs := newLogOutput(cfg.Log, logw)
	logger := logs.logger().With("node", cfg.Node.ID)
	ops, err := newServerOps(cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	reload := newReloader(path, env, cfg, logger)
	defer reload.close()
	if cfg.PostgresMode() {
		return servePostgres(ctx, cfg, ops, reload, logs, logger)
	}
	// Everything this process creates is for its own user only.
	syscall.Umask(0o077)

	release, err := lockDataDir(cfg.Node.DataDir)
	if err != nil {
		return err
	}
	defer release()

	restored := false
	if spec := cfg.Backup.Restore; spec != "" {
		res, err := runRestore(ctx, cfg, spec, logger)
		if err != nil {
			return fmt.Errorf("restore %s (CAIRN_BACKUP_RESTORE): %w; the existing data is untouched (a swap a crash interrupted is completed at the next start)", spec, err)
		}
		if res.Applied {
			restored = true
			logger.Info("restored from backup", "backup", res.Name, "index", res.RaftIndex, "epoch", res.Epoch)
		}
	} else if err := restore.Recover(cfg.Node.DataDir, logger); err != nil {
		// A restore a crash interrupted is finished (or undone) even when
		// the variable has been removed since.
		return fmt.Errorf("recover an interrupted restore: %w", err)
	}
	epoch, err := restore.Epoch(cfg.Node.DataDir)
	if err != nil {
		return fmt.Errorf("read restore epoch: %w", err)
	}

	db, err := statemachine.OpenFresh(dbPath(cfg.Node.DataDir))
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	members, err := cfg.Members()
	if err != nil {
		return err
	}
	cm := make([]cluster.Member, len(members))
	for i, m := range members {
		cm[i] = cluster.Member{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Voter: true}
	}
	node := cluster.New(cluster.Config{
		ID:                cfg.Node.ID,
		DataDir:           cfg.Node.DataDir,
		RaftAddr:          cfg.Node.RaftAddr,
		RaftAdvertise:     cfg.Node.RaftAdvertise,
		HTTPAdvertise:     cfg.Node.HTTPAdvertise,
		Members:           cm,
		Secret:            []byte(cfg.Cluster.Secret.Value()),
		Epoch:             epoch,
		SnapshotThreshold: cfg.Cluster.SnapshotThreshold,
		SnapshotInterval:  cfg.Cluster.SnapshotInterval,
		TrailingLogs:      cfg.Cluster.TrailingLogs,
		HeartbeatTimeout:  cfg.Cluster.HeartbeatTimeout,
		ElectionTimeout:   cfg.Cluster.ElectionTimeout,
		ApplyTimeout:      cfg.Cluster.ApplyTimeout,
		Logger:            logger,
	}, db)
	if err := node.Open(ctx); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	sched, local, remote, err := newScheduler(cfg, db, node.IsLeader, logger)
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, node.Close(closeCtx))
	}
	sched.Start(ctx)
	health := &nodeHealth{sched: sched, dataDir: cfg.Node.DataDir}
	health.setFailureCritical(cfg.Backup.FailureCriticalAfter)
	if remote != nil {
		health.s3 = remote
	}
	gate, err := newSchemaGate(cfg, node, migrations.SQLite, nil, node.IsLeader, logger)
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
		defer cancel()
		sched.Close()
		return errors.Join(err, node.Close(closeCtx))
	}
	// The node's background loops stop when it shuts down.
	var bg sync.WaitGroup
	bgCtx, stopBg := context.WithCancel(ctx)
	defer func() { stopBg(); bg.Wait() }()
	bg.Go(func() { gate.loop(bgCtx) })
	reload.on(logStep(logs), "log.level", "log.format")
	reload.on(backupStep(sched, health), "backup.cron", "backup.timezone", "backup.keep_days_local", "backup.keep_days", "backup.failure_critical_after")
	if remote != nil {
		reload.on(s3Step(remote, cfg), "s3.key", "s3.secret")
	}

	c := baseServerConfig(cfg, ops)
	c.Internal = node.InternalHandler()
	c.Backups = &backupService{sched: sched, local: local, remote: remote.store()}
	c.Health = health.checks
	c.Collectors = append(backupCollectors(sched), nodeCollectors(node, restored)...)
	c.Authenticate = func(r *http.Request, body []byte) error {
		return cluster.VerifyRequest(r, []byte(cfg.Cluster.Secret.Value()), body, time.Now())
	}
	c.Ready = gate.ready
	srv := server.New(c, node, logger)
	if err := srv.Listen(cfg.Node.HTTPAddr); err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
		defer cancel()
		sched.Close()
		return errors.Join(fmt.Errorf("listen for http on %s: %w", cfg.Node.HTTPAddr, err), node.Close(closeCtx))
	}
	logger.Info("cairn node started", "version", version, "http", srv.URL(), "raft", cfg.Node.RaftAdvertise, "data_dir", cfg.Node.DataDir, "members", len(members))

	reload.on(authStep(srv), "auth.users", "auth.metrics")
	bg.Go(func() { reload.run(bgCtx) })
	awaitStop(ctx, srv, logger)

	stopBg()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	var errs []error
	if err := srv.Close(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("close http: %w", err))
	}
	// A backup in progress finishes before Raft stops.
	sched.Close()
	if err := node.Close(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("close raft: %w", err))
	}
	if err := db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	logger.Info("stopped", "duration", time.Since(start))
	return errors.Join(errs...)
}

// baseServerConfig is the HTTP server configuration both modes share.
func baseServerConfig(cfg *config.Config, ops serverOps) server.Config {
	return ops.apply(server.Config{
		MaxBodySize:     int64(cfg.HTTP.MaxBodySize),
		RequestTimeout:  cfg.HTTP.RequestTimeout,
		ReadTimeout:     cfg.HTTP.ReadTimeout,
		WriteTimeout:    cfg.HTTP.WriteTimeout,
		IdleTimeout:     cfg.HTTP.IdleTimeout,
		ShutdownTimeout: cfg.HTTP.ShutdownTimeout,
		Version:         version,
		NodeID:          cfg.Node.ID,
		Pprof:           cfg.HTTP.Pprof,
	})
}

// awaitStop serves HTTP until ctx is done (SIGINT/SIGTERM) or the server
// fails.
func awaitStop(ctx context.Context, srv *server.Server, logger *slog.Logger) {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx) }()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		if err != nil {
			logger.Error("http server stopped", "error", err)
		}
	}
}

// lockDataDir creates dir (mode 0700) and takes an exclusive lock on it, so
// two processes never share one data directory.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict data dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another cairn process: %w", dir, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
