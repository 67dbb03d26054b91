// Command bench measures a real local Cairn deployment: it starts a single
// node and a three-node cluster of the given binary on loopback, drives
// them over HTTP, and reports writes/s, statements/s, reads/s with p50/p99
// latency, and the failover window after the leader is killed. Then, in
// this process, it backs up a database of -backup-size bytes to a real S3
// server (versitygw) and reports each phase's time and the growth of its
// own RSS (backup.go). It prints a table, and JSON with -json.
//
//	go run ./tests/bench -binary bin/cairn -duration 10s -json bench.json
//	go run ./tests/bench -only backup -backup-size 256MiB
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	binary   string
	duration time.Duration
	runs     int
	jsonPath string
	only     string

	backupSize    byteSize
	backupProfile string
}

// Result is one measurement: the median of its runs.
type Result struct {
	Setup       string  `json:"setup"`
	Workload    string  `json:"workload"`
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	Unit        string  `json:"unit"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// Runs holds the rate of every run, in the order they ran.
	Runs []float64 `json:"runs"`
}

// Report is what -json writes.
type Report struct {
	Time             time.Time     `json:"time"`
	CPUs             int           `json:"cpus"`
	GoVersion        string        `json:"go_version"`
	Results          []Result      `json:"results"`
	FailoverWindowMs float64       `json:"failover_window_ms"`
	Backup           *BackupResult `json:"backup,omitempty"`
}

func run() error {
	o := options{backupSize: 1 << 30}
	flag.StringVar(&o.binary, "binary", "bin/cairn", "cairn binary")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each run of a workload")
	flag.IntVar(&o.runs, "runs", 3, "runs of each workload; the median run is reported")
	flag.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	flag.StringVar(&o.only, "only", "", "run only setups whose name contains this (single, cluster, backup)")
	flag.Var(&o.backupSize, "backup-size", "size of the database the backup setup backs up (1GiB, 256MiB)")
	flag.StringVar(&o.backupProfile, "backup-cpuprofile", "", "write a CPU profile of each backup phase to this directory")
	flag.Parse()
	bin, err := filepath.Abs(o.binary)
	if err != nil {
		return err
	}
	o.binary = bin
	work, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	rep := Report{Time: time.Now().UTC(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	for _, size := range []int{1, 3} {
		setup := "single"
		if size == 3 {
			setup = "cluster-3"
		}
		if o.only != "" && !strings.Contains(setup, o.only) {
			continue
		}
		c, err := startCluster(filepath.Join(work, setup), o.binary, size)
		if err != nil {
			return fmt.Errorf("%s: %w", setup, err)
		}
		res, window, err := measure(c, setup, o.duration, o.runs)
		c.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", setup, err)
		}
		rep.Results = append(rep.Results, res...)
		if window > 0 {
			rep.FailoverWindowMs = float64(window.Microseconds()) / 1000
		}
	}
	if o.only == "" || strings.Contains("backup", o.only) {
		b, err := benchBackup(work, int64(o.backupSize), o.backupProfile)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		rep.Backup = b
	}
	printTable(os.Stdout, rep)
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func printTable(w io.Writer, rep Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cairn bench, %d CPUs, %s, %s\n", rep.CPUs, rep.GoVersion, rep.Time.Format(time.RFC3339))
	if len(rep.Results) > 0 {
		fmt.Fprintln(tw, "setup\tworkload\tconc\trate\tunit\tp50 ms\tp99 ms\terrors\t")
		for _, r := range rep.Results {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%.2f\t%.2f\t%d\t\n", r.Setup, r.Workload, r.Concurrency, r.OpsPerSec, r.Unit, r.P50Ms, r.P99Ms, r.Errors)
		}
		tw.Flush()
	}
	if rep.FailoverWindowMs > 0 {
		fmt.Fprintf(w, "failover window (leader kill -9 -> first successful write): %.0f ms\n", rep.FailoverWindowMs)
	}
	if rep.Backup != nil {
		printBackup(w, rep.Backup)
	}
}

// proc is one cairn process.
type proc struct {
	id   int
	http string
	cmd  *exec.Cmd
	done chan struct{}
}

type benchCluster struct {
	procs []*proc
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startCluster(dir, binary string, size int) (*benchCluster, error) {
	type addrs struct{ http, raft string }
	as := make([]addrs, size)
	var members []string
	for i := range as {
		h, err := freePort()
		if err != nil {
			return nil, err
		}
		r, err := freePort()
		if err != nil {
			return nil, err
		}
		as[i] = addrs{h, r}
		members = append(members, fmt.Sprintf("%d %s %s", i+1, r, h))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &benchCluster{}
	for i, a := range as {
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(binary, "serve")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("CAIRN_NODE_ID=%d", i+1),
			"CAIRN_NODE_DATA_DIR="+filepath.Join(dir, fmt.Sprint(i+1)),
			"CAIRN_NODE_HTTP_ADDR="+a.http,
			"CAIRN_NODE_RAFT_ADDR="+a.raft,
			"CAIRN_CLUSTER_NODES="+strings.Join(members, ","),
			"CAIRN_CLUSTER_SECRET=bench-cluster-secret-0123456789",
			"CAIRN_LOG_LEVEL=warn",
		)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p := &proc{id: i + 1, http: a.http, cmd: cmd, done: make(chan struct{})}
		go func() { cmd.Wait(); logf.Close(); close(p.done) }()
		c.procs = append(c.procs, p)
	}
	for _, p := range c.procs {
		if err := waitReady(p, 60*time.Second); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func waitReady(p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("node %d not ready after %s", p.id, timeout)
}

func (c *benchCluster) stop() {
	for _, p := range c.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// leader finds the leader's process.
func (c *benchCluster) leader() (*proc, error) {
	for range 200 {
		for _, p := range c.procs {
			select {
			case <-p.done:
				continue
			default:
			}
			var st struct {
				Cairn struct {
					State string `json:"state"`
				} `json:"cairn"`
			}
			resp, err := http.Get("http://" + p.http + "/status")
			if err != nil {
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Cairn.State == "Leader" {
				return p, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("no leader")
}

func (c *benchCluster) follower(leader *proc) *proc {
	for _, p := range c.procs {
		if p != leader {
			return p
		}
	}
	return leader
}

var client = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
	Timeout:   30 * time.Second,
}

func post(url string, body []byte) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	if bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("statement error: %s", b)
	}
	return nil
}

// loadPost is post for load workers: on worker w's own raw connection
// (rawhttp.go), with the same checks.
func loadPost(w int, url string, body []byte) error {
	status, b, err := rawPost(w, url, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", status, b)
	}
	if bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("statement error: %s", b)
	}
	return nil
}

// median runs a workload runs times and returns the run with the median
// rate, with every run's rate attached.
func median(runs int, once func() Result) Result {
	all := make([]Result, runs)
	rates := make([]float64, runs)
	for i := range all {
		all[i] = once()
		rates[i] = all[i].OpsPerSec
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b Result) int {
		switch {
		case a.OpsPerSec < b.OpsPerSec:
			return -1
		case a.OpsPerSec > b.OpsPerSec:
			return 1
		}
		return 0
	})
	m := sorted[len(sorted)/2]
	m.Runs = rates
	return m
}

// load runs fn from conc goroutines for d and measures it.
func load(setup, workload string, conc int, d time.Duration, perRequest int, unit string, fn func(worker int, i int64) error) Result {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		requests  atomic.Int64
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := int64(0); ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "%s %s: first error: %v\n", setup, workload, err)
					}
					continue
				}
				local = append(local, time.Since(t0))
				requests.Add(1)
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
	}
	return Result{
		Setup: setup, Workload: workload, Concurrency: conc,
		Requests: requests.Load(), Errors: errs.Load(),
		OpsPerSec: float64(requests.Load()*int64(perRequest)) / elapsed.Seconds(), Unit: unit,
		P50Ms: pct(0.50), P99Ms: pct(0.99),
	}
}

var runID atomic.Int64

func measure(c *benchCluster, setup string, d time.Duration, runs int) ([]Result, time.Duration, error) {
	leader, err := c.leader()
	if err != nil {
		return nil, 0, err
	}
	follower := c.follower(leader)
	base := "http://" + leader.http
	if err := post(base+"/db/execute", []byte(`["CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)"]`)); err != nil {
		return nil, 0, err
	}
	insert := func(url string) func(int, int64) error {
		return func(w int, i int64) error {
			body := fmt.Sprintf(`[["INSERT INTO bench (k, v) VALUES (?, ?)", %d, "value-%d-%d"]]`, i, w, i)
			return loadPost(w, url, []byte(body))
		}
	}
	var out []Result
	out = append(out, median(runs, func() Result { return load(setup, "write 1 stmt/req", 1, d, 1, "writes/s", insert(base+"/db/execute")) }))
	out = append(out, median(runs, func() Result {
		return load(setup, "write 1 stmt/req", 32, d, 1, "writes/s", insert(base+"/db/execute"))
	}))

	var batch strings.Builder
	batch.WriteString("[")
	for i := range 100 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `["INSERT INTO bench (k, v) VALUES (?, ?)", %d, "batch-value-%d"]`, i, i)
	}
	batch.WriteString("]")
	batchBody := []byte(batch.String())
	batchWrite := func(w int, _ int64) error { return loadPost(w, base+"/db/execute", batchBody) }
	out = append(out, median(runs, func() Result {
		return load(setup, "write 100 stmts/req", 8, d, 100, "stmts/s", batchWrite)
	}))

	read := func(url string) func(int, int64) error {
		return func(w int, i int64) error {
			body := fmt.Sprintf(`[["SELECT id, k, v FROM bench WHERE id = ?", %d]]`, 1+(i*31+int64(w))%1000)
			return loadPost(w, url, []byte(body))
		}
	}
	out = append(out, median(runs, func() Result {
		return load(setup, "read weak via leader", 32, d, 1, "reads/s", read(base+"/db/query?level=weak"))
	}))
	if len(c.procs) > 1 {
		out = append(out, median(runs, func() Result {
			return load(setup, "read none via follower", 32, d, 1, "reads/s", read("http://"+follower.http+"/db/query?level=none"))
		}))
		window, err := failover(c, leader)
		return out, window, err
	}
	out = append(out, median(runs, func() Result { return load(setup, "read none", 32, d, 1, "reads/s", read(base+"/db/query?level=none")) }))
	return out, 0, nil
}

// failover kills -9 the leader and measures the time until a write sent to
// a surviving node succeeds.
func failover(c *benchCluster, leader *proc) (time.Duration, error) {
	survivor := c.follower(leader)
	start := time.Now()
	leader.cmd.Process.Kill()
	<-leader.done
	for time.Since(start) < 30*time.Second {
		body := fmt.Sprintf(`[["INSERT INTO bench (k, v) VALUES (?, 'failover')", %d]]`, runID.Add(1))
		if post("http://"+survivor.http+"/db/execute", []byte(body)) == nil {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, errors.New("no write succeeded within 30s of killing the leader")
}
