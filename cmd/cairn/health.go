package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/server"
)

// s3CheckEvery is how long an S3 reachability result is reused: /healthz
// is polled often, and S3 requests are neither free nor fast.
const s3CheckEvery = 30 * time.Second

// checker is what the S3 health check needs of the store.
type checker interface {
	Check(ctx context.Context) error
}

// nodeHealth adds backups, S3 and disk to /healthz.
type nodeHealth struct {
	sched   *backup.Scheduler
	s3      checker
	dataDir string
	// failureCritical is backup.failure_critical_after (nanoseconds; SIGHUP
	// changes it); now is the clock.
	failureCritical atomic.Int64
	now             func() time.Time

	mu        sync.Mutex // guards the cached S3 result
	s3At      time.Time
	s3Err     error
	s3Checked bool
}

func (h *nodeHealth) checks(ctx context.Context) []server.HealthCheck {
	var out []server.HealthCheck
	if h.sched != nil {
		out = append(out, h.backupCheck())
	}
	if h.s3 != nil {
		out = append(out, h.s3Check(ctx))
	}
	return append(out, diskCheck(h.dataDir))
}

// backupDetail is the backup check's detail: the scheduler's status and
// the age of the last good backup (absent when there is none).
type backupDetail struct {
	backup.Status
	LastSuccessAgeSeconds *float64 `json:"last_success_age_seconds,omitempty"`
}

// setFailureCritical sets backup.failure_critical_after.
func (h *nodeHealth) setFailureCritical(d time.Duration) { h.failureCritical.Store(int64(d)) }

// clock returns the health checker's clock.
func (h *nodeHealth) clock() func() time.Time {
	if h.now != nil {
		return h.now
	}
	return time.Now
}

func (h *nodeHealth) backupCheck() server.HealthCheck {
	st := h.sched.Status()
	detail := backupDetail{Status: st}
	if !st.LastSuccessTime.IsZero() {
		age := h.clock()().Sub(st.LastSuccessTime).Seconds()
		detail.LastSuccessAgeSeconds = &age
	}
	c := server.HealthCheck{Name: "backup", Status: server.HealthOK, Detail: detail}
	switch {
	case st.LastError != "":
		c.Status, c.Error = server.HealthFailing, "last backup failed: "+st.LastError
		limit := time.Duration(h.failureCritical.Load())
		if failing := h.clock()().Sub(st.FailingSince); limit > 0 && failing >= limit {
			c.Critical = true
			c.Error = fmt.Sprintf("backups have been failing for %s (backup.failure_critical_after is %s); last error: %s",
				failing.Round(time.Second), limit, st.LastError)
		}
	case st.UploadError != "":
		c.Status, c.Error = server.HealthDegraded, "upload failed (the local backup is kept and retried): "+st.UploadError
	}
	return c
}

func (h *nodeHealth) s3Check(ctx context.Context) server.HealthCheck {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.s3Checked || time.Since(h.s3At) > s3CheckEvery {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h.s3Err = h.s3.Check(cctx)
		cancel()
		h.s3At, h.s3Checked = time.Now(), true
	}
	c := server.HealthCheck{Name: "s3", Status: server.HealthOK, Detail: map[string]any{"checked_at": h.s3At.UTC()}}
	if h.s3Err != nil {
		c.Status, c.Error = server.HealthFailing, h.s3Err.Error()
	}
	return c
}

// diskCheck reports the free space of the data directory's file system.
func diskCheck(dir string) server.HealthCheck {
	c := server.HealthCheck{Name: "disk", Status: server.HealthOK}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		c.Status, c.Error = server.HealthDegraded, err.Error()
		return c
	}
	free := fs.Bavail * uint64(fs.Bsize)
	total := fs.Blocks * uint64(fs.Bsize)
	pct := 0.0
	if total > 0 {
		pct = float64(free) * 100 / float64(total)
	}
	c.Detail = map[string]any{"path": dir, "free_bytes": free, "total_bytes": total, "free_percent": pct}
	if pct < 10 {
		c.Status, c.Error = server.HealthDegraded, "less than 10% of the disk is free"
	}
	return c
}

// backupCollectors are the backup metrics, read at scrape time.
func backupCollectors(s *backup.Scheduler) []prometheus.Collector {
	st := func() backup.Status { return s.Status() }
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_backups_total", Help: "Backup runs since start."},
			func() float64 { return float64(st().Runs) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_backup_failures_total", Help: "Backup runs that failed."},
			func() float64 { return float64(st().Failures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_backup_upload_failures_total", Help: "Backup uploads to S3 that failed."},
			func() float64 { return float64(st().UploadFailures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_backup_pending_uploads", Help: "Local backups not yet in S3."},
			func() float64 { return float64(st().PendingUploads) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_backup_last_success_timestamp_seconds", Help: "When the last backup succeeded (Unix time; 0 if never)."},
			func() float64 {
				if t := st().LastSuccessTime; !t.IsZero() {
					return float64(t.Unix())
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_backup_last_size_bytes", Help: "Size of the last backup."},
			func() float64 { return float64(st().LastSuccess.Size) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_backup_uploads_total", Help: "Backups uploaded to S3."},
			func() float64 { return float64(st().Uploads) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_backup_last_upload_duration_seconds", Help: "How long the last successful upload to S3 took."},
			func() float64 { return st().LastUploadDuration.Seconds() }),
	}
}

// nodeCollectors are the Raft snapshot and restore metrics of a node.
// restored says whether this process restored a backup at start.
func nodeCollectors(node *cluster.Node, restored bool) []prometheus.Collector {
	restores := 0.0
	if restored {
		restores = 1
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_raft_snapshots_total", Help: "Raft snapshots taken since start."},
			func() float64 { return float64(node.SnapshotStats().Taken) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_raft_snapshot_seconds_total", Help: "Time spent copying the database for snapshots."},
			func() float64 { return node.SnapshotStats().Total.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_raft_snapshot_last_duration_seconds", Help: "How long the last snapshot's copy took."},
			func() float64 { return node.SnapshotStats().Last.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_raft_snapshots_installed_total", Help: "Snapshots installed (sent by the leader, or at start)."},
			func() float64 { return float64(node.SnapshotStats().Installed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_restore_runs_total", Help: "Backup restores this process applied at start (CAIRN_BACKUP_RESTORE)."},
			func() float64 { return restores }),
	}
}
