//go:build integration

package e2e

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCairn runs the binary to completion and returns its combined output
// and exit code.
func runCairn(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run cairn: %v", err)
	return "", -1
}

func TestServe_ValidateOnly(t *testing.T) {
	dir := t.TempDir()
	t.Run("Valid", func(t *testing.T) {
		out, code := runCairn(t, dir, []string{"CAIRN_CLUSTER_SECRET=0123456789abcdef-very-secret"}, "serve", "--validate-only")
		if code != 0 || !strings.Contains(out, "http_addr") {
			t.Fatalf("exit %d: %s", code, out)
		}
		if strings.Contains(out, "0123456789abcdef-very-secret") {
			t.Errorf("the secret was printed: %s", out)
		}
	})
	t.Run("EveryProblemListed", func(t *testing.T) {
		cfg := filepath.Join(dir, "cairn.toml")
		if err := os.WriteFile(cfg, []byte("[node]\nhttp_adr = \"127.0.0.1:1\"\n\n[log]\nlevel = \"loud\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runCairn(t, dir, []string{"CAIRN_NODE_RAFT_ADDR=nowhere", "CAIRN_HTTP_MAX_BODY_SIZE=${MISSING_VAR}"}, "serve", "--validate-only", "-c", cfg)
		if code == 0 {
			t.Fatalf("exit 0 for a bad configuration: %s", out)
		}
		for _, want := range []string{"node.http_adr", "log.level", "loud", "node.raft_addr", "CAIRN_NODE_RAFT_ADDR", "MISSING_VAR", "cairn.toml"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not mention %q:\n%s", want, out)
			}
		}
	})
	t.Run("RestoreRefusedInPostgresMode", func(t *testing.T) {
		out, code := runCairn(t, dir, []string{"CAIRN_DB_URL=postgres://cairn@127.0.0.1:5432/cairn", "CAIRN_BACKUP_RESTORE=s3:latest"}, "serve", "--validate-only")
		if code == 0 || !strings.Contains(out, "backup.restore") || !strings.Contains(out, "pg_restore") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("ServeRefusesBadConfig", func(t *testing.T) {
		out, code := runCairn(t, dir, []string{"CAIRN_LOG_FORMAT=xml"}, "serve")
		if code == 0 || !strings.Contains(out, "log.format") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
}

func TestVersion(t *testing.T) {
	out, code := runCairn(t, t.TempDir(), nil, "version")
	if code != 0 || !strings.HasPrefix(out, "cairn ") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestServe_Defaults runs `cairn serve` exactly as `make run` does: no
// configuration, no CAIRN_ variables. It needs 127.0.0.1:4001 and :4002
// free.
func TestServe_Defaults(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = baseEnv()
	logPath := filepath.Join(dir, "log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log:\n%s", b)
		}
	}()

	n := &node{t: t, http: "127.0.0.1:4001"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("cairn serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("cairn serve on the defaults never became ready on 127.0.0.1:4001")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.execute(`["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"]`)
	st := n.status()
	store, _ := st["store"].(map[string]any)
	if addr, _ := store["addr"].(string); addr != "127.0.0.1:4002" {
		t.Errorf("raft address = %q, want 127.0.0.1:4002", addr)
	}
	fi, err := os.Stat(filepath.Join(dir, "cairn-data", "state_machine", "db", "cairn.db"))
	if err != nil {
		t.Fatalf("database not in ./cairn-data: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v", fi.Mode().Perm())
	}
}
