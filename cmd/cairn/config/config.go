package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// IgnoredEnv lists CAIRN_* environment variables that are not configuration
// keys but are used by the program for something else; Load neither applies
// nor rejects them. CAIRN_CONFIG is the path of the configuration file;
// CAIRN_USER holds the credentials the commands send to a node.
var IgnoredEnv = []string{"CAIRN_CONFIG", "CAIRN_USER"}

// Config is the effective configuration of a node: defaults, then the TOML
// file, then CAIRN_* environment variables. Build it with Load.
//
// Each section is a struct field with a `toml` tag; each key is a field of
// the section with a `toml` tag and, optionally, a `default` tag holding the
// default as it would be written in the environment. The environment
// variable of a key, the tracking of where each value came from, and the
// redacted output are all derived from those tags, so a new key or section
// needs no code beyond its field (and its checks in validate.go).
//
// String, GoString and MarshalJSON print the configuration with secrets
// redacted; so does Redacted.
type Config struct {
	// Node is this node's identity and addresses.
	Node Node `toml:"node"`
	// Cluster is the Raft membership and tuning.
	Cluster Cluster `toml:"cluster"`
	// DB selects embedded SQLite or PostgreSQL and tunes the connections.
	DB DB `toml:"db"`
	// Backup schedules backups and keeps them.
	Backup Backup `toml:"backup"`
	// S3 is where backups are uploaded; empty means local backups only.
	S3 S3 `toml:"s3"`
	// Encryption holds the keys backups are encrypted with.
	Encryption Encryption `toml:"encryption"`
	// HTTP tunes the HTTP API server.
	HTTP HTTP `toml:"http"`
	// Auth lists the users of the HTTP API.
	Auth Auth `toml:"auth"`
	// Log configures logging.
	Log Log `toml:"log"`

	// origins maps a key ("node.http_addr") to where its value came from. A
	// key that is missing has its built-in default.
	origins map[string]Origin
}

// Node is the [node] section: this node's identity and addresses.
type Node struct {
	// ID is this node's id in cluster.nodes. When empty it is derived from
	// the hostname (see IDFromHostname): "cairn-2" gives "3"; a hostname
	// without an ordinal gives "1".
	ID string `toml:"id"`
	// Hostname overrides the hostname used to derive ID; empty means the
	// operating system's hostname.
	Hostname string `toml:"hostname"`
	// DataDir holds the Raft state, the SQLite database and local backups.
	DataDir string `toml:"data_dir" default:"./cairn-data"`
	// HTTPAddr is the host:port the HTTP API listens on.
	HTTPAddr string `toml:"http_addr" default:"127.0.0.1:4001"`
	// RaftAddr is the host:port Raft listens on.
	RaftAddr string `toml:"raft_addr" default:"127.0.0.1:4002"`
	// HTTPAdvertise is the host:port other nodes and clients use to reach
	// HTTPAddr. It defaults to this node's entry in cluster.nodes, else to
	// HTTPAddr; it must be set when HTTPAddr listens on all interfaces.
	HTTPAdvertise string `toml:"http_advertise"`
	// RaftAdvertise is the host:port other nodes use to reach RaftAddr,
	// with the same defaults as HTTPAdvertise.
	RaftAdvertise string `toml:"raft_advertise"`
}

