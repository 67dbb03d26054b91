package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// Permission is a set of things a user may do, as a bit set.
type Permission uint8

// The permissions of auth.users. PermAdmin holds every other one.
const (
	// PermRead allows /db/query, at every read level.
	PermRead Permission = 1 << iota
	// PermWrite allows /db/execute and /db/request.
	PermWrite
	// PermStatus allows /status, /nodes, and /metrics when it is protected.
	PermStatus
	// PermBackup allows /v1/backups.
	PermBackup
	// PermAdmin allows everything, including /v1/maintenance and any
	// endpoint not named above.
	PermAdmin

	// PermAll is every permission; "all" in a user entry.
	PermAll = PermRead | PermWrite | PermStatus | PermBackup | PermAdmin
)

// permissionNames maps the names of a user entry to permissions, in the
// order error messages list them.
var permissionNames = []struct {
	name string
	perm Permission
}{
	{"read", PermRead},
	{"write", PermWrite},
	{"status", PermStatus},
	{"backup", PermBackup},
	{"admin", PermAll},
	{"all", PermAll},
}

// PermissionNames returns the permission names a user entry may hold.
func PermissionNames() []string {
	names := make([]string, len(permissionNames))
	for i, p := range permissionNames {
		names[i] = p.name
	}
	return names
}

// ParsePermission returns the permission of a name ("read", "admin", …),
// case-insensitively.
func ParsePermission(name string) (Permission, error) {
	for _, p := range permissionNames {
		if strings.EqualFold(name, p.name) {
			return p.perm, nil
		}
	}
	return 0, fmt.Errorf("unknown permission %q (want %s)", name, strings.Join(PermissionNames(), ", "))
}

// Has reports whether p holds every permission of q.
func (p Permission) Has(q Permission) bool { return p&q == q }

