package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
)

// Errors of the restore package.
var (
	// ErrBadSpec means a restore spec is not s3:NAME, s3:latest or
	// file:/absolute/path.
	ErrBadSpec = errors.New("invalid restore spec")

	// ErrNoRemote means an s3: spec was given but no S3 store is
	// configured.
	ErrNoRemote = errors.New("s3 is not configured")

	// ErrNotDatabase means the source is neither a Cairn backup nor a
	// SQLite database.
	ErrNotDatabase = errors.New("not a Cairn backup or a SQLite database")
)

// Kinds of spec returned by ParseSpec.
const (
	KindS3   = "s3"
	KindFile = "file"
)

// Latest is the s3: argument that picks the newest backup.
const Latest = "latest"

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// snapshotMagic starts the FSM's snapshot stream (statemachine/fsm.go),
// followed by the applied index, 8 bytes big-endian, then the SQLite file.
const snapshotMagic = "CAIRNSN1"

// Options configure Run.
type Options struct {
	// Spec names the backup: "s3:NAME", "s3:latest" or "file:/path" (a
	// Cairn backup, encrypted or not, or a plain SQLite database). An
	// empty Spec only finishes or cleans up an interrupted restore.
	Spec string
	// DataDir is node.data_dir.
	DataDir string
	// Remote is the S3 store for s3: specs; nil refuses them with
	// ErrNoRemote.
	Remote backup.Store
	// KeyRing decrypts encrypted backups; nil reads unencrypted ones only.
	KeyRing *format.KeyRing
	// Members is the configuration the restored cluster starts with
	// (cluster.nodes). It must be identical on every node.
	Members []raft.Server
	// Verify checks the staged plain SQLite file (header and PRAGMA
	// integrity_check); an error refuses the restore. Required.
	Verify func(ctx context.Context, path string) error
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Result describes what Run did.
type Result struct {
	// Applied is false when the backup had already been applied on this
	// node (or Spec was empty) and nothing changed.
	Applied bool
	// Name is the backup's name (the file's base name for a file: spec).
	Name string
	// SHA256 is the hex SHA-256 of the restored SQLite database.
	SHA256 string
	// Epoch is the restore epoch the node's data now belongs to.
	Epoch string
	// RaftIndex is the Raft index the backup was taken at, in the old
	// cluster (0 for a plain SQLite file). The new Raft state starts at 1.
	RaftIndex uint64
	// Size is the size of the restored database in bytes.
	Size int64
}

// ParseSpec checks a restore spec and returns its kind (KindS3 or
// KindFile) and argument: the backup name (or Latest), or the cleaned
// absolute path.
func ParseSpec(spec string) (kind, arg string, err error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return "", "", fmt.Errorf("%w %q: want s3:NAME, s3:latest or file:/path", ErrBadSpec, spec)
	}
	switch kind {
	case KindS3:
		if arg == "" {
			return "", "", fmt.Errorf("%w %q: no backup name (want s3:NAME or s3:latest)", ErrBadSpec, spec)
		}
		if arg != Latest {
			if _, _, err := backup.ParseName(arg); err != nil {
				return "", "", fmt.Errorf("%w %q: %w", ErrBadSpec, spec, err)
			}
		}
		return kind, arg, nil
	case KindFile:
		if arg == "" {
			return "", "", fmt.Errorf("%w %q: no path (want file:/path)", ErrBadSpec, spec)
		}
		if !filepath.IsAbs(arg) {
			return "", "", fmt.Errorf("%w %q: the path must be absolute", ErrBadSpec, spec)
		}
		return kind, filepath.Clean(arg), nil
	default:
		return "", "", fmt.Errorf("%w %q: unknown kind %q (want s3 or file)", ErrBadSpec, spec, kind)
	}
}