// Cluster is the [cluster] section: Raft membership and tuning.
type Cluster struct {
	// Name names the cluster in backups, so that backups of several
	// clusters sharing a bucket can be told apart.
	Name string `toml:"name" default:"cairn"`
	// Nodes lists every member as "ID RAFT_ADDR HTTP_ADDR", identically on
	// every node. The default is this node alone. In the environment the
	// entries are separated by commas or newlines. Use Config.Members to
	// read it.
	Nodes []string `toml:"nodes"`
	// Secret is the shared secret nodes authenticate each other with. It is
	// required when there is more than one node, and at least 16 characters
	// long.
	Secret Secret `toml:"secret"`
	// SnapshotThreshold is the number of log entries since the last
	// snapshot that triggers a new one.
	SnapshotThreshold uint64 `toml:"snapshot_threshold" default:"8192"`
	// SnapshotInterval is how often Raft checks SnapshotThreshold.
	SnapshotInterval time.Duration `toml:"snapshot_interval" default:"30s"`
	// TrailingLogs is the number of log entries kept after a snapshot, so
	// that a slightly lagging follower catches up without a snapshot.
	TrailingLogs uint64 `toml:"trailing_logs" default:"10240"`
	// ApplyTimeout bounds a write whose request carries no deadline.
	ApplyTimeout time.Duration `toml:"apply_timeout" default:"10s"`
	// HeartbeatTimeout is how long a follower waits for the leader before
	// it starts an election.
	HeartbeatTimeout time.Duration `toml:"heartbeat_timeout" default:"500ms"`
	// ElectionTimeout is how long a candidate waits for votes; at least
	// HeartbeatTimeout.
	ElectionTimeout time.Duration `toml:"election_timeout" default:"500ms"`
}

// DB is the [db] section: which database backs the API and how to reach it.
type DB struct {
	// URL selects the database: empty or "sqlite://" means the embedded,
	// Raft-replicated SQLite; "postgres://…" or "postgresql://…" means
	// Postgres mode. The password in it is redacted wherever it is shown.
	URL string `toml:"url" secret:"url"`
	// MaxConnections is the size of the PostgreSQL connection pool.
	MaxConnections int `toml:"max_connections" default:"5"`
	// MinConnections is how many PostgreSQL connections the pool keeps
	// open even when idle.
	MinConnections int `toml:"min_connections" default:"0"`
	// ConnectTimeout bounds establishing one PostgreSQL connection.
	ConnectTimeout time.Duration `toml:"connect_timeout" default:"5s"`
	// StatementTimeout bounds one statement on PostgreSQL (its
	// statement_timeout); zero means PostgreSQL's own setting.
	StatementTimeout time.Duration `toml:"statement_timeout" default:"0s"`
	// AutoMigrate runs pending schema migrations at start.
	AutoMigrate bool `toml:"auto_migrate" default:"true"`
	// MigrationsDir is the directory of migration files (NNNN_name.sql,
	// with optional .sqlite.sql / .postgres.sql variants); empty means no
	// migrations.
	MigrationsDir string `toml:"migrations_dir"`
}

// Backup is the [backup] section: the leader's scheduled backups.
type Backup struct {
	// Cron is the schedule in Hiqlite's seven-field form "sec min hour
	// day_of_month month day_of_week year"; six fields (no year) and the
	// classic five are accepted too. Empty disables scheduled backups.
	Cron string `toml:"cron" default:"0 30 2 * * * *"`
	// Timezone is the time zone of Cron (an IANA name).
	Timezone string `toml:"timezone" default:"UTC"`
	// KeepDaysLocal is how many days backups stay in the local backup
	// directory; the newest always stays.
	KeepDaysLocal int `toml:"keep_days_local" default:"3"`
	// KeepDays is how many days backups stay in S3; the newest always
	// stays.
	KeepDays int `toml:"keep_days" default:"30"`
	// Encrypt requires encryption keys before backups may leave the node
	// (S3). Set it to false explicitly to upload unencrypted backups.
	Encrypt bool `toml:"encrypt" default:"true"`
	// FailureCriticalAfter is how long backups may keep failing (every run
	// since the last success failed) before /healthz reports the node as
	// unhealthy (503); until then a failure is reported without failing
	// it. Zero means never.
	FailureCriticalAfter time.Duration `toml:"failure_critical_after" default:"26h"`
	// Restore rebuilds this node from a backup before Raft starts:
	// "s3:NAME", "s3:latest" or "file:/path" (a Cairn backup or a plain
	// SQLite file). A restore already applied is recognised and not
	// applied again, so the variable may stay set.
	Restore string `toml:"restore"`
}

