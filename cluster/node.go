package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// ErrTimeout means a write was not accepted by Raft in time (the queue was
// full); it was not applied.
var ErrTimeout = errors.New("timed out before the write was accepted")

// Config is what a Node needs to run. cmd fills it from the configuration
// file.
type Config struct {
	// ID is this node's id in Members.
	ID string
	// DataDir holds raft/ (log, stable store, snapshots).
	DataDir string
	// RaftAddr is the address Raft listens on; RaftAdvertise the one peers
	// dial (RaftAddr when empty).
	RaftAddr      string
	RaftAdvertise string
	// HTTPAdvertise is this node's API address as clients reach it.
	HTTPAdvertise string
	// Members is the bootstrap configuration, identical on every node.
	Members []Member
	// Secret is the cluster secret every node-to-node connection and
	// request proves knowledge of. Empty only for a single node.
	Secret []byte
	// Epoch is the restore epoch of this node's data (restore.Epoch); Raft
	// connections between nodes of different epochs are refused.
	Epoch string

	// SnapshotThreshold is how many entries since the last snapshot trigger
	// one; SnapshotInterval how often that is checked; TrailingLogs how
	// many entries stay in the log after a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// HeartbeatTimeout and ElectionTimeout tune leader failure detection.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// ApplyTimeout bounds a write when the request has no deadline.
	ApplyTimeout time.Duration
	// LeaderWait bounds how long a request that needs the leader waits
	// for one to be elected or reachable, never past the request's
	// deadline (default DefaultLeaderWait). Then it fails with ErrNoLeader.
	LeaderWait time.Duration
	// MaxForwardBodySize bounds the body of a request forwarded to this
	// node (default DefaultMaxForwardBodySize). Keep it above the HTTP
	// API's own limit.
	MaxForwardBodySize int64

	Logger *slog.Logger
}

// Node is a Cairn node in Raft mode: hashicorp/raft replicating commands
// into the node's statemachine.DB.
type Node struct {
	cfg    Config
	db     *statemachine.DB
	logger *slog.Logger

	rewriter statemachine.Rewriter

	raft      *raft.Raft
	fsm       *statemachine.FSM
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport

	// ready latches once the node has applied the log it started with.
	ready       atomic.Bool
	readyTarget atomic.Uint64

	closed    atomic.Bool
	observeCh chan raft.Observation
	observer  *raft.Observer
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	// client forwards requests to the leader; authLog rate-limits the
	// warnings about forwarded requests refused here.
	client  *http.Client
	authLog logLimiter

	// addrs is httpAddrs' cache of member HTTP addresses; nil until the
	// first read.
	addrs atomic.Pointer[memberAddrs]
	// maint caches the maintenance state (nil until read), valid while
	// maintGen has not moved on; leaderSynced says whether this node, as
	// leader, has applied everything committed before its term.
	maint        atomic.Pointer[maintenanceCache]
	maintGen     atomic.Uint64
	leaderSynced atomic.Bool
}

var _ Backend = (*Node)(nil)

// New returns a Node for db. It does no I/O; Open starts it. db must be
// empty (statemachine.OpenFresh): Raft refills it from snapshot and log.
func New(cfg Config, db *statemachine.DB) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RaftAdvertise == "" {
		cfg.RaftAdvertise = cfg.RaftAddr
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.LeaderWait <= 0 {
		cfg.LeaderWait = DefaultLeaderWait
	}
	if cfg.MaxForwardBodySize <= 0 {
		cfg.MaxForwardBodySize = DefaultMaxForwardBodySize
	}
	return &Node{
		cfg:    cfg,
		db:     db,
		logger: cfg.Logger,
		client: newForwardClient(),
	}
}

// logCacheSize is how many recent log entries stay in memory.
const logCacheSize = 1024

// RaftDir is where a node keeps its Raft state under dataDir.
func RaftDir(dataDir string) string { return filepath.Join(dataDir, "raft") }

