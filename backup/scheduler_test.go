package backup_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
	"github.com/cairndb/cairn/internal/backuptest"
)

func TestLocal_Contract(t *testing.T) {
	backuptest.RunStoreContract(t, func(t *testing.T) backup.Store {
		return backup.NewLocal(filepath.Join(t.TempDir(), "backups"))
	})
}

// fileSource is a Source that copies a fixed "database" and reports a
// fixed index, counting concurrent copies.
type fileSource struct {
	data    []byte
	index   atomic.Uint64
	active  atomic.Int32
	maxSeen atomic.Int32
	delay   time.Duration
}

func (s *fileSource) Copy(ctx context.Context, path string) (uint64, error) {
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(s.delay)
	return s.index.Load(), os.WriteFile(path, s.data, 0o600)
}

// flakyStore wraps a store whose Put fails while failing is set.
type flakyStore struct {
	backup.Store
	failing atomic.Bool
}

func (f *flakyStore) Put(ctx context.Context, info backup.Info, r io.Reader) error {
	if f.failing.Load() {
		return errors.New("s3 endpoint unreachable")
	}
	return f.Store.Put(ctx, info, r)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func mustRing(t *testing.T, active string, ids ...string) *format.KeyRing {
	t.Helper()
	var entries []string
	for i, id := range ids {
		entries = append(entries, id+"/"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, 32)))
	}
	ring, err := format.ParseKeyRing(entries, active)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newTestScheduler(t *testing.T, src backup.Source, remote backup.Store, ring *format.KeyRing, leader *atomic.Bool, clk *clock) (*backup.Scheduler, *backup.Local) {
	local := backup.NewLocal(filepath.Join(t.TempDir(), "backups"))
	return backup.NewScheduler(backup.Config{
		Local: local, Remote: remote, KeyRing: ring,
		KeepLocal: 3 * 24 * time.Hour, KeepRemote: 30 * 24 * time.Hour,
		NodeID: "1", Cluster: "test", Now: clk.Now,
	}, src, leader.Load), local
}

func TestScheduler_Run(t *testing.T) {
	ctx := context.Background()
	src := &fileSource{data: bytes.Repeat([]byte("SQLite format 3\x00 pages "), 5000)}
	src.index.Store(42)
	var leader atomic.Bool
	clk := &clock{now: time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC)}
	remote := &flakyStore{Store: backup.NewLocal(filepath.Join(t.TempDir(), "remote"))}
	ring := mustRing(t, "k1", "k1")
	s, local := newTestScheduler(t, src, remote, ring, &leader, clk)

	t.Run("FollowerRefuses", func(t *testing.T) {
		if _, err := s.Run(ctx, true); !errors.Is(err, backup.ErrNotLeader) {
			t.Fatalf("err = %v", err)
		}
	})
	leader.Store(true)

	t.Run("EncryptedLocalAndRemote", func(t *testing.T) {
		info, err := s.Run(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if info.RaftIndex != 42 || info.KeyID != "k1" || info.NodeID != "1" || info.Cluster != "test" || info.Size == 0 || info.SHA256 == "" {
			t.Errorf("info = %+v", info)
		}
		for _, st := range []backup.Store{local, remote} {
			rc, got, err := st.Get(ctx, info.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got != info {
				t.Errorf("stored info %+v, want %+v", got, info)
			}
			r, err := format.NewReader(rc, ring)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(r)
			rc.Close()
			if err != nil || !bytes.Equal(plain, src.data) {
				t.Fatalf("decrypted backup differs (%v)", err)
			}
		}
		if st := s.Status(); st.LastSuccess.Name != info.Name || st.PendingUploads != 0 || st.UploadError != "" {
			t.Errorf("status = %+v", st)
		}
	})

	t.Run("UploadFailureRetriedNextRun", func(t *testing.T) {
		remote.failing.Store(true)
		clk.Add(time.Hour)
		info, err := s.Run(ctx, true)
		if err != nil {
			t.Fatalf("a failed upload failed the run: %v", err)
		}
		st := s.Status()
		if st.UploadError == "" || !strings.Contains(st.UploadError, "unreachable") || st.PendingUploads != 1 || st.UploadFailures != 1 {
			t.Errorf("status after failed upload = %+v", st)
		}
		if _, _, err := local.Get(ctx, info.Name); err != nil {
			t.Errorf("local backup missing after failed upload: %v", err)
		}
		remote.failing.Store(false)
		clk.Add(time.Hour)
		if _, err := s.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, _, err := remote.Get(ctx, info.Name); err != nil {
			t.Errorf("the backup whose upload failed was not uploaded by the next run: %v", err)
		}
		if st := s.Status(); st.UploadError != "" || st.PendingUploads != 0 {
			t.Errorf("status after recovery = %+v", st)
		}
	})

	t.Run("RetentionKeepsNewest", func(t *testing.T) {
		clk.Add(10 * 24 * time.Hour)
		src.index.Store(99)
		if _, err := s.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		l, _ := local.List(ctx)
		if len(l) != 1 || l[0].RaftIndex != 99 {
			t.Errorf("local after 10 days: %v, want only the new backup", backuptest.Names(l))
		}
		r, _ := remote.List(ctx)
		if len(r) != 4 {
			t.Errorf("remote keeps 30 days: %v", backuptest.Names(r))
		}
		clk.Add(40 * 24 * time.Hour) // nothing new for 40 days
		src.index.Store(100)
		remote.failing.Store(true) // the new backup cannot be uploaded
		if _, err := s.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		r, _ = remote.List(ctx)
		if len(r) != 1 || r[0].RaftIndex != 99 {
			t.Errorf("remote after 40 days: %v, want the newest good backup kept", backuptest.Names(r))
		}
		l, _ = local.List(ctx)
		if len(l) != 1 || l[0].RaftIndex != 100 {
			t.Errorf("local keeps the backup still waiting for upload: %v", backuptest.Names(l))
		}
		remote.failing.Store(false)
	})

	t.Run("KeyRotation", func(t *testing.T) {
		rotated := mustRing(t, "k2", "k1", "k2")
		s2, local2 := newTestScheduler(t, src, nil, rotated, &leader, clk)
		info, err := s2.Run(ctx, true)
		if err != nil || info.KeyID != "k2" {
			t.Fatalf("run under k2: %+v %v", info, err)
		}
		for _, st := range []backup.Store{local, local2} {
			list, _ := st.List(ctx)
			rc, _, err := st.Get(ctx, list[0].Name)
			if err != nil {
				t.Fatal(err)
			}
			r, err := format.NewReader(rc, rotated)
			if err == nil {
				_, err = io.ReadAll(r)
			}
			rc.Close()
			if err != nil {
				t.Errorf("backup under %s does not decrypt after rotation: %v", list[0].KeyID, err)
			}
		}
		rc, _, _ := local2.Get(ctx, info.Name)
		defer rc.Close()
		if _, err := format.NewReader(rc, mustRing(t, "k1", "k1")); !errors.Is(err, format.ErrUnknownKey) {
			t.Errorf("a ring without k2: %v, want ErrUnknownKey", err)
		}
	})
}

func TestScheduler_NeverTwoAtOnce(t *testing.T) {
	src := &fileSource{data: []byte("SQLite format 3\x00"), delay: 50 * time.Millisecond}
	var leader atomic.Bool
	leader.Store(true)
	s, _ := newTestScheduler(t, src, nil, nil, &leader, &clock{now: time.Now()})
	var wg sync.WaitGroup
	var busy atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Run(context.Background(), false); errors.Is(err, backup.ErrBusy) {
				busy.Add(1)
			}
		}()
	}
	wg.Wait()
	if src.maxSeen.Load() != 1 || busy.Load() == 0 {
		t.Errorf("concurrent copies seen %d, busy refusals %d", src.maxSeen.Load(), busy.Load())
	}
}

