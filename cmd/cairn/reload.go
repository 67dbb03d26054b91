package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/s3"
	"github.com/cairndb/cairn/cmd/cairn/config"
)

// reloadStep applies the keys it owns from a new configuration. The
// steps a node registers (see serve) are what SIGHUP can change; any other
// key that changed is reported as needing a restart and left as it was.
type reloadStep struct {
	// keys are the keys the step applies; it runs when one changed.
	keys  []string
	apply func(ctx context.Context, next *config.Config) error
}

// reloader re-reads the configuration on SIGHUP and applies what can
// change safely.
type reloader struct {
	path   string
	env    []string
	logger *slog.Logger
	// start is the configuration the process started with, against which
	// keys that need a restart are found; applied is the last one applied.
	start, applied *config.Config
	// retry are the keys whose step failed last time: they are applied
	// again at the next SIGHUP even if the file did not change them.
	retry []string
	steps []reloadStep
	// hup receives SIGHUP from the moment the reloader is made, so that a
	// SIGHUP during a restore or a shutdown waits (or is dropped) instead
	// of killing the process.
	hup chan os.Signal
}

// newReloader starts catching SIGHUP; close stops it.
func newReloader(path string, env []string, cfg *config.Config, logger *slog.Logger) *reloader {
	r := &reloader{path: path, env: env, logger: logger, start: cfg, applied: cfg, hup: make(chan os.Signal, 1)}
	signal.Notify(r.hup, syscall.SIGHUP)
	return r
}

// close stops catching SIGHUP.
func (r *reloader) close() { signal.Stop(r.hup) }

// on registers a step for keys.
func (r *reloader) on(apply func(ctx context.Context, next *config.Config) error, keys ...string) {
	r.steps = append(r.steps, reloadStep{keys: keys, apply: apply})
}

// run reloads on every SIGHUP until ctx ends.
func (r *reloader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
			if _, _, err := r.reload(ctx); err != nil {
				r.logger.Error("reload failed; the running configuration is unchanged where it could not be applied", "error", err)
			}
		}
	}
}

// reload reads the configuration again and applies the reloadable keys
// that changed. It returns those it applied and those that need a restart.
// An invalid configuration is refused as a whole.
func (r *reloader) reload(ctx context.Context) (applied, restart []string, err error) {
	r.logger.Info("SIGHUP: reloading the configuration", "file", r.path)
	next, err := config.Load(r.path, r.env)
	if err != nil {
		return nil, nil, fmt.Errorf("read configuration: %w", err)
	}
	// A key no step of this node applies needs a restart.
	for _, k := range config.Changed(r.start, next) {
		if !slices.ContainsFunc(r.steps, func(st reloadStep) bool { return slices.Contains(st.keys, k) }) {
			restart = append(restart, k)
		}
	}
	changed := append(config.Changed(r.applied, next), r.retry...)
	r.retry = nil
	var errs []error
	for _, st := range r.steps {
		var mine []string
		for _, k := range st.keys {
			if slices.Contains(changed, k) {
				mine = append(mine, k)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := st.apply(ctx, next); err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", mine, err))
			r.retry = append(r.retry, mine...)
			continue
		}
		applied = append(applied, mine...)
	}
	r.applied = next
	if len(restart) > 0 {
		r.logger.Warn("changed keys that need a restart were not applied", "keys", restart)
	}
	r.logger.Info("configuration reloaded", "applied", applied)
	return applied, restart, errors.Join(errs...)
}

// logStep applies [log].
func logStep(out *logOutput) func(context.Context, *config.Config) error {
	return func(_ context.Context, next *config.Config) error {
		out.set(next.Log)
		return nil
	}
}

// backupStep applies the schedule and retention of [backup].
func backupStep(sched *backup.Scheduler, health *nodeHealth) func(context.Context, *config.Config) error {
	return func(_ context.Context, next *config.Config) error {
		var schedule backup.Schedule
		if next.Backup.Cron != "" {
			var err error
			if schedule, err = backup.ParseSchedule(next.Backup.Cron, next.Location()); err != nil {
				return fmt.Errorf("backup.cron: %w", err)
			}
		}
		day := 24 * time.Hour
		sched.Reconfigure(schedule, time.Duration(next.Backup.KeepDaysLocal)*day, time.Duration(next.Backup.KeepDays)*day)
		health.setFailureCritical(next.Backup.FailureCriticalAfter)
		return nil
	}
}

// s3Step applies new S3 credentials. The rest of [s3] (bucket, prefix,
// endpoint) stays as the process started: changing it needs a restart.
func s3Step(remote *swapStore, start *config.Config) func(context.Context, *config.Config) error {
	return func(_ context.Context, next *config.Config) error {
		merged := *start
		merged.S3.Key, merged.S3.Secret = next.S3.Key, next.S3.Secret
		st, err := remoteStore(&merged)
		if err != nil {
			return err
		}
		if st == nil {
			return errors.New("s3.bucket is empty: restart to turn S3 off")
		}
		remote.set(st)
		return nil
	}
}

// swapStore is the S3 store behind the scheduler, the API and the health
// check, replaced as a whole when SIGHUP brings new credentials.
type swapStore struct {
	cur atomic.Pointer[s3.Store]
}

var _ backup.Store = (*swapStore)(nil)

func newSwapStore(st *s3.Store) *swapStore {
	s := &swapStore{}
	s.cur.Store(st)
	return s
}

func (s *swapStore) set(st *s3.Store) { s.cur.Store(st) }

// store is s as a backup.Store: a nil interface, not a nil *swapStore,
// when there is no S3.
func (s *swapStore) store() backup.Store {
	if s == nil {
		return nil
	}
	return s
}

// Put stores a backup.
func (s *swapStore) Put(ctx context.Context, info backup.Info, r io.Reader) error {
	return s.cur.Load().Put(ctx, info, r)
}

// List lists the backups.
func (s *swapStore) List(ctx context.Context) ([]backup.Info, error) { return s.cur.Load().List(ctx) }

// Get opens a backup.
func (s *swapStore) Get(ctx context.Context, name string) (io.ReadCloser, backup.Info, error) {
	return s.cur.Load().Get(ctx, name)
}

// Delete removes a backup.
func (s *swapStore) Delete(ctx context.Context, name string) error {
	return s.cur.Load().Delete(ctx, name)
}

// Check tests that the bucket is reachable with the credentials.
func (s *swapStore) Check(ctx context.Context) error { return s.cur.Load().Check(ctx) }

// String names the bucket.
func (s *swapStore) String() string { return s.cur.Load().String() }
