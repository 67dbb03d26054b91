package restore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Names under the data directory. raftDir is cluster.RaftDir.
const (
	raftDir     = "raft"
	newDir      = "raft.new"
	oldDir      = "raft.old"
	markerFile  = "restore.json"
	stagePrefix = ".restore-"
	boltFile    = "raft.db"
)

// The Raft state a restore starts: one snapshot at index 1, term 1.
const (
	snapshotIndex = 1
	snapshotTerm  = 1
)

// keyCurrentTerm is hashicorp/raft's stable-store key for the current term.
var keyCurrentTerm = []byte("CurrentTerm")

// buildRaftState writes a complete Raft directory at stageDir/raft: a
// snapshot of the database at dbPath holding members as the
// configuration, a log store whose current term is that of the snapshot,
// and the marker m (moved out to the data directory once the directory is
// swapped in). Everything is synced before it returns.
func buildRaftState(stageDir, dbPath string, members []raft.Server, m marker) error {
	dir := filepath.Join(stageDir, raftDir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := writeSnapshot(dir, dbPath, members); err != nil {
		return err
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, boltFile)})
	if err != nil {
		return fmt.Errorf("create raft log: %w", err)
	}
	if err := store.SetUint64(keyCurrentTerm, snapshotTerm); err != nil {
		store.Close()
		return fmt.Errorf("set current term: %w", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close raft log: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode restore marker: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, markerFile), b, 0o600); err != nil {
		return fmt.Errorf("write restore marker: %w", err)
	}
	return syncTree(dir)
}

// writeSnapshot stores the database as the only snapshot of a
// FileSnapshotStore at dir, in the FSM's snapshot format with index 1:
// the index the FSM records as applied in the new epoch.
func writeSnapshot(dir, dbPath string, members []raft.Server) error {
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		return fmt.Errorf("create snapshot store: %w", err)
	}
	// The transport only encodes the peers into the snapshot's metadata.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	servers := slices.Clone(members)
	for i := range servers {
		servers[i].Suffrage = raft.Voter
	}
	sink, err := snaps.Create(1, snapshotIndex, snapshotTerm, raft.Configuration{Servers: servers}, snapshotIndex, trans)
	if err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	err = func() error {
		f, err := os.Open(dbPath)
		if err != nil {
			return err
		}
		defer f.Close()
		var hdr [len(snapshotMagic) + 8]byte
		copy(hdr[:], snapshotMagic)
		binary.BigEndian.PutUint64(hdr[len(snapshotMagic):], snapshotIndex)
		if _, err := sink.Write(hdr[:]); err != nil {
			return err
		}
		_, err = io.Copy(sink, f)
		return err
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot: %w", err)
	}
	return nil
}

// finishSwap puts a complete data_dir/raft.new in place of data_dir/raft
// and completes the restore; with no raft.new it completes what is left
// of one (the marker, raft.old, staging directories). Every step is
// idempotent, so a crash anywhere is finished by calling it again.
func finishSwap(dataDir string) error {
	cur := filepath.Join(dataDir, raftDir)
	next := filepath.Join(dataDir, newDir)
	old := filepath.Join(dataDir, oldDir)
	nextOK, err := exists(next)
	if err != nil {
		return err
	}
	if nextOK {
		curOK, err := exists(cur)
		if err != nil {
			return err
		}
		if curOK {
			// Any raft.old left is older still than raft.
			if err := os.RemoveAll(old); err != nil {
				return fmt.Errorf("remove %s: %w", oldDir, err)
			}
			if err := os.Rename(cur, old); err != nil {
				return fmt.Errorf("move old raft state aside: %w", err)
			}
			if err := syncDir(dataDir); err != nil {
				return err
			}
		}
		if err := os.Rename(next, cur); err != nil {
			return fmt.Errorf("move new raft state into place: %w", err)
		}
		if err := syncDir(dataDir); err != nil {
			return err
		}
	}
	// The marker came in with the new Raft state; move it out.
	pending := filepath.Join(cur, markerFile)
	if ok, err := exists(pending); err != nil {
		return err
	} else if ok {
		if err := os.Rename(pending, filepath.Join(dataDir, markerFile)); err != nil {
			return fmt.Errorf("write restore marker: %w", err)
		}
		if err := syncDir(cur); err != nil {
			return err
		}
		if err := syncDir(dataDir); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove %s: %w", oldDir, err)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("read data directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagePrefix) {
			if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
				return fmt.Errorf("remove staging directory: %w", err)
			}
		}
	}
	return syncDir(dataDir)
}

// recoverInterrupted brings the data directory back to a consistent
// state after a crash during a restore (doc.go explains why each case
// holds), logging what it found.
func recoverInterrupted(dataDir string, log *slog.Logger) error {
	var found []string
	for _, n := range []string{newDir, oldDir, filepath.Join(raftDir, markerFile)} {
		ok, err := exists(filepath.Join(dataDir, n))
		if err != nil {
			return err
		}
		if ok {
			found = append(found, n)
		}
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read data directory: %w", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return nil
	}
	log.Warn("restore: finishing a restore that was interrupted", "found", strings.Join(found, ", "))
	return finishSwap(dataDir)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// syncTree makes every file under dir 0600 and every directory 0700, and
// syncs them all, directories after what they hold.
func syncTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
			return os.Chmod(path, 0o700)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return err
		}
		return syncFile(path)
	})
	if err != nil {
		return fmt.Errorf("sync raft state: %w", err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
