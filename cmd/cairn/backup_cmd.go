package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/server"
	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// backupOptions are the flags every `cairn backup` subcommand shares.
type backupOptions struct {
	addr    string
	config  string
	timeout time.Duration
}

func newBackupCommand(env []string) *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "List, create, download and verify backups",
		Long: `Operate backups. By default the commands talk to a running node (--addr).
With --config they read the local backup directory and the S3 bucket of that
configuration directly, which works when no node is running.`,
	}
	cmd.PersistentFlags().StringVar(&o.addr, "addr", "127.0.0.1:4001", "HTTP address of any node")
	cmd.PersistentFlags().StringVarP(&o.config, "config", "c", "", "configuration file: work without a running node, straight on the backup directory and S3")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole command")
	cmd.AddCommand(newBackupListCommand(o, env), newBackupCreateCommand(o), newBackupDownloadCommand(o, env), newBackupVerifyCommand(o, env))
	return cmd
}

// direct is the backup stores of a configuration, used without a node.
type direct struct {
	cfg    *config.Config
	local  *backup.Local
	remote backup.Store
}

func (o *backupOptions) direct(env []string) (*direct, error) {
	if o.config == "" {
		return nil, nil
	}
	cfg, err := config.Load(o.config, env)
	if cfg == nil {
		return nil, err
	}
	var verr *config.ValidationError
	if err != nil && !errors.As(err, &verr) {
		return nil, err
	}
	if cfg.PostgresMode() {
		return nil, errors.New(postgresNoBackups)
	}
	d := &direct{cfg: cfg, local: backup.NewLocal(backupDir(cfg.Node.DataDir))}
	st, err := remoteStore(cfg)
	if err != nil {
		return nil, err
	}
	if st != nil {
		d.remote = st
	}
	return d, nil
}

