package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairndb/cairn/cluster/postgres"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/migrations"
)

// migrateOptions are the flags every `cairn migrate` subcommand shares.
type migrateOptions struct {
	addr    string
	config  string
	timeout time.Duration
}

func newMigrateCommand(env []string) *cobra.Command {
	o := &migrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Show and apply the schema migrations of db.migrations_dir",
		Long: `Versioned schema migrations: the files NNNN_name.sql of db.migrations_dir
(with NNNN_name.sqlite.sql and NNNN_name.postgres.sql variants), applied in
version order, each in its own transaction, and recorded in the table
_cairn_migrations.

In Raft mode the commands talk to a running node over HTTP (--addr, else the
configuration's node address); any node will do. In Postgres mode (db.url)
they connect to PostgreSQL directly.`,
	}
	cmd.PersistentFlags().StringVar(&o.addr, "addr", "", "HTTP address of any node (Raft mode; default: node.http_advertise of the configuration)")
	cmd.PersistentFlags().StringVarP(&o.config, "config", "c", "", "configuration file, for db.migrations_dir and db.url (also CAIRN_CONFIG; CAIRN_DB_* variables work alone)")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole command")
	cmd.AddCommand(newMigrateStatusCommand(o, env), newMigrateRunCommand(o, env))
	return cmd
}

// migrateTarget is the migration files and the database they apply to.
type migrateTarget struct {
	dir     string
	ms      []migrations.Migration
	ex      migrations.Execer
	where   string // "node HOST:PORT" or "PostgreSQL HOST:PORT/DB"
	logger  *slog.Logger
	closeFn func()
}

func (t *migrateTarget) close() {
	if t.closeFn != nil {
		t.closeFn()
	}
}

// migrateKeys are the configuration keys the migrate commands use; a
// problem with any other key does not stop them.
var migrateKeys = []string{"db.", "node.http", "log."}

// open loads the configuration and the migration files, and connects to
// the database.
func (o *migrateOptions) open(ctx context.Context, env []string, stderr io.Writer) (*migrateTarget, error) {
	path := o.config
	if path == "" {
		path = lookupEnv(env, "CAIRN_CONFIG")
	}
	cfg, err := config.Load(path, env)
	if cfg == nil {
		return nil, &exitError{code: 2, err: err}
	}
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		var relevant []config.Problem
		for _, p := range verr.Problems {
			for _, k := range migrateKeys {
				if p.Key == "" || strings.HasPrefix(p.Key, k) {
					relevant = append(relevant, p)
					break
				}
			}
		}
		if len(relevant) > 0 {
			return nil, &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", &config.ValidationError{Problems: relevant})}
		}
	} else if err != nil {
		return nil, &exitError{code: 2, err: err}
	}

	dir := cfg.DB.MigrationsDir
	if dir == "" {
		return nil, &exitError{code: 2, err: errors.New("db.migrations_dir is not set: set it to the directory of the migration files (in the configuration file, or CAIRN_DB_MIGRATIONS_DIR)")}
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("db.migrations_dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("db.migrations_dir: %s is not a directory", dir)
	}
	dialect := migrations.SQLite
	if cfg.PostgresMode() {
		dialect = migrations.Postgres
	}
	ms, err := migrations.Load(os.DirFS(dir), dialect)
	if err != nil {
		return nil, fmt.Errorf("db.migrations_dir %s: %w", dir, err)
	}
	t := &migrateTarget{dir: dir, ms: ms, logger: newLogger(cfg.Log, stderr)}

	if dialect == migrations.Postgres {
		if o.addr != "" {
			return nil, errors.New("--addr is for Raft mode: in Postgres mode (db.url) cairn migrate connects to PostgreSQL itself")
		}
		b, err := postgres.Open(ctx, postgres.Config{
			URL: cfg.DB.URL,
			// One connection holds the advisory lock while the other
			// runs the migrations.
			MaxConnections:   2,
			ConnectTimeout:   cfg.DB.ConnectTimeout,
			StatementTimeout: cfg.DB.StatementTimeout,
			Logger:           t.logger,
		})
		if err != nil {
			return nil, err
		}
		t.ex = &backendExecer{backend: b, dialect: migrations.Postgres, lock: postgresLock(b)}
		t.where = "PostgreSQL " + b.Database()
		t.closeFn = b.Close
		return t, nil
	}

	addr := o.addr
	if addr == "" {
		addr = cfg.Node.HTTPAdvertise
	}
	st, err := getStatus(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w (is the node running? pass its address with --addr)", err)
	}
	if st.Mode != "raft" {
		return nil, fmt.Errorf("node %s is in %s mode, but this configuration is in Raft mode: give cairn migrate the node's configuration (db.url)", addr, st.Mode)
	}
	t.ex = &httpExecer{addr: addr}
	t.where = "node " + addr
	return t, nil
}

// migrationStatus is one row of `migrate status --json`.
type migrationStatus struct {
	Version int64  `json:"version"`
	Name    string `json:"name"`
	File    string `json:"file,omitempty"`
	// State is applied, pending, changed (applied from a file that has
	// changed since) or missing (applied, but the file is gone).
	State string `json:"state"`
	// Checksum is the file's; AppliedChecksum the one recorded.
	Checksum        string     `json:"checksum,omitempty"`
	AppliedChecksum string     `json:"applied_checksum,omitempty"`
	AppliedAt       *time.Time `json:"applied_at,omitempty"`
	DurationMS      *int64     `json:"duration_ms,omitempty"`
}

