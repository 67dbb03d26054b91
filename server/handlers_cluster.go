package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairndb/cairn/cluster"
)

// Membership is what /join and /remove need of the store. A store without
// it (Postgres mode) has no membership to change.
type Membership interface {
	Join(ctx context.Context, m cluster.Member) error
	Remove(ctx context.Context, id string) error
}

// maxMembershipBody bounds the body of /join and /remove.
const maxMembershipBody = 64 << 10

// joinRequest is the body of POST /join, as rqlite takes it plus the
// joining node's HTTP address.
type joinRequest struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	HTTPAddr string `json:"http_addr"`
	// Voter defaults to true.
	Voter *bool `json:"voter"`
}

// removeRequest is the body of POST|DELETE /remove.
type removeRequest struct {
	ID string `json:"id"`
}

// handleJoin serves POST /join: add a node to the cluster.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var jr joinRequest
	ms, ok := s.membershipCall(w, r, &jr)
	if !ok {
		return
	}
	voter := jr.Voter == nil || *jr.Voter
	err := ms.Join(r.Context(), cluster.Member{ID: jr.ID, RaftAddr: jr.Addr, HTTPAddr: jr.HTTPAddr, Voter: voter})
	s.finishMembership(w, r, err)
}

// handleRemove serves POST|DELETE /remove: take a node out of the cluster.
func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	var rr removeRequest
	ms, ok := s.membershipCall(w, r, &rr)
	if !ok {
		return
	}
	s.finishMembership(w, r, ms.Remove(r.Context(), rr.ID))
}

// membershipCall authenticates and decodes a /join or /remove call, and
// redirects it to the leader when this node does not lead.
func (s *Server) membershipCall(w http.ResponseWriter, r *http.Request, dst any) (Membership, bool) {
	ms, ok := s.store.(Membership)
	if !ok {
		s.writeError(w, r, apiError{status: http.StatusNotImplemented, msg: "this node has no cluster membership to change (Postgres mode)"}, false)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMembershipBody))
	if err != nil {
		s.writeRequestError(w, r, fmt.Errorf("read body: %w", err), false)
		return nil, false
	}
	if s.cfg.Authenticate != nil {
		if err := s.cfg.Authenticate(r, body); err != nil {
			s.writeError(w, r, apiError{status: http.StatusUnauthorized, msg: err.Error()}, false)
			return nil, false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid %s body: %v", r.URL.Path, err)}, false)
		return nil, false
	}
	if s.sendToLeader(w, r) {
		return nil, false
	}
	return ms, true
}

// sendToLeader sends a follower's call that only the leader can serve
// (membership, backups on request, maintenance) to the leader with 307,
// which keeps the method and body.
func (s *Server) sendToLeader(w http.ResponseWriter, r *http.Request) bool {
	target, follower := s.leaderURL(r)
	if !follower || target == "" {
		return false
	}
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	return true
}

func (s *Server) finishMembership(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = err
		}
		e := mapError(err, writes, s.cfg.RequestTimeout)
		if errors.Is(err, cluster.ErrInvalidMember) {
			e = apiError{status: http.StatusBadRequest, msg: err.Error()}
		} else if errors.Is(err, cluster.ErrUnknownOutcome) {
			e.msg = strings.Replace(e.msg, maybeAppliedWrite, "the membership change may or may not have been applied; check with cairn cluster status", 1)
		}
		s.writeError(w, r, e, false)
		return
	}
	s.logger.Info("membership changed", "path", r.URL.Path, logKeyRequestID, infoFrom(r.Context()).id)
	if err := writeJSON(w, http.StatusOK, struct{}{}, false); err != nil {
		s.noteWriteError(r, err)
	}
}
