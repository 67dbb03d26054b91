package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairndb/cairn/backup/format"
)

// ErrBusy means a backup is already running; two never run at once.
var ErrBusy = errors.New("a backup is already running")

// ErrNotLeader means this node is not the leader, and only the leader
// takes backups.
var ErrNotLeader = errors.New("only the leader takes backups")

// Source makes a consistent copy of the database while writes continue
// (cmd passes statemachine.DB).
type Source interface {
	// Copy writes a consistent copy of the database to path and returns
	// the Raft index the copy reflects.
	Copy(ctx context.Context, path string) (uint64, error)
}

// Config is what a Scheduler needs.
type Config struct {
	// Schedule says when backups run; nil means only on request.
	Schedule Schedule
	// Local keeps every backup first; Remote (optional) receives a copy.
	Local  *Local
	Remote Store
	// KeepLocal and KeepRemote are the retention periods.
	KeepLocal, KeepRemote time.Duration
	// KeyRing encrypts backups under its active key; nil leaves them
	// unencrypted (compressed and checksummed only).
	KeyRing *format.KeyRing
	// NodeID and Cluster are recorded in every backup.
	NodeID, Cluster string
	Logger          *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Status is what /healthz and the metrics report about backups.
type Status struct {
	// LastSuccess is the last backup made (zero Info if none yet).
	LastSuccess     Info      `json:"last_success"`
	LastSuccessTime time.Time `json:"last_success_time"`
	// LastError is the error of the last failed run, and when; cleared by
	// a success.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time"`
	// FailingSince is when the first of the failed runs since the last
	// success happened; zero while the last run succeeded.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// UploadError is the last failed upload; the local backup was kept and
	// is uploaded on the next run. Cleared when every local backup is in
	// the remote store.
	UploadError string `json:"upload_error,omitempty"`
	// PendingUploads counts local backups not yet in the remote store.
	PendingUploads int `json:"pending_uploads"`
	// LastUploadDuration is how long the last successful upload took.
	LastUploadDuration time.Duration `json:"last_upload_duration_ns"`
	// Uploads counts successful uploads since start.
	Uploads int64 `json:"uploads"`
	// Runs, Failures and UploadFailures count since start.
	Runs           int64 `json:"runs"`
	Failures       int64 `json:"failures"`
	UploadFailures int64 `json:"upload_failures"`
	Running        bool  `json:"running"`
}

// Scheduler takes backups on the leader, on a schedule and on request.
type Scheduler struct {
	cfg      Config
	src      Source
	isLeader func() bool
	logger   *slog.Logger

	// running is the check-and-set gate that keeps two backups from
	// running at once; mu guards it and status.
	mu      sync.Mutex
	running bool
	status  Status

	// wake tells the loop that the schedule changed (Reconfigure).
	wake chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewScheduler returns a scheduler that copies src when isLeader says this
// node leads. It does no I/O; Start starts the schedule.
func NewScheduler(cfg Config, src Source, isLeader func() bool) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg, src: src, isLeader: isLeader, logger: cfg.Logger.With("component", "backup"),
		wake: make(chan struct{}, 1)}
}

// Reconfigure replaces the schedule (nil: only on request) and the
// retention periods, for the next activation and the next prune; a backup
// in progress finishes under the old settings.
func (s *Scheduler) Reconfigure(schedule Schedule, keepLocal, keepRemote time.Duration) {
	s.mu.Lock()
	s.cfg.Schedule, s.cfg.KeepLocal, s.cfg.KeepRemote = schedule, keepLocal, keepRemote
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// settings returns the parts of the configuration Reconfigure changes.
func (s *Scheduler) settings() (schedule Schedule, keepLocal, keepRemote time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Schedule, s.cfg.KeepLocal, s.cfg.KeepRemote
}

// Start runs the schedule until Close. With no schedule the loop only
// waits for one from Reconfigure.
func (s *Scheduler) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx)
	}()
}

