package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairndb/cairn/internal/testproc"
)

// EnvBin names the variable that points at the directory of the PostgreSQL
// server binaries (initdb, postgres).
const EnvBin = "CAIRN_PG_BIN"

// User is the superuser of every test cluster.
const User = "cairn"

// startTimeout bounds how long Start waits for the server to accept
// connections.
const startTimeout = 60 * time.Second

// Server is a running (or stopped) PostgreSQL cluster.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Password is the superuser's password.
	Password string
	// Dir holds the data directory, the socket and the log.
	Dir string

	bin  string
	cred *syscall.Credential // nil when not running as root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start makes a fresh cluster, starts it, and stops and deletes it when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Remove)
	t.Logf("postgres serving on %s (%s)", s.Addr, s.Dir)
	return s
}

// Launch makes a fresh cluster in a new temporary directory and starts it.
// The caller stops it and deletes its files with Remove.
func Launch() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user.
	dir, err := os.MkdirTemp("", "cairn-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin, cred: cred}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port may be taken between choosing and binding it: try a few.
	for attempt := 1; ; attempt++ {
		addr, err := testproc.FreeAddr()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.Addr = addr
		if err = s.Start(); err == nil {
			break
		}
		if attempt == 3 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return s, nil
}

// initdb makes the cluster with a password-protected superuser.
func (s *Server) initdb() error {
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	s.Password = hex.EncodeToString(pw)
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	if err := s.chown(s.Dir, pwfile); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.bin, "initdb"),
		"-D", s.dataDir(), "-U", User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	out, err := cmd.CombinedOutput()
	os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.Dir, "postgres.log") }

// Start starts the server on s.Addr (again, after Stop) and waits until it
// accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("postgres is already running")
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", s.dataDir(), "-p", port, "-k", s.Dir,
		"-c", "listen_addresses="+host,
		"-c", "max_connections=200",
		// The tests restart and drop databases; durability of the test
		// cluster itself does not matter.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("postgres on %s exited: %v\n%s", s.Addr, cmd.ProcessState, s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			break
		}
		cancel()
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres on %s did not accept connections within %s: %v\n%s", s.Addr, startTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

// Stop shuts the server down ("fast" mode: open connections are
// terminated) and waits for it. A stopped server can be started again.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd, s.exited = nil, nil
}

// Remove stops the server and deletes its files.
func (s *Server) Remove() {
	s.Stop()
	os.RemoveAll(s.Dir)
}

// URL is the connection URL of database db as the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(User, s.Password),
		Host:     s.Addr,
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDB makes a new, empty database named name.
func (s *Server) CreateDB(t testing.TB, name string) {
	t.Helper()
	if err := s.admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
}

// DropDB drops the database name, terminating its connections.
func (s *Server) DropDB(t testing.TB, name string) {
	t.Helper()
	if err := s.admin("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
		t.Fatalf("drop database %s: %v", name, err)
	}
}

// NewDB makes a fresh database with a unique name and returns its URL.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "test_" + hex.EncodeToString(b)
	s.CreateDB(t, name)
	return s.URL(name)
}

// Exec runs sql on database db as the superuser, for what a test must do
// outside the code under test.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (s *Server) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// BinDir finds the PostgreSQL server binaries: $CAIRN_PG_BIN, then the
// newest /usr/lib/postgresql/*/bin, then the directory of initdb on PATH.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBin); d != "" {
		if testproc.IsExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", fmt.Errorf("postgres not found: $%s=%s holds no postgres binary", EnvBin, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if testproc.IsExecutable(filepath.Join(d, "postgres")) && testproc.IsExecutable(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("postgres not found: run `make test-deps` (it installs Debian's postgresql), or set $" + EnvBin)
}

// version is the major version in /usr/lib/postgresql/VERSION/bin.
func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverCredential is the postgres user's when running as root, else nil.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root: %w (install Debian's postgresql package, which creates the postgres user)", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chown gives paths to the server's user when running as root.
func (s *Server) chown(paths ...string) error {
	if s.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// logTail is the end of the server's output, for failure messages.
func (s *Server) logTail() string { return testproc.LogTail(s.logPath(), "postgres log") }
