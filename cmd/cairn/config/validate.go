package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/backup/format"
	"github.com/cairndb/cairn/restore"
)

// minSecretLen is the shortest cluster.secret accepted.
const minSecretLen = 16

// resolve fills in the defaults that depend on other values: node.id from
// the hostname, the advertise addresses, and cluster.nodes. hostname is
// os.Hostname, used when node.hostname is empty.
func (c *Config) resolve(hostname func() (string, error)) {
	if c.Node.ID == "" {
		h := c.Node.Hostname
		if h == "" {
			h, _ = hostname()
		}
		id, ok := IDFromHostname(h)
		why := fmt.Sprintf("from hostname %q", h)
		if !ok {
			id, why = "1", fmt.Sprintf("hostname %q has no ordinal", h)
		}
		c.Node.ID = id
		c.origins["node.id"] = Origin{Source: SourceDefault, Name: why}
	}
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))

	// This node's own entry, if cluster.nodes has a usable one; Validate
	// reports the bad entries.
	var selfRaft, selfHTTP string
	members, _ := parseMembers(c.Cluster.Nodes)
	for _, m := range members {
		if m.ID == c.Node.ID {
			selfRaft, selfHTTP = m.RaftAddr, m.HTTPAddr
		}
	}
	c.defaultAdvertise(&c.Node.RaftAdvertise, "node.raft_advertise", selfRaft, c.Node.RaftAddr, "node.raft_addr")
	c.defaultAdvertise(&c.Node.HTTPAdvertise, "node.http_advertise", selfHTTP, c.Node.HTTPAddr, "node.http_addr")

	if len(c.Cluster.Nodes) == 0 && c.Node.RaftAdvertise != "" && c.Node.HTTPAdvertise != "" {
		c.Cluster.Nodes = []string{c.Node.ID + " " + c.Node.RaftAdvertise + " " + c.Node.HTTPAdvertise}
		c.origins["cluster.nodes"] = Origin{Source: SourceDefault, Name: "this node alone"}
	}
}

// defaultAdvertise sets an empty advertise address (adv, of key) to this
// node's entry in cluster.nodes (self) if there is one, else to the listen
// address if other nodes can reach it. Otherwise it stays empty and
// Validate says why.
func (c *Config) defaultAdvertise(adv *string, key, self, listen, listenKey string) {
	switch {
	case *adv != "":
	case self != "":
		*adv = self
		c.origins[key] = Origin{Source: SourceDefault, Name: "this node's entry in cluster.nodes"}
	case checkHostPort(listen, true) == "":
		*adv = listen
		c.origins[key] = Origin{Source: SourceDefault, Name: listenKey}
	}
}

// Validate checks a configuration as Load builds it and returns every
// problem at once, as a *ValidationError, or nil. In Postgres mode the Raft
// settings (node.raft_addr, node.raft_advertise and the [cluster] section)
// are not checked, and node.http_advertise is not required.
func (c *Config) Validate() error {
	ps := c.check()
	if len(ps) == 0 {
		return nil
	}
	return c.validationError(ps)
}

// validationError returns a ValidationError of ps with every secret of c,
// and the extra raw secrets, hidden from the messages.
func (c *Config) validationError(ps []Problem, extra ...string) *ValidationError {
	r := c.scrubber(extra...)
	for i := range ps {
		ps[i].Problem = r.Replace(ps[i].Problem)
	}
	return &ValidationError{Problems: ps}
}