// Open starts Raft: opens the log and stable store, the snapshot store and
// the transport, bootstraps the configured members if this node has no
// state yet, and starts replaying snapshot and log into the database.
func (n *Node) Open(ctx context.Context) error {
	dir := RaftDir(n.cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft directory: %w", err)
	}
	hlog := newHCLog(n.logger, "raft")

	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{
			// Another process holding the file (a second cairn on the
			// same data dir) is an error, not a wait forever.
			Timeout: 5 * time.Second,
			// The free list is rebuilt at open instead of being written
			// with every commit: less to write before each fsync on the
			// hot path of every write.
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog.Named("snapshot"))
	if err != nil {
		store.Close()
		return fmt.Errorf("open snapshot store: %w", err)
	}
	transport, err := n.newTransport(hlog.Named("transport"))
	if err != nil {
		store.Close()
		return err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	if n.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	}
	if n.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = n.cfg.SnapshotInterval
	}
	if n.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = n.cfg.TrailingLogs
	}
	if n.cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
		rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, n.cfg.HeartbeatTimeout)
	}
	if n.cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = n.cfg.ElectionTimeout
	}
	if err := raft.ValidateConfig(rc); err != nil {
		transport.Close()
		store.Close()
		return fmt.Errorf("raft config: %w", err)
	}

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		transport.Close()
		store.Close()
		return fmt.Errorf("read raft state: %w", err)
	}
	n.readyTarget.Store(0)
	if existing {
		last, err := store.LastIndex()
		if err != nil {
			transport.Close()
			store.Close()
			return fmt.Errorf("read last log index: %w", err)
		}
		n.readyTarget.Store(last)
	}

	n.fsm = statemachine.NewFSM(n.db, filepath.Join(n.cfg.DataDir, "state_machine", "tmp"), n.logger)
	// The cache keeps the newest entries in memory: the leader reads them
	// back to replicate, every node to apply, and decoding them from bolt
	// each time costs more than the entries themselves.
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		transport.Close()
		store.Close()
		return fmt.Errorf("create log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, store, snaps, transport)
	if err != nil {
		transport.Close()
		store.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft, n.store, n.transport = r, store, transport

	// A fresh node whose peers already run a cluster (it was added to
	// cluster.nodes later, or its data dir was wiped) joins that cluster
	// instead of bootstrapping one.
	joinVia := ""
	if !existing && len(n.cfg.Members) > 1 {
		joinVia = n.discoverLeader(ctx)
	}
	switch {
	case joinVia != "":
		n.logger.Info("found an existing cluster: joining it instead of bootstrapping", "leader_http", joinVia)
	case !existing:
		servers := make([]raft.Server, 0, len(n.cfg.Members))
		for _, m := range n.cfg.Members {
			suffrage := raft.Voter
			if !m.Voter {
				suffrage = raft.Nonvoter
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: suffrage})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.shutdownRaft()
			return fmt.Errorf("bootstrap cluster: %w", err)
		}
		n.logger.Info("bootstrapped new cluster", "members", len(servers))
	default:
		n.logger.Info("resuming from existing raft state", "last_index", n.readyTarget.Load())
	}

	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	n.observeCh = make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(n.observeCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.observe(ctx)
	}()
	if joinVia != "" {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.joinLoop(ctx, joinVia)
		}()
	}
	return nil
}

// observe logs leadership changes until ctx ends.
func (n *Node) observe(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-n.observeCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				// A new leader catches up and reads the maintenance state
				// afresh before its first write.
				n.leaderSynced.Store(false)
				n.forgetMaintenance()
				if lo.LeaderID == "" {
					n.logger.Warn("no leader")
				} else {
					n.logger.Info("leader elected", "leader", string(lo.LeaderID), "term", o.Raft.CurrentTerm(), "self", lo.LeaderID == raft.ServerID(n.cfg.ID))
				}
			}
		}
	}
}

// Close hands leadership over if this node leads others, then shuts Raft
// down and closes its stores. The database is the caller's to close.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) || n.raft == nil {
		return nil
	}
	if n.raft.State() == raft.Leader && n.voters() > 1 {
		start := time.Now()
		if err := waitFuture(ctx, n.raft.LeadershipTransfer()); err != nil {
			n.logger.Warn("leadership transfer failed", "error", err)
		} else {
			n.logger.Info("leadership transferred", "duration", time.Since(start))
		}
	}
	n.raft.DeregisterObserver(n.observer)
	n.cancel()
	n.wg.Wait()
	n.client.CloseIdleConnections()
	return n.shutdownRaft()
}

