package testproc

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpers(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the free address %s cannot be bound: %v", addr, err)
	}
	l.Close()

	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(plain, []byte(strings.Repeat("x", 5000)+"END\n"), 0o644)
	if !IsExecutable(exe) || IsExecutable(plain) || IsExecutable(dir) {
		t.Error("IsExecutable is wrong")
	}
	tail := LogTail(plain, "server output")
	if !strings.HasPrefix(tail, "server output:\n") || !strings.HasSuffix(tail, "END") || len(tail) > 4100 {
		t.Errorf("LogTail = %q…", tail[:40])
	}
	if LogTail(filepath.Join(dir, "missing"), "x") != "" {
		t.Error("LogTail of a missing file is not empty")
	}
}