// statusReport is what `migrate status --json` prints.
type statusReport struct {
	Directory  string            `json:"directory"`
	Database   string            `json:"database"`
	Dialect    string            `json:"dialect"`
	Applied    int               `json:"applied"`
	Pending    int               `json:"pending"`
	Changed    int               `json:"changed"`
	Missing    int               `json:"missing"`
	Migrations []migrationStatus `json:"migrations"`
}

func newStatusReport(t *migrateTarget, states []migrations.State) statusReport {
	r := statusReport{Directory: t.dir, Database: t.where, Dialect: string(t.ex.Dialect()), Migrations: make([]migrationStatus, 0, len(states))}
	for _, st := range states {
		ms := migrationStatus{Version: st.Migration.Version, Name: st.Migration.Name, File: st.Migration.File, Checksum: st.Migration.Checksum}
		switch {
		case st.Missing:
			ms.State = "missing"
			r.Missing++
		case st.Changed:
			ms.State = "changed"
			r.Changed++
		case st.Record != nil:
			ms.State = "applied"
		default:
			ms.State = "pending"
			r.Pending++
		}
		if rec := st.Record; rec != nil {
			r.Applied++
			ms.Version, ms.Name, ms.AppliedChecksum = rec.Version, rec.Name, rec.Checksum
			at := rec.AppliedAt.UTC()
			d := rec.Duration.Milliseconds()
			ms.AppliedAt, ms.DurationMS = &at, &d
		}
		r.Migrations = append(r.Migrations, ms)
	}
	return r
}

func printStatusReport(w io.Writer, r statusReport) error {
	if len(r.Migrations) == 0 {
		_, err := fmt.Fprintf(w, "no migrations in %s, none applied to %s\n", r.Directory, r.Database)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED (UTC)\tDURATION\tFILE")
	for _, m := range r.Migrations {
		applied, took, file := "-", "-", m.File
		if m.AppliedAt != nil {
			applied = m.AppliedAt.Format("2006-01-02 15:04:05")
			took = (time.Duration(*m.DurationMS) * time.Millisecond).String()
		}
		if file == "" {
			file = "(no file)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Version, m.Name, m.State, applied, took, file)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d applied, %d pending (%s, %s)\n", r.Applied, r.Pending, r.Directory, r.Database)
	for _, m := range r.Migrations {
		if m.State == "changed" {
			fmt.Fprintf(w, "%s changed since it was applied: checksum %s applied, %s now; `cairn migrate run` refuses it\n", m.File, m.AppliedChecksum, m.Checksum)
		}
	}
	return nil
}

func newMigrateStatusCommand(o *migrateOptions, env []string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the migrations: applied (when, how long), pending, changed since applied, or applied without a file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			t, err := o.open(ctx, env, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer t.close()
			states, err := migrations.Status(ctx, t.ex, t.ms)
			if err != nil {
				return fmt.Errorf("migration status of %s: %w", t.where, err)
			}
			r := newStatusReport(t, states)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return printStatusReport(cmd.OutOrStdout(), r)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// runReport is what `migrate run --json` prints.
type runReport struct {
	Database string          `json:"database"`
	Applied  []appliedReport `json:"applied"`
	Error    string          `json:"error,omitempty"`
}

type appliedReport struct {
	Version    int64     `json:"version"`
	Name       string    `json:"name"`
	File       string    `json:"file"`
	AppliedAt  time.Time `json:"applied_at"`
	DurationMS int64     `json:"duration_ms"`
}

func newMigrateRunCommand(o *migrateOptions, env []string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Apply the pending migrations, in version order, each in its own transaction",
		Long: `Apply the pending migrations in version order, each in its own transaction.
Running it again is a no-op, and so is running it on several nodes at once:
each migration is applied exactly once. It refuses to start when an applied
migration's file has changed, and stops at a migration that fails (rolled
back, with its file, statement and error).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			t, err := o.open(ctx, env, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer t.close()
			byVersion := make(map[int64]string, len(t.ms))
			for _, m := range t.ms {
				byVersion[m.Version] = m.File
			}
			runner := &migrations.Runner{Execer: t.ex, Logger: t.logger}
			applied, runErr := runner.Run(ctx, t.ms)

			w := cmd.OutOrStdout()
			if asJSON {
				r := runReport{Database: t.where, Applied: make([]appliedReport, 0, len(applied))}
				for _, rec := range applied {
					r.Applied = append(r.Applied, appliedReport{Version: rec.Version, Name: rec.Name, File: byVersion[rec.Version], AppliedAt: rec.AppliedAt, DurationMS: rec.Duration.Milliseconds()})
				}
				if runErr != nil {
					r.Error = runErr.Error()
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				for _, rec := range applied {
					fmt.Fprintf(w, "applied %s in %s\n", byVersion[rec.Version], rec.Duration.Round(time.Millisecond))
				}
			}
			if runErr != nil {
				return runErr
			}
			if !asJSON {
				if len(applied) == 0 {
					fmt.Fprintf(w, "nothing to apply: %s is up to date with %s (%d migrations)\n", t.where, t.dir, len(t.ms))
				} else {
					fmt.Fprintf(w, "%d applied to %s\n", len(applied), t.where)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was applied as JSON")
	return cmd
}
