//go:build integration

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/s3test"
)

// rowsOn returns the ids of table acks in one node's local copy, sorted.
func rowsOn(t *testing.T, n *node) string {
	t.Helper()
	q := n.query("SELECT id FROM acks ORDER BY id", "none")
	return fmt.Sprint(q.Values)
}

// insertRange inserts ids [from, to) through n.
func insertRange(n *node, from, to int) {
	for i := from; i < to; i++ {
		n.execute(fmt.Sprintf(`[["INSERT INTO acks (id, payload) VALUES (?, 'row')", %d]]`, i))
	}
}

// TestRestore_ClusterDrill is the disaster drill: three nodes with data, a
// backup to S3, every data directory deleted, all three started with
// CAIRN_BACKUP_RESTORE=s3:NAME: every node holds exactly the backup's rows,
// takes new writes, and keeps them across a restart with the variable still
// set.
func TestRestore_ClusterDrill(t *testing.T) {
	s := s3test.Start(t)
	env := append(s3Env(s, s.URL), "CAIRN_ENCRYPTION_KEYS="+testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1")
	c := newCluster(t, 3, withEnv(env...))
	leader := c.leader(30 * time.Second)
	leader.execute(acksTable)
	insertRange(leader, 1, 51)
	b := leader.createBackup()
	waitFor(t, 20*time.Second, "the backup's upload in the leader's metrics", func() bool {
		m := scrapeMetrics(t, leader, "")
		return m.sum("cairn_backup_uploads_total") >= 1 && m.sum("cairn_backup_last_upload_duration_seconds") > 0
	})
	insertRange(leader, 51, 61) // after the backup: must not come back
	var want []int64
	for i := 1; i <= 50; i++ {
		want = append(want, int64(i))
	}

	for _, n := range c.nodes {
		n.stop()
		if err := os.RemoveAll(n.dataDir); err != nil {
			t.Fatal(err)
		}
		n.env = append(n.env, "CAIRN_BACKUP_RESTORE=s3:"+b.Name)
	}
	for _, n := range c.nodes {
		n.startNoWait()
	}
	for _, n := range c.nodes {
		n.waitReady(60 * time.Second)
	}
	c.leader(30 * time.Second)
	c.waitConverged(want, 20*time.Second)
	for _, n := range c.nodes {
		if got := scrapeMetrics(t, n, "").sum("cairn_restore_runs_total"); got != 1 {
			t.Errorf("cairn_restore_runs_total on %s = %v, want 1", n.http, got)
		}
	}
	wantRows := rowsOn(t, c.nodes[0])
	for _, n := range c.nodes {
		if got := rowsOn(t, n); got != wantRows || strings.Contains(got, "51") {
			t.Fatalf("node %s after restore holds %s, want the backup's 50 rows", n.http, got)
		}
	}

	follower := c.followers()[0]
	insertRange(follower, 1000, 1020)
	for i := 1000; i < 1020; i++ {
		want = append(want, int64(i))
	}
	c.waitConverged(want, 20*time.Second)

	// Restart every node with the variable still set: the restore is not
	// applied again and the new writes stay.
	for _, n := range c.nodes {
		n.stop()
	}
	for _, n := range c.nodes {
		n.startNoWait()
	}
	for _, n := range c.nodes {
		n.waitReady(60 * time.Second)
	}
	c.waitConverged(want, 20*time.Second)
	for _, n := range c.nodes {
		log, _ := os.ReadFile(n.logPath)
		if !strings.Contains(string(log), "already applied") {
			t.Errorf("node %s log does not say the restore was already applied", n.http)
		}
	}
}

// TestRestore_File restores a single node from a file: an encrypted backup,
// then a plain SQLite file.
func TestRestore_File(t *testing.T) {
	keys := []string{"CAIRN_ENCRYPTION_KEYS=" + testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1"}
	src := newNode(t, withEnv(keys...))
	src.start()
	src.execute(acksTable)
	insertRange(src, 1, 11)
	b := src.createBackup()
	dir := t.TempDir()
	enc := filepath.Join(dir, "backup.cbk")
	plain := filepath.Join(dir, "plain.db")
	if out, code := runCairn(t, dir, keys, "backup", "download", b.Name, "-o", enc, "--addr", src.http); code != 0 {
		t.Fatalf("download: %s", out)
	}
	if out, code := runCairn(t, dir, keys, "backup", "download", b.Name, "--decrypt", "-o", plain, "--addr", src.http); code != 0 {
		t.Fatalf("download --decrypt: %s", out)
	}
	for _, c := range []struct{ name, path string }{{"Encrypted", enc}, {"PlainSQLite", plain}} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t, withEnv(append(keys, "CAIRN_BACKUP_RESTORE=file:"+c.path)...))
			n.start()
			if got := rowsOn(t, n); got != "[[1] [2] [3] [4] [5] [6] [7] [8] [9] [10]]" {
				t.Fatalf("restored rows = %s", got)
			}
			insertRange(n, 100, 101)
		})
	}
}