// Close stops the schedule and waits for a backup in progress to finish.
func (s *Scheduler) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *Scheduler) loop(ctx context.Context) {
	for {
		schedule, _, _ := s.settings()
		var timer *time.Timer
		var fire <-chan time.Time
		if schedule != nil {
			now := s.cfg.Now()
			next := schedule.Next(now)
			if next.IsZero() {
				s.logger.Info("backup schedule has no more activations")
			} else {
				timer = time.NewTimer(next.Sub(now))
				fire = timer.C
			}
		}
		woken := false
		select {
		case <-ctx.Done():
		case <-s.wake:
			woken = true
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if woken {
			continue
		}
		if !s.isLeader() {
			continue
		}
		// A running backup finishes even when the schedule stops: it is
		// cancelled only by a shutdown that cannot wait (ctx of Run).
		if _, err := s.Run(context.WithoutCancel(ctx), true); err != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrNotLeader) {
			s.logger.Error("scheduled backup failed", "error", err)
		}
	}
}

// Status returns the backup status.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Running = s.running
	return st
}

// Run takes a backup now (on the leader only), keeps it locally, uploads
// it and every earlier local backup missing from the remote store, then
// prunes. pruneRemote prunes the remote store too (scheduled runs). A
// failed upload does not fail the run: the backup is kept locally, the
// failure is in Status, and the next run uploads it.
func (s *Scheduler) Run(ctx context.Context, pruneRemote bool) (Info, error) {
	if !s.isLeader() {
		return Info{}, ErrNotLeader
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return Info{}, ErrBusy
	}
	s.running = true
	s.status.Runs++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()

	info, err := s.take(ctx)
	if err != nil {
		s.mu.Lock()
		s.status.Failures++
		s.status.LastError, s.status.LastErrorTime = err.Error(), s.cfg.Now().UTC()
		if s.status.FailingSince.IsZero() {
			s.status.FailingSince = s.status.LastErrorTime
		}
		s.mu.Unlock()
		return Info{}, err
	}
	s.mu.Lock()
	s.status.LastSuccess, s.status.LastSuccessTime = info, s.cfg.Now().UTC()
	s.status.LastError, s.status.FailingSince = "", time.Time{}
	s.mu.Unlock()

	pending, listed := s.upload(ctx)
	s.prune(ctx, pruneRemote, pending, listed)
	return info, nil
}

// take makes the local backup: a consistent copy of the database,
// compressed and encrypted into the local store.
func (s *Scheduler) take(ctx context.Context) (Info, error) {
	start := s.cfg.Now()
	dir := s.cfg.Local.Dir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("create backup directory: %w", err)
	}
	copyPath := filepath.Join(dir, fmt.Sprintf(".copy-%d.db", start.UnixNano()))
	defer os.Remove(copyPath)
	index, err := s.src.Copy(ctx, copyPath)
	if err != nil {
		return Info{}, fmt.Errorf("copy database: %w", err)
	}
	copied := s.cfg.Now()

	info := Info{
		Name:          NewName(start, index),
		Time:          start.UTC().Truncate(time.Second),
		NodeID:        s.cfg.NodeID,
		Cluster:       s.cfg.Cluster,
		RaftIndex:     index,
		FormatVersion: format.Version,
	}
	if s.cfg.KeyRing != nil {
		info.KeyID = s.cfg.KeyRing.ActiveID()
	}
	src, err := os.Open(copyPath)
	if err != nil {
		return Info{}, fmt.Errorf("open database copy: %w", err)
	}
	defer src.Close()
	f, err := s.cfg.Local.Create(info.Name)
	if err != nil {
		return Info{}, err
	}
	counter := &countingWriter{w: f}
	fw, err := format.NewWriter(counter, format.Header{
		RaftIndex: index, NodeID: info.NodeID, Cluster: info.Cluster, Time: info.Time,
	}, s.cfg.KeyRing)
	if err == nil {
		_, err = io.Copy(fw, readerWithContext(ctx, src))
		if cerr := fw.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.cfg.Local.Abort(f)
		return Info{}, fmt.Errorf("backup %s: write: %w", info.Name, err)
	}
	info.SHA256, _ = fw.Sum()
	info.Size = counter.n
	if err := s.cfg.Local.Commit(f, info); err != nil {
		return Info{}, err
	}
	s.logger.Info("backup made", "backup", info.Name, "index", index, "size", info.Size, "key_id", info.KeyID,
		"copy", copied.Sub(start).Round(time.Millisecond), "total", s.cfg.Now().Sub(start).Round(time.Millisecond))
	return info, nil
}

