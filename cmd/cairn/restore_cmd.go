package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"
	"github.com/spf13/cobra"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/restore"
)

// runRestore applies backup.restore (CAIRN_BACKUP_RESTORE) to the node's
// data directory; the caller holds the data directory's lock.
func runRestore(ctx context.Context, cfg *config.Config, spec string, logger *slog.Logger) (restore.Result, error) {
	ring, err := cfg.KeyRing()
	if err != nil {
		return restore.Result{}, fmt.Errorf("encryption.keys: %w", err)
	}
	var remote backup.Store
	if st, err := remoteStore(cfg); err != nil {
		return restore.Result{}, err
	} else if st != nil {
		remote = st
	}
	members, err := cfg.Members()
	if err != nil {
		return restore.Result{}, err
	}
	servers := make([]raft.Server, len(members))
	for i, m := range members {
		servers[i] = raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter}
	}
	return restore.Run(ctx, restore.Options{
		Spec:    spec,
		DataDir: cfg.Node.DataDir,
		Remote:  remote,
		KeyRing: ring,
		Members: servers,
		Verify: func(ctx context.Context, path string) error {
			_, err := checkDatabase(ctx, path)
			return err
		},
		Logger: logger,
	})
}

func newRestoreCommand(env []string) *cobra.Command {
	var (
		path string
		from string
	)
	cmd := &cobra.Command{
		Use:   "restore --from s3:NAME|s3:latest|file:/path [-c cairn.toml]",
		Short: "Rebuild this node's data from a backup, offline (the node must be stopped)",
		Long: `Rebuild this node's data directory from a backup, as CAIRN_BACKUP_RESTORE does
at start: fetch, decrypt and verify into a temporary file, then replace the
Raft state. Any failure leaves the existing data untouched. Run it on every
node of the cluster with the same backup, then start the nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--from is required (s3:NAME, s3:latest or file:/path)")
			}
			if path == "" {
				path = lookupEnv(env, "CAIRN_CONFIG")
			}
			cfg, err := config.Load(path, env)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", err)}
			}
			logger := newLogger(cfg.Log, cmd.ErrOrStderr())
			release, err := lockDataDir(cfg.Node.DataDir)
			if err != nil {
				return err
			}
			defer release()
			res, err := runRestore(cmd.Context(), cfg, from, logger)
			if err != nil {
				return fmt.Errorf("restore %s: %w", from, err)
			}
			printRestore(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (TOML); also CAIRN_CONFIG")
	cmd.Flags().StringVar(&from, "from", "", "the backup: s3:NAME, s3:latest or file:/path")
	return cmd
}

func printRestore(w io.Writer, res restore.Result) {
	if !res.Applied {
		fmt.Fprintf(w, "%s was already restored on this node; nothing changed\n", res.Name)
		return
	}
	fmt.Fprintf(w, "restored %s (%s, raft index %d, epoch %s)\n", res.Name, humanSize(res.Size), res.RaftIndex, res.Epoch)
}