// check returns the problems of c, unscrubbed.
func (c *Config) check() []Problem {
	v := &validator{c: c}
	pg := c.PostgresMode()

	// [node]
	if msg := checkID(c.Node.ID); msg != "" {
		v.add("node.id", "%s", msg)
	}
	if strings.TrimSpace(c.Node.DataDir) == "" {
		v.add("node.data_dir", "must not be empty")
	}
	v.listen("node.http_addr", c.Node.HTTPAddr)
	if !pg {
		v.listen("node.raft_addr", c.Node.RaftAddr)
		if c.Node.RaftAddr == c.Node.HTTPAddr && !zeroPort(c.Node.RaftAddr) {
			v.add("node.raft_addr", "%q is also node.http_addr", c.Node.RaftAddr)
		}
	}
	var members []Member
	if !pg {
		members = v.members()
	}
	multi := !pg && len(c.Cluster.Nodes) > 1
	var self Member
	for _, m := range members {
		if m.ID == c.Node.ID {
			self = m
		}
	}
	v.advertise("node.http_advertise", c.Node.HTTPAdvertise, "node.http_addr", c.Node.HTTPAddr, self.HTTPAddr, multi, pg)
	if !pg {
		v.advertise("node.raft_advertise", c.Node.RaftAdvertise, "node.raft_addr", c.Node.RaftAddr, self.RaftAddr, multi, false)
	}

	// [cluster]
	if !pg {
		switch n := len(c.Cluster.Secret); {
		case n == 0 && multi:
			v.add("cluster.secret", "required when cluster.nodes has %d members (set %s)", len(c.Cluster.Nodes), keys.byKey["cluster.secret"].env)
		case n == 0 && len(c.AuthUsers()) > 0:
			// The node-to-node endpoints (/internal/, /join, /remove) take
			// no user credentials; without a secret they would let anyone
			// past auth.users.
			v.add("cluster.secret", "required when auth.users is set: the node-to-node endpoints authenticate with it instead of a user (set %s)", keys.byKey["cluster.secret"].env)
		case n > 0 && n < minSecretLen:
			v.add("cluster.secret", "too short: at least %d characters are required", minSecretLen)
		}
		if c.Cluster.SnapshotThreshold == 0 {
			v.add("cluster.snapshot_threshold", "must be at least 1")
		}
		v.atLeast("cluster.snapshot_interval", c.Cluster.SnapshotInterval, 5*time.Millisecond)
		v.atLeast("cluster.heartbeat_timeout", c.Cluster.HeartbeatTimeout, 5*time.Millisecond)
		v.atLeast("cluster.election_timeout", c.Cluster.ElectionTimeout, 5*time.Millisecond)
		if c.Cluster.ElectionTimeout < c.Cluster.HeartbeatTimeout {
			v.add("cluster.election_timeout", "%s is shorter than cluster.heartbeat_timeout (%s)", c.Cluster.ElectionTimeout, c.Cluster.HeartbeatTimeout)
		}
		v.atLeast("cluster.apply_timeout", c.Cluster.ApplyTimeout, time.Millisecond)
	}

	// [db]
	if msg := checkDBURL(c.DB.URL); msg != "" {
		v.add("db.url", "%s", msg)
	}
	if c.DB.MaxConnections < 1 {
		v.add("db.max_connections", "must be at least 1, not %d", c.DB.MaxConnections)
	}
	if c.DB.MinConnections < 0 || c.DB.MinConnections > c.DB.MaxConnections {
		v.add("db.min_connections", "must be between 0 and db.max_connections (%d), not %d", c.DB.MaxConnections, c.DB.MinConnections)
	}
	v.atLeast("db.connect_timeout", c.DB.ConnectTimeout, time.Millisecond)
	v.atLeast("db.statement_timeout", c.DB.StatementTimeout, 0)

	if !c.PostgresMode() {
		v.backup()
	} else if c.Backup.Restore != "" {
		v.add("backup.restore", "Postgres mode has no Raft state to restore: restore PostgreSQL with its own tools (pg_restore, pgBackRest) and unset %s", keys.byKey["backup.restore"].env)
	}

	// [http]
	if c.HTTP.MaxBodySize <= 0 {
		v.add("http.max_body_size", "must be positive")
	}
	v.atLeast("http.shutdown_timeout", c.HTTP.ShutdownTimeout, time.Millisecond)
	v.atLeast("http.read_timeout", c.HTTP.ReadTimeout, 0)
	v.atLeast("http.write_timeout", c.HTTP.WriteTimeout, 0)
	v.atLeast("http.idle_timeout", c.HTTP.IdleTimeout, 0)
	v.atLeast("http.request_timeout", c.HTTP.RequestTimeout, 0)
	if c.HTTP.MaxConcurrent < 0 {
		v.add("http.max_concurrent", "must not be negative, not %d (0 means no limit)", c.HTTP.MaxConcurrent)
	}
	v.atLeast("http.queue_timeout", c.HTTP.QueueTimeout, 0)

	// [auth]
	v.authUsers()

	// [log]
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		v.add("log.format", "%q is not one of text, json", c.Log.Format)
	}

	return v.problems
}

