//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the cairn binary under test.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	binary = os.Getenv("CAIRN_BINARY")
	if binary == "" {
		dir, err := os.MkdirTemp("", "cairn-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "cairn")
		build := exec.Command("go", "build", "-o", binary, "github.com/cairndb/cairn/cmd/cairn")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build cairn:", err)
			return 1
		}
	}
	return m.Run()
}

// handedOut holds every address freeAddr has returned in this process:
// the kernel may offer a port again as soon as it is closed, and two nodes
// of one cluster must never be given the same one.
var handedOut sync.Map

// freeAddr returns a loopback address with a port that was free a moment
// ago and that no other caller in this process was given.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
	t.Fatal("no fresh loopback port after 100 tries")
	return ""
}

// node is one cairn process.
type node struct {
	t       testing.TB
	dataDir string
	http    string
	raft    string
	env     []string
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
}

// nodeOption changes how a node is started.
type nodeOption func(*node)

// withEnv adds KEY=VALUE settings.
func withEnv(kv ...string) nodeOption {
	return func(n *node) { n.env = append(n.env, kv...) }
}

// newNode prepares (but does not start) a single node with its own data
// directory and ports.
func newNode(t testing.TB, opts ...nodeOption) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{
		t:       t,
		dataDir: filepath.Join(dir, "data"),
		http:    freeAddr(t),
		raft:    freeAddr(t),
		logPath: filepath.Join(dir, "cairn.log"),
	}
	for _, o := range opts {
		o(n)
	}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("log of node %s:\n%s", n.http, lastLines(string(b), 60))
			}
		}
	})
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs the process and waits until /readyz answers 200.
func (n *node) start() {
	n.t.Helper()
	n.startNoWait()
	n.waitReady(30 * time.Second)
}

func (n *node) startNoWait() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{"serve"}, n.args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), n.settings()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("start cairn: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- cmd.Wait()
		logf.Close()
	}()
	n.cmd, n.done = cmd, done
}

// settings are the CAIRN_ variables the node runs with.
func (n *node) settings() []string {
	return append([]string{
		"CAIRN_NODE_DATA_DIR=" + n.dataDir,
		"CAIRN_NODE_HTTP_ADDR=" + n.http,
		"CAIRN_NODE_RAFT_ADDR=" + n.raft,
		"CAIRN_NODE_ID=1",
	}, n.env...)
}

// baseEnv is the test process's environment without any CAIRN_ settings.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return env
}

func (n *node) url(path string) string { return "http://" + n.http + path }

// waitReady polls /readyz until it answers 200 or the process exits.
func (n *node) waitReady(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.done:
			n.done <- err
			n.t.Fatalf("cairn exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(n.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("node %s not ready after %s", n.http, timeout)
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	n.signal(syscall.SIGTERM)
	if err := n.wait(30 * time.Second); err != nil {
		n.t.Fatalf("cairn did not exit cleanly on SIGTERM: %v", err)
	}
}

// kill sends SIGKILL (if running) and waits for the process to go.
func (n *node) kill() {
	n.signal(syscall.SIGKILL)
	n.wait(10 * time.Second)
}

func (n *node) signal(sig os.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit error.
func (n *node) wait(timeout time.Duration) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		n.mu.Lock()
		n.cmd, n.done = nil, nil
		n.mu.Unlock()
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running after %s", timeout)
	}
}

// response is the rqlite-shaped body of /db/* answers.
type response struct {
	Results []result `json:"results"`
	Error   string   `json:"error"`
	Time    float64  `json:"time"`
}

type result struct {
	LastInsertID int64            `json:"last_insert_id"`
	RowsAffected int64            `json:"rows_affected"`
	Columns      []string         `json:"columns"`
	Types        json.RawMessage  `json:"types"`
	Values       [][]any          `json:"values"`
	Rows         []map[string]any `json:"rows"`
	Error        string           `json:"error"`
	Time         float64          `json:"time"`
}

// do sends a request and decodes the JSON answer, with numbers kept exact.
func (n *node) do(method, path, body string) (int, response, []byte) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.url(path), rd)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var r response
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil && resp.Header.Get("Content-Type") == "application/json" {
		n.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
	}
	return resp.StatusCode, r, raw
}

// execute posts statements to /db/execute and fails the test on an HTTP or
// statement error.
func (n *node) execute(body string) response {
	n.t.Helper()
	code, r, raw := n.do("POST", "/db/execute", body)
	if code != http.StatusOK {
		n.t.Fatalf("execute %s: HTTP %d: %s", body, code, raw)
	}
	for i, res := range r.Results {
		if res.Error != "" {
			n.t.Fatalf("execute %s: statement %d: %s", body, i, res.Error)
		}
	}
	return r
}

// query runs one SELECT through GET /db/query?q= at the given level.
func (n *node) query(sql, level string) result {
	n.t.Helper()
	code, r, raw := n.do("POST", "/db/query?level="+level, mustJSON(n.t, []string{sql}))
	if code != http.StatusOK || len(r.Results) != 1 || r.Results[0].Error != "" {
		n.t.Fatalf("query %q: HTTP %d: %s", sql, code, raw)
	}
	return r.Results[0]
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
