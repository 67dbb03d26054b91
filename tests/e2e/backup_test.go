//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/s3test"
	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// testKey returns an encryption key entry "id/base64".
func testKey(id string, b byte) string {
	return id + "/" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// s3Env is the node configuration for an S3 server.
func s3Env(s *s3test.Server, url string) []string {
	return []string{
		"CAIRN_S3_URL=" + url, "CAIRN_S3_BUCKET=" + s.Bucket, "CAIRN_S3_REGION=" + s.Region,
		"CAIRN_S3_PATH_STYLE=true", "CAIRN_S3_KEY=" + s.Key, "CAIRN_S3_SECRET=" + s.Secret,
	}
}

// backupEntry is one entry of GET /v1/backups.
type backupEntry struct {
	Name      string    `json:"name"`
	Time      time.Time `json:"time"`
	NodeID    string    `json:"node_id"`
	RaftIndex uint64    `json:"raft_index"`
	KeyID     string    `json:"key_id"`
	SHA256    string    `json:"sha256"`
	Local     bool      `json:"local"`
	Remote    bool      `json:"remote"`
}

func (n *node) backups(where string) []backupEntry {
	n.t.Helper()
	resp, err := http.Get(n.url("/v1/backups?where=" + where))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Backups []backupEntry `json:"backups"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		n.t.Fatalf("GET /v1/backups: HTTP %d", resp.StatusCode)
	}
	return out.Backups
}

func (n *node) createBackup() backupEntry {
	n.t.Helper()
	resp, err := http.Post(n.url("/v1/backups"), "application/json", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e backupEntry
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &e) != nil {
		n.t.Fatalf("POST /v1/backups: HTTP %d: %s", resp.StatusCode, b)
	}
	return e
}

// backupStatus reads the "backup" section of /status.
func (n *node) backupStatus() map[string]any {
	n.t.Helper()
	st := n.status()
	b, _ := st["backup"].(map[string]any)
	return b
}

// openDecrypted runs `cairn backup download --decrypt` and opens the result.
func openDecrypted(t *testing.T, env []string, args ...string) *statemachine.DB {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "restored.db")
	res, code := runCairn(t, dir, env, append([]string{"backup", "download", "--decrypt", "-o", out}, args...)...)
	if code != 0 {
		t.Fatalf("cairn backup download: exit %d: %s", code, res)
	}
	db, err := statemachine.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryDB(t *testing.T, db *statemachine.DB, sql string) [][]any {
	t.Helper()
	res, err := db.Query(context.Background(), &command.Request{Statements: []*command.Statement{{Sql: sql, ReturnsRows: true}}})
	if err != nil || res[0].Error != "" {
		t.Fatalf("%s: %v %s", sql, err, res[0].Error)
	}
	return res[0].Values
}

// TestBackup_UnderWriteLoad takes a backup while writers run: decrypted, it
// passes integrity_check and holds exactly the rows of the entries up to
// its recorded Raft index (every insert here is one log entry).
func TestBackup_UnderWriteLoad(t *testing.T) {
	s := s3test.Start(t)
	keys := []string{"CAIRN_ENCRYPTION_KEYS=" + testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1"}
	n := newNode(t, withEnv(append(s3Env(s, s.URL), keys...)...))
	n.start()
	n.execute(`["CREATE TABLE acks (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"]`)
	// Pad the database so the copy takes a moment.
	n.execute(`["CREATE TABLE pad (b BLOB)", "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000) INSERT INTO pad SELECT randomblob(1000) FROM c"]`)
	st, _ := n.state()
	base := st.Applied

	w := &writer{n: n}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, 8, 1) }()
	waitFor(t, 30*time.Second, "writes flowing", func() bool { return len(w.ackedIDs()) > 200 })
	b := n.createBackup()
	waitFor(t, 30*time.Second, "writes after the backup", func() bool { return len(w.ackedIDs()) > 400 })
	cancel()
	<-done

	if b.KeyID != "k1" || b.RaftIndex <= base {
		t.Fatalf("backup = %+v (base index %d)", b, base)
	}
	db := openDecrypted(t, keys, b.Name, "--addr", n.http)
	if got := queryDB(t, db, "PRAGMA integrity_check"); fmt.Sprint(got) != "[[ok]]" {
		t.Fatalf("integrity_check = %v", got)
	}
	rows := queryDB(t, db, "SELECT COUNT(*) FROM acks")[0][0].(int64)
	if want := int64(b.RaftIndex - base); rows != want {
		t.Fatalf("backup at index %d (writes from index %d) holds %d rows, want %d", b.RaftIndex, base, rows, want)
	}
	t.Logf("backup %s at index %d holds exactly %d rows; %d writes acknowledged in all", b.Name, b.RaftIndex, rows, len(w.ackedIDs()))

	// The same backup is in S3, and `cairn backup verify` passes.
	if list := n.backups("remote"); len(list) != 1 || list[0].Name != b.Name {
		t.Fatalf("remote listing = %+v", list)
	}
	out, code := runCairn(t, t.TempDir(), keys, "backup", "verify", b.Name, "--addr", n.http)
	if code != 0 || !strings.Contains(out, "integrity  ok") || !strings.Contains(out, "acks") {
		t.Fatalf("cairn backup verify: exit %d: %s", code, out)
	}
}

// flakyProxy forwards TCP to target, or, while down, drops every
// connection: an S3 endpoint that is unreachable and comes back.
type flakyProxy struct {
	l      net.Listener
	target string
	down   atomic.Bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *flakyProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{l: l, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

// TestBackup_S3DownThenBack: with S3 unreachable the backup is still made
// locally, the failure shows in /status, and the next backup uploads both.
// Then the CLI lists, downloads and verifies from S3 with the node stopped.
func TestBackup_S3DownThenBack(t *testing.T) {
	s := s3test.Start(t)
	proxy := startProxy(t, strings.TrimPrefix(s.URL, "http://"))
	keys := []string{"CAIRN_ENCRYPTION_KEYS=" + testKey("k1", 1) + "," + testKey("k2", 2), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1"}
	env := append(s3Env(s, "http://"+proxy.l.Addr().String()), keys...)
	n := newNode(t, withEnv(env...))
	n.start()
	n.execute(`["CREATE TABLE t (v TEXT)", "INSERT INTO t VALUES ('one')"]`)

	proxy.down.Store(true)
	first := n.createBackup()
	bs := n.backupStatus()
	if errText, _ := bs["upload_error"].(string); errText == "" || fmt.Sprint(bs["pending_uploads"]) != "1" {
		t.Fatalf("S3 down: backup status = %v", bs)
	}
	if strings.Contains(fmt.Sprint(bs), s.Secret) {
		t.Fatal("the S3 secret is in /status")
	}
	if local := n.backups("local"); len(local) != 1 || local[0].Name != first.Name {
		t.Fatalf("local backups with S3 down: %+v", local)
	}
	code, health := n.get("/healthz")
	if code != http.StatusOK || !strings.Contains(health, `"name":"backup","status":"degraded"`) || !strings.Contains(health, `"name":"s3","status":"failing"`) {
		t.Errorf("/healthz with S3 down: HTTP %d: %s", code, health)
	}
	if _, m := n.get("/metrics"); !strings.Contains(m, "cairn_backup_upload_failures_total 1") || !strings.Contains(m, "cairn_backup_pending_uploads 1") {
		t.Errorf("/metrics lacks the failed upload:\n%s", grepLines(m, "cairn_backup"))
	}

	proxy.down.Store(false)
	n.execute(`["INSERT INTO t VALUES ('two')"]`)
	second := n.createBackup()
	remote := n.backups("remote")
	if len(remote) != 2 || remote[0].Name != second.Name || remote[1].Name != first.Name {
		t.Fatalf("after S3 came back the remote holds %+v, want both backups", remote)
	}
	if bs := n.backupStatus(); bs["upload_error"] != nil || fmt.Sprint(bs["pending_uploads"]) != "0" {
		t.Fatalf("status after recovery = %v", bs)
	}

	// Every node stopped: the CLI works straight on S3 with --config.
	n.stop()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cairn.toml")
	toml := fmt.Sprintf("[node]\ndata_dir = %q\n[s3]\nurl = %q\nbucket = %q\npath_style = true\nkey = %q\nsecret = \"${S3_SECRET}\"\n",
		filepath.Join(dir, "nodata"), s.URL, s.Bucket, s.Key)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cliEnv := append([]string{"S3_SECRET=" + s.Secret}, keys...)
	out, code := runCairn(t, dir, cliEnv, "backup", "list", "--remote", "-c", cfg)
	if code != 0 || !strings.Contains(out, first.Name) || !strings.Contains(out, second.Name) {
		t.Fatalf("cairn backup list -c (no node): exit %d: %s", code, out)
	}
	db := openDecrypted(t, cliEnv, first.Name, "-c", cfg)
	if got := queryDB(t, db, "SELECT v FROM t"); fmt.Sprint(got) != "[[one]]" {
		t.Fatalf("first backup holds %v", got)
	}
	out, code = runCairn(t, dir, cliEnv, "backup", "verify", second.Name, "-c", cfg)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("cairn backup verify -c: exit %d: %s", code, out)
	}

	t.Run("WrongKeyRefused", func(t *testing.T) {
		bad := []string{"S3_SECRET=" + s.Secret, "CAIRN_ENCRYPTION_KEYS=" + testKey("k9", 9), "CAIRN_ENCRYPTION_KEY_ACTIVE=k9"}
		out, code := runCairn(t, dir, bad, "backup", "verify", first.Name, "-c", cfg)
		if code == 0 || !strings.Contains(out, "k1") {
			t.Fatalf("verify with the wrong key: exit %d: %s", code, out)
		}
	})
	t.Run("TamperedRefused", func(t *testing.T) {
		// Flip a byte of the object in the server's directory.
		path := filepath.Join(s.Dir, s.Bucket, second.Name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("cannot reach the stored object: %v", err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runCairn(t, dir, cliEnv, "backup", "verify", second.Name, "-c", cfg)
		if code == 0 || !strings.Contains(strings.ToLower(out), "corrupt") {
			t.Fatalf("verify of a tampered backup: exit %d: %s", code, out)
		}
	})
}

// get fetches a path and returns the status and body.
func (n *node) get(path string) (int, string) {
	n.t.Helper()
	resp, err := http.Get(n.url(path))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBackup_WrongS3Credentials: the backup is made locally, and the
// failure names the credentials problem (never the secret) in /status and
// /healthz.
func TestBackup_WrongS3Credentials(t *testing.T) {
	s := s3test.Start(t)
	env := s3Env(s, s.URL)
	const wrong = "definitely-not-the-secret-0123"
	env = append(env, "CAIRN_S3_SECRET="+wrong, "CAIRN_ENCRYPTION_KEYS="+testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1")
	n := newNode(t, withEnv(env...))
	n.start()
	b := n.createBackup()
	if local := n.backups("local"); len(local) != 1 || local[0].Name != b.Name {
		t.Fatalf("local backups: %+v", local)
	}
	bs := n.backupStatus()
	upload, _ := bs["upload_error"].(string)
	if !strings.Contains(upload, "credentials") || strings.Contains(upload, wrong) {
		t.Fatalf("upload error = %q", upload)
	}
	_, health := n.get("/healthz")
	if !strings.Contains(health, `"name":"s3","status":"failing"`) || strings.Contains(health, wrong) {
		t.Errorf("/healthz: %s", health)
	}
	if !strings.Contains(health, `"last_success_age_seconds":`) {
		t.Errorf("/healthz does not give the age of the last backup: %s", health)
	}
	log, _ := os.ReadFile(n.logPath)
	if strings.Contains(string(log), wrong) || strings.Contains(string(log), s.Secret) {
		t.Error("an S3 secret is in the log")
	}
}

// TestBackup_ScheduleMovesWithLeadership runs a three-node cluster with a
// backup every two seconds: the leader takes them, and after it stops the
// new leader does.
func TestBackup_ScheduleMovesWithLeadership(t *testing.T) {
	s := s3test.Start(t)
	env := append(s3Env(s, s.URL), "CAIRN_BACKUP_CRON=*/2 * * * * * *", "CAIRN_ENCRYPTION_KEYS="+testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1")
	c := newCluster(t, 3, withEnv(env...))
	leader := c.leader(30 * time.Second)
	leader.execute(`["CREATE TABLE t (v)"]`)
	leaderID, _ := leader.state()
	other := c.followers()[0]
	waitFor(t, 20*time.Second, "a scheduled backup by the leader", func() bool {
		for _, b := range other.backups("remote") {
			if b.NodeID == leaderID.ID {
				return true
			}
		}
		return false
	})
	leader.stop()
	next := c.leader(30 * time.Second)
	nextID, _ := next.state()
	waitFor(t, 20*time.Second, "a scheduled backup by the new leader", func() bool {
		for _, b := range next.backups("remote") {
			if b.NodeID == nextID.ID {
				return true
			}
		}
		return false
	})
	// Followers never back up.
	for _, n := range c.running() {
		if n == next {
			continue
		}
		if local := n.backups("local"); len(local) != 0 {
			st, _ := n.state()
			if st.State != "Leader" {
				for _, b := range local {
					if b.NodeID == st.ID && b.Time.After(time.Now().Add(-2*time.Second)) {
						t.Errorf("follower %s made backup %s", st.ID, b.Name)
					}
				}
			}
		}
	}
}
