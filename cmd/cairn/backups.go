package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/s3"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/server"
)

// backupDir is where a node keeps its local backups.
func backupDir(dataDir string) string {
	return filepath.Join(dataDir, "state_machine", "backups")
}

// remoteStore builds the S3 store from [s3]; nil when no bucket is set.
func remoteStore(cfg *config.Config) (*s3.Store, error) {
	if cfg.S3.Bucket == "" {
		return nil, nil
	}
	st, err := s3.New(s3.Config{
		URL:       cfg.S3.URL,
		Bucket:    cfg.S3.Bucket,
		Region:    cfg.S3.Region,
		PathStyle: cfg.S3.PathStyle,
		Key:       cfg.S3.Key,
		Secret:    cfg.S3.Secret.Value(),
		Prefix:    cfg.S3.Prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return st, nil
}

// newScheduler builds the backup scheduler of a Raft-mode node, with its
// local store and its S3 store (nil without S3; SIGHUP may swap its
// credentials).
func newScheduler(cfg *config.Config, src backup.Source, isLeader func() bool, logger *slog.Logger) (*backup.Scheduler, *backup.Local, *swapStore, error) {
	ring, err := cfg.KeyRing()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encryption.keys: %w", err)
	}
	var sched backup.Schedule
	if cfg.Backup.Cron != "" {
		if sched, err = backup.ParseSchedule(cfg.Backup.Cron, cfg.Location()); err != nil {
			return nil, nil, nil, fmt.Errorf("backup.cron: %w", err)
		}
	}
	local := backup.NewLocal(backupDir(cfg.Node.DataDir))
	var remote *swapStore
	if st, err := remoteStore(cfg); err != nil {
		return nil, nil, nil, err
	} else if st != nil {
		remote = newSwapStore(st)
	}
	day := 24 * time.Hour
	s := backup.NewScheduler(backup.Config{
		Schedule:   sched,
		Local:      local,
		Remote:     remote.store(),
		KeepLocal:  time.Duration(cfg.Backup.KeepDaysLocal) * day,
		KeepRemote: time.Duration(cfg.Backup.KeepDays) * day,
		KeyRing:    ring,
		NodeID:     cfg.Node.ID,
		Cluster:    cfg.Cluster.Name,
		Logger:     logger,
	}, src, isLeader)
	return s, local, remote, nil
}

// backupService is what the HTTP API's /v1/backups runs on.
type backupService struct {
	sched  *backup.Scheduler
	local  *backup.Local
	remote backup.Store
}

var _ server.Backups = (*backupService)(nil)

func (b *backupService) List(ctx context.Context, where server.BackupLocation) ([]server.BackupEntry, error) {
	return listBackups(ctx, b.local, b.remote, where)
}

// listBackups merges the local and remote listings, newest first.
func listBackups(ctx context.Context, local, remote backup.Store, where server.BackupLocation) ([]server.BackupEntry, error) {
	byName := map[string]*server.BackupEntry{}
	var order []string
	add := func(infos []backup.Info, isLocal bool) {
		for _, in := range infos {
			e, ok := byName[in.Name]
			if !ok {
				e = &server.BackupEntry{Info: in}
				byName[in.Name] = e
				order = append(order, in.Name)
			}
			if isLocal {
				e.Local = true
			} else {
				e.Remote = true
			}
		}
	}
	if where != server.BackupsRemote && local != nil {
		infos, err := local.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		add(infos, true)
	}
	if where != server.BackupsLocal && remote != nil {
		infos, err := remote.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
		add(infos, false)
	}
	infos := make([]backup.Info, 0, len(order))
	for _, n := range order {
		infos = append(infos, byName[n].Info)
	}
	backup.SortNewestFirst(infos)
	out := make([]server.BackupEntry, len(infos))
	for i, in := range infos {
		out[i] = *byName[in.Name]
	}
	return out, nil
}

func (b *backupService) Create(ctx context.Context) (backup.Info, error) {
	return b.sched.Run(ctx, false)
}

func (b *backupService) Open(ctx context.Context, name string) (io.ReadCloser, backup.Info, error) {
	rc, info, err := b.local.Get(ctx, name)
	if err == nil || b.remote == nil || !errors.Is(err, backup.ErrNotFound) {
		return rc, info, err
	}
	return b.remote.Get(ctx, name)
}

func (b *backupService) Status() backup.Status { return b.sched.Status() }