// backup checks the [backup], [s3] and [encryption] sections.
func (v *validator) backup() {
	c := v.c
	loc, err := time.LoadLocation(c.Backup.Timezone)
	if err != nil {
		v.add("backup.timezone", "%q is not a time zone: %v", c.Backup.Timezone, err)
		loc = time.UTC
	}
	if c.Backup.Cron != "" {
		if _, err := backup.ParseSchedule(c.Backup.Cron, loc); err != nil {
			v.add("backup.cron", "%v", err)
		}
	}
	if c.Backup.Restore != "" {
		kind, _, err := restore.ParseSpec(c.Backup.Restore)
		switch {
		case err != nil:
			v.add("backup.restore", "%v", err)
		case kind == "s3" && c.S3.Bucket == "":
			v.add("backup.restore", "%q restores from S3, but s3.bucket is not set", c.Backup.Restore)
		}
	}
	if c.Backup.KeepDaysLocal < 0 {
		v.add("backup.keep_days_local", "must not be negative")
	}
	if c.Backup.KeepDays < 0 {
		v.add("backup.keep_days", "must not be negative")
	}
	v.atLeast("backup.failure_critical_after", c.Backup.FailureCriticalAfter, 0)
	if _, err := c.KeyRing(); err != nil {
		v.add("encryption.keys", "%v", err)
	}
	if c.S3.Bucket == "" {
		for key, val := range map[string]string{"s3.url": c.S3.URL, "s3.key": c.S3.Key, "s3.prefix": c.S3.Prefix} {
			if val != "" {
				v.add("s3.bucket", "required when %s is set", key)
				break
			}
		}
		return
	}
	if c.S3.URL != "" {
		if u, err := url.Parse(c.S3.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("s3.url", "%q is not an http(s) URL", c.S3.URL)
		}
	}
	if (c.S3.Key == "") != (c.S3.Secret == "") {
		v.add("s3.secret", "s3.key and s3.secret go together: set both, or neither to use the default credential chain")
	}
	if len(c.Encryption.Keys) == 0 && c.Backup.Encrypt {
		v.add("encryption.keys", "s3.bucket is set but there are no encryption keys: backups would leave this node unencrypted; set encryption.keys and encryption.key_active (%s, %s), or backup.encrypt = false to upload them unencrypted",
			keys.byKey["encryption.keys"].env, keys.byKey["encryption.key_active"].env)
	}
}

// KeyRing parses the encryption keys; nil when there are none.
func (c *Config) KeyRing() (*format.KeyRing, error) {
	if len(c.Encryption.Keys) == 0 && c.Encryption.KeyActive == "" {
		return nil, nil
	}
	return format.ParseKeyRing(c.Encryption.Keys, c.Encryption.KeyActive)
}

// Location is the time zone of backup.cron (UTC if it does not parse).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Backup.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// validator collects the problems of one Validate.
type validator struct {
	c        *Config
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Key: key, Origin: v.c.Origin(key), Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) atLeast(key string, d, least time.Duration) {
	switch {
	case d < 0:
		v.add(key, "%s is negative", d)
	case d == 0 && least > 0:
		v.add(key, "must be positive")
	case d < least:
		v.add(key, "%s is too short: at least %s", d, least)
	}
}

// listen checks a listen address: host:port, where the host may be empty
// or 0.0.0.0 and the port 0.
func (v *validator) listen(key, addr string) {
	if msg := checkHostPort(addr, false); msg != "" {
		v.add(key, "%s", msg)
	}
}

// advertise checks an advertise address: a routable host:port, equal to
// this node's entry in cluster.nodes (self, "" if none). An empty one means
// it could not be derived from the listen address; in Postgres mode
// (optional) that is fine.
func (v *validator) advertise(key, addr, listenKey, listen, self string, multi, optional bool) {
	if addr == "" {
		if !optional && checkHostPort(listen, false) == "" {
			v.add(key, "%s %q listens on all interfaces; set %s to a host:port other nodes can reach", listenKey, listen, key)
		}
		return
	}
	if msg := checkHostPort(addr, true); msg != "" {
		v.add(key, "%s", msg)
		return
	}
	if multi && zeroPort(addr) {
		v.add(key, "%q: port 0 cannot be reached by other nodes", addr)
	}
	if self != "" && addr != self {
		v.add(key, "%q differs from this node's entry in cluster.nodes (%q)", addr, self)
	}
}

// members checks cluster.nodes, including that this node is in it, and
// returns its members when it is valid.
func (v *validator) members() []Member {
	c := v.c
	members, problems := parseMembers(c.Cluster.Nodes)
	for _, p := range problems {
		v.add("cluster.nodes", "%s", p)
	}
	if len(problems) > 0 || len(members) == 0 {
		return nil
	}
	found := false
	for _, m := range members {
		found = found || m.ID == c.Node.ID
	}
	if !found {
		v.add("cluster.nodes", "this node's id %q (node.id, %s) is not in the list", c.Node.ID, c.Origin("node.id"))
	}
	return members
}

