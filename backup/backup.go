package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Errors of the backup package.
var (
	// ErrNotFound means no backup has the given name.
	ErrNotFound = errors.New("backup not found")

	// ErrInvalidName means a name is not one this package produces, which
	// also keeps names from reaching outside a store (no "/" or "..").
	ErrInvalidName = errors.New("invalid backup name")
)

// Info describes one complete backup. Every store keeps it beside the
// backup (a sidecar on disk, object metadata in S3), so listing never
// reads a backup's body.
type Info struct {
	// Name identifies the backup in every store: see NewName.
	Name string `json:"name"`
	// Time is when the backup was taken, UTC.
	Time time.Time `json:"time"`
	// NodeID is the node that took it; Cluster the cluster's name.
	NodeID  string `json:"node_id"`
	Cluster string `json:"cluster,omitempty"`
	// RaftIndex is the last log index the backup contains.
	RaftIndex uint64 `json:"raft_index"`
	// Size is the size of the backup file in bytes (compressed, and
	// encrypted when KeyID is set).
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the plaintext SQLite database.
	SHA256 string `json:"sha256"`
	// KeyID names the key it is encrypted under; empty when it is not
	// encrypted.
	KeyID string `json:"key_id,omitempty"`
	// FormatVersion is the version of the backup file format.
	FormatVersion int `json:"format_version"`
}

// Store keeps complete backups: a local directory or an S3 bucket.
type Store interface {
	// Put stores the backup read from r under info.Name. The backup
	// becomes visible to List and Get only once it is complete.
	Put(ctx context.Context, info Info, r io.Reader) error
	// List returns every complete backup, newest first.
	List(ctx context.Context) ([]Info, error)
	// Get opens a backup's file. The caller closes it.
	Get(ctx context.Context, name string) (io.ReadCloser, Info, error)
	// Delete removes a backup. Deleting a missing one is not an error.
	Delete(ctx context.Context, name string) error
}

// nameSuffix ends every backup file name.
const nameSuffix = ".cbk"

// NewName builds the name of a backup taken at t at Raft index idx:
// "cairn-20261123T103820Z-000000000000042.cbk". Names sort by time.
func NewName(t time.Time, idx uint64) string {
	return fmt.Sprintf("cairn-%s-%015d%s", t.UTC().Format("20060102T150405Z"), idx, nameSuffix)
}

// ParseName checks a backup name and returns the time and index in it.
func ParseName(name string) (time.Time, uint64, error) {
	rest, ok := strings.CutPrefix(name, "cairn-")
	if !ok {
		return time.Time{}, 0, fmt.Errorf("%w: %q does not start with cairn-", ErrInvalidName, name)
	}
	rest, ok = strings.CutSuffix(rest, nameSuffix)
	if !ok {
		return time.Time{}, 0, fmt.Errorf("%w: %q does not end with %s", ErrInvalidName, name, nameSuffix)
	}
	ts, idx, ok := strings.Cut(rest, "-")
	if !ok {
		return time.Time{}, 0, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	t, err := time.Parse("20060102T150405Z", ts)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%w: %q: bad time", ErrInvalidName, name)
	}
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%w: %q: bad index", ErrInvalidName, name)
	}
	return t, n, nil
}