func (n *Node) shutdownRaft() error {
	err := n.raft.Shutdown().Error()
	if err != nil {
		err = fmt.Errorf("shut down raft: %w", err)
	}
	return errors.Join(err, n.transport.Close(), n.store.Close())
}

// servers is the current Raft configuration's servers.
func (n *Node) servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

// voters counts the voters of the configuration (0 if it cannot be read).
func (n *Node) voters() int {
	servers, _ := n.servers()
	v := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

// waitFuture waits for f, or for ctx to end.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Execute rewrites non-deterministic SQL, then commits req through Raft.
// A follower forwards it to the leader.
func (n *Node) Execute(ctx context.Context, req *command.Request) ([]command.Result, error) {
	return n.serve(ctx, command.Type_TYPE_EXECUTE, req, QueryOptions{})
}

// Query runs read-only statements at opts.Level. A follower serves level
// none itself and forwards the other levels to the leader.
func (n *Node) Query(ctx context.Context, req *command.Request, opts QueryOptions) ([]command.Result, error) {
	return n.serve(ctx, command.Type_TYPE_QUERY, req, opts)
}

// Request runs a mix of reads and writes: reads alone are served like
// Query, anything that writes goes through the log (on a follower, through
// the leader).
func (n *Node) Request(ctx context.Context, req *command.Request, opts QueryOptions) ([]command.Result, error) {
	return n.serve(ctx, command.Type_TYPE_REQUEST, req, opts)
}

// serve runs a call of type typ (Execute, Query or Request): on this node
// when it can, else on the leader (see route). The request is analysed
// here first, so that a statement that is invalid, or that writes in a
// Query, is refused without a round trip.
func (n *Node) serve(ctx context.Context, typ command.Type, req *command.Request, opts QueryOptions) ([]command.Result, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	local, write, err := n.plan(typ, req, opts)
	if err != nil {
		return nil, err
	}
	if !write && opts.Level == command.LevelNone {
		return local(ctx)
	}
	// The leader analyses and rewrites the request as the client sent it.
	fr := &command.ForwardRequest{
		Type:        typ,
		Request:     req,
		Level:       uint32(opts.Level),
		FreshnessNs: int64(opts.Freshness),
	}
	return n.route(ctx, fr, write, local)
}

// serveLocal runs a call on this node and never forwards it: what the
// leader does with a forwarded request. Off the leader it fails with
// ErrNotLeader or ErrNoLeader (level-none reads aside).
func (n *Node) serveLocal(ctx context.Context, typ command.Type, req *command.Request, opts QueryOptions) ([]command.Result, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	local, _, err := n.plan(typ, req, opts)
	if err != nil {
		return nil, err
	}
	return local(ctx)
}

// plan analyses req for a call of type typ and returns how to run it on
// this node, and whether it writes. A write runs only on the leader; a read
// checks leadership as its level requires.
func (n *Node) plan(typ command.Type, req *command.Request, opts QueryOptions) (local func(context.Context) ([]command.Result, error), write bool, err error) {
	prepared, readOnly, err := n.prepare(req)
	if err != nil {
		return nil, false, err
	}
	first := firstWrite(readOnly)
	switch typ {
	case command.Type_TYPE_EXECUTE:
		write = true
	case command.Type_TYPE_QUERY:
		if first >= 0 {
			return nil, false, fmt.Errorf("%w: statement %d (%q) would modify data; send it to /db/execute", ErrNotReadOnly, first, truncate(req.Statements[first].GetSql()))
		}
	case command.Type_TYPE_REQUEST:
		write = first >= 0
	default:
		return nil, false, fmt.Errorf("%w: unknown request type %v", ErrInvalidStatement, typ)
	}
	if write {
		return func(ctx context.Context) ([]command.Result, error) {
			if err := n.checkLeader(); err != nil {
				return nil, err
			}
			if err := n.checkMaintenance(ctx); err != nil {
				return nil, err
			}
			return n.apply(ctx, typ, prepared)
		}, true, nil
	}
	return func(ctx context.Context) ([]command.Result, error) {
		return n.read(ctx, prepared, opts)
	}, false, nil
}

func (n *Node) read(ctx context.Context, req *command.Request, opts QueryOptions) ([]command.Result, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	switch opts.Level {
	case command.LevelNone:
		if opts.Freshness > 0 && n.raft.State() != raft.Leader {
			if since := time.Since(n.raft.LastContact()); since > opts.Freshness {
				return nil, fmt.Errorf("%w: last heard from the leader %s ago, freshness is %s", ErrStale, since.Round(time.Millisecond), opts.Freshness)
			}
		}
	case command.LevelWeak:
		if err := n.checkLeader(); err != nil {
			return nil, err
		}
	case command.LevelLinearizable:
		if err := n.checkLeader(); err != nil {
			return nil, err
		}
		// A quorum confirms this node still leads, and the barrier makes
		// sure everything committed before the read is applied.
		if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
			return nil, n.raftError("verify leadership", err, false)
		}
		if err := waitFuture(ctx, n.raft.Barrier(n.applyTimeout(ctx))); err != nil {
			return nil, n.raftError("barrier", err, false)
		}
	case command.LevelStrong:
		if err := n.checkLeader(); err != nil {
			return nil, err
		}
		return n.apply(ctx, command.Type_TYPE_QUERY, req)
	}
	res, err := n.db.Query(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return res, nil
}

// prepare analyses every statement: non-deterministic calls are rewritten to
// literals, and each statement is marked as returning rows or not. readOnly
// has one entry per statement.
func (n *Node) prepare(req *command.Request) (*command.Request, []bool, error) {
	out := &command.Request{Transaction: req.GetTransaction(), Statements: make([]*command.Statement, len(req.GetStatements()))}
	readOnly := make([]bool, len(req.GetStatements()))
	for i, st := range req.GetStatements() {
		analyses, err := n.rewriter.Analyze(st.GetSql())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: statement %d: %v", ErrInvalidStatement, i, err)
		}
		ps := &command.Statement{Sql: st.GetSql(), Params: st.GetParams()}
		readOnly[i] = true
		if len(analyses) > 0 {
			sqls := make([]string, len(analyses))
			for j, a := range analyses {
				sqls[j] = a.SQL
				readOnly[i] = readOnly[i] && a.ReadOnly
			}
			ps.Sql = strings.Join(sqls, ";\n")
			ps.ReturnsRows = analyses[len(analyses)-1].ReturnsRows
		}
		out.Statements[i] = ps
	}
	return out, readOnly, nil
}