// parseMembers parses cluster.nodes entries ("ID RAFT_ADDR HTTP_ADDR") and
// returns every problem: a wrong number of fields, a bad id or address, a
// duplicate id or address, port 0 in a cluster of more than one.
func parseMembers(nodes []string) ([]Member, []string) {
	var (
		members  []Member
		problems []string
		ids      = map[string]int{}
		addrs    = map[string]int{}
	)
	for i, entry := range nodes {
		n := i + 1
		f := strings.Fields(entry)
		if len(f) != 3 {
			problems = append(problems, fmt.Sprintf(`entry %d %q: want "ID RAFT_ADDR HTTP_ADDR", found %d fields`, n, entry, len(f)))
			continue
		}
		m := Member{ID: f[0], RaftAddr: f[1], HTTPAddr: f[2]}
		ok := true
		if msg := checkID(m.ID); msg != "" {
			problems, ok = append(problems, fmt.Sprintf("entry %d: id %s", n, msg)), false
		} else if prev, dup := ids[m.ID]; dup {
			problems, ok = append(problems, fmt.Sprintf("entry %d: id %q is also entry %d's", n, m.ID, prev)), false
		} else {
			ids[m.ID] = n
		}
		for _, a := range []struct{ name, addr string }{{"raft", m.RaftAddr}, {"http", m.HTTPAddr}} {
			if msg := checkHostPort(a.addr, true); msg != "" {
				problems, ok = append(problems, fmt.Sprintf("entry %d: %s address %s", n, a.name, msg)), false
				continue
			}
			if len(nodes) > 1 && zeroPort(a.addr) {
				problems, ok = append(problems, fmt.Sprintf("entry %d: %s address %q: port 0 cannot be reached by other nodes", n, a.name, a.addr)), false
				continue
			}
			if zeroPort(a.addr) {
				continue
			}
			norm := strings.ToLower(a.addr)
			if prev, dup := addrs[norm]; dup {
				problems, ok = append(problems, fmt.Sprintf("entry %d: address %q is also used by entry %d", n, a.addr, prev)), false
				continue
			}
			addrs[norm] = n
		}
		if ok {
			members = append(members, m)
		}
	}
	return members, problems
}

// checkID says what is wrong with a node id, or "".
func checkID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if len(id) > 128 {
		return "is longer than 128 characters"
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return fmt.Sprintf("%q may contain only letters, digits, '.', '_' and '-'", id)
		}
	}
	return ""
}

// checkHostPort says what is wrong with addr as a host:port, or "". The
// host may be a name that does not resolve yet; only the syntax is checked.
// A routable address must name a host: not empty, 0.0.0.0 or ::.
func checkHostPort(addr string, routable bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			reason = ae.Err
		}
		return fmt.Sprintf("%q is not host:port: %s", addr, reason)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q is not host:port: the port must be a number from 0 to 65535", addr)
	}
	if host == "" {
		if routable {
			return fmt.Sprintf("%q has no host: other nodes cannot reach it", addr)
		}
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if routable && ip.IsUnspecified() {
			return fmt.Sprintf("%q means every interface: other nodes cannot reach it", addr)
		}
		return ""
	}
	if !validHostname(host) {
		return fmt.Sprintf("%q is not host:port: %q is neither an IP address nor a host name", addr, host)
	}
	return ""
}

// validHostname reports whether h is syntactically a DNS name. Underscores
// are allowed: Docker Compose service names may contain them.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

// zeroPort reports whether addr has port 0 (listen on any free port).
func zeroPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// checkDBURL says what is wrong with db.url, or "". It never quotes the
// URL, which may hold a password.
func checkDBURL(s string) string {
	if s == "" {
		return ""
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return "is not a URL: want postgres://… for PostgreSQL, or empty for the embedded SQLite"
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return ""
	case "postgres", "postgresql":
		if _, err := url.Parse(s); err != nil {
			return "is not a valid URL (special characters in the user name or password must be percent-encoded)"
		}
		return ""
	}
	const want = "want postgres:// or postgresql:// for PostgreSQL, or empty (or sqlite://) for the embedded SQLite"
	if !validScheme(scheme) {
		return "is not a URL: " + want
	}
	return fmt.Sprintf("unsupported scheme %q: %s", scheme, want)
}

// validScheme reports whether s is a URL scheme (RFC 3986, section 3.1).
func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && ((r >= '0' && r <= '9') || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}
