package main

// The backup measurement runs in this process, so that the memory it
// reports is the backup's own: it fills a SQLite database of -backup-size
// bytes, starts versitygw as the S3 server, and backs the database up as
// backup.Scheduler does, phase by phase (snapshot, compress+encrypt,
// upload), then once more through Scheduler.Run. A goroutine samples
// VmRSS and the Go heap every 10 ms, because VmHWM cannot be reset.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
	"github.com/cairndb/cairn/backup/s3"
	"github.com/cairndb/cairn/internal/s3test"
	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// The goals of the backup measurement (issue: a 1 GiB backup in under
// 20 s, growing the process by less than 64 MiB).
const (
	goalBackupSeconds = 20
	goalRSSGrowthMiB  = 64
)

// BackupResult is the backup measurement in the JSON report. Sizes are in
// bytes, times in seconds, memory in MiB.
type BackupResult struct {
	SizeBytes int64   `json:"size_bytes"`
	Rows      int64   `json:"rows"`
	GenerateS float64 `json:"generate_s"`
	// SnapshotS, CompressEncryptS and UploadS are the phases of one
	// backup, TotalS their sum; SchedulerRunS is a second backup made by
	// backup.Scheduler.Run.
	SnapshotS        float64       `json:"snapshot_s"`
	CompressEncryptS float64       `json:"compress_encrypt_s"`
	UploadS          float64       `json:"upload_s"`
	TotalS           float64       `json:"total_s"`
	SchedulerRunS    float64       `json:"scheduler_run_s"`
	BackupFileBytes  int64         `json:"backup_file_bytes"`
	RSSBeforeMiB     float64       `json:"rss_before_mib"`
	RSSGrowthMiB     float64       `json:"rss_growth_mib"`
	SchedulerRSSMiB  float64       `json:"scheduler_rss_growth_mib"`
	HeapPeakMiB      float64       `json:"heap_peak_mib"`
	SchedulerHeapMiB float64       `json:"scheduler_heap_peak_mib"`
	Phases           []BackupPhase `json:"phases"`
}

// BackupPhase is one row of the backup table: how long the phase took,
// the bytes it processed, and the peak RSS growth (over the RSS before
// the backup) and Go heap during it.
type BackupPhase struct {
	Phase        string  `json:"phase"`
	Seconds      float64 `json:"seconds"`
	Bytes        int64   `json:"bytes"`
	RSSGrowthMiB float64 `json:"rss_growth_mib"`
	HeapPeakMiB  float64 `json:"heap_peak_mib"`
}

// byteSize is a flag value such as "1GiB", "256MiB", "500MB" or "1048576".
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return fmt.Errorf("size %q: want a number and a unit, such as 1GiB or 256MiB", s)
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
	}
	u, ok := units[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return fmt.Errorf("size %q: unknown unit %q (KiB, MiB, GiB, KB, MB, GB)", s, s[i:])
	}
	if n*u < 1 || n*u > math.MaxInt64/2 {
		return fmt.Errorf("size %q: out of range", s)
	}
	*b = byteSize(n * u)
	return nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// benchBackup makes a database of size bytes under work and measures