func firstWrite(readOnly []bool) int {
	for i, ro := range readOnly {
		if !ro {
			return i
		}
	}
	return -1
}

func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// checkLeader returns nil on the leader, otherwise ErrNotLeader (a leader
// is known elsewhere) or ErrNoLeader.
func (n *Node) checkLeader() error {
	if n.closed.Load() {
		return ErrClosed
	}
	if n.raft.State() == raft.Leader {
		return nil
	}
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return ErrNoLeader
	}
	return ErrNotLeader
}

func (n *Node) applyTimeout(ctx context.Context) time.Duration {
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	return max(timeout, time.Millisecond)
}

// apply commits req through Raft and returns the FSM's results.
func (n *Node) apply(ctx context.Context, typ command.Type, req *command.Request) ([]command.Result, error) {
	b, err := command.Encode(typ, req)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	f := n.raft.Apply(b, n.applyTimeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return nil, n.raftError("apply", err, typ != command.Type_TYPE_QUERY)
	}
	res, ok := f.Response().(*statemachine.ApplyResult)
	if !ok {
		return nil, fmt.Errorf("apply: unexpected response %T", f.Response())
	}
	if res.Err != nil {
		return res.Results, fmt.Errorf("apply at index %d: %w", f.Index(), res.Err)
	}
	return res.Results, nil
}

