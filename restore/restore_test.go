package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	_ "modernc.org/sqlite"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
	"github.com/cairndb/cairn/internal/testproc"
)

var testMembers = []raft.Server{
	{ID: "1", Address: "cairn-0:4002", Suffrage: raft.Voter},
	{ID: "2", Address: "cairn-1:4002", Suffrage: raft.Voter},
	{ID: "3", Address: "cairn-2:4002", Suffrage: raft.Voter},
}

// mustKeyRing returns a ring holding the given ids, the first active.
func mustKeyRing(t *testing.T, ids ...string) *format.KeyRing {
	t.Helper()
	var entries []string
	for _, id := range ids {
		sum := sha256.Sum256([]byte("test key " + id))
		entries = append(entries, id+"/"+base64.StdEncoding.EncodeToString(sum[:]))
	}
	ring, err := format.ParseKeyRing(entries, ids[0])
	if err != nil {
		t.Fatalf("ParseKeyRing: %v", err)
	}
	return ring
}

// mustSQLite returns the bytes of a small real SQLite database holding
// rows rows tagged with tag.
func mustSQLite(t *testing.T, tag string, rows int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := db.Exec(`INSERT INTO t (v) VALUES (?)`, fmt.Sprintf("%s-%d", tag, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustBackup wraps a database in a Cairn backup (encrypted when ring is
// not nil).
func mustBackup(t *testing.T, db []byte, ring *format.KeyRing, idx uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := format.NewWriter(&buf, format.Header{RaftIndex: idx, NodeID: "1", Cluster: "test", Time: time.Unix(1700000000, 0)}, ring)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(db); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// verifySQLite is the Verify cmd passes: PRAGMA integrity_check.
func verifySQLite(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	return nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tree reads every file under dir, keyed by its path relative to dir.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("tree has %d entries, want %d:\n got %v\nwant %v", len(got), len(want), keys(got), keys(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		} else if g != v {
			t.Errorf("%s changed", k)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// mustOldState puts a fake pre-restore state in dataDir.
func mustOldState(t *testing.T, dataDir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dataDir, "raft", "raft.db"), []byte("old log"))
	mustWrite(t, filepath.Join(dataDir, "raft", "snapshots", "1-10-123", "state.bin"), []byte("old snapshot"))
	mustWrite(t, filepath.Join(dataDir, "state_machine", "db.sqlite"), []byte("old db"))
}

// checkRaftState checks dataDir/raft holds exactly the state a restore of
// db builds.
func checkRaftState(t *testing.T, dataDir string, db []byte) {
	t.Helper()
	dir := filepath.Join(dataDir, "raft")
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d snapshots, want 1", len(list))
	}
	meta := list[0]
	if meta.Index != 1 || meta.Term != 1 || meta.Version != 1 || meta.ConfigurationIndex != 1 {
		t.Errorf("snapshot index %d term %d version %d configuration index %d, want 1 1 1 1", meta.Index, meta.Term, meta.Version, meta.ConfigurationIndex)
	}
	if fmt.Sprint(meta.Configuration.Servers) != fmt.Sprint(testMembers) {
		t.Errorf("configuration %v, want %v", meta.Configuration.Servers, testMembers)
	}
	_, rc, err := snaps.Open(meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("CAIRNSN1"), binary.BigEndian.AppendUint64(nil, 1)...)
	want = append(want, db...)
	if !bytes.Equal(got, want) {
		t.Errorf("snapshot contents (%d bytes) differ from CAIRNSN1+1+database (%d bytes)", len(got), len(want))
	}

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	term, err := store.GetUint64([]byte("CurrentTerm"))
	if err != nil || term != 1 {
		t.Errorf("CurrentTerm = %d, %v; want 1", term, err)
	}
	if last, err := store.LastIndex(); err != nil || last != 0 {
		t.Errorf("log last index = %d, %v; want an empty log", last, err)
	}
	ok, err := raft.HasExistingState(store, store, snaps)
	if err != nil || !ok {
		t.Errorf("HasExistingState = %v, %v; want true", ok, err)
	}

	testproc.CheckPrivate(t, dir)
	for _, n := range []string{"raft.new", "raft.old", "raft/restore.json"} {
		if _, err := os.Lstat(filepath.Join(dataDir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", n, err)
		}
	}
	noStaging(t, dataDir)
}

func noStaging(t *testing.T, dataDir string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dataDir, ".restore-*"))
	if len(matches) > 0 {
		t.Errorf("staging left behind: %v", matches)
	}
}

func readTestMarker(t *testing.T, dataDir string) marker {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "restore.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeStore is an in-memory backup.Store.
type fakeStore struct {
	mu      sync.Mutex
	infos   map[string]backup.Info
	bodies  map[string][]byte
	fetched int // Get calls
}

var _ backup.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{infos: map[string]backup.Info{}, bodies: map[string][]byte{}}
}

func (s *fakeStore) add(t time.Time, idx uint64, db, body []byte) backup.Info {
	info := backup.Info{Name: backup.NewName(t, idx), Time: t, RaftIndex: idx, Size: int64(len(body)), SHA256: sum(db)}
	_ = s.Put(context.Background(), info, bytes.NewReader(body))
	return info
}

func (s *fakeStore) Put(_ context.Context, info backup.Info, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos[info.Name], s.bodies[info.Name] = info, b
	return nil
}

func (s *fakeStore) List(context.Context) ([]backup.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backup.Info
	for _, i := range s.infos {
		out = append(out, i)
	}
	backup.SortNewestFirst(out)
	return out, nil
}

func (s *fakeStore) Get(_ context.Context, name string) (io.ReadCloser, backup.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched++
	info, ok := s.infos[name]
	if !ok {
		return nil, backup.Info{}, fmt.Errorf("%w: %s", backup.ErrNotFound, name)
	}
	return io.NopCloser(bytes.NewReader(s.bodies[name])), info, nil
}

func (s *fakeStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.infos, name)
	delete(s.bodies, name)
	return nil
}

func options(dataDir, spec string, ring *format.KeyRing, remote backup.Store) Options {
	o := Options{Spec: spec, DataDir: dataDir, KeyRing: ring, Members: testMembers, Verify: verifySQLite}
	if remote != nil {
		o.Remote = remote
	}
	return o
}

func TestRun_File(t *testing.T) {
	ring := mustKeyRing(t, "k1")
	db := mustSQLite(t, "a", 50)
	tests := []struct {
		name      string
		file      []byte
		raftIndex uint64
	}{
		{"EncryptedBackup", mustBackup(t, db, ring, 42), 42},
		{"UnencryptedBackup", mustBackup(t, db, nil, 43), 43},
		{"PlainSQLite", db, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			mustOldState(t, dataDir)
			src := filepath.Join(t.TempDir(), "backup.cbk")
			mustWrite(t, src, tt.file)

			res, err := Run(context.Background(), options(dataDir, "file:"+src, ring, nil))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !res.Applied || res.Name != "backup.cbk" || res.SHA256 != sum(db) || res.Size != int64(len(db)) || res.RaftIndex != tt.raftIndex || len(res.Epoch) != 16 {
				t.Errorf("Result = %+v", res)
			}
			checkRaftState(t, dataDir, db)
			m := readTestMarker(t, dataDir)
			if m.Name != res.Name || m.SHA256 != res.SHA256 || m.Epoch != res.Epoch || m.RaftIndex != tt.raftIndex || m.AppliedAt.IsZero() {
				t.Errorf("marker = %+v, result %+v", m, res)
			}
			if e, err := Epoch(dataDir); err != nil || e != res.Epoch {
				t.Errorf("Epoch = %q, %v; want %q", e, err, res.Epoch)
			}
			// Not Raft state: left alone.
			if b, _ := os.ReadFile(filepath.Join(dataDir, "state_machine", "db.sqlite")); string(b) != "old db" {
				t.Errorf("state_machine touched")
			}
		})
	}
}

func TestRun_AlreadyApplied(t *testing.T) {
	ring := mustKeyRing(t, "k1")
	dataDir := t.TempDir()
	mustOldState(t, dataDir)
	dbA := mustSQLite(t, "a", 10)
	src := filepath.Join(t.TempDir(), "backup.cbk")
	mustWrite(t, src, mustBackup(t, dbA, ring, 7))
	first, err := Run(context.Background(), options(dataDir, "file:"+src, ring, nil))
	if err != nil || !first.Applied {
		t.Fatalf("Run = %+v, %v", first, err)
	}
	before := tree(t, dataDir)

	again, err := Run(context.Background(), options(dataDir, "file:"+src, ring, nil))
	if err != nil {
		t.Fatalf("Run again: %v", err)
	}
	if again.Applied || again.Epoch != first.Epoch || again.Name != first.Name {
		t.Errorf("Run again = %+v, want not applied, epoch %s", again, first.Epoch)
	}
	sameTree(t, tree(t, dataDir), before)

	// Another backup under the same name is applied.
	dbB := mustSQLite(t, "b", 20)
	mustWrite(t, src, mustBackup(t, dbB, ring, 9))
	other, err := Run(context.Background(), options(dataDir, "file:"+src, ring, nil))
	if err != nil || !other.Applied {
		t.Fatalf("Run other = %+v, %v", other, err)
	}
	if other.Epoch == first.Epoch {
		t.Errorf("epoch unchanged by another backup: %s", other.Epoch)
	}
	checkRaftState(t, dataDir, dbB)
	if e, _ := Epoch(dataDir); e != other.Epoch {
		t.Errorf("Epoch = %q, want %q", e, other.Epoch)
	}
}

func TestRun_S3(t *testing.T) {
	ring := mustKeyRing(t, "k1")
	store := newFakeStore()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dbOld, dbNew := mustSQLite(t, "old", 5), mustSQLite(t, "new", 6)
	old := store.add(base, 10, dbOld, mustBackup(t, dbOld, ring, 10))
	newest := store.add(base.Add(time.Hour), 20, dbNew, mustBackup(t, dbNew, ring, 20))

	tests := []struct {
		spec string
		want backup.Info
		db   []byte
	}{
		{"s3:" + old.Name, old, dbOld},
		{"s3:latest", newest, dbNew},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			dataDir := t.TempDir()
			mustOldState(t, dataDir)
			res, err := Run(context.Background(), options(dataDir, tt.spec, ring, store))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !res.Applied || res.Name != tt.want.Name || res.SHA256 != tt.want.SHA256 || res.RaftIndex != tt.want.RaftIndex {
				t.Errorf("Result = %+v, want %s", res, tt.want.Name)
			}
			checkRaftState(t, dataDir, tt.db)

			// The same again is recognised from the listed checksum.
			before := tree(t, dataDir)
			again, err := Run(context.Background(), options(dataDir, tt.spec, ring, store))
			if err != nil || again.Applied || again.Epoch != res.Epoch {
				t.Errorf("Run again = %+v, %v", again, err)
			}
			sameTree(t, tree(t, dataDir), before)
		})
	}

	// The same backup from S3 and from a file gives the same epoch.
	t.Run("SameEpochAsFile", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(t.TempDir(), newest.Name)
		mustWrite(t, src, store.bodies[newest.Name])
		a, err := Run(context.Background(), options(filepath.Join(dir, "a"), "file:"+src, ring, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(context.Background(), options(filepath.Join(dir, "b"), "s3:latest", ring, store))
		if err != nil {
			t.Fatal(err)
		}
		if a.Epoch != b.Epoch {
			t.Errorf("epochs %s and %s differ", a.Epoch, b.Epoch)
		}
	})
}

func TestRun_Refused(t *testing.T) {
	ring := mustKeyRing(t, "k1")
	other := mustKeyRing(t, "k2")
	db := mustSQLite(t, "a", 30)
	good := mustBackup(t, db, ring, 5)
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 0x01
	notDB := mustBackup(t, []byte("hello, not a database at all"), ring, 5)
	corruptDB := bytes.Clone(db)
	for i := 4096; i < len(corruptDB) && i < 4096+200; i++ {
		corruptDB[i] = 0xff // page 2: the table's b-tree
	}

	store := newFakeStore()
	store.add(time.Now(), 3, db, good)
	empty := newFakeStore()
	mismatch := newFakeStore()
	bad := mismatch.add(time.Now(), 4, db, good)
	bad.SHA256 = sum([]byte("something else"))
	mismatch.infos[bad.Name] = bad

	tests := []struct {
		name    string
		file    []byte // written to a file: spec when spec is ""
		spec    string
		ring    *format.KeyRing
		remote  backup.Store
		verify  func(context.Context, string) error
		wantIs  error
		wantMsg string
	}{
		{name: "UnknownKey", file: good, ring: other, wantIs: format.ErrUnknownKey, wantMsg: `"k1"`},
		{name: "NoKeyRing", file: good, wantIs: format.ErrUnknownKey, wantMsg: `"k1"`},
		{name: "Tampered", file: tampered, ring: ring, wantIs: format.ErrCorrupt},
		{name: "Truncated", file: good[:len(good)-30], ring: ring, wantIs: format.ErrTruncated},
		{name: "TruncatedHeader", file: good[:20], ring: ring, wantIs: format.ErrCorrupt},
		{name: "NotSQLite", file: []byte("just some text file\n"), ring: ring, wantIs: ErrNotDatabase},
		{name: "Empty", file: []byte{}, ring: ring, wantIs: ErrNotDatabase},
		{name: "BackupOfNotADatabase", file: notDB, ring: ring, wantIs: ErrNotDatabase},
		{name: "CorruptSQLite", file: corruptDB, ring: ring, wantMsg: "verify database"},
		{name: "VerifyFails", file: good, ring: ring, verify: func(context.Context, string) error { return errors.New("nope") }, wantMsg: "nope"},
		{name: "MissingFile", spec: "file:/nonexistent/backup.cbk", wantIs: fs.ErrNotExist},
		{name: "S3Missing", spec: "s3:cairn-20260101T000000Z-000000000000001.cbk", remote: store, wantIs: backup.ErrNotFound, wantMsg: "cairn-20260101T000000Z-000000000000001.cbk"},
		{name: "S3Empty", spec: "s3:latest", remote: empty, wantIs: backup.ErrNotFound},
		{name: "S3NotConfigured", spec: "s3:latest", wantIs: ErrNoRemote, wantMsg: "s3 is not configured"},
		{name: "S3ChecksumMismatch", spec: "s3:" + bad.Name, ring: ring, remote: mismatch, wantIs: format.ErrCorrupt},
		{name: "BadSpec", spec: "ftp:/x", wantIs: ErrBadSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			mustOldState(t, dataDir)
			before := tree(t, dataDir)
			spec := tt.spec
			if spec == "" {
				src := filepath.Join(t.TempDir(), "backup.cbk")
				mustWrite(t, src, tt.file)
				spec = "file:" + src
			}
			o := options(dataDir, spec, tt.ring, tt.remote)
			if tt.verify != nil {
				o.Verify = tt.verify
			}
			res, err := Run(context.Background(), o)
			if err == nil {
				t.Fatalf("Run = %+v, want an error", res)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			sameTree(t, tree(t, dataDir), before)
			if e, err := Epoch(dataDir); err != nil || e != "" {
				t.Errorf("Epoch = %q, %v; want none", e, err)
			}
		})
	}
}

func TestRun_Canceled(t *testing.T) {
	dataDir := t.TempDir()
	mustOldState(t, dataDir)
	before := tree(t, dataDir)
	src := filepath.Join(t.TempDir(), "db")
	mustWrite(t, src, mustSQLite(t, "a", 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, options(dataDir, "file:"+src, nil, nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	sameTree(t, tree(t, dataDir), before)
}

func TestRun_EmptySpecRecovers(t *testing.T) {
	dataDir := t.TempDir()
	mustWrite(t, filepath.Join(dataDir, ".restore-123", "restored.db"), []byte("x"))
	res, err := Run(context.Background(), Options{DataDir: dataDir})
	if err != nil || res.Applied {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	noStaging(t, dataDir)
}

// TestRecoverInterrupted builds what a crash at each step of the swap
// leaves on disk and checks recovery ends with the old state or the new
// one, whole.
func TestRecoverInterrupted(t *testing.T) {
	newMarker, _ := json.Marshal(marker{Name: "new.cbk", SHA256: "abc", Epoch: "0123456789abcdef"})
	oldMarker, _ := json.Marshal(marker{Name: "old.cbk", SHA256: "def", Epoch: "fedcba9876543210"})
	oldRaft := map[string]string{"raft.db": "old log", "snapshots/1-10-1/state.bin": "old snap"}
	newRaft := map[string]string{"raft.db": "new log", "snapshots/1-1-2/state.bin": "new snap"}
	withMarker := func(m map[string]string) map[string]string {
		out := map[string]string{"restore.json": string(newMarker)}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		dirs    map[string]map[string]string // directory under data_dir → files
		marker  string                       // data_dir/restore.json: "old", "new" or none
		before  string                       // Epoch before recovery: "old", "new" or none
		wantNew bool
	}{
		{name: "NothingPending", dirs: map[string]map[string]string{"raft": oldRaft}, marker: "old", before: "old"},
		{name: "WhileStaging", dirs: map[string]map[string]string{"raft": oldRaft, ".restore-1": {"restored.db": "x", "raft/raft.db": "partial"}}, marker: "old", before: "old"},
		{name: "AfterRaftNewInPlace", dirs: map[string]map[string]string{"raft": oldRaft, "raft.new": withMarker(newRaft), ".restore-1": {"restored.db": "x"}}, marker: "old", before: "old", wantNew: true},
		{name: "AfterOldMovedAside", dirs: map[string]map[string]string{"raft.old": oldRaft, "raft.new": withMarker(newRaft), ".restore-1": {"restored.db": "x"}}, marker: "old", before: "old", wantNew: true},
		{name: "FreshNodeBeforeSwap", dirs: map[string]map[string]string{"raft.new": withMarker(newRaft)}, wantNew: true},
		{name: "AfterNewInPlace", dirs: map[string]map[string]string{"raft.old": oldRaft, "raft": withMarker(newRaft)}, marker: "old", before: "new", wantNew: true},
		{name: "AfterMarkerMoved", dirs: map[string]map[string]string{"raft.old": oldRaft, "raft": newRaft, ".restore-1": {}}, marker: "new", before: "new", wantNew: true},
		{name: "LeftoverOldBesideNewer", dirs: map[string]map[string]string{"raft.old": {"raft.db": "older"}, "raft": oldRaft, "raft.new": withMarker(newRaft)}, marker: "old", before: "old", wantNew: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			for d, files := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
					t.Fatal(err)
				}
				for f, c := range files {
					mustWrite(t, filepath.Join(dataDir, d, f), []byte(c))
				}
			}
			epochs := map[string]string{"old": "fedcba9876543210", "new": "0123456789abcdef"}
			switch tt.marker {
			case "old":
				mustWrite(t, filepath.Join(dataDir, "restore.json"), oldMarker)
			case "new":
				mustWrite(t, filepath.Join(dataDir, "restore.json"), newMarker)
			}
			// Epoch matches the state in data_dir/raft, even before recovery.
			if e, err := Epoch(dataDir); err != nil || e != epochs[tt.before] {
				t.Errorf("Epoch before recovery = %q, %v; want %q", e, err, epochs[tt.before])
			}
			if err := Recover(dataDir, nil); err != nil {
				t.Fatalf("Recover: %v", err)
			}
			want := map[string]string{"raft/": ""}
			src, epoch := oldRaft, "fedcba9876543210"
			if tt.wantNew {
				src, epoch = newRaft, "0123456789abcdef"
			}
			for k, v := range src {
				want["raft/"+k] = v
			}
			for k := range want {
				for d := filepath.Dir(k); d != "."; d = filepath.Dir(d) {
					want[d+"/"] = ""
				}
			}
			if tt.wantNew || tt.marker != "" {
				if tt.wantNew {
					want["restore.json"] = string(newMarker)
				} else {
					want["restore.json"] = string(oldMarker)
				}
			} else {
				epoch = ""
			}
			got := tree(t, dataDir)
			delete(got, "./")
			sameTree(t, got, want)
			if e, err := Epoch(dataDir); err != nil || e != epoch {
				t.Errorf("Epoch = %q, %v; want %q", e, err, epoch)
			}
			// Recovery is idempotent.
			if err := Recover(dataDir, nil); err != nil {
				t.Fatal(err)
			}
			got = tree(t, dataDir)
			delete(got, "./")
			sameTree(t, got, want)
		})
	}
}

func TestParseSpec(t *testing.T) {
	name := backup.NewName(time.Date(2026, 11, 23, 10, 38, 20, 0, time.UTC), 42)
	tests := []struct {
		spec     string
		kind     string
		arg      string
		wantFail bool
	}{
		{spec: "s3:latest", kind: "s3", arg: "latest"},
		{spec: "s3:" + name, kind: "s3", arg: name},
		{spec: "file:/var/backups/x.cbk", kind: "file", arg: "/var/backups/x.cbk"},
		{spec: "file:/var/backups/../x.db", kind: "file", arg: "/var/x.db"},
		{spec: "", wantFail: true},
		{spec: "latest", wantFail: true},
		{spec: "s3:", wantFail: true},
		{spec: "s3:../../etc/passwd", wantFail: true},
		{spec: "s3:foo.cbk", wantFail: true},
		{spec: "file:", wantFail: true},
		{spec: "file:relative/x.cbk", wantFail: true},
		{spec: "gs:latest", wantFail: true},
		{spec: "S3:latest", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			kind, arg, err := ParseSpec(tt.spec)
			if tt.wantFail {
				if err == nil || !errors.Is(err, ErrBadSpec) {
					t.Errorf("ParseSpec = %q, %q, %v; want ErrBadSpec", kind, arg, err)
				}
				return
			}
			if err != nil || kind != tt.kind || arg != tt.arg {
				t.Errorf("ParseSpec = %q, %q, %v; want %q, %q", kind, arg, err, tt.kind, tt.arg)
			}
		})
	}
}

func TestEpoch_NeverRestored(t *testing.T) {
	if e, err := Epoch(t.TempDir()); err != nil || e != "" {
		t.Errorf("Epoch = %q, %v", e, err)
	}
	if e, err := Epoch(filepath.Join(t.TempDir(), "missing")); err != nil || e != "" {
		t.Errorf("Epoch of a missing dir = %q, %v", e, err)
	}
}
