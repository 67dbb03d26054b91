package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/migrations"
	"github.com/cairndb/cairn/server"
)

// failingSource is a database that cannot be copied.
type failingSource struct{}

func (failingSource) Copy(context.Context, string) (uint64, error) {
	return 0, errors.New("disk I/O error")
}

// TestBackupCheck_CriticalAfterLimit: a failing backup is reported but not
// critical until it has been failing for backup.failure_critical_after.
func TestBackupCheck_CriticalAfterLimit(t *testing.T) {
	start := time.Date(2026, 1, 2, 2, 30, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	sched := backup.NewScheduler(backup.Config{Local: backup.NewLocal(t.TempDir()), Now: clock}, failingSource{}, func() bool { return true })
	h := &nodeHealth{sched: sched, now: clock}
	h.setFailureCritical(26 * time.Hour)

	if c := h.backupCheck(); c.Status != server.HealthOK {
		t.Fatalf("before any backup: %+v", c)
	}
	if _, err := sched.Run(context.Background(), false); err == nil {
		t.Fatal("a backup of a failing source succeeded")
	}
	now = start.Add(24 * time.Hour)
	if _, err := sched.Run(context.Background(), false); err == nil {
		t.Fatal("a backup of a failing source succeeded")
	}
	c := h.backupCheck()
	if c.Status != server.HealthFailing || c.Critical || !strings.Contains(c.Error, "disk I/O error") {
		t.Fatalf("failing for 24h: %+v", c)
	}
	now = start.Add(26 * time.Hour)
	c = h.backupCheck()
	if c.Status != server.HealthFailing || !c.Critical || !strings.Contains(c.Error, "failing for 26h0m0s") {
		t.Fatalf("failing for 26h: %+v", c)
	}
	h.setFailureCritical(0)
	if c := h.backupCheck(); c.Critical {
		t.Fatalf("with no limit: %+v", c)
	}
	if d := h.backupCheck().Detail.(backupDetail); d.LastSuccessAgeSeconds != nil {
		t.Fatalf("an age without any good backup: %v", *d.LastSuccessAgeSeconds)
	}
}

// TestTransientMigrationErrors: deadlocks, serialization failures and lock
// timeouts are retried; other failures refuse the migration.
func TestTransientMigrationErrors(t *testing.T) {
	for msg, want := range map[string]bool{
		"ERROR: deadlock detected (SQLSTATE 40P01)":                            true,
		"ERROR: could not serialize access (SQLSTATE 40001)":                   true,
		"ERROR: could not obtain lock on relation \"t\" (SQLSTATE 55P03)":      true,
		"ERROR: relation \"nowhere\" does not exist (SQLSTATE 42P01)":          false,
		"ERROR: canceling statement due to statement timeout (SQLSTATE 57014)": false,
	} {
		if got := transient(&migrations.MigrationError{Err: errors.New(msg)}); got != want {
			t.Errorf("transient(%q) = %v, want %v", msg, got, want)
		}
	}
}