// raftError maps an error from a Raft future to the package's sentinels.
// For a write, anything after hand-over to Raft that is not a clear refusal
// leaves its outcome unknown.
func (n *Node) raftError(op string, err error, write bool) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%s: %w", op, ErrNotLeader)
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%s: %w: leadership transfer in progress", op, ErrNoLeader)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%s: %w", op, ErrTimeout)
	case !write && errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%s: %w: leadership lost", op, ErrNoLeader)
	case !write && errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%s: %w", op, ErrClosed)
	case !write:
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %v", op, ErrUnknownOutcome, err)
}

// Ready reports whether the node can serve: a leader is known and the log
// this node started with has been applied.
func (n *Node) Ready(context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return n.noLeaderError()
	}
	if n.ready.Load() {
		return nil
	}
	target := max(n.readyTarget.Load(), 0)
	if applied := n.raft.AppliedIndex(); applied < target {
		return fmt.Errorf("applying log: at index %d of %d", applied, target)
	}
	n.ready.Store(true)
	return nil
}

// noLeaderError says why there is no leader as well as this node can
// tell: an election under way, or, once that has lasted longer than an
// election should, a quorum this node cannot reach.
func (n *Node) noLeaderError() error {
	voters := n.voters()
	quorum := voters/2 + 1
	last := n.raft.LastContact()
	if last.IsZero() {
		return fmt.Errorf("%w: no leader heard from since start; a quorum of %d of %d voters is needed", ErrNoLeader, quorum, voters)
	}
	since := time.Since(last)
	// A healthy election ends within a few timeouts.
	if since > max(4*(n.cfg.HeartbeatTimeout+n.cfg.ElectionTimeout), 3*time.Second) {
		return fmt.Errorf("%w: quorum lost: no leader for %s; %d of %d voters must be reachable", ErrNoLeader, since.Round(time.Second), quorum, voters)
	}
	return fmt.Errorf("%w: election under way (leader last heard from %s ago)", ErrNoLeader, since.Round(time.Millisecond))
}

// Status describes the node.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := Status{
		Mode:     "raft",
		NodeID:   n.cfg.ID,
		RaftAddr: n.cfg.RaftAdvertise,
		HTTPAddr: n.cfg.HTTPAdvertise,
		DBPath:   n.db.Path(),
		DBSize:   n.db.Size(),
		DataDir:  n.cfg.DataDir,
	}
	if n.raft == nil {
		return st, nil
	}
	if m, err := n.Maintenance(ctx); err == nil {
		st.Maintenance = m
	}
	st.State = n.raft.State().String()
	st.Term = n.raft.CurrentTerm()
	st.CommitIndex = n.raft.CommitIndex()
	st.AppliedIndex = n.raft.AppliedIndex()
	st.LastLogIndex = n.raft.LastIndex()
	if v, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		st.LastSnapshotIndex = v
	}
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			st.LastContact = time.Since(lc)
		}
	}
	addr, leader := n.raft.LeaderWithID()
	httpAddr := n.httpAddrs(ctx, string(leader))
	if addr != "" {
		st.Leader = Member{ID: string(leader), RaftAddr: string(addr), HTTPAddr: httpAddr[string(leader)], Voter: true}
	}
	servers, err := n.servers()
	if err != nil {
		return st, err
	}
	for _, s := range servers {
		st.Members = append(st.Members, Member{
			ID:       string(s.ID),
			RaftAddr: string(s.Address),
			HTTPAddr: httpAddr[string(s.ID)],
			Voter:    s.Suffrage == raft.Voter,
		})
	}
	return st, nil
}

// SnapshotStats counts the snapshots the node took and installed.
func (n *Node) SnapshotStats() statemachine.SnapshotStats {
	if n.fsm == nil {
		return statemachine.SnapshotStats{}
	}
	return n.fsm.SnapshotStats()
}

// Raft is the underlying hashicorp/raft instance, for tests and tools.
func (n *Node) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool {
	return n.raft != nil && !n.closed.Load() && n.raft.State() == raft.Leader
}
