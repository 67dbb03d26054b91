// Package testproc holds what the test packages that run real servers
// (pgtest, s3test) share: finding an executable, choosing a free loopback
// port, and quoting the end of a server's log in a failure message.
package testproc

import (
	"bytes"
	"net"
	"os"
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