// Run applies a backup to the node's data directory before Raft starts.
// It first finishes any restore a crash interrupted, then fetches,
// decrypts and verifies the backup into a staging file in DataDir, builds
// the new Raft state beside the old one and swaps them. A backup already
// applied on this node (same name and SHA-256 as the marker) is not
// applied again. Any error before the swap leaves the existing data
// untouched. The caller must hold the data directory's lock.
func Run(ctx context.Context, o Options) (Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return Result{}, errors.New("restore: no data directory")
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("create data directory: %w", err)
	}
	if err := recoverInterrupted(o.DataDir, log); err != nil {
		return Result{}, fmt.Errorf("recover interrupted restore: %w", err)
	}
	if o.Spec == "" {
		return Result{}, nil
	}
	kind, arg, err := ParseSpec(o.Spec)
	if err != nil {
		return Result{}, err
	}
	if err := checkMembers(o.Members); err != nil {
		return Result{}, err
	}
	if o.Verify == nil {
		return Result{}, errors.New("restore: no database verifier (Options.Verify)")
	}
	prev, err := readMarker(o.DataDir)
	if err != nil {
		return Result{}, err
	}

	src, err := open(ctx, o, kind, arg, log)
	if err != nil {
		return Result{}, err
	}
	defer src.body.Close()
	// An S3 object's checksum is known before it is fetched.
	if src.info.SHA256 != "" && prev != nil && prev.Name == src.name && prev.SHA256 == src.info.SHA256 {
		return alreadyApplied(log, prev), nil
	}

	start := time.Now()
	stageDir, err := os.MkdirTemp(o.DataDir, stagePrefix)
	if err != nil {
		return Result{}, fmt.Errorf("create staging directory: %w", err)
	}
	applied := false
	defer func() {
		if !applied {
			os.RemoveAll(stageDir)
		}
	}()
	dbPath := filepath.Join(stageDir, "restored.db")
	st, err := stage(ctx, src.body, dbPath, o.KeyRing)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", src.name, err)
	}
	if src.info.SHA256 != "" && st.sha256 != src.info.SHA256 {
		return Result{}, fmt.Errorf("%s: %w: SHA-256 %s does not match the listed %s", src.name, format.ErrCorrupt, st.sha256, src.info.SHA256)
	}
	log.Info("restore: backup fetched and checked", "backup", src.name, "size", st.size, "key_id", st.keyID, "raft_index", st.raftIndex, "duration", time.Since(start))
	if prev != nil && prev.Name == src.name && prev.SHA256 == st.sha256 {
		return alreadyApplied(log, prev), nil
	}

	start = time.Now()
	if err := o.Verify(ctx, dbPath); err != nil {
		return Result{}, fmt.Errorf("%s: verify database: %w", src.name, err)
	}
	log.Info("restore: database verified", "backup", src.name, "size", st.size, "duration", time.Since(start))

	m := marker{
		Name:      src.name,
		SHA256:    st.sha256,
		Epoch:     epochOf(src.name, st.sha256),
		AppliedAt: time.Now().UTC(),
		RaftIndex: st.raftIndex,
		Size:      st.size,
	}
	start = time.Now()
	if err := buildRaftState(stageDir, dbPath, o.Members, m); err != nil {
		return Result{}, fmt.Errorf("build raft state: %w", err)
	}
	// From here the new state is complete on disk: a crash finishes the
	// swap at the next start (see doc.go), so the staging directory is
	// no longer ours to remove on error.
	if err := os.Rename(filepath.Join(stageDir, "raft"), filepath.Join(o.DataDir, newDir)); err != nil {
		return Result{}, fmt.Errorf("move raft state into place: %w", err)
	}
	applied = true
	if err := syncDir(o.DataDir); err != nil {
		return Result{}, fmt.Errorf("sync data directory: %w", err)
	}
	if err := finishSwap(o.DataDir); err != nil {
		return Result{}, fmt.Errorf("swap raft state: %w", err)
	}
	log.Info("restore: raft state replaced", "backup", src.name, "epoch", m.Epoch, "members", len(o.Members), "duration", time.Since(start))
	return Result{Applied: true, Name: m.Name, SHA256: m.SHA256, Epoch: m.Epoch, RaftIndex: m.RaftIndex, Size: m.Size}, nil
}

// Recover finishes or rolls back a restore that a crash interrupted. Run
// does it first; a node that starts without a restore spec calls it
// before opening Raft.
func Recover(dataDir string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return recoverInterrupted(dataDir, logger)
}

// Epoch returns the restore epoch of the data in dataDir, "" if it was
// never restored. Every node of a cluster must share it.
func Epoch(dataDir string) (string, error) {
	// A marker still inside the Raft directory belongs to the state that
	// directory holds (a swap interrupted before the marker moved out).
	for _, p := range []string{filepath.Join(dataDir, raftDir, markerFile), filepath.Join(dataDir, markerFile)} {
		m, err := readMarkerFile(p)
		if err != nil {
			return "", err
		}
		if m != nil {
			return m.Epoch, nil
		}
	}
	return "", nil
}

func alreadyApplied(log *slog.Logger, m *marker) Result {
	log.Info(fmt.Sprintf("restore of %s was already applied; not applying it again (remove CAIRN_BACKUP_RESTORE once the cluster is healthy)", m.Name),
		"backup", m.Name, "epoch", m.Epoch, "applied_at", m.AppliedAt)
	return Result{Name: m.Name, SHA256: m.SHA256, Epoch: m.Epoch, RaftIndex: m.RaftIndex, Size: m.Size}
}

func checkMembers(members []raft.Server) error {
	if len(members) == 0 {
		return errors.New("restore: no cluster members")
	}
	seen := make(map[raft.ServerID]bool, len(members))
	for _, s := range members {
		if s.ID == "" || s.Address == "" {
			return fmt.Errorf("restore: member %q %q: empty id or address", s.ID, s.Address)
		}
		if seen[s.ID] {
			return fmt.Errorf("restore: member %q listed twice", s.ID)
		}
		seen[s.ID] = true
	}
	return nil
}