// S3 is the [s3] section: an S3-compatible bucket for backups.
type S3 struct {
	// URL is the endpoint ("https://s3.eu-central-1.amazonaws.com",
	// "http://127.0.0.1:7070"); empty means AWS's endpoint for Region.
	URL string `toml:"url"`
	// Bucket is the bucket; setting it turns uploads on.
	Bucket string `toml:"bucket"`
	// Region is the bucket's region.
	Region string `toml:"region" default:"us-east-1"`
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// instead of the host name, as most self-hosted stores need.
	PathStyle bool `toml:"path_style" default:"false"`
	// Key and Secret are the access key id and secret access key; both
	// empty means the SDK's default credential chain.
	Key    string `toml:"key"`
	Secret Secret `toml:"secret"`
	// Prefix is put before every object name ("prod/cairn/").
	Prefix string `toml:"prefix"`
}

// Encryption is the [encryption] section: the key ring of backups.
type Encryption struct {
	// Keys lists "id/<base64 of 32 bytes>" entries; every key stays usable
	// for reading, so backups made before a rotation still decrypt.
	Keys []string `toml:"keys" secret:"true"`
	// KeyActive is the id of the key new backups are encrypted with.
	KeyActive string `toml:"key_active"`
}

// HTTP is the [http] section: limits and timeouts of the HTTP API server.
// For ReadTimeout, WriteTimeout, IdleTimeout and RequestTimeout, zero means
// no limit.
type HTTP struct {
	// MaxBodySize is the largest request body accepted.
	MaxBodySize Size `toml:"max_body_size" default:"10MiB"`
	// ShutdownTimeout bounds the graceful shutdown of the server.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout" default:"15s"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration `toml:"read_timeout" default:"30s"`
	// WriteTimeout bounds writing a response.
	WriteTimeout time.Duration `toml:"write_timeout" default:"60s"`
	// IdleTimeout bounds how long a keep-alive connection waits for the
	// next request.
	IdleTimeout time.Duration `toml:"idle_timeout" default:"120s"`
	// RequestTimeout bounds the work done for each request.
	RequestTimeout time.Duration `toml:"request_timeout" default:"30s"`
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP address.
	// Leave it off unless the address is private.
	Pprof bool `toml:"pprof" default:"false"`
	// MaxConcurrent bounds the statement requests (/db/execute, /db/query,
	// /db/request) that run at once on this node; 0 means no bound. A
	// request past it waits up to QueueTimeout for a slot, then is
	// answered 503 with Retry-After.
	MaxConcurrent int `toml:"max_concurrent" default:"64"`
	// QueueTimeout is how long a statement request waits for a slot under
	// MaxConcurrent; 0 refuses it at once.
	QueueTimeout time.Duration `toml:"queue_timeout" default:"250ms"`
	// AccessLog logs every request at info level; otherwise requests that
	// succeed are logged at debug level only.
	AccessLog bool `toml:"access_log" default:"false"`
}

// Auth is the [auth] section: the users of the HTTP API. With no users
// the API is open to anyone who can reach it.
type Auth struct {
	// Users lists "name:password:perm,perm" entries. The password is a
	// bcrypt hash ($2a$, $2b$ or $2y$) or, weaker, plain text; the
	// permissions are read, write, status, backup, admin and all. Use
	// AuthUsers to read it.
	Users []string `toml:"users" secret:"true"`
	// Metrics protects /metrics (it needs the status permission) when
	// there are users; false leaves it open for an unauthenticated
	// Prometheus.
	Metrics bool `toml:"metrics" default:"true"`
}

// Log is the [log] section.
type Log struct {
	// Level is the lowest level logged: debug, info, warn or error.
	Level string `toml:"level" default:"info"`
	// Format is the log line format: text or json.
	Format string `toml:"format" default:"text"`
}

// SlogLevel returns Level as a slog.Level; anything unknown is Info.
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Member is one entry of cluster.nodes.
type Member struct {
	// ID is the node's Raft server id.
	ID string
	// RaftAddr is the host:port other nodes reach its Raft transport on.
	RaftAddr string
	// HTTPAddr is the host:port of its HTTP API.
	HTTPAddr string
}

