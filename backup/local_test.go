package backup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLocal_PutListGetDelete(t *testing.T) {
	ctx := context.Background()
	l := NewLocal(filepath.Join(t.TempDir(), "backups"))
	if got, err := l.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store lists %v, %v", got, err)
	}
	t0 := time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)
	for i := range 3 {
		info := Info{Name: NewName(t0.Add(time.Duration(i)*time.Hour), uint64(10+i)), Time: t0.Add(time.Duration(i) * time.Hour), NodeID: "1", RaftIndex: uint64(10 + i), SHA256: "ab", KeyID: "k1", FormatVersion: 1}
		if err := l.Put(ctx, info, strings.NewReader("backup body "+info.Name)); err != nil {
			t.Fatal(err)
		}
	}
	// An interrupted backup (no sidecar) is never listed.
	f, err := l.Create(NewName(t0.Add(5*time.Hour), 99))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	f.Close()

	list, err := l.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if list[0].RaftIndex != 12 || list[2].RaftIndex != 10 {
		t.Errorf("not newest first: %v", list)
	}
	if list[0].Size != int64(len("backup body ")+len(list[0].Name)) || list[0].KeyID != "k1" {
		t.Errorf("info not kept: %+v", list[0])
	}
	rc, info, err := l.Get(ctx, list[1].Name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "backup body "+list[1].Name || info.RaftIndex != 11 {
		t.Errorf("get = %q %+v", b, info)
	}
	fi, err := os.Stat(filepath.Join(l.Dir(), list[1].Name))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode: %v %v", fi, err)
	}
	if err := l.Delete(ctx, list[1].Name); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Get(ctx, list[1].Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	for _, bad := range []string{"../etc/passwd", "cairn-x.cbk", "notes.txt"} {
		if _, _, err := l.Get(ctx, bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("get %q: %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	mk := func(l *Local, ages ...time.Duration) {
		for i, age := range ages {
			ts := now.Add(-age)
			if err := l.Put(ctx, Info{Name: NewName(ts, uint64(i+1)), Time: ts}, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("OlderThanKeep", func(t *testing.T) {
		l := NewLocal(t.TempDir())
		mk(l, time.Hour, 2*24*time.Hour, 4*24*time.Hour, 10*24*time.Hour)
		deleted, err := Prune(ctx, l, 3*24*time.Hour, now, nil)
		if err != nil || len(deleted) != 2 {
			t.Fatalf("deleted %v, %v", deleted, err)
		}
		left, _ := l.List(ctx)
		if len(left) != 2 {
			t.Errorf("left %v", left)
		}
	})
	t.Run("NewestSurvivesEvenWhenOld", func(t *testing.T) {
		l := NewLocal(t.TempDir())
		mk(l, 40*24*time.Hour, 50*24*time.Hour)
		deleted, err := Prune(ctx, l, 3*24*time.Hour, now, nil)
		if err != nil || len(deleted) != 1 {
			t.Fatalf("deleted %v, %v", deleted, err)
		}
		left, _ := l.List(ctx)
		if len(left) != 1 || now.Sub(left[0].Time) != 40*24*time.Hour {
			t.Errorf("left %v, want the newest", left)
		}
	})
	t.Run("Protected", func(t *testing.T) {
		l := NewLocal(t.TempDir())
		mk(l, time.Hour, 10*24*time.Hour)
		list, _ := l.List(ctx)
		deleted, err := Prune(ctx, l, 3*24*time.Hour, now, map[string]bool{list[1].Name: true})
		if err != nil || len(deleted) != 0 {
			t.Fatalf("deleted %v, %v", deleted, err)
		}
	})
}

func TestParseName(t *testing.T) {
	ts := time.Date(2026, 11, 23, 10, 38, 20, 0, time.UTC)
	name := NewName(ts, 42)
	if name != "cairn-20261123T103820Z-000000000000042.cbk" {
		t.Fatalf("name = %s", name)
	}
	got, idx, err := ParseName(name)
	if err != nil || !got.Equal(ts) || idx != 42 {
		t.Fatalf("ParseName = %v %d %v", got, idx, err)
	}
}
