// Command cairn runs and operates Cairn nodes: a highly available SQL
// database that replicates SQLite through Raft behind an rqlite-compatible
// HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries a process exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCommand(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(os.Stderr, "cairn:", err)
	stop()
	os.Exit(code)
}

func newRootCommand(stdout, stderr io.Writer, env []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Cairn: Raft-replicated SQLite with an rqlite-compatible HTTP API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVarP(&apiUser, "user", "u", "", "NAME:PASSWORD for a node whose API has users (auth.users); also "+envUser)
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if apiUser == "" {
			apiUser = lookupEnv(env, envUser)
		}
	}
	root.AddCommand(newServeCommand(env), newClusterCommand(env), newBackupCommand(env), newRestoreCommand(env), newMigrateCommand(env), newVersionCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "cairn %s\n", version)
			return err
		},
	}
}
