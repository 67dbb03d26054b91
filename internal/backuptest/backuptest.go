package backuptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/backup"
)

// RunStoreContract runs the contract of backup.Store against the stores
// newStore returns: one fresh, empty store per subtest.
func RunStoreContract(t *testing.T, newStore func(t *testing.T) backup.Store) {
	t.Run("EmptyList", func(t *testing.T) {
		s := newStore(t)
		infos, err := s.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != 0 {
			t.Fatalf("List of an empty store: %v", infos)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		body := Body(1, 100_000)
		info := NewInfo(time.Date(2026, 11, 23, 10, 38, 20, 123456789, time.UTC), 42)
		info.Size = int64(len(body))
		MustPut(t, s, info, body)

		infos, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != 1 {
			t.Fatalf("List: %d backups, want 1: %v", len(infos), infos)
		}
		AssertInfo(t, "List", infos[0], info)

		got, gotInfo := MustGet(t, s, info.Name)
		AssertInfo(t, "Get", gotInfo, info)
		if !bytes.Equal(got, body) {
			t.Fatalf("Get: body differs from what was put (%d bytes, want %d)", len(got), len(body))
		}
	})

	t.Run("SizeFromContent", func(t *testing.T) {
		// A Put whose Info does not know the size (a stream being
		// encrypted) gets the size of what it stored.
		s := newStore(t)
		body := Body(2, 12_345)
		info := NewInfo(time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), 7)
		info.Size = 0
		if err := s.Put(context.Background(), info, OnlyReader(bytes.NewReader(body))); err != nil {
			t.Fatalf("Put: %v", err)
		}
		infos, err := s.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != 1 || infos[0].Size != int64(len(body)) {
			t.Fatalf("List: %v, want one backup of %d bytes", infos, len(body))
		}
		_, gotInfo := MustGet(t, s, info.Name)
		if gotInfo.Size != int64(len(body)) {
			t.Fatalf("Get: size %d, want %d", gotInfo.Size, len(body))
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)
		var want []string
		for _, day := range []int{2, 0, 3, 1} {
			info := NewInfo(base.AddDate(0, 0, day), uint64(100+day))
			MustPut(t, s, info, Body(uint64(day), 1000+day))
		}
		for _, day := range []int{3, 2, 1, 0} {
			want = append(want, backup.NewName(base.AddDate(0, 0, day), uint64(100+day)))
		}
		infos, err := s.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := Names(infos); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("List order:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		name := backup.NewName(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1)
		rc, _, err := s.Get(context.Background(), name)
		if err == nil {
			rc.Close()
			t.Fatal("Get of a missing backup: no error")
		}
		if !errors.Is(err, backup.ErrNotFound) {
			t.Fatalf("Get of a missing backup: %v, want backup.ErrNotFound", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		a := NewInfo(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), 1)
		b := NewInfo(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), 2)
		MustPut(t, s, a, Body(3, 10))
		MustPut(t, s, b, Body(4, 10))
		if err := s.Delete(ctx, a.Name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		infos, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := Names(infos); len(got) != 1 || got[0] != b.Name {
			t.Fatalf("List after Delete: %v, want [%s]", got, b.Name)
		}
		if _, _, err := s.Get(ctx, a.Name); !errors.Is(err, backup.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want backup.ErrNotFound", err)
		}
		if err := s.Delete(ctx, a.Name); err != nil {
			t.Fatalf("Delete of a missing backup: %v, want nil", err)
		}
	})

	t.Run("InvalidName", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		for _, name := range []string{"", "x", "../cairn-20261123T103820Z-000000000000042.cbk", "cairn-20261123T103820Z-000000000000042.cbk/../../etc"} {
			info := NewInfo(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1)
			info.Name = name
			if err := s.Put(ctx, info, bytes.NewReader(nil)); !errors.Is(err, backup.ErrInvalidName) {
				t.Errorf("Put %q: %v, want backup.ErrInvalidName", name, err)
			}
			if rc, _, err := s.Get(ctx, name); !errors.Is(err, backup.ErrInvalidName) {
				if err == nil {
					rc.Close()
				}
				t.Errorf("Get %q: %v, want backup.ErrInvalidName", name, err)
			}
			if err := s.Delete(ctx, name); !errors.Is(err, backup.ErrInvalidName) {
				t.Errorf("Delete %q: %v, want backup.ErrInvalidName", name, err)
			}
		}
	})

	t.Run("FailedPutLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		info := NewInfo(time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC), 9)
		r := FailingReader(OnlyReader(bytes.NewReader(Body(5, 50_000))), 20_000)
		err := s.Put(ctx, info, r)
		if !errors.Is(err, ErrBrokenReader) {
			t.Fatalf("Put from a reader that fails: %v, want it to wrap the reader's error", err)
		}
		AssertEmpty(t, s, info.Name)
	})

	t.Run("CanceledPutLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		info := NewInfo(time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC), 10)
		// The reader cancels the context half-way, then goes on giving
		// data: the store must notice.
		body := bytes.NewReader(Body(6, 50_000))
		var once sync.Once
		r := readerFunc(func(p []byte) (int, error) {
			if body.Len() < 25_000 {
				once.Do(cancel)
			}
			return body.Read(p[:min(len(p), 4096)])
		})
		if err := s.Put(ctx, info, r); err == nil {
			t.Fatal("Put whose context was cancelled: no error")
		}
		AssertEmpty(t, s, info.Name)
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s := newStore(t)
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				info := NewInfo(time.Date(2026, 11, 23, 5, i, 0, 0, time.UTC), uint64(i))
				errs[i] = s.Put(context.Background(), info, bytes.NewReader(Body(uint64(i), 30_000)))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Put %d: %v", i, err)
			}
		}
		infos, err := s.List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != n {
			t.Fatalf("List: %d backups, want %d", len(infos), n)
		}
	})
}