// TestRestore_FailuresLeaveDataIntact starts a node with data, then tries
// every kind of bad restore: each exits non-zero naming the cause, and the
// node's data is untouched afterwards.
func TestRestore_FailuresLeaveDataIntact(t *testing.T) {
	s := s3test.Start(t)
	keys := []string{"CAIRN_ENCRYPTION_KEYS=" + testKey("k1", 1), "CAIRN_ENCRYPTION_KEY_ACTIVE=k1"}
	n := newNode(t, withEnv(append(s3Env(s, s.URL), keys...)...))
	n.start()
	n.execute(acksTable)
	insertRange(n, 1, 6)
	b := n.createBackup()
	insertRange(n, 6, 8)
	n.stop()

	dir := t.TempDir()
	good := filepath.Join(dir, "good.cbk")
	src, err := os.ReadFile(filepath.Join(n.dataDir, "state_machine", "backups", b.Name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, src, 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.cbk")
	tb := append([]byte(nil), src...)
	tb[len(tb)/2] ^= 0x01
	os.WriteFile(tampered, tb, 0o600)
	truncated := filepath.Join(dir, "truncated.cbk")
	os.WriteFile(truncated, src[:len(src)-10], 0o600)
	notSQLite := filepath.Join(dir, "notes.txt")
	os.WriteFile(notSQLite, []byte("these are not the rows you are looking for"), 0o600)

	cases := []struct {
		name  string
		env   []string
		cause string
	}{
		{"UnknownKey", []string{"CAIRN_ENCRYPTION_KEYS=" + testKey("k9", 9), "CAIRN_ENCRYPTION_KEY_ACTIVE=k9", "CAIRN_BACKUP_RESTORE=file:" + good}, "k1"},
		{"Tampered", []string{"CAIRN_BACKUP_RESTORE=file:" + tampered}, "corrupt"},
		{"Truncated", []string{"CAIRN_BACKUP_RESTORE=file:" + truncated}, "truncated"},
		{"NotSQLite", []string{"CAIRN_BACKUP_RESTORE=file:" + notSQLite}, "not a"},
		{"MissingFile", []string{"CAIRN_BACKUP_RESTORE=file:" + filepath.Join(dir, "nope.cbk")}, "nope.cbk"},
		{"MissingObject", []string{"CAIRN_BACKUP_RESTORE=s3:cairn-20200101T000000Z-000000000000001.cbk"}, "not found"},
		{"S3Unreachable", []string{"CAIRN_S3_URL=http://127.0.0.1:1", "CAIRN_BACKUP_RESTORE=s3:latest"}, "unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := runCairn(t, t.TempDir(), append(n.settings(), c.env...), "serve")
			if code == 0 || !strings.Contains(strings.ToLower(out), strings.ToLower(c.cause)) || !strings.Contains(out, "untouched") {
				t.Fatalf("exit %d, want non-zero naming %q:\n%s", code, c.cause, lastLines(out, 10))
			}
		})
	}
	n.start()
	if got := rowsOn(t, n); got != "[[1] [2] [3] [4] [5] [6] [7]]" {
		t.Fatalf("data after the failed restores = %s, want the 7 rows it had", got)
	}
}
