package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/cairndb/cairn/statemachine/command"
)

// Errors returned by a Backend. The HTTP layer maps them to status codes
// with errors.Is, so wrap them, never replace them.
var (
	// ErrNotLeader means this node is not the leader and the request could
	// not be served or forwarded here.
	ErrNotLeader = errors.New("not the leader")

	// ErrNoLeader means the cluster has no leader at the moment (an
	// election is under way or quorum is lost); retrying later may succeed.
	ErrNoLeader = errors.New("no leader")

	// ErrUnknownOutcome means a write was handed to Raft but leadership was
	// lost (or the node shut down) before its fate was known: it may or may
	// not have been applied. Never report it as "not written".
	ErrUnknownOutcome = errors.New("write outcome unknown")

	// ErrNotReadOnly means a statement sent as a read would modify data.
	ErrNotReadOnly = errors.New("statement is not read-only")

	// ErrInvalidStatement means a statement could not be accepted before it
	// reached the database (for example it failed analysis).
	ErrInvalidStatement = errors.New("invalid statement")

	// ErrClosed means the backend is shutting down or closed.
	ErrClosed = errors.New("backend closed")

	// ErrUnavailable means the database could not be reached (Postgres
	// mode: PostgreSQL is down or refuses connections) before anything was
	// sent; retrying later may succeed.
	ErrUnavailable = errors.New("database unavailable")

	// ErrStale means a level=none read asked for more freshness than this
	// node can give.
	ErrStale = errors.New("stale read")
)

// QueryOptions says how a read is served.
type QueryOptions struct {
	// Level is the read consistency.
	Level command.Level
	// Freshness bounds how stale a LevelNone read may be; zero means
	// unbounded.
	Freshness time.Duration
}

// Backend is what the HTTP API runs on: the Raft node in Raft mode, a
// PostgreSQL pool in Postgres mode.
type Backend interface {
	// Execute applies statements that change data. The result slice has one
	// entry per statement; SQL errors are reported inside it, not as err.
	Execute(ctx context.Context, req *command.Request) ([]command.Result, error)
	// Query runs read-only statements at the given level. A statement that
	// would write fails with ErrNotReadOnly before anything runs.
	Query(ctx context.Context, req *command.Request, opts QueryOptions) ([]command.Result, error)
	// Request runs a mix of reads and writes; if any statement writes, the
	// whole request goes through the write path.
	Request(ctx context.Context, req *command.Request, opts QueryOptions) ([]command.Result, error)
	// Status describes the node for /status.
	Status(ctx context.Context) (Status, error)
	// Ready returns nil when the node can serve requests, otherwise an
	// error saying why not.
	Ready(ctx context.Context) error
}

// Member is one node of the cluster.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Voter is false for a non-voting member.
	Voter bool `json:"voter"`
}

// Status is a snapshot of a node's state. It never holds secrets.
type Status struct {
	// Mode is "raft" or "postgres".
	Mode     string `json:"mode"`
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// State is the Raft state: Leader, Follower, Candidate, Shutdown.
	State string `json:"state,omitempty"`
	// Leader is the current leader, zero when none is known.
	Leader            Member   `json:"leader"`
	Term              uint64   `json:"term"`
	CommitIndex       uint64   `json:"commit_index"`
	AppliedIndex      uint64   `json:"applied_index"`
	LastLogIndex      uint64   `json:"last_log_index"`
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
	Members           []Member `json:"members,omitempty"`
	// LastContact is the time since the leader was last heard from (zero
	// on the leader itself).
	LastContact time.Duration `json:"last_contact"`
	// DBPath and DBSize describe the local SQLite database.
	DBPath  string `json:"db_path,omitempty"`
	DBSize  int64  `json:"db_size"`
	DataDir string `json:"data_dir,omitempty"`
	// Maintenance is the cluster's maintenance state as this node knows it.
	Maintenance Maintenance `json:"maintenance"`
	// Database names the PostgreSQL server and database in Postgres mode
	// ("127.0.0.1:5432/app"), never with credentials.
	Database string `json:"database,omitempty"`
	// Pool describes the PostgreSQL connection pool in Postgres mode.
	Pool *PoolStats `json:"pool,omitempty"`
}

// PoolStats describes a connection pool at one moment.
type PoolStats struct {
	// Max is the most connections the pool opens.
	Max int32 `json:"max"`
	// Total is the open connections, Idle and InUse those free and lent
	// out, Constructing those being opened.
	Total        int32 `json:"total"`
	Idle         int32 `json:"idle"`
	InUse        int32 `json:"in_use"`
	Constructing int32 `json:"constructing"`
	// Waiting is the requests waiting for a connection right now.
	Waiting int64 `json:"waiting"`
	// Acquires counts connections handed out; EmptyAcquires those that
	// had to wait because none was idle; CanceledAcquires those given up.
	Acquires         int64 `json:"acquires"`
	EmptyAcquires    int64 `json:"empty_acquires"`
	CanceledAcquires int64 `json:"canceled_acquires"`
	// AcquireWaitSeconds is the total time spent waiting for connections.
	AcquireWaitSeconds float64 `json:"acquire_wait_seconds"`
}
