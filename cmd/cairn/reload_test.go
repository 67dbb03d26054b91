package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairndb/cairn/cmd/cairn/config"
)

// TestReloader_RetriesFailedSteps: a step that failed runs again at the
// next reload, one that succeeded does not.
func TestReloader_RetriesFailedSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.toml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[log]\nlevel = \"info\"\n")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newReloader(path, nil, cfg, slog.New(slog.DiscardHandler))
	defer r.close()
	var logRuns, backupRuns int
	failBackup := true
	r.on(func(context.Context, *config.Config) error { logRuns++; return nil }, "log.level")
	r.on(func(context.Context, *config.Config) error {
		backupRuns++
		if failBackup {
			return errors.New("disk full")
		}
		return nil
	}, "backup.keep_days")

	write("[log]\nlevel = \"debug\"\n[backup]\nkeep_days = 9\n")
	if applied, _, err := r.reload(context.Background()); err == nil || len(applied) != 1 || applied[0] != "log.level" {
		t.Fatalf("first reload: applied %v, err %v", applied, err)
	}
	failBackup = false
	applied, _, err := r.reload(context.Background())
	if err != nil || len(applied) != 1 || applied[0] != "backup.keep_days" || logRuns != 1 || backupRuns != 2 {
		t.Fatalf("second reload: applied %v, err %v, log step %d runs, backup step %d", applied, err, logRuns, backupRuns)
	}
}