// upload sends every local backup the remote store lacks, oldest first.
// It returns the local backups still not uploaded, and whether the remote
// store could be listed at all (if not, nobody knows what is uploaded).
func (s *Scheduler) upload(ctx context.Context) (pending []Info, listed bool) {
	if s.cfg.Remote == nil {
		return nil, true
	}
	pending, err := s.missingRemote(ctx)
	listed = err == nil
	if err == nil {
		for i := len(pending) - 1; i >= 0 && err == nil; i-- {
			err = s.uploadOne(ctx, pending[i])
			if err == nil {
				pending = pending[:i]
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.PendingUploads = len(pending)
	if err != nil {
		s.status.UploadFailures++
		s.status.UploadError = err.Error()
		s.logger.Error("backup upload failed; the local backup is kept and uploaded on the next run", "error", err, "pending", len(pending))
		return pending, listed
	}
	s.status.UploadError = ""
	return pending, listed
}

// missingRemote lists the local backups not in the remote store, newest
// first.
func (s *Scheduler) missingRemote(ctx context.Context) ([]Info, error) {
	local, err := s.cfg.Local.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list local backups: %w", err)
	}
	remote, err := s.cfg.Remote.List(ctx)
	if err != nil {
		return local, fmt.Errorf("list remote backups: %w", err)
	}
	have := make(map[string]bool, len(remote))
	for _, r := range remote {
		have[r.Name] = true
	}
	var missing []Info
	for _, l := range local {
		if !have[l.Name] {
			missing = append(missing, l)
		}
	}
	return missing, nil
}

func (s *Scheduler) uploadOne(ctx context.Context, info Info) error {
	start := s.cfg.Now()
	rc, _, err := s.cfg.Local.Get(ctx, info.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := s.cfg.Remote.Put(ctx, info, rc); err != nil {
		return fmt.Errorf("upload %s: %w", info.Name, err)
	}
	took := s.cfg.Now().Sub(start)
	s.mu.Lock()
	s.status.LastUploadDuration = took
	s.status.Uploads++
	s.mu.Unlock()
	s.logger.Info("backup uploaded", "backup", info.Name, "size", info.Size, "duration", took.Round(time.Millisecond))
	return nil
}

// prune applies retention. Local backups still waiting for their upload
// (pending) are kept; if the remote store could not be listed (listed is
// false), every local backup is kept.
func (s *Scheduler) prune(ctx context.Context, remote bool, pending []Info, listed bool) {
	now := s.cfg.Now()
	if !listed {
		s.logger.Warn("not pruning local backups: the remote store could not be listed, so which are uploaded is unknown")
		return
	}
	protect := make(map[string]bool, len(pending))
	for _, p := range pending {
		protect[p.Name] = true
	}
	_, keepLocal, keepRemote := s.settings()
	if deleted, err := Prune(ctx, s.cfg.Local, keepLocal, now, protect); err != nil {
		s.logger.Error("prune local backups", "error", err)
	} else if len(deleted) > 0 {
		s.logger.Info("pruned local backups", "deleted", deleted)
	}
	if !remote || s.cfg.Remote == nil {
		return
	}
	if deleted, err := Prune(ctx, s.cfg.Remote, keepRemote, now, nil); err != nil {
		s.logger.Error("prune remote backups", "error", err)
	} else if len(deleted) > 0 {
		s.logger.Info("pruned remote backups", "deleted", deleted)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