// ErrBrokenReader is what a FailingReader fails with.
var ErrBrokenReader = errors.New("backuptest: reader broke on purpose")

// FailingReader passes n bytes of r through, then fails with
// ErrBrokenReader.
func FailingReader(r io.Reader, n int64) io.Reader {
	return io.MultiReader(io.LimitReader(r, n), readerFunc(func([]byte) (int, error) {
		return 0, ErrBrokenReader
	}))
}

// OnlyReader hides every method of r but Read (a stream, not a file).
func OnlyReader(r io.Reader) io.Reader {
	return readerFunc(r.Read)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// NewInfo is a complete Info, every field set, for a backup taken at t at
// Raft index idx.
func NewInfo(t time.Time, idx uint64) backup.Info {
	return backup.Info{
		Name:          backup.NewName(t, idx),
		Time:          t.UTC(),
		NodeID:        "2",
		Cluster:       "prod-eu",
		RaftIndex:     idx,
		SHA256:        fmt.Sprintf("%064x", idx),
		KeyID:         "k2026",
		FormatVersion: 1,
	}
}

// Body is n pseudo-random bytes from seed.
func Body(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MustPut puts body as info, with info.Size set to its length.
func MustPut(t testing.TB, s backup.Store, info backup.Info, body []byte) {
	t.Helper()
	info.Size = int64(len(body))
	if err := s.Put(context.Background(), info, bytes.NewReader(body)); err != nil {
		t.Fatalf("Put %s: %v", info.Name, err)
	}
}

// MustGet reads a whole backup.
func MustGet(t testing.TB, s backup.Store, name string) ([]byte, backup.Info) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", name, err)
	}
	return b, info
}

// AssertEmpty checks that a store lists nothing and has no backup name.
func AssertEmpty(t testing.TB, s backup.Store, name string) {
	t.Helper()
	infos, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(infos) != 0 {
		t.Fatalf("List: %v, want nothing", Names(infos))
	}
	rc, _, err := s.Get(context.Background(), name)
	if err == nil {
		rc.Close()
		t.Fatalf("Get %s: found", name)
	}
	if !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("Get %s: %v, want backup.ErrNotFound", name, err)
	}
}

// AssertInfo checks every field of got against want (Time with Equal).
func AssertInfo(t testing.TB, what string, got, want backup.Info) {
	t.Helper()
	if !got.Time.Equal(want.Time) {
		t.Errorf("%s: Time %v, want %v", what, got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("%s: Info\n got %+v\nwant %+v", what, got, want)
	}
}

// Names lists the names of infos, in order.
func Names(infos []backup.Info) []string {
	names := make([]string, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	return names
}
