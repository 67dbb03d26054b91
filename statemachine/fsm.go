package statemachine

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine/command"
)

// ApplyResult is what FSM.Apply returns for a log entry: the statements'
// results, or Err when the database itself failed. SQL errors are inside
// Results, never in Err.
type ApplyResult struct {
	Results []command.Result
	Err     error
}

// FSM applies committed Raft log entries to a DB. Decoding and dispatch are
// here; the SQL runs in DB.
type FSM struct {
	db     *DB
	logger *slog.Logger

	// snapshotDir holds the temporary copies snapshots are streamed from.
	snapshotDir string
	// lastApplied is the index of the last entry applied.
	lastApplied atomic.Uint64
	// snapshotSeq names snapshot copies uniquely.
	snapshotSeq atomic.Uint64
	// snapshots counts the snapshots taken; snapshotNanos is their total
	// copy time, lastSnapshotNanos the last one's.
	snapshots, snapshotNanos, lastSnapshotNanos atomic.Int64
	// restores counts snapshots installed (from the leader or at start).
	restores atomic.Int64
}

// SnapshotStats counts the snapshots this FSM took and installed since
// start, and the time their database copies took.
type SnapshotStats struct {
	Taken     int64
	Installed int64
	// Total is the copy time of every snapshot taken; Last the newest's.
	Total, Last time.Duration
}

// SnapshotStats returns the FSM's snapshot counters.
func (f *FSM) SnapshotStats() SnapshotStats {
	return SnapshotStats{
		Taken:     f.snapshots.Load(),
		Installed: f.restores.Load(),
		Total:     time.Duration(f.snapshotNanos.Load()),
		Last:      time.Duration(f.lastSnapshotNanos.Load()),
	}
}

var _ raft.BatchingFSM = (*FSM)(nil)

// NewFSM returns an FSM over db. Snapshot copies are written in tmpDir,
// which must be on the same file system as the database.
func NewFSM(db *DB, tmpDir string, logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	return &FSM{db: db, snapshotDir: tmpDir, logger: logger}
}

// LastApplied is the index of the last log entry applied to the database.
func (f *FSM) LastApplied() uint64 { return f.lastApplied.Load() }

// Apply applies one committed log entry. An entry that cannot be decoded
// panics: a corrupt log cannot be recovered from, and skipping the entry
// would silently fork this replica from the others.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order, returning one response
// per entry. Runs of ordinary entries are applied inside one SQLite
// transaction (DB.ExecuteBatch), with the same outcome per entry as
// applying them one at a time, so replicas that receive the log in
// different batches still compute identical results.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	ctx := context.Background()
	var (
		pending []*command.Request
		slots   []int
	)
	flush := func() {
		if len(pending) == 0 {
			return
		}
		results, err := f.db.ExecuteBatch(ctx, pending, logs[len(logs)-1].Index)
		for j, i := range slots {
			if err != nil {
				out[i] = &ApplyResult{Err: err}
				continue
			}
			out[i] = &ApplyResult{Results: results[j]}
		}
		pending, slots = pending[:0], slots[:0]
	}
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		typ, req, err := command.Decode(l.Data)
		if err != nil {
			panic(fmt.Sprintf("statemachine: log entry %d cannot be decoded: %v", l.Index, err))
		}
		switch typ {
		case command.Type_TYPE_EXECUTE, command.Type_TYPE_QUERY, command.Type_TYPE_REQUEST:
			// A read through the log (TYPE_QUERY) runs on the write
			// connection too, so that it sees exactly the entries before
			// it; statements flagged as returning rows are queried.
			pending = append(pending, req)
			slots = append(slots, i)
		case command.Type_TYPE_NOOP:
			out[i] = &ApplyResult{}
		default:
			panic(fmt.Sprintf("statemachine: log entry %d has unknown type %v", l.Index, typ))
		}
	}
	if len(logs) == 0 {
		return out
	}
	last := logs[len(logs)-1].Index
	if len(pending) > 0 {
		flush() // records last atomically with the batch
	} else {
		f.db.setApplied(last)
	}
	f.lastApplied.Store(last)
	return out
}

// Snapshot copies the database to a temporary file. Apply is not running
// while it does, so the copy is exactly the state at the last applied entry;
// Persist then streams the file while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	if err := os.MkdirAll(f.snapshotDir, dirMode); err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", f.snapshotDir, err)
	}
	path := filepath.Join(f.snapshotDir, fmt.Sprintf("snapshot-%d-%d.db", f.lastApplied.Load(), f.snapshotSeq.Add(1)))
	if err := f.db.copyWriter(context.Background(), path); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	index := f.lastApplied.Load()
	took := time.Since(start)
	f.snapshots.Add(1)
	f.snapshotNanos.Add(int64(took))
	f.lastSnapshotNanos.Store(int64(took))
	f.logger.Debug("snapshot copy made", "index", index, "path", path, "duration", took)
	return &fileSnapshot{path: path, index: index}, nil
}

// Restore replaces the database with a snapshot's contents.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	start := time.Now()
	index, err := readSnapshotHeader(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := f.db.ReplaceFrom(rc); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.db.setApplied(index)
	f.lastApplied.Store(index)
	f.restores.Add(1)
	f.logger.Info("database restored from snapshot", "index", index, "size", f.db.Size(), "duration", time.Since(start))
	return nil
}

// A snapshot is snapshotMagic, the Raft index it reflects (8 bytes, big
// endian), then the SQLite database file.
const snapshotMagic = "CAIRNSN1"

func writeSnapshotHeader(w io.Writer, index uint64) error {
	var hdr [len(snapshotMagic) + 8]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic):], index)
	_, err := w.Write(hdr[:])
	return err
}

func readSnapshotHeader(r io.Reader) (uint64, error) {
	var hdr [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return 0, fmt.Errorf("not a Cairn snapshot (bad magic %q)", hdr[:len(snapshotMagic)])
	}
	return binary.BigEndian.Uint64(hdr[len(snapshotMagic):]), nil
}

// fileSnapshot streams a database copy into Raft's snapshot sink.
type fileSnapshot struct {
	path  string
	index uint64
}

// Persist writes the header and the copy to the sink.
func (s *fileSnapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		f, err := os.Open(s.path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := writeSnapshotHeader(sink, s.index); err != nil {
			return err
		}
		_, err = io.Copy(sink, f)
		return err
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release removes the copy.
func (s *fileSnapshot) Release() {
	os.Remove(s.path)
}
