package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cairndb/cairn/cluster"
)

// MaintenancePath is the endpoint that shows and switches maintenance
// mode.
const MaintenancePath = "/v1/maintenance"

// maxMaintenanceBody bounds the body of POST /v1/maintenance.
const maxMaintenanceBody = 16 << 10

// Maintainer is what /v1/maintenance needs of the store: both backends
// keep the state where every node sees it.
type Maintainer interface {
	Maintenance(ctx context.Context) (cluster.Maintenance, error)
	SetMaintenance(ctx context.Context, enabled bool, reason string) (cluster.Maintenance, error)
}

// maintenanceRequest is the body of POST /v1/maintenance.
type maintenanceRequest struct {
	// Enabled is required: a body without it is refused rather than read
	// as "off".
	Enabled *bool  `json:"enabled"`
	Reason  string `json:"reason"`
}

// handleMaintenance serves GET (the state) and POST (switch it) on
// /v1/maintenance. A follower sends a POST on to the leader with 307.
func (s *Server) handleMaintenance(w http.ResponseWriter, r *http.Request) {
	_, f, ok := s.readFlags(w, r, "pretty")
	if !ok {
		return
	}
	pretty := f[0]
	mt, ok := s.store.(Maintainer)
	if !ok {
		s.writeError(w, r, apiError{status: http.StatusNotImplemented, msg: "this store has no maintenance mode"}, pretty)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if r.Method != http.MethodPost {
		m, err := mt.Maintenance(ctx)
		s.finishMaintenance(w, r, m, err, pretty)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMaintenanceBody))
	if err != nil {
		s.writeRequestError(w, r, fmt.Errorf("read body: %w", err), pretty)
		return
	}
	var req maintenanceRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(`invalid %s body: %v (want {"enabled": true|false, "reason": "…"})`, MaintenancePath, err)}, pretty)
		return
	}
	if req.Enabled == nil {
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(`invalid %s body: "enabled" is required`, MaintenancePath)}, pretty)
		return
	}
	if s.sendToLeader(w, r) {
		return
	}
	m, err := mt.SetMaintenance(ctx, *req.Enabled, req.Reason)
	if err == nil {
		s.logger.Warn("maintenance mode set", "enabled", m.Enabled, "reason", m.Reason, logKeyRequestID, infoFrom(r.Context()).id)
	}
	s.finishMaintenance(w, r, m, err, pretty)
}

func (s *Server) finishMaintenance(w http.ResponseWriter, r *http.Request, m cluster.Maintenance, err error, pretty bool) {
	if err != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = err
		}
		kind := readOnly
		if r.Method == http.MethodPost && !errors.Is(err, cluster.ErrNotLeader) && !errors.Is(err, cluster.ErrNoLeader) {
			kind = writes
		}
		s.writeError(w, r, mapError(err, kind, s.cfg.RequestTimeout), pretty)
		return
	}
	if err := writeJSON(w, http.StatusOK, m, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}
