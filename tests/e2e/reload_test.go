//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/pgtest"
	"github.com/cairndb/cairn/internal/s3test"
)

// logText is everything a node has logged so far.
func (n *node) logText() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// TestReload_SIGHUP changes the log level and format and the backup
// schedule in the configuration file, sends SIGHUP, and sees both take
// effect in the running process; a key that needs a restart is named, and
// an invalid file changes nothing.
func TestReload_SIGHUP(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cairn.toml")
	write := func(text string) {
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[log]\nlevel = \"info\"\n[backup]\ncron = \"\"\n")
	n := newNode(t)
	n.args = []string{"--config", cfgPath}
	n.start()
	n.execute(`["CREATE TABLE r (v INTEGER)", "INSERT INTO r VALUES (1)"]`)
	if st := n.backupStatus(); st["runs"].(json.Number).String() != "0" {
		t.Fatalf("backups ran without a schedule: %v", st)
	}
	pid := n.cmd.Process.Pid

	write("[log]\nlevel = \"debug\"\nformat = \"json\"\n[backup]\ncron = \"* * * * * *\"\nkeep_days_local = 1\n[http]\nmax_body_size = \"1MiB\"\n")
	n.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload to be logged", func() bool {
		return strings.Contains(n.logText(), `"msg":"configuration reloaded"`)
	})
	text := n.logText()
	if !strings.Contains(text, `"applied":["log.level","log.format","backup.cron","backup.keep_days_local"]`) &&
		!strings.Contains(text, "backup.cron") {
		t.Errorf("the reload does not list what it applied:\n%s", lastLines(text, 10))
	}
	if !strings.Contains(text, "http.max_body_size") || !strings.Contains(text, "need a restart") {
		t.Errorf("the reload does not name the key that needs a restart:\n%s", lastLines(text, 10))
	}
	// Debug lines (every request's line is debug) now appear, as JSON.
	n.query("SELECT count(*) FROM r", "none")
	waitFor(t, 5*time.Second, "a debug request line in JSON", func() bool {
		return strings.Contains(n.logText(), `"level":"DEBUG","msg":"http request"`)
	})
	// The new schedule runs backups every second.
	waitFor(t, 20*time.Second, "scheduled backups", func() bool {
		runs, _ := n.backupStatus()["runs"].(json.Number).Int64()
		return runs >= 2
	})
	if n.cmd.Process.Pid != pid {
		t.Fatal("the process was restarted")
	}

	// An invalid file is refused as a whole and the node keeps serving.
	write("[log]\nlevel = \"loud\"\n")
	n.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the refused reload to be logged", func() bool {
		return strings.Contains(n.logText(), `"msg":"reload failed`)
	})
	if !strings.Contains(n.logText(), "log.level") {
		t.Errorf("the refused reload does not name the bad key")
	}
	n.execute(`["INSERT INTO r VALUES (2)"]`)
}

// TestLogs_NoSecrets runs nodes with every kind of secret configured —
// cluster secret, S3 credentials, encryption keys, a PostgreSQL password —
// through writes, backups, a node with a wrong secret, a SIGHUP with new
// S3 credentials and a validate-only run, with JSON debug logs, and greps
// every line of output for each secret. Each line must also be one JSON
// object with time, level, msg and node.
func TestLogs_NoSecrets(t *testing.T) {
	s3 := s3test.Start(t)
	pg := pgtest.Start(t)
	key1 := testKey("k1", 7)
	encKeyMaterial := strings.SplitN(key1, "/", 2)[1]
	dbURL := pg.NewDB(t)
	secrets := map[string]string{
		"cluster secret":         testSecret,
		"S3 secret":              s3.Secret,
		"encryption key":         encKeyMaterial,
		"PostgreSQL password":    pg.Password,
		"wrong cluster secret":   "wrong-secret-0123456789abcdef",
		"raw encryption key hex": strings.ToLower(string(bytes.Repeat([]byte("07"), 32))),
	}
	rawKey, _ := base64.StdEncoding.DecodeString(encKeyMaterial)
	secrets["raw encryption key"] = string(rawKey)

	common := append(s3Env(s3, s3.URL), "CAIRN_ENCRYPTION_KEYS="+key1, "CAIRN_ENCRYPTION_KEY_ACTIVE=k1",
		"CAIRN_LOG_LEVEL=debug", "CAIRN_LOG_FORMAT=json", "CAIRN_BACKUP_CRON=")
	c := newCluster(t, 3, withEnv(common...))
	leader := c.leader(30 * time.Second)
	leader.execute(`["CREATE TABLE s (v TEXT)", "INSERT INTO s VALUES ('x')"]`)
	leader.createBackup()
	c.followers()[0].do("POST", "/db/execute", `["INSERT INTO s VALUES ('through a follower')"]`)

	// An operator with the wrong secret tries to add a node.
	join := exec.Command(binary, "cluster", "join", "--id", "9", "--raft-addr", "127.0.0.1:1", "--http-addr", "127.0.0.1:2", "--addr", leader.http)
	join.Env = append(baseEnv(), "CAIRN_CLUSTER_SECRET="+secrets["wrong cluster secret"])
	joinOut, err := join.CombinedOutput()
	if err == nil {
		t.Fatalf("a join signed with the wrong secret succeeded: %s", joinOut)
	}
	waitFor(t, 10*time.Second, "the refused join in the leader's log", func() bool {
		return strings.Contains(leader.logText(), `"path":"/join","status":401`)
	})

	// A Postgres-mode node, and a SIGHUP on the leader.
	pgNode := newNode(t, withEnv("CAIRN_DB_URL="+dbURL, "CAIRN_LOG_FORMAT=json", "CAIRN_LOG_LEVEL=debug"))
	pgNode.start()
	pgNode.execute(`["CREATE TABLE p (v INT)"]`)
	pgNode.do("POST", "/db/execute", `["INSERT INTO nowhere VALUES (1)"]`)
	leader.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload", func() bool { return strings.Contains(leader.logText(), "configuration reloaded") })

	// The CLI: validate-only prints the effective configuration.
	cmd := exec.Command(binary, "serve", "--validate-only")
	cmd.Env = append(baseEnv(), append(common, "CAIRN_CLUSTER_SECRET="+testSecret, "CAIRN_DB_URL="+dbURL)...)
	out, _ := cmd.CombinedOutput()

	outputs := map[string]string{"validate-only": string(out), "cluster join": string(joinOut)}
	for _, n := range append(append([]*node{}, c.nodes...), pgNode) {
		outputs["node "+n.http] = n.logText()
	}
	for where, text := range outputs {
		for what, secret := range secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("%s shows the %s", where, what)
			}
		}
		if !strings.HasPrefix(where, "node ") {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		lines := 0
		for sc.Scan() {
			lines++
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: a log line is not JSON: %q", where, sc.Text())
				break
			}
			for _, k := range []string{"time", "level", "msg", "node"} {
				if _, ok := m[k]; !ok {
					t.Errorf("%s: a log line lacks %q: %s", where, k, sc.Text())
					break
				}
			}
		}
		if lines == 0 {
			t.Errorf("%s logged nothing", where)
		}
	}
}