// PostgresMode reports whether db.url selects PostgreSQL, in which case
// there is no Raft and no backups.
func (c *Config) PostgresMode() bool {
	scheme, _, ok := strings.Cut(c.DB.URL, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// Members parses cluster.nodes. With no entries it returns this node alone,
// at its advertised addresses. The error lists every bad entry.
func (c *Config) Members() ([]Member, error) {
	if len(c.Cluster.Nodes) == 0 {
		return []Member{{ID: c.Node.ID, RaftAddr: c.Node.RaftAdvertise, HTTPAddr: c.Node.HTTPAdvertise}}, nil
	}
	members, problems := parseMembers(c.Cluster.Nodes)
	if len(problems) > 0 {
		return nil, fmt.Errorf("cluster.nodes: %s", strings.Join(problems, "; "))
	}
	return members, nil
}

// Origin reports where the value of key ("node.http_addr") came from.
func (c *Config) Origin(key string) Origin {
	return c.origins[key] // the zero Origin is SourceDefault
}

// IDFromHostname derives a node id from a StatefulSet-style hostname: a
// trailing "-N" (N a decimal ordinal counting from 0) gives the id N+1, so
// "cairn-0" is "1" and "my-db-10" is "11". Any domain part is ignored
// ("cairn-2.cairn-headless" is "3"). It reports false when the hostname has
// no ordinal.
func IDFromHostname(h string) (string, bool) {
	h, _, _ = strings.Cut(h, ".")
	i := strings.LastIndexByte(h, '-')
	if i <= 0 {
		return "", false
	}
	n, err := strconv.ParseUint(h[i+1:], 10, 32)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(n+1, 10), true
}

// Source says which layer a value came from.
type Source int

const (
	// SourceDefault is a built-in or derived default.
	SourceDefault Source = iota
	// SourceFile is the TOML configuration file.
	SourceFile
	// SourceEnv is a CAIRN_* environment variable.
	SourceEnv
)

// String returns "default", "file" or "env".
func (s Source) String() string {
	switch s {
	case SourceFile:
		return "file"
	case SourceEnv:
		return "env"
	default:
		return "default"
	}
}

// Origin is where a value came from.
type Origin struct {
	// Source is the layer.
	Source Source
	// Name is the file's path (SourceFile), the variable's name
	// (SourceEnv), or what a derived default was derived from
	// (SourceDefault, may be empty).
	Name string
	// Line is the value's line in the file, when known (SourceFile).
	Line int
}

// String formats the origin as error messages show it: "default",
// `default: hostname "web"`, "file cairn.toml:3" or
// "env CAIRN_NODE_HTTP_ADDR".
func (o Origin) String() string {
	switch {
	case o.Source == SourceFile && o.Line > 0:
		return fmt.Sprintf("file %s:%d", o.Name, o.Line)
	case o.Name == "":
		return o.Source.String()
	case o.Source == SourceDefault:
		return "default: " + o.Name
	default:
		return o.Source.String() + " " + o.Name
	}
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Key is the configuration key ("node.http_addr"); it is empty when the
	// problem is not about a known key (an unknown environment variable).
	Key string
	// Origin is where the offending value came from.
	Origin Origin
	// Problem says what is wrong. It never contains a secret.
	Problem string
}

// String formats the problem as
// `node.http_addr (env CAIRN_NODE_HTTP_ADDR): "localhost" is not host:port`.
func (p Problem) String() string {
	if p.Key == "" {
		return p.Origin.String() + ": " + p.Problem
	}
	return fmt.Sprintf("%s (%s): %s", p.Key, p.Origin, p.Problem)
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return "invalid configuration"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Secret is a string that is never shown: String, GoString, MarshalText and
// LogValue give "[redacted]" (or "" when it is empty), so printing or
// logging a struct that holds one does not reveal it. Value returns it.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redactedMark
}

// GoString is String, quoted, so that %#v does not reveal the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText returns the redacted form, for JSON and TOML encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue returns the redacted form, for slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// redactedMark replaces a secret wherever one would be shown.
const redactedMark = "[redacted]"
