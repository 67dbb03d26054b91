package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// handleExecute serves POST /db/execute: statements that change data.
func (s *Server) handleExecute(w http.ResponseWriter, r *http.Request) {
	s.handleDB(w, r, endpointExecute)
}

// handleQuery serves GET /db/query?q=SQL and POST /db/query: read-only
// statements at the requested ?level.
func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) {
	s.handleDB(w, r, endpointQuery)
}

// handleRequest serves POST /db/request: a mix of reads and writes.
func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request) {
	s.handleDB(w, r, endpointRequest)
}

// handleDB decodes a /db call, runs it on the Store and writes the results.
func (s *Server) handleDB(w http.ResponseWriter, r *http.Request, ep endpoint) {
	start := time.Now()
	p, err := parseDBParams(r.URL.RawQuery)
	if err != nil {
		s.writeRequestError(w, r, err, false)
		return
	}
	if p.queue {
		s.writeError(w, r, apiError{status: http.StatusBadRequest,
			msg: "queued writes (?queue) are not supported: send the request without ?queue; it returns once the write is committed"}, p.pretty)
		return
	}

	if p.redirect && (ep != endpointQuery || p.level != command.LevelNone) && s.redirectToLeader(w, r) {
		return
	}

	stmts, err := s.readStatements(w, r, ep, p)
	if err != nil {
		s.writeRequestError(w, r, err, p.pretty)
		return
	}
	req := &command.Request{Transaction: p.transaction, Statements: stmts}
	opts := cluster.QueryOptions{Level: p.level, Freshness: p.freshness}

	timeout := p.requestTimeout(s.cfg.RequestTimeout)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	release, shed := s.admit(ctx, timeout)
	if shed != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = fmt.Errorf("%s %d statements: %s", ep, len(stmts), shed.msg)
		}
		s.writeError(w, r, *shed, p.pretty)
		return
	}
	results, err := s.run(ctx, ep, req, opts, release)
	s.metrics.observeStatements(ep, len(stmts), results, err)
	if err != nil {
		e := mapError(err, writeKindOf(ep), timeout)
		if info := infoFrom(r.Context()); info != nil {
			info.err = fmt.Errorf("%s %d statements: %w", ep, len(stmts), err)
		}
		s.writeError(w, r, e, p.pretty)
		return
	}

	enc := encodeOptions{timings: p.timings, associative: p.associative, blobArray: p.blobArray}
	resp, err := newDBResponse(results, ep, enc, time.Since(start))
	if err != nil {
		// The statements ran; only their results cannot be shown.
		if info := infoFrom(r.Context()); info != nil {
			info.err = err
		}
		msg := fmt.Sprintf("cannot encode the results: %v", err)
		if ep != endpointQuery {
			msg += "; the statements were applied"
		}
		s.writeError(w, r, apiError{status: http.StatusInternalServerError, msg: msg}, p.pretty)
		return
	}
	if err := writeJSON(w, http.StatusOK, resp, p.pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

// run calls the Store for a /db call, counting it in flight, and calls
// release when the Store is done, even if it panics.
func (s *Server) run(ctx context.Context, ep endpoint, req *command.Request, opts cluster.QueryOptions, release func()) ([]command.Result, error) {
	defer release()
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	switch ep {
	case endpointExecute:
		return s.store.Execute(ctx, req)
	case endpointQuery:
		return s.store.Query(ctx, req, opts)
	}
	return s.store.Request(ctx, req, opts)
}

// readStatements returns the statements of a /db call: ?q= for GET
// /db/query, the JSON body otherwise.
func (s *Server) readStatements(w http.ResponseWriter, r *http.Request, ep endpoint, p dbParams) ([]*command.Statement, error) {
	if ep == endpointQuery && r.Method == http.MethodGet {
		if strings.TrimSpace(p.query) == "" {
			return nil, badRequestf("missing query: use GET /db/query?q=SQL, or POST a JSON array of statements")
		}
		return []*command.Statement{{Sql: p.query}}, nil
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodySize)
	return decodeStatements(body)
}

// writeRequestError answers a request that could not be decoded: 413 for
// a body over the limit, 400 otherwise.
func (s *Server) writeRequestError(w http.ResponseWriter, r *http.Request, err error, pretty bool) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		msg := fmt.Sprintf("request body is larger than the limit of %d bytes", tooBig.Limit)
		s.writeError(w, r, apiError{status: http.StatusRequestEntityTooLarge, msg: msg}, pretty)
		return
	}
	s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: err.Error()}, pretty)
}

// redirectToLeader answers 301 with the leader's URL for this request when
// this node is not the leader, as rqlite does for ?redirect. It reports
// whether it answered.
func (s *Server) redirectToLeader(w http.ResponseWriter, r *http.Request) bool {
	target, follower := s.leaderURL(r)
	switch {
	case !follower:
		return false
	case target == "":
		s.writeError(w, r, apiError{status: http.StatusServiceUnavailable, msg: cluster.ErrNoLeader.Error(), retryAfter: 1}, false)
	default:
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	}
	return true
}

// leaderURL is this request's URL on the leader. follower is false when
// this node leads (or is not in Raft mode); target is empty when no
// leader is known.
func (s *Server) leaderURL(r *http.Request) (target string, follower bool) {
	st, err := s.store.Status(r.Context())
	if err != nil || st.Mode != "raft" || st.State == "Leader" {
		return "", false
	}
	if st.Leader.HTTPAddr == "" {
		return "", true
	}
	u := *r.URL
	u.Scheme, u.Host = "http", st.Leader.HTTPAddr
	return u.String(), true
}