// backing it up to a real S3 server. With profileDir set, it writes a CPU
// profile of each phase there.
func benchBackup(work string, size int64, profileDir string) (*BackupResult, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp(work, "backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	db, err := statemachine.Open(filepath.Join(dir, "db", "cairn.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res := &BackupResult{}
	fmt.Fprintf(os.Stderr, "backup: generating a %s database\n", formatBytes(size))
	start := time.Now()
	index, err := generate(ctx, db, size, &res.Rows)
	if err != nil {
		return nil, fmt.Errorf("generate database: %w", err)
	}
	res.GenerateS = time.Since(start).Seconds()
	if fi, err := os.Stat(db.Path()); err == nil {
		res.SizeBytes = fi.Size()
	}

	s3dir := filepath.Join(dir, "s3")
	if err := os.MkdirAll(s3dir, 0o700); err != nil {
		return nil, err
	}
	srv, err := s3test.Launch(s3dir)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	ring, err := benchKeyRing()
	if err != nil {
		return nil, err
	}
	storeAt := func(prefix string) (*s3.Store, error) {
		return s3.New(s3.Config{
			URL: srv.URL, Bucket: srv.Bucket, Region: srv.Region, PathStyle: true,
			Key: srv.Key, Secret: srv.Secret, Prefix: prefix,
		})
	}
	phased, err := storeAt("phases/")
	if err != nil {
		return nil, err
	}

	mem, err := watchMemory(10 * time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer mem.stop()
	before := mem.baseline()
	res.RSSBeforeMiB = mib(before)
	fmt.Fprintf(os.Stderr, "backup: %s database, %d rows, generated in %.1f s; RSS before the backup %.1f MiB\n",
		formatBytes(res.SizeBytes), res.Rows, res.GenerateS, res.RSSBeforeMiB)
	phase := func(name string, bytes int64, fn func() error) error {
		stopProfile, err := startProfile(profileDir, name)
		if err != nil {
			return err
		}
		start := time.Now()
		err = fn()
		d := time.Since(start)
		stopProfile()
		rss, heap := mem.take()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		p := BackupPhase{Phase: name, Seconds: d.Seconds(), Bytes: bytes, RSSGrowthMiB: mib(rss) - mib(before), HeapPeakMiB: mib(heap)}
		res.Phases = append(res.Phases, p)
		fmt.Fprintf(os.Stderr, "backup: %s %.2f s, RSS growth %.1f MiB\n", name, p.Seconds, p.RSSGrowthMiB)
		return nil
	}

	// The phases, as Scheduler.take and uploadOne run them.
	phases := filepath.Join(dir, "phases")
	if err := os.Mkdir(phases, 0o700); err != nil {
		return nil, err
	}
	taken := time.Now()
	copyPath := filepath.Join(phases, "copy.db")
	if err := phase("snapshot", res.SizeBytes, func() error {
		index, err = db.Copy(ctx, copyPath)
		return err
	}); err != nil {
		return nil, err
	}
	info := backup.Info{
		Name: backup.NewName(taken, index), Time: taken.UTC().Truncate(time.Second),
		NodeID: "bench", Cluster: "bench", RaftIndex: index,
		KeyID: ring.ActiveID(), FormatVersion: format.Version,
	}
	backupPath := filepath.Join(phases, info.Name)
	if err := phase("compress+encrypt", res.SizeBytes, func() error {
		var err error
		info.SHA256, info.Size, err = compressEncrypt(copyPath, backupPath, info, ring)
		return err
	}); err != nil {
		return nil, err
	}
	os.Remove(copyPath)
	res.BackupFileBytes = info.Size
	if err := phase("upload", info.Size, func() error {
		f, err := os.Open(backupPath)
		if err != nil {
			return err
		}
		defer f.Close()
		return phased.Put(ctx, info, f)
	}); err != nil {
		return nil, err
	}
	if err := checkUploaded(ctx, phased, info); err != nil {
		return nil, err
	}
	os.Remove(backupPath)
	for _, p := range res.Phases {
		res.TotalS += p.Seconds
		res.RSSGrowthMiB = max(res.RSSGrowthMiB, p.RSSGrowthMiB)
		res.HeapPeakMiB = max(res.HeapPeakMiB, p.HeapPeakMiB)
	}
	res.SnapshotS, res.CompressEncryptS, res.UploadS = res.Phases[0].Seconds, res.Phases[1].Seconds, res.Phases[2].Seconds
	res.Phases = append(res.Phases, BackupPhase{Phase: "total", Seconds: res.TotalS, Bytes: res.SizeBytes, RSSGrowthMiB: res.RSSGrowthMiB, HeapPeakMiB: res.HeapPeakMiB})

	// The same backup through the scheduler, into its own prefix (the
	// scheduler uploads whatever its local store has and the bucket lacks).
	scheduled, err := storeAt("scheduler/")
	if err != nil {
		return nil, err
	}
	sched := backup.NewScheduler(backup.Config{
		Local: backup.NewLocal(filepath.Join(dir, "local")), Remote: scheduled, KeyRing: ring,
		NodeID: "bench", Cluster: "bench",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, db, func() bool { return true })
	before = mem.baseline()
	var runInfo backup.Info
	if err := phase("scheduler Run", res.SizeBytes, func() error {
		var err error
		if runInfo, err = sched.Run(ctx, false); err != nil {
			return err
		}
		// A failed upload does not fail Run: it is in the status.
		if st := sched.Status(); st.UploadError != "" || st.PendingUploads != 0 {
			return fmt.Errorf("upload: %s (%d pending)", st.UploadError, st.PendingUploads)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := checkUploaded(ctx, scheduled, runInfo); err != nil {
		return nil, err
	}
	last := res.Phases[len(res.Phases)-1]
	res.SchedulerRunS, res.SchedulerRSSMiB, res.SchedulerHeapMiB = last.Seconds, last.RSSGrowthMiB, last.HeapPeakMiB
	return res, nil
}

// rowsSQL fills t from the rows of c(i): about 1 KiB a row, of which a
// random blob, hex of random bytes, and repeated text, so that it
// compresses as real data does, partly.
const rowsSQL = `INSERT INTO t(id, k, v) SELECT i,
	'user-' || (i % 100000) || '/' || hex(randomblob(8)),
	CAST('{"id":' || i || ',"seq":' || (i * 7) || ',"name":"customer ' || (i % 5000) ||
		'","tags":["alpha","beta","gamma"],"note":"' ||
		substr(replace(hex(zeroblob(64)), '00', 'lorem ipsum dolor '), 1, 300 + i % 200) ||
		'","payload":"' || hex(randomblob(192)) || '"}' || randomblob(128) AS BLOB)
FROM c`

// generate fills db until its file holds size bytes, in transactions of
// at most 50,000 rows, and returns the last Raft index it applied.
func generate(ctx context.Context, db *statemachine.DB, size int64, rows *int64) (uint64, error) {
	var index uint64
	exec := func(sql string, tx bool) error {
		index++
		req := &command.Request{Transaction: tx, Statements: []*command.Statement{{Sql: sql}}}
		out, err := db.ExecuteBatch(ctx, []*command.Request{req}, index)
		if err != nil {
			return err
		}
		for _, r := range out[0] {
			if r.Error != "" {
				return errors.New(r.Error)
			}
		}
		return nil
	}
	if err := exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)", false); err != nil {
		return 0, err
	}
	const maxChunk = 50_000
	perRow := int64(1100)
	for {
		// Each commit checkpoints the WAL into the file, so the file's
		// size is the database's.
		fi, err := os.Stat(db.Path())
		if err != nil {
			return 0, err
		}
		if fi.Size() >= size {
			break
		}
		if *rows > 0 && fi.Size() > 0 {
			perRow = max(1, fi.Size() / *rows)
		}
		n := min(maxChunk, max(1000, (size-fi.Size())/perRow+1))
		sql := fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i+1 FROM c WHERE i < %d) %s", *rows+1, *rows+n, rowsSQL)
		if err := exec(sql, true); err != nil {
			return 0, err
		}
		*rows += n
	}
	return index, exec("PRAGMA wal_checkpoint(TRUNCATE)", false)
}

// compressEncrypt is the writing half of Scheduler.take: the copy at src
// compressed and encrypted into a new file at dst, synced. It returns the
// SHA-256 of the plaintext and the size of the file.
func compressEncrypt(src, dst string, info backup.Info, ring *format.KeyRing) (string, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer out.Close()
	fw, err := format.NewWriter(out, format.Header{
		RaftIndex: info.RaftIndex, NodeID: info.NodeID, Cluster: info.Cluster, Time: info.Time,
	}, ring)
	if err != nil {
		return "", 0, err
	}
	if _, err := io.Copy(fw, in); err != nil {
		return "", 0, err
	}
	if err := fw.Close(); err != nil {
		return "", 0, err
	}
	sum, _ := fw.Sum()
	if err := out.Sync(); err != nil {
		return "", 0, err
	}
	fi, err := out.Stat()
	if err != nil {
		return "", 0, err
	}
	return sum, fi.Size(), out.Close()
}

// checkUploaded checks that the store lists the backup with its size.
func checkUploaded(ctx context.Context, store *s3.Store, info backup.Info) error {
	infos, err := store.List(ctx)
	if err != nil {
		return err
	}
	for _, got := range infos {
		if got.Name == info.Name {
			if got.Size != info.Size {
				return fmt.Errorf("uploaded %s has %d bytes, want %d", info.Name, got.Size, info.Size)
			}
			return nil
		}
	}
	return fmt.Errorf("uploaded %s is not listed", info.Name)
}

func benchKeyRing() (*format.KeyRing, error) {
	key := make([]byte, format.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return format.ParseKeyRing([]string{"k1/" + base64.StdEncoding.EncodeToString(key)}, "k1")
}

// startProfile starts a CPU profile of a phase in dir; "" profiles
// nothing.
func startProfile(dir, phase string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	name := strings.NewReplacer("+", "-", " ", "-").Replace(phase)
	f, err := os.Create(filepath.Join(dir, "backup-"+name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// memWatch samples the process's VmRSS and Go heap and keeps their peaks.
type memWatch struct {
	// mu guards everything below; the sampling goroutine and take both
	// observe.
	mu         sync.Mutex
	sample     []metrics.Sample
	rss, heap  uint64 // the last observation
	peakRSS    uint64 // peaks since the last take
	peakHeap   uint64
	quit, done chan struct{}
}

func watchMemory(every time.Duration) (*memWatch, error) {
	if _, err := readRSS(); err != nil {
		return nil, err
	}
	m := &memWatch{
		sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	m.observe()
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.quit:
				return
			case <-t.C:
				m.observe()
			}
		}
	}()
	return m, nil
}

func (m *memWatch) observe() {
	rss, err := readRSS()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.rss = rss
	}
	metrics.Read(m.sample)
	if v := m.sample[0].Value; v.Kind() == metrics.KindUint64 {
		m.heap = v.Uint64()
	}
	m.peakRSS, m.peakHeap = max(m.peakRSS, m.rss), max(m.peakHeap, m.heap)
}

// take returns the peaks since the last take (or baseline) and starts
// new ones.
func (m *memWatch) take() (rss, heap uint64) {
	m.observe()
	m.mu.Lock()
	defer m.mu.Unlock()
	rss, heap = m.peakRSS, m.peakHeap
	m.peakRSS, m.peakHeap = m.rss, m.heap
	return rss, heap
}

// baseline collects garbage, returns what it can to the OS, and returns
// the RSS then, from which the next peaks are growth.
func (m *memWatch) baseline() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	m.take()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rss
}

func (m *memWatch) stop() {
	close(m.quit)
	<-m.done
}

// readRSS returns VmRSS from /proc/self/status, in bytes.
func readRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read RSS (the backup measurement needs Linux): %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("read RSS: no VmRSS in /proc/self/status")
}

// printBackup prints the backup table. MiB/s is of the database, but for
// the upload, of the backup file.
func printBackup(w io.Writer, b *BackupResult) {
	fmt.Fprintf(w, "\nbackup of a %s database (%d rows, generated in %.1f s; RSS before %.1f MiB)\n",
		formatBytes(b.SizeBytes), b.Rows, b.GenerateS, b.RSSBeforeMiB)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tseconds\tMiB/s\tRSS growth MiB\tGo heap peak MiB\t")
	for _, p := range b.Phases {
		rate := 0.0
		if p.Seconds > 0 {
			rate = mib(uint64(p.Bytes)) / p.Seconds
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.1f\t%.1f\t\n", p.Phase, p.Seconds, rate, p.RSSGrowthMiB, p.HeapPeakMiB)
	}
	tw.Flush()
	fmt.Fprintf(w, "backup file %s (%.0f %% of the database)\n", formatBytes(b.BackupFileBytes), 100*float64(b.BackupFileBytes)/float64(b.SizeBytes))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	// The goals are for a 1 GiB database: scale the time goal to the size.
	goalS := goalBackupSeconds * float64(b.SizeBytes) / (1 << 30)
	growth := max(b.RSSGrowthMiB, b.SchedulerRSSMiB)
	fmt.Fprintf(w, "goal: total < %.1f s: %s (%.1f s, scheduler Run %.1f s); RSS growth < %d MiB: %s (%.1f MiB)\n",
		goalS, verdict(max(b.TotalS, b.SchedulerRunS) < goalS), b.TotalS, b.SchedulerRunS,
		goalRSSGrowthMiB, verdict(growth < goalRSSGrowthMiB), growth)
}