// String names the permissions of p, separated by commas; "admin" when p
// holds them all.
func (p Permission) String() string {
	if p.Has(PermAdmin) {
		return "admin"
	}
	var names []string
	for _, n := range permissionNames[:4] {
		if p.Has(n.perm) {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// bcryptPrefixes mark a password given as a bcrypt hash.
var bcryptPrefixes = []string{"$2a$", "$2b$", "$2y$"}

// user is one entry of a UserSet.
type user struct {
	name  string
	perms Permission
	// hash is the bcrypt hash of the password, or nil when the password
	// was given in plain text; then plainSum is its SHA-256.
	hash     []byte
	plainSum [sha256.Size]byte
}

// UserSet is the users allowed to call the API and what each may do. It
// is safe for concurrent use; build it with NewUserSet and hand it to
// Config.Users or Server.SetUsers.
//
// A bcrypt check costs tens of milliseconds of CPU, too much for every
// request, so after a password passes it the set remembers an HMAC of it
// (under a random key of this process) and later requests with the same
// password compare against that. At most GOMAXPROCS bcrypt checks run at
// once, so a flood of wrong passwords cannot take every core.
type UserSet struct {
	users map[string]*user

	// macKey keys the HMACs of verified passwords.
	macKey [32]byte
	// bcryptSlots bounds the bcrypt checks running at once.
	bcryptSlots chan struct{}

	mu sync.Mutex // guards verified
	// verified holds, per user name, the HMAC of the last password that
	// passed its bcrypt check.
	verified map[string][]byte
}

// UserEntryError is a malformed user entry. It names the entry (counted
// from 1) and, when the entry has the shape name:password:permissions,
// the user; it never holds the password.
type UserEntryError struct {
	// Entry is the entry's position, counting from 1.
	Entry int
	// User is the entry's user name, empty when the entry has no
	// recognisable shape.
	User string
	// Reason says what is wrong.
	Reason string
}

// Error formats the error as `entry 2 (user "bob"): unknown permission …`.
func (e *UserEntryError) Error() string {
	if e.User == "" {
		return fmt.Sprintf("entry %d: %s", e.Entry, e.Reason)
	}
	return fmt.Sprintf("entry %d (user %q): %s", e.Entry, e.User, e.Reason)
}

// NewUserSet builds a UserSet from entries of the form
// "name:password:perm,perm". The password may be a bcrypt hash (it starts
// with $2a$, $2b$ or $2y$) or plain text; it may itself contain ':' but
// the name may not. Permissions are read, write, status, backup, admin and
// all (admin and all both allow everything). The error joins one
// *UserEntryError per bad entry. No entries make an empty set, which
// turns authentication off.
func NewUserSet(entries []string) (*UserSet, error) {
	u := &UserSet{
		users:       make(map[string]*user, len(entries)),
		bcryptSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		verified:    make(map[string][]byte),
	}
	_, _ = rand.Read(u.macKey[:]) // crypto/rand.Read never fails
	var errs []error
	for i, entry := range entries {
		usr, err := parseUserEntry(entry)
		if err == nil && u.users[usr.name] != nil {
			err = &UserEntryError{User: usr.name, Reason: "the user is declared twice"}
		}
		if err != nil {
			var ue *UserEntryError
			if errors.As(err, &ue) {
				ue.Entry = i + 1
			}
			errs = append(errs, err)
			continue
		}
		u.users[usr.name] = usr
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return u, nil
}

// parseUserEntry parses one "name:password:perm,perm" entry; the error's
// Entry is left for the caller to set.
func parseUserEntry(entry string) (*user, error) {
	entry = strings.TrimSpace(entry)
	first, last := strings.IndexByte(entry, ':'), strings.LastIndexByte(entry, ':')
	if first < 0 || first == last {
		return nil, &UserEntryError{Reason: `want "name:password:permissions"`}
	}
	name, password, permList := entry[:first], entry[first+1:last], entry[last+1:]
	if reason := checkUserName(name); reason != "" {
		return nil, &UserEntryError{Reason: reason}
	}
	u := &user{name: name}
	if password == "" {
		return nil, &UserEntryError{User: name, Reason: "the password is empty"}
	}
	if slices.ContainsFunc(bcryptPrefixes, func(p string) bool { return strings.HasPrefix(password, p) }) {
		if _, err := bcrypt.Cost([]byte(password)); err != nil {
			return nil, &UserEntryError{User: name, Reason: "the password starts like a bcrypt hash but is not a valid one"}
		}
		u.hash = []byte(password)
	} else {
		u.plainSum = sha256.Sum256([]byte(password))
	}
	for p := range strings.SplitSeq(permList, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		perm, err := ParsePermission(p)
		if err != nil {
			return nil, &UserEntryError{User: name, Reason: err.Error()}
		}
		u.perms |= perm
	}
	if u.perms == 0 {
		return nil, &UserEntryError{User: name, Reason: fmt.Sprintf("no permissions: list some of %s after the last ':'", strings.Join(PermissionNames(), ", "))}
	}
	return u, nil
}

// checkUserName says what is wrong with a user name, or "".
func checkUserName(name string) string {
	switch {
	case name == "":
		return "the user name is empty"
	case len(name) > 128:
		return "the user name is longer than 128 bytes"
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "the user name contains a blank or control character"
	}
	return ""
}

// Len is the number of users; zero means authentication is off.
func (u *UserSet) Len() int {
	if u == nil {
		return 0
	}
	return len(u.users)
}

// dummySum is compared against when the user is unknown, so that the
// answer takes as long as for a known user with a plain-text password.
var dummySum = sha256.Sum256([]byte("cairn: no such user"))

// authenticate checks a user name and password and returns the user's
// permissions; ok is false for an unknown user or a wrong password. The
// comparisons run in constant time. ctx bounds the wait for a bcrypt slot.
func (u *UserSet) authenticate(ctx context.Context, name, password string) (perms Permission, ok bool) {
	usr := u.users[name]
	if usr == nil || usr.hash == nil {
		want := dummySum
		if usr != nil {
			want = usr.plainSum
		}
		got := sha256.Sum256([]byte(password))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || usr == nil {
			return 0, false
		}
		return usr.perms, true
	}

	mac := hmac.New(sha256.New, u.macKey[:])
	mac.Write([]byte(password))
	sum := mac.Sum(nil)
	u.mu.Lock()
	known := u.verified[name]
	u.mu.Unlock()
	if known != nil && hmac.Equal(sum, known) {
		return usr.perms, true
	}
	select {
	case u.bcryptSlots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	err := bcrypt.CompareHashAndPassword(usr.hash, []byte(password))
	<-u.bcryptSlots
	if err != nil {
		return 0, false
	}
	u.mu.Lock()
	u.verified[name] = sum
	u.mu.Unlock()
	return usr.perms, true
}

// authRealm is the realm of the WWW-Authenticate challenge.
const authRealm = `Basic realm="cairn"`

// SetUsers replaces the users allowed to call the API, for a reload of
// the configuration while the server runs. A nil or empty set turns
// authentication off. Requests already past the check are not affected.
func (s *Server) SetUsers(u *UserSet) {
	s.users.Store(u)
}

// SetMetricsOpen changes, while the server runs, whether /metrics is open
// to unauthenticated scrapes when users are set (Config.MetricsOpen).
func (s *Server) SetMetricsOpen(open bool) {
	s.metricsOpen.Store(open)
}

// permissionFor returns the permission a request needs; exempt is true
// for the endpoints that never ask for credentials: the probes, the
// node-to-node paths under /internal/ (they carry their own HMAC), /join
// and /remove (signed with the cluster secret) and, when
// Config.MetricsOpen is set, /metrics. A path that is not served needs
// only valid credentials (and then answers 404).
func (s *Server) permissionFor(r *http.Request) (need Permission, exempt bool) {
	path := r.URL.Path
	switch {
	case isProbe(path) || path == "/healthz":
		return 0, true
	case strings.HasPrefix(path, InternalPrefix), path == "/join", path == "/remove":
		return 0, true
	case path == "/metrics":
		return PermStatus, s.metricsOpen.Load()
	case path == "/db/query":
		return PermRead, false
	case path == "/db/execute", path == "/db/request":
		return PermWrite, false
	case path == "/status", path == "/nodes":
		return PermStatus, false
	case path == backupsPrefix || strings.HasPrefix(path, backupsPrefix+"/"):
		return PermBackup, false
	case strings.HasPrefix(path, "/debug/pprof/"):
		return PermAdmin, false
	case s.routes[path].handle != nil:
		// Every other endpoint (/v1/maintenance, …) is for operators.
		return PermAdmin, false
	}
	return 0, false
}

// maxLoggedUser bounds the user name a failed login logs: it comes from
// the client.
const maxLoggedUser = 64

// authorize checks the request's HTTP Basic credentials when users are
// configured, and answers 401 (no or wrong credentials) or 403 (a
// permission is missing) itself; it reports whether the request may go
// on. A failed login is logged with the user name and the remote address,
// never the password.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	users := s.users.Load()
	if users.Len() == 0 {
		return true
	}
	need, exempt := s.permissionFor(r)
	if exempt {
		return true
	}
	name, password, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", authRealm)
		s.writeError(w, r, apiError{status: http.StatusUnauthorized,
			msg: "authentication required: send a user name and password with HTTP Basic authentication"}, false)
		return false
	}
	perms, ok := users.authenticate(r.Context(), name, password)
	if !ok {
		logged := name
		if len(logged) > maxLoggedUser {
			logged = logged[:maxLoggedUser] + "…"
		}
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "authentication failed",
			slog.String(logKeyUser, logged), slog.String(logKeyRemote, r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", authRealm)
		s.writeError(w, r, apiError{status: http.StatusUnauthorized, msg: "wrong user name or password"}, false)
		return false
	}
	info := infoFrom(r.Context())
	if info != nil {
		info.user = name
	}
	if need != 0 && !perms.Has(need) {
		msg := fmt.Sprintf("user %q lacks the %s permission that %s %s needs", name, need, r.Method, r.URL.Path)
		s.writeError(w, r, apiError{status: http.StatusForbidden, msg: msg}, false)
		return false
	}
	return true
}
