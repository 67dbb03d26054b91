package server

import (
	"context"
	"net/http"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// Health states, from best to worst.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded"
	HealthFailing  = "failing"
)

// HealthCheck is the health of one subsystem.
type HealthCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Critical checks that fail make /healthz answer 503; the others are
	// reported without failing it.
	Critical bool   `json:"critical"`
	Error    string `json:"error,omitempty"`
	Detail   any    `json:"detail,omitempty"`
}

// HealthFunc reports the health of subsystems beyond the store (backups,
// S3, disk). It must return quickly: cache what is slow to learn.
type HealthFunc func(ctx context.Context) []HealthCheck

// handleHealthz serves GET /healthz: every subsystem with its status, 503
// when a critical one fails.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	store, st := s.storeHealth(ctx)
	checks := []HealthCheck{store}
	if st.Maintenance.Enabled {
		// Reported, not failing: a node in maintenance is healthy and
		// serves reads.
		checks = append(checks, HealthCheck{Name: "maintenance", Status: HealthDegraded,
			Error: "maintenance mode: writes are paused", Detail: st.Maintenance})
	}
	if s.cfg.Health != nil {
		checks = append(checks, s.cfg.Health(ctx)...)
	}
	overall, code := HealthOK, http.StatusOK
	for _, c := range checks {
		switch {
		case c.Status == HealthFailing && c.Critical:
			overall, code = HealthFailing, http.StatusServiceUnavailable
		case c.Status != HealthOK && overall == HealthOK:
			overall = HealthDegraded
		}
	}
	body := map[string]any{"status": overall, "version": s.cfg.Version, "node_id": s.cfg.NodeID, "checks": checks}
	if err := writeJSON(w, code, body, r.URL.Query().Has("pretty")); err != nil {
		s.noteWriteError(r, err)
	}
}

// storeHealth is the critical check of the store: Raft with a leader and
// the log applied, or the database reachable.
func (s *Server) storeHealth(ctx context.Context) (HealthCheck, cluster.Status) {
	c := HealthCheck{Name: "store", Status: HealthOK, Critical: true}
	st, err := s.store.Status(ctx)
	if err != nil {
		c.Status, c.Error = HealthFailing, err.Error()
		return c, st
	}
	c.Name = st.Mode
	if st.Pool != nil {
		c.Detail = map[string]any{"database": st.Database, "pool": st.Pool}
		if err := s.ready(ctx); err != nil {
			c.Status, c.Error = HealthFailing, err.Error()
		}
		return c, st
	}
	lag := uint64(0)
	if st.CommitIndex > st.AppliedIndex {
		lag = st.CommitIndex - st.AppliedIndex
	}
	c.Detail = map[string]any{"state": st.State, "leader": st.Leader.ID, "term": st.Term,
		"commit_index": st.CommitIndex, "applied_index": st.AppliedIndex, "apply_lag": lag,
		"last_contact_seconds": st.LastContact.Seconds(), "db_size": st.DBSize}
	if err := s.ready(ctx); err != nil {
		c.Status, c.Error = HealthFailing, err.Error()
	}
	return c, st
}

// ready is the store's readiness, then Config.Ready's.
func (s *Server) ready(ctx context.Context) error {
	if err := s.store.Ready(ctx); err != nil {
		return err
	}
	if s.cfg.Ready != nil {
		return s.cfg.Ready(ctx)
	}
	return nil
}
