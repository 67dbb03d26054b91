// Package testproc holds what tests that run real processes share:
// finding an executable, choosing a free loopback port, quoting the end of
// a server's log in a failure message, and checking that a data directory
// is private.
package testproc

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// IsExecutable reports whether p is a regular file someone may execute.
func IsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// FreeAddr returns a loopback address with a port nothing listens on right
// now. Another process may take it before the caller binds it: callers
// retry a start that fails.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// LogTail is the last 4000 bytes of the log file at path under a heading
// naming what wrote it, or "" when it cannot be read.
func LogTail(path, what string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return what + ":\n" + string(bytes.TrimSpace(b))
}

// CheckPrivate fails t for every file under dir whose mode is not 0600 and
// every directory whose mode is not 0700: what a node's data must be.
func CheckPrivate(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
