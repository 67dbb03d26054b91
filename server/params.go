package server

import (
	"net/url"
	"strconv"
	"time"

	"github.com/cairndb/cairn/statemachine/command"
)

// queryParams is a parsed query string. As in rqlite, a flag is on when it
// is present with no value (?timings) and with any true value
// (?timings=true); unlike rqlite, a false value (?timings=false) turns it
// off.
type queryParams url.Values

// parseQueryParams parses a raw query string, refusing malformed ones
// rather than dropping the pairs it cannot read.
func parseQueryParams(raw string) (queryParams, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequestf("malformed query string: %v", err)
	}
	return queryParams(v), nil
}

// has reports whether the key is present at all.
func (q queryParams) has(key string) bool {
	_, ok := q[key]
	return ok
}

// get returns the first value of key, or "".
func (q queryParams) get(key string) string {
	return url.Values(q).Get(key)
}

// flag reports whether a flag is on.
func (q queryParams) flag(key string) (bool, error) {
	vs, ok := q[key]
	if !ok {
		return false, nil
	}
	if len(vs) == 0 || vs[0] == "" {
		return true, nil
	}
	on, err := strconv.ParseBool(vs[0])
	if err != nil {
		return false, badRequestf("invalid value %q for ?%s: want true or false, or no value", vs[0], key)
	}
	return on, nil
}

// duration parses a positive Go duration such as 500ms or 2s; absent is 0.
func (q queryParams) duration(key string) (time.Duration, error) {
	s := q.get(key)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, badRequestf("invalid value %q for ?%s: want a duration such as 500ms or 2s", s, key)
	}
	return d, nil
}

// dbParams are the options of the /db endpoints.
type dbParams struct {
	transaction bool
	timings     bool
	associative bool
	pretty      bool
	// blobArray renders BLOBs as arrays of integers instead of base64
	// (rqlite's ?blob_array).
	blobArray bool
	// queue is rqlite's queued-write mode, which Cairn refuses.
	queue bool
	// redirect asks a follower to answer 301 with the leader's URL
	// instead of forwarding the request itself (rqlite's ?redirect).
	redirect  bool
	level     command.Level
	freshness time.Duration
	// timeout shortens the server's request timeout; zero keeps it.
	timeout time.Duration
	// hasQuery and query are ?q=, the SQL of GET /db/query.
	hasQuery bool
	query    string
}

// parseDBParams reads the options of a /db request.
func parseDBParams(raw string) (dbParams, error) {
	q, err := parseQueryParams(raw)
	if err != nil {
		return dbParams{}, err
	}
	var p dbParams
	for _, f := range []struct {
		key string
		dst *bool
	}{
		{"transaction", &p.transaction},
		{"timings", &p.timings},
		{"associative", &p.associative},
		{"pretty", &p.pretty},
		{"blob_array", &p.blobArray},
		{"queue", &p.queue},
		{"redirect", &p.redirect},
	} {
		if *f.dst, err = q.flag(f.key); err != nil {
			return dbParams{}, err
		}
	}
	if p.level, err = command.ParseLevel(q.get("level")); err != nil {
		return dbParams{}, badRequestf("invalid ?level: %v", err)
	}
	if p.freshness, err = q.duration("freshness"); err != nil {
		return dbParams{}, err
	}
	if p.timeout, err = q.duration("timeout"); err != nil {
		return dbParams{}, err
	}
	p.hasQuery = q.has("q")
	p.query = q.get("q")
	return p, nil
}

// requestTimeout is the deadline of one /db call: the server's, shortened
// by ?timeout when that is smaller.
func (p dbParams) requestTimeout(server time.Duration) time.Duration {
	if p.timeout > 0 && p.timeout < server {
		return p.timeout
	}
	return server
}