// everyTick is a schedule that fires every d.
type everyTick time.Duration

func (e everyTick) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

func TestScheduler_ScheduleFollowsLeadership(t *testing.T) {
	src := &fileSource{data: []byte("SQLite format 3\x00")}
	var leader atomic.Bool
	local := backup.NewLocal(filepath.Join(t.TempDir(), "backups"))
	var n atomic.Int64
	s := backup.NewScheduler(backup.Config{Schedule: everyTick(20 * time.Millisecond), Local: local, KeepLocal: time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(n.Add(1)) * time.Second) }}, src, leader.Load)
	s.Start(context.Background())
	defer s.Close()
	time.Sleep(150 * time.Millisecond)
	if st := s.Status(); st.Runs != 0 {
		t.Fatalf("a follower ran %d backups", st.Runs)
	}
	leader.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().Runs < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the new leader did not start backing up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	leader.Store(false)
	runs := s.Status().Runs
	time.Sleep(150 * time.Millisecond)
	if got := s.Status().Runs; got > runs+1 {
		t.Errorf("backups went on after leadership was lost: %d → %d", runs, got)
	}
}

// TestScheduler_Reconfigure: a scheduler started without a schedule takes
// one from Reconfigure and runs it; Reconfigure with nil stops it.
func TestScheduler_Reconfigure(t *testing.T) {
	src := &fileSource{data: []byte("SQLite format 3\x00")}
	var leader atomic.Bool
	leader.Store(true)
	local := backup.NewLocal(filepath.Join(t.TempDir(), "backups"))
	var n atomic.Int64
	s := backup.NewScheduler(backup.Config{Local: local, KeepLocal: time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(n.Add(1)) * time.Second) }}, src, leader.Load)
	s.Start(context.Background())
	defer s.Close()
	if st := s.Status(); st.Runs != 0 {
		t.Fatalf("ran %d backups without a schedule", st.Runs)
	}
	s.Reconfigure(everyTick(20*time.Millisecond), time.Hour, time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().Runs < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the new schedule did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Reconfigure(nil, time.Hour, time.Hour)
	// At most a run already under way finishes after the schedule is gone.
	waitIdle := time.Now().Add(5 * time.Second)
	for s.Status().Running && time.Now().Before(waitIdle) {
		time.Sleep(10 * time.Millisecond)
	}
	runs := s.Status().Runs
	time.Sleep(150 * time.Millisecond)
	if got := s.Status().Runs; got > runs+1 {
		t.Errorf("backups went on after the schedule was removed: %d → %d", runs, got)
	}
}