func newBackupListCommand(o *backupOptions, env []string) *cobra.Command {
	var localOnly, remoteOnly, asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List backups, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if localOnly && remoteOnly {
				return errors.New("--local and --remote exclude each other")
			}
			where := server.BackupsAll
			switch {
			case localOnly:
				where = server.BackupsLocal
			case remoteOnly:
				where = server.BackupsRemote
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			entries, err := o.list(ctx, env, where)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"backups": entries})
			}
			return printBackups(cmd.OutOrStdout(), entries, time.Now())
		},
	}
	cmd.Flags().BoolVar(&localOnly, "local", false, "only the node's local backup directory")
	cmd.Flags().BoolVar(&remoteOnly, "remote", false, "only the S3 bucket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func (o *backupOptions) list(ctx context.Context, env []string, where server.BackupLocation) ([]server.BackupEntry, error) {
	d, err := o.direct(env)
	if err != nil {
		return nil, err
	}
	if d != nil {
		if where == server.BackupsRemote && d.remote == nil {
			return nil, errors.New("no S3 bucket is configured (s3.bucket)")
		}
		return listBackups(ctx, d.local, d.remote, where)
	}
	q := url.Values{}
	switch where {
	case server.BackupsLocal:
		q.Set("where", "local")
	case server.BackupsRemote:
		q.Set("where", "remote")
	}
	var out struct {
		Backups []server.BackupEntry `json:"backups"`
	}
	if err := o.getJSON(ctx, "/v1/backups?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return out.Backups, nil
}

func printBackups(w io.Writer, entries []server.BackupEntry, now time.Time) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "no backups")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTIME (UTC)\tAGE\tSIZE\tNODE\tKEY\tRAFT INDEX\tWHERE")
	for _, e := range entries {
		where := []string{}
		if e.Local {
			where = append(where, "local")
		}
		if e.Remote {
			where = append(where, "s3")
		}
		key := e.KeyID
		if key == "" {
			key = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Name, e.Time.UTC().Format("2006-01-02 15:04:05"), age(now.Sub(e.Time)),
			humanSize(e.Size), e.NodeID, key, e.RaftIndex, strings.Join(where, "+"))
	}
	return tw.Flush()
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newBackupCreateCommand(o *backupOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Ask the leader for a backup now, wait for it, and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			var info backup.Info
			if err := o.postJSON(ctx, "/v1/backups", &info); err != nil {
				return fmt.Errorf("create backup: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			// The listing says where the backup went (local, and S3 if
			// the upload succeeded).
			entry := server.BackupEntry{Info: info, Local: true}
			if all, err := o.list(ctx, nil, server.BackupsAll); err == nil {
				for _, e := range all {
					if e.Name == info.Name {
						entry = e
					}
				}
			}
			return printBackups(cmd.OutOrStdout(), []server.BackupEntry{entry}, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// open opens a backup's file from the node or, with --config, directly.
func (o *backupOptions) open(ctx context.Context, env []string, name string) (io.ReadCloser, backup.Info, error) {
	if _, _, err := backup.ParseName(name); err != nil {
		return nil, backup.Info{}, err
	}
	d, err := o.direct(env)
	if err != nil {
		return nil, backup.Info{}, err
	}
	if d != nil {
		rc, info, err := d.local.Get(ctx, name)
		if err == nil || d.remote == nil || !errors.Is(err, backup.ErrNotFound) {
			return rc, info, err
		}
		return d.remote.Get(ctx, name)
	}
	resp, err := o.request(ctx, http.MethodGet, "/v1/backups/"+url.PathEscape(name))
	if err != nil {
		return nil, backup.Info{}, err
	}
	info := backup.Info{Name: name, SHA256: resp.Header.Get("X-Cairn-Backup-Sha256"), KeyID: resp.Header.Get("X-Cairn-Backup-Key-Id"), Size: resp.ContentLength}
	info.RaftIndex, _ = strconv.ParseUint(resp.Header.Get("X-Cairn-Backup-Raft-Index"), 10, 64)
	return resp.Body, info, nil
}

// keyRing is the key ring of the configuration (or CAIRN_ENCRYPTION_*).
func (o *backupOptions) keyRing(env []string) (*format.KeyRing, error) {
	cfg, err := config.Load(o.config, env)
	if cfg == nil {
		return nil, err
	}
	return cfg.KeyRing()
}

func newBackupDownloadCommand(o *backupOptions, env []string) *cobra.Command {
	var (
		out     string
		decrypt bool
	)
	cmd := &cobra.Command{
		Use:   "download NAME",
		Short: "Download a backup (as stored, or decrypted to a SQLite file with --decrypt)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if out == "" {
				out = name
				if decrypt {
					out = strings.TrimSuffix(name, ".cbk") + ".db"
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			var ring *format.KeyRing
			if decrypt {
				var err error
				if ring, err = o.keyRing(env); err != nil {
					return fmt.Errorf("encryption keys: %w", err)
				}
			}
			rc, info, err := o.open(ctx, env, name)
			if err != nil {
				return fmt.Errorf("download %s: %w", name, err)
			}
			defer rc.Close()
			src := io.Reader(newProgress(rc, info.Size, cmd.ErrOrStderr(), "download "+name))
			if decrypt {
				r, err := format.NewReader(src, ring)
				if err != nil {
					return fmt.Errorf("download %s: %w", name, err)
				}
				src = r
			}
			if err := writeFileAtomic(out, src); err != nil {
				return fmt.Errorf("download %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s written to %s\n", name, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default: the backup's name, or NAME.db with --decrypt)")
	cmd.Flags().BoolVar(&decrypt, "decrypt", false, "decrypt and decompress into a plain SQLite file (needs the encryption keys: --config or CAIRN_ENCRYPTION_KEYS)")
	return cmd
}

// writeFileAtomic writes r to path through a temporary file, so a failed
// or corrupt download never leaves a file that looks complete.
func writeFileAtomic(path string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cairn-download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newBackupVerifyCommand(o *backupOptions, env []string) *cobra.Command {
	return &cobra.Command{
		Use:   "verify NAME",
		Short: "Decrypt a backup, check its checksum and SQLite's integrity, count rows per table",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			ring, err := o.keyRing(env)
			if err != nil {
				return fmt.Errorf("encryption keys: %w", err)
			}
			rc, info, err := o.open(ctx, env, name)
			if err != nil {
				return fmt.Errorf("verify %s: %w", name, err)
			}
			defer rc.Close()
			r, err := format.NewReader(newProgress(rc, info.Size, cmd.ErrOrStderr(), "verify "+name), ring)
			if err != nil {
				return fmt.Errorf("verify %s: %w", name, err)
			}
			dir, err := os.MkdirTemp("", "cairn-verify-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "backup.db")
			// The reader checks every chunk and, at the end, the checksum
			// and length of the whole plaintext.
			if err := writeFileAtomic(path, r); err != nil {
				return fmt.Errorf("verify %s: %w", name, err)
			}
			counts, err := checkDatabase(ctx, path)
			if err != nil {
				return fmt.Errorf("verify %s: %w", name, err)
			}
			h := r.Header()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: OK\n  checksum   verified (sha256 of the database)\n  integrity  ok\n  taken      %s by node %s at raft index %d\n  key        %s\n",
				name, h.Time.UTC().Format(time.RFC3339), h.NodeID, h.RaftIndex, keyOrNone(h.KeyID))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  TABLE\tROWS")
			for _, c := range counts {
				fmt.Fprintf(tw, "  %s\t%d\n", c.table, c.rows)
			}
			return tw.Flush()
		},
	}
}

func keyOrNone(k string) string {
	if k == "" {
		return "(not encrypted)"
	}
	return k
}

type tableCount struct {
	table string
	rows  int64
}

// checkDatabase runs PRAGMA integrity_check on the SQLite file at path and
// counts the rows of every table.
func checkDatabase(ctx context.Context, path string) ([]tableCount, error) {
	if err := statemachine.CheckFile(path); err != nil {
		return nil, err
	}
	db, err := statemachine.Open(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q := func(sql string) ([][]any, error) {
		res, err := db.Query(ctx, &command.Request{Statements: []*command.Statement{{Sql: sql, ReturnsRows: true}}})
		if err != nil {
			return nil, err
		}
		if res[0].Error != "" {
			return nil, errors.New(res[0].Error)
		}
		return res[0].Values, nil
	}
	rows, err := q("PRAGMA integrity_check")
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if len(rows) != 1 || rows[0][0] != "ok" {
		return nil, fmt.Errorf("integrity check failed: %v", rows)
	}
	tables, err := q("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return nil, err
	}
	var out []tableCount
	for _, t := range tables {
		name, _ := t[0].(string)
		n, err := q(`SELECT COUNT(*) FROM "` + strings.ReplaceAll(name, `"`, `""`) + `"`)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		c, _ := n[0][0].(int64)
		out = append(out, tableCount{table: name, rows: c})
	}
	return out, nil
}

// request sends a request to the node and fails on a non-2xx answer,
// quoting the node's error.
func (o *backupOptions) request(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+o.addr+path, nil)
	if err != nil {
		return nil, err
	}
	authorize(req)
	resp, err := nodeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w (is it running? without a node, use --config)", o.addr, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("node %s: HTTP %d: %s", o.addr, resp.StatusCode, e.Error)
	}
	return nil, fmt.Errorf("node %s: HTTP %d: %s", o.addr, resp.StatusCode, strings.TrimSpace(string(b)))
}

func (o *backupOptions) getJSON(ctx context.Context, path string, v any) error {
	resp, err := o.request(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func (o *backupOptions) postJSON(ctx context.Context, path string, v any) error {
	// A follower redirects to the leader with 307; Go's client follows it
	// for a POST without a body.
	resp, err := o.request(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// progress reports a transfer's progress on a terminal.
type progress struct {
	r     io.Reader
	total int64
	done  int64
	w     io.Writer
	label string
	last  time.Time
	tty   bool
}

func newProgress(r io.Reader, total int64, w io.Writer, label string) io.Reader {
	f, ok := w.(*os.File)
	if !ok {
		return r
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return r
	}
	return &progress{r: r, total: total, w: w, label: label, tty: true}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err != nil {
		p.last = now
		if p.total > 0 {
			fmt.Fprintf(p.w, "\r%s: %s / %s (%d%%)   ", p.label, humanSize(p.done), humanSize(p.total), p.done*100/p.total)
		} else {
			fmt.Fprintf(p.w, "\r%s: %s   ", p.label, humanSize(p.done))
		}
		if err != nil {
			fmt.Fprintln(p.w)
		}
	}
	return n, err
}
