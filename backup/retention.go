package backup

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Prune deletes the backups in store older than keep at now, but never the
// newest backup, however old (a cluster whose backups stopped must not lose
// its last one to retention), nor those named in protect. It returns the
// names it deleted.
func Prune(ctx context.Context, store Store, keep time.Duration, now time.Time, protect map[string]bool) ([]string, error) {
	infos, err := store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: list: %w", err)
	}
	var deleted []string
	var errs []error
	for i, info := range infos {
		if i == 0 {
			continue // newest first: the newest always stays
		}
		if now.Sub(info.Time) <= keep || protect[info.Name] {
			continue
		}
		if err := store.Delete(ctx, info.Name); err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", info.Name, err))
			continue
		}
		deleted = append(deleted, info.Name)
	}
	return deleted, errors.Join(errs...)
}
