package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/backup"
)

// Backups is what /v1/backups needs: the node's backups, local and remote.
type Backups interface {
	// List returns the backups in the local directory and in the remote
	// store (each flagged where it is), newest first.
	List(ctx context.Context, where BackupLocation) ([]BackupEntry, error)
	// Create takes a backup now (leader only) and returns it.
	Create(ctx context.Context) (backup.Info, error)
	// Open opens a backup's (encrypted) file, locally if it is there, else
	// from the remote store.
	Open(ctx context.Context, name string) (io.ReadCloser, backup.Info, error)
	// Status reports the last backup, the last failure and pending
	// uploads.
	Status() backup.Status
}

// BackupLocation selects where List looks.
type BackupLocation int

// The locations a listing can ask for.
const (
	BackupsAll BackupLocation = iota
	BackupsLocal
	BackupsRemote
)

// BackupEntry is one backup in a listing.
type BackupEntry struct {
	backup.Info
	Local  bool `json:"local"`
	Remote bool `json:"remote"`
}

// backupsPrefix is the path of the backup endpoints.
const backupsPrefix = "/v1/backups"

// handleBackups serves GET|POST /v1/backups and GET /v1/backups/{name}.
func (s *Server) handleBackups(w http.ResponseWriter, r *http.Request) {
	pretty := r.URL.Query().Has("pretty")
	if s.cfg.Backups == nil {
		s.writeError(w, r, apiError{status: http.StatusNotImplemented, msg: s.cfg.BackupsDisabled}, pretty)
		return
	}
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, backupsPrefix), "/")
	switch {
	case name == "" && r.Method == http.MethodGet:
		s.listBackups(w, r, pretty)
	case name == "" && r.Method == http.MethodPost:
		s.createBackup(w, r, pretty)
	case name != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.downloadBackup(w, r, name)
	default:
		allow := "GET, POST"
		if name != "" {
			allow = "GET, HEAD"
		}
		w.Header().Set("Allow", allow)
		s.writeError(w, r, apiError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)}, pretty)
	}
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request, pretty bool) {
	where := BackupsAll
	switch v := r.URL.Query().Get("where"); v {
	case "", "all":
	case "local":
		where = BackupsLocal
	case "remote":
		where = BackupsRemote
	default:
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid ?where=%q: want local, remote or all", v)}, pretty)
		return
	}
	list, err := s.cfg.Backups.List(r.Context(), where)
	if err != nil {
		s.writeError(w, r, apiError{status: http.StatusBadGateway, msg: fmt.Sprintf("list backups: %v", err)}, pretty)
		return
	}
	if list == nil {
		list = []BackupEntry{}
	}
	if err := writeJSON(w, http.StatusOK, map[string]any{"backups": list}, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request, pretty bool) {
	info, err := s.cfg.Backups.Create(r.Context())
	switch {
	case errors.Is(err, backup.ErrNotLeader):
		if s.sendToLeader(w, r) {
			return
		}
		s.writeError(w, r, apiError{status: http.StatusServiceUnavailable, msg: err.Error() + " and no leader is known", retryAfter: 1}, pretty)
		return
	case errors.Is(err, backup.ErrBusy):
		s.writeError(w, r, apiError{status: http.StatusConflict, msg: err.Error()}, pretty)
		return
	case err != nil:
		s.writeError(w, r, apiError{status: http.StatusInternalServerError, msg: fmt.Sprintf("backup failed: %v", err)}, pretty)
		return
	}
	if err := writeJSON(w, http.StatusCreated, info, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

func (s *Server) downloadBackup(w http.ResponseWriter, r *http.Request, name string) {
	rc, info, err := s.cfg.Backups.Open(r.Context(), name)
	switch {
	case errors.Is(err, backup.ErrInvalidName):
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: err.Error()}, false)
		return
	case errors.Is(err, backup.ErrNotFound):
		s.writeError(w, r, apiError{status: http.StatusNotFound, msg: err.Error()}, false)
		return
	case err != nil:
		s.writeError(w, r, apiError{status: http.StatusBadGateway, msg: fmt.Sprintf("open backup: %v", err)}, false)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+info.Name+`"`)
	h.Set("X-Cairn-Backup-Sha256", info.SHA256)
	h.Set("X-Cairn-Backup-Raft-Index", strconv.FormatUint(info.RaftIndex, 10))
	if info.KeyID != "" {
		h.Set("X-Cairn-Backup-Key-Id", info.KeyID)
	}
	if info.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.noteWriteError(r, err)
	}
}
