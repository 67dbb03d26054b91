package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Local keeps backups in a directory (node.data_dir/state_machine/backups):
// each backup file NAME beside a sidecar NAME.json holding its Info. A
// backup is listed only once its sidecar exists, and the sidecar is
// written last, so an interrupted backup is never listed.
type Local struct {
	dir string
}

var _ Store = (*Local)(nil)

// NewLocal returns a Local store in dir. It does no I/O.
func NewLocal(dir string) *Local { return &Local{dir: dir} }

// Dir is the store's directory.
func (l *Local) Dir() string { return l.dir }

const sidecarSuffix = ".json"

// Create opens a temporary file for a backup being written; Commit makes
// it a backup, Abort throws it away.
func (l *Local) Create(name string) (*os.File, error) {
	if _, _, err := ParseName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create backup directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(l.dir, ".tmp-"+name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create backup file: %w", err)
	}
	return f, nil
}

// Commit syncs the temporary file from Create, moves it into place and
// writes its sidecar. It closes f.
func (l *Local) Commit(f *os.File, info Info) error {
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("backup %s: sync: %w", info.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup %s: close: %w", info.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, info.Name)); err != nil {
		return fmt.Errorf("backup %s: rename: %w", info.Name, err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("backup %s: encode info: %w", info.Name, err)
	}
	if err := writeFileAtomic(filepath.Join(l.dir, info.Name+sidecarSuffix), b); err != nil {
		return fmt.Errorf("backup %s: write info: %w", info.Name, err)
	}
	return syncDir(l.dir)
}

// Abort removes the temporary file from Create.
func (l *Local) Abort(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// Put stores a backup read from r.
func (l *Local) Put(ctx context.Context, info Info, r io.Reader) error {
	f, err := l.Create(info.Name)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, readerWithContext(ctx, r))
	if err != nil {
		l.Abort(f)
		return fmt.Errorf("backup %s: write: %w", info.Name, err)
	}
	info.Size = n
	return l.Commit(f, info)
}

// List returns every complete backup, newest first.
func (l *Local) List(ctx context.Context) ([]Info, error) {
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.dir, err)
	}
	var out []Info
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), sidecarSuffix)
		if !ok || e.IsDir() {
			continue
		}
		if _, _, err := ParseName(name); err != nil {
			continue
		}
		info, err := l.stat(name)
		if err != nil {
			continue // the backup file is gone: not a backup
		}
		out = append(out, info)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	SortNewestFirst(out)
	return out, nil
}

func (l *Local) stat(name string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, name+sidecarSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Info{}, fmt.Errorf("read info of %s: %w", name, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("decode info of %s: %w", name, err)
	}
	if _, err := os.Stat(filepath.Join(l.dir, name)); err != nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return info, nil
}

// Get opens a backup's file.
func (l *Local) Get(_ context.Context, name string) (io.ReadCloser, Info, error) {
	if _, _, err := ParseName(name); err != nil {
		return nil, Info{}, err
	}
	info, err := l.stat(name)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(filepath.Join(l.dir, name))
	if err != nil {
		return nil, Info{}, fmt.Errorf("open backup %s: %w", name, err)
	}
	return f, info, nil
}

// Delete removes a backup: the sidecar first, so a half-deleted backup is
// never listed.
func (l *Local) Delete(_ context.Context, name string) error {
	if _, _, err := ParseName(name); err != nil {
		return err
	}
	for _, p := range []string{name + sidecarSuffix, name} {
		if err := os.Remove(filepath.Join(l.dir, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete backup %s: %w", name, err)
		}
	}
	return nil
}

// SortNewestFirst orders backups by time, newest first (by name when
// times are equal).
func SortNewestFirst(infos []Info) {
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].Time.Equal(infos[j].Time) {
			return infos[i].Time.After(infos[j].Time)
		}
		return infos[i].Name > infos[j].Name
	})
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readerWithContext stops reading once ctx ends.
func readerWithContext(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