// epochOf derives the restore epoch from what identifies a backup, so
// that every node restoring it computes the same one.
func epochOf(name, sha string) string {
	sum := sha256.Sum256([]byte("cairn restore epoch\x00" + name + "\x00" + sha))
	return hex.EncodeToString(sum[:8])
}

// source is an opened backup.
type source struct {
	name string
	info backup.Info // zero for a file
	body io.ReadCloser
}

func open(ctx context.Context, o Options, kind, arg string, log *slog.Logger) (*source, error) {
	switch kind {
	case KindFile:
		f, err := os.Open(arg)
		if err != nil {
			return nil, fmt.Errorf("open backup file: %w", err)
		}
		if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("backup file %s is not a regular file", arg)
		}
		return &source{name: filepath.Base(arg), body: f}, nil
	case KindS3:
		if o.Remote == nil {
			return nil, fmt.Errorf("restore %s: %w", o.Spec, ErrNoRemote)
		}
		name := arg
		if name == Latest {
			infos, err := o.Remote.List(ctx)
			if err != nil {
				return nil, fmt.Errorf("list s3 backups: %w", err)
			}
			if len(infos) == 0 {
				return nil, fmt.Errorf("s3:latest: %w: the bucket holds no backup", backup.ErrNotFound)
			}
			backup.SortNewestFirst(infos)
			name = infos[0].Name
			log.Info("restore: s3:latest is "+name, "backup", name, "size", infos[0].Size)
		}
		body, info, err := o.Remote.Get(ctx, name)
		if err != nil {
			if errors.Is(err, backup.ErrNotFound) {
				return nil, fmt.Errorf("s3 backup %s: %w", name, err)
			}
			return nil, fmt.Errorf("get s3 backup %s: %w", name, err)
		}
		if info.Name == "" {
			info.Name = name
		}
		return &source{name: name, info: info, body: body}, nil
	}
	return nil, fmt.Errorf("%w: kind %q", ErrBadSpec, kind)
}

// staged describes the staged database.
type staged struct {
	sha256    string
	size      int64
	raftIndex uint64
	keyID     string
}

// stage writes the plaintext database read from r to path, checking it:
// a Cairn backup is decrypted and verified by format.Reader, a plain
// SQLite file is copied as is.
func stage(ctx context.Context, r io.Reader, path string, ring *format.KeyRing) (staged, error) {
	br := bufio.NewReaderSize(ctxReader{ctx, r}, 64<<10)
	head, err := br.Peek(len(sqliteMagic))
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return staged{}, fmt.Errorf("read: %w", err)
	}
	if len(head) == 0 {
		return staged{}, fmt.Errorf("%w: the file is empty", ErrNotDatabase)
	}
	plain := string(head) == sqliteMagic // head is only valid until the next read
	var (
		st  staged
		src io.Reader
		sum hash.Hash
	)
	if plain {
		sum = sha256.New()
		src = io.TeeReader(br, sum)
	} else {
		fr, err := format.NewReader(br, ring)
		if errors.Is(err, format.ErrNotBackup) {
			return staged{}, ErrNotDatabase
		}
		if err != nil {
			return staged{}, err
		}
		h := fr.Header()
		st.raftIndex, st.keyID = h.RaftIndex, h.KeyID
		sum = sha256.New()
		src = io.TeeReader(fr, sum)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return staged{}, fmt.Errorf("create staging file: %w", err)
	}
	n, err := io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return staged{}, fmt.Errorf("stage database: %w", err)
	}
	st.size = n
	st.sha256 = hex.EncodeToString(sum.Sum(nil))
	if !plain {
		// A backup's plaintext must be a database too.
		if err := checkSQLiteHeader(path); err != nil {
			return staged{}, err
		}
	}
	return st, nil
}

// checkSQLiteHeader checks the staged file starts as a SQLite database.
// Verify checks it fully; this gives a clear error for a backup of
// something else.
func checkSQLiteHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [len(sqliteMagic)]byte
	if _, err := io.ReadFull(f, b[:]); err != nil || string(b[:]) != sqliteMagic {
		return fmt.Errorf("%w: the backup's contents are not a SQLite database", ErrNotDatabase)
	}
	return nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// marker is data_dir/restore.json: the last backup applied on this node.
type marker struct {
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"`
	Epoch     string    `json:"epoch"`
	AppliedAt time.Time `json:"applied_at"`
	RaftIndex uint64    `json:"raft_index"`
	Size      int64     `json:"size"`
}

func readMarker(dataDir string) (*marker, error) {
	return readMarkerFile(filepath.Join(dataDir, markerFile))
}

func readMarkerFile(path string) (*marker, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read restore marker: %w", err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read restore marker %s: %w", path, err)
	}
	return &m, nil
}
