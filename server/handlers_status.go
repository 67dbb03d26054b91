package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/cluster"
)

// apiScheme is the scheme of the API addresses in /nodes. gorqlite parses
// api_addr as a URL and needs it.
const apiScheme = "http"

// statusResponse is the body of GET /status. The build, node, http and
// store sections have rqlite's field names where clients read them
// (gorqlite reads store.leader.node_id); the cairn section is Cairn's own
// view of cluster.Status.
type statusResponse struct {
	Build buildStatus `json:"build"`
	Node  nodeStatus  `json:"node"`
	HTTP  httpStatus  `json:"http"`
	Store storeStatus `json:"store"`
	Cairn cairnStatus `json:"cairn"`
	// Backup is the backup scheduler's state, when backups are on.
	Backup *backup.Status `json:"backup,omitempty"`
}

type buildStatus struct {
	Version string `json:"version"`
}

type nodeStatus struct {
	ID          string    `json:"id"`
	StartTime   time.Time `json:"start_time"`
	CurrentTime time.Time `json:"current_time"`
	Uptime      string    `json:"uptime"`
}

type httpStatus struct {
	// BindAddr is the address this server listens on.
	BindAddr string `json:"bind_addr"`
	// Addr is the address other nodes and clients use (advertised).
	Addr string `json:"addr"`
}

type storeStatus struct {
	NodeID string        `json:"node_id"`
	Addr   string        `json:"addr"`
	Leader storeLeader   `json:"leader"`
	Raft   raftStatus    `json:"raft"`
	Nodes  []storeNode   `json:"nodes"`
	Dir    string        `json:"dir,omitempty"`
	SQLite sqlite3Status `json:"sqlite3"`
}

// storeLeader is always an object with string fields: gorqlite asserts
// store.leader.node_id to be a string.
type storeLeader struct {
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
}

type raftStatus struct {
	State             string `json:"state"`
	Term              uint64 `json:"term"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastLogIndex      uint64 `json:"last_log_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	LastContact       string `json:"last_contact"`
	NumPeers          int    `json:"num_peers"`
}

type storeNode struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Suffrage string `json:"suffrage"`
}

type sqlite3Status struct {
	Path   string `json:"path,omitempty"`
	DBSize int64  `json:"db_size"`
}

type cairnStatus struct {
	Mode               string           `json:"mode"`
	Version            string           `json:"version"`
	NodeID             string           `json:"node_id"`
	RaftAddr           string           `json:"raft_addr,omitempty"`
	HTTPAddr           string           `json:"http_addr,omitempty"`
	State              string           `json:"state,omitempty"`
	Leader             *cluster.Member  `json:"leader,omitempty"`
	Term               uint64           `json:"term"`
	CommitIndex        uint64           `json:"commit_index"`
	AppliedIndex       uint64           `json:"applied_index"`
	LastLogIndex       uint64           `json:"last_log_index"`
	LastSnapshotIndex  uint64           `json:"last_snapshot_index"`
	LastContactSeconds float64          `json:"last_contact_seconds"`
	Members            []cluster.Member `json:"members"`
	DBPath             string           `json:"db_path,omitempty"`
	DBSize             int64            `json:"db_size"`
	DataDir            string           `json:"data_dir,omitempty"`
	// Maintenance is the cluster's maintenance state.
	Maintenance cluster.Maintenance `json:"maintenance"`
	// Database and Pool describe PostgreSQL in Postgres mode.
	Database      string             `json:"database,omitempty"`
	Pool          *cluster.PoolStats `json:"pool,omitempty"`
	UptimeSeconds float64            `json:"uptime_seconds"`
}

// handleStatus serves GET /status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	_, f, ok := s.readFlags(w, r, "pretty")
	if !ok {
		return
	}
	pretty := f[0]
	st, ok := s.storeStatus(w, r, pretty)
	if !ok {
		return
	}
	resp := s.newStatusResponse(st, time.Now())
	if s.cfg.Backups != nil {
		bs := s.cfg.Backups.Status()
		resp.Backup = &bs
	}
	if err := writeJSON(w, http.StatusOK, resp, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

// storeStatus asks the Store for its status, answering the request itself
// when that fails.
func (s *Server) storeStatus(w http.ResponseWriter, r *http.Request, pretty bool) (cluster.Status, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.store.Status(ctx)
	if err != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = fmt.Errorf("store status: %w", err)
		}
		s.writeError(w, r, mapError(err, readOnly, s.cfg.RequestTimeout), pretty)
		return cluster.Status{}, false
	}
	return st, true
}

// newStatusResponse builds the /status body from the Store's status.
func (s *Server) newStatusResponse(st cluster.Status, now time.Time) *statusResponse {
	uptime := now.Sub(s.started)
	members := st.Members
	if members == nil {
		members = []cluster.Member{}
	}
	nodes := make([]storeNode, 0, len(members))
	peers := 0
	for _, m := range members {
		suffrage := "Voter"
		if !m.Voter {
			suffrage = "Nonvoter"
		}
		nodes = append(nodes, storeNode{ID: m.ID, Addr: m.RaftAddr, Suffrage: suffrage})
		if m.ID != st.NodeID && m.Voter {
			peers++
		}
	}
	var leader *cluster.Member
	if st.Leader != (cluster.Member{}) {
		l := st.Leader
		leader = &l
	}
	bind := s.Addr()
	advertised := st.HTTPAddr
	if advertised == "" {
		advertised = bind
	}
	return &statusResponse{
		Build: buildStatus{Version: s.cfg.Version},
		Node: nodeStatus{
			ID:          st.NodeID,
			StartTime:   s.started.UTC(),
			CurrentTime: now.UTC(),
			Uptime:      uptime.Round(time.Millisecond).String(),
		},
		HTTP: httpStatus{BindAddr: bind, Addr: advertised},
		Store: storeStatus{
			NodeID: st.NodeID,
			Addr:   st.RaftAddr,
			Leader: storeLeader{NodeID: st.Leader.ID, Addr: st.Leader.RaftAddr},
			Raft: raftStatus{
				State:             st.State,
				Term:              st.Term,
				CommitIndex:       st.CommitIndex,
				AppliedIndex:      st.AppliedIndex,
				LastLogIndex:      st.LastLogIndex,
				LastSnapshotIndex: st.LastSnapshotIndex,
				LastContact:       st.LastContact.String(),
				NumPeers:          peers,
			},
			Nodes:  nodes,
			Dir:    st.DataDir,
			SQLite: sqlite3Status{Path: st.DBPath, DBSize: st.DBSize},
		},
		Cairn: cairnStatus{
			Mode:               st.Mode,
			Version:            s.cfg.Version,
			NodeID:             st.NodeID,
			RaftAddr:           st.RaftAddr,
			HTTPAddr:           st.HTTPAddr,
			State:              st.State,
			Leader:             leader,
			Term:               st.Term,
			CommitIndex:        st.CommitIndex,
			AppliedIndex:       st.AppliedIndex,
			LastLogIndex:       st.LastLogIndex,
			LastSnapshotIndex:  st.LastSnapshotIndex,
			LastContactSeconds: st.LastContact.Seconds(),
			Members:            members,
			DBPath:             st.DBPath,
			DBSize:             st.DBSize,
			DataDir:            st.DataDir,
			Maintenance:        st.Maintenance,
			Database:           st.Database,
			Pool:               st.Pool,
			UptimeSeconds:      uptime.Seconds(),
		},
	}
}

// nodeInfo is one node in /nodes, with rqlite's fields. gorqlite reads
// api_addr (a URL with a scheme), reachable and leader, and skips nodes
// that are not reachable.
type nodeInfo struct {
	ID        string  `json:"id"`
	APIAddr   string  `json:"api_addr,omitempty"`
	Addr      string  `json:"addr,omitempty"`
	Voter     bool    `json:"voter"`
	Reachable bool    `json:"reachable"`
	Leader    bool    `json:"leader"`
	Time      float64 `json:"time,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// handleNodes serves GET /nodes: the members of the cluster, voters only
// unless ?nonvoters, each checked for reachability by a GET of its /livez
// (bounded by ?timeout, default Config.NodeProbeTimeout). As in rqlite the
// body is a map keyed by node id, or {"nodes": [...]} sorted by id with
// ?ver=2.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	q, f, ok := s.readFlags(w, r, "pretty", "nonvoters")
	if !ok {
		return
	}
	pretty, nonVoters := f[0], f[1]
	timeout, err := q.duration("timeout")
	if err != nil {
		s.writeRequestError(w, r, err, pretty)
		return
	}
	if timeout == 0 {
		timeout = s.cfg.NodeProbeTimeout
	}
	s.serveNodes(w, r, q.get("ver"), pretty, nonVoters, timeout)
}

func (s *Server) serveNodes(w http.ResponseWriter, r *http.Request, ver string, pretty, nonVoters bool, timeout time.Duration) {
	if ver != "" && ver != "1" && ver != "2" {
		s.writeError(w, r, apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid ?ver=%s: want 1 or 2", ver)}, pretty)
		return
	}
	st, ok := s.storeStatus(w, r, pretty)
	if !ok {
		return
	}
	nodes := s.newNodes(st, nonVoters)

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.Reachable || n.APIAddr == "" {
			continue
		}
		wg.Go(func() {
			d, err := s.probe(ctx, n.APIAddr)
			if err != nil {
				n.Error = err.Error()
				return
			}
			n.Reachable, n.Time = true, d.Seconds()
		})
	}
	wg.Wait()

	var body any
	if ver == "2" {
		body = struct {
			Nodes []*nodeInfo `json:"nodes"`
		}{nodes}
	} else {
		legacy := make(map[string]*nodeInfo, len(nodes))
		for _, n := range nodes {
			legacy[n.ID] = n
		}
		body = legacy
	}
	if err := writeJSON(w, http.StatusOK, body, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

// newNodes lists the nodes of st sorted by id; this node is reachable by
// definition. A Status without members describes a lone node.
func (s *Server) newNodes(st cluster.Status, nonVoters bool) []*nodeInfo {
	members := st.Members
	if len(members) == 0 {
		members = []cluster.Member{{ID: st.NodeID, RaftAddr: st.RaftAddr, HTTPAddr: st.HTTPAddr, Voter: true}}
	}
	nodes := make([]*nodeInfo, 0, len(members))
	for _, m := range members {
		if !m.Voter && !nonVoters {
			continue
		}
		self := m.ID == st.NodeID
		httpAddr := m.HTTPAddr
		if self && httpAddr == "" {
			httpAddr = s.Addr()
		}
		n := &nodeInfo{
			ID:        m.ID,
			APIAddr:   apiURL(httpAddr),
			Addr:      m.RaftAddr,
			Voter:     m.Voter,
			Reachable: self,
			Leader:    isLeader(m, st.Leader),
		}
		if n.APIAddr == "" && !self {
			n.Error = "no HTTP address known for this node"
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *nodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return nodes
}

// isLeader reports whether m is the leader l.
func isLeader(m, l cluster.Member) bool {
	if l.ID != "" {
		return m.ID == l.ID
	}
	return l.RaftAddr != "" && m.RaftAddr == l.RaftAddr
}

// apiURL turns an HTTP address into the URL that rqlite clients expect,
// http://host:port; an address that already has a scheme is kept.
func apiURL(addr string) string {
	if addr == "" || strings.Contains(addr, "://") {
		return addr
	}
	return apiScheme + "://" + addr
}

// probe checks that the node at base answers GET /livez, and times it.
func (s *Server) probe(ctx context.Context, base string) (time.Duration, error) {
	start := time.Now()
	target := strings.TrimSuffix(base, "/") + "/livez"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	if info := infoFrom(ctx); info != nil {
		req.Header.Set(requestIDHeader, info.id)
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the method and URL
		}
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return time.Since(start), nil
}

// handleReadyz serves GET /readyz in rqlite's text format. With ?noleader
// it reports only that this process serves HTTP, without asking the Store.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	_, f, ok := s.readFlags(w, r, "noleader")
	if !ok {
		return
	}
	if noLeader := f[0]; noLeader {
		s.writeText(w, r, http.StatusOK, "[+]node ok")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	err := s.ready(ctx)
	switch {
	case err == nil:
		s.writeText(w, r, http.StatusOK, "[+]node ok\n[+]leader ok\n[+]store ok")
		return
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrNotLeader):
		s.notReady(w, r, err, "[+]node ok\n[-]leader not ok: "+oneLine(err.Error()))
	default:
		s.notReady(w, r, err, "[+]node ok\n[-]store not ok: "+oneLine(err.Error()))
	}
}

// notReady answers /readyz with 503 and records why.
func (s *Server) notReady(w http.ResponseWriter, r *http.Request, err error, body string) {
	if info := infoFrom(r.Context()); info != nil {
		info.err = fmt.Errorf("not ready: %w", err)
	}
	s.writeText(w, r, http.StatusServiceUnavailable, body)
}

// oneLine keeps a reason on one line of the text body.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeText writes a plain-text body.
func (s *Server) writeText(w http.ResponseWriter, r *http.Request, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if _, err := io.WriteString(w, body); err != nil {
		s.noteWriteError(r, fmt.Errorf("write response: %w", err))
	}
}

// livezResponse is the body of GET /livez.
type livezResponse struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	NodeID  string `json:"node_id,omitempty"`
}

// handleLivez serves GET /livez: 200 as long as the process serves HTTP.
// It never touches the Store, so a slow or stuck database does not get
// the process restarted.
func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	body := livezResponse{Status: "ok", Version: s.cfg.Version, NodeID: s.cfg.NodeID}
	if err := writeJSON(w, http.StatusOK, body, false); err != nil {
		s.noteWriteError(r, err)
	}
}

// readFlags parses the query string and the named boolean flags (present,
// or =true/=false), answering 400 itself when they do not parse; ok is
// false then.
func (s *Server) readFlags(w http.ResponseWriter, r *http.Request, names ...string) (queryParams, []bool, bool) {
	q, err := parseQueryParams(r.URL.RawQuery)
	if err != nil {
		s.writeRequestError(w, r, err, false)
		return nil, nil, false
	}
	flags := make([]bool, len(names))
	for i, name := range names {
		if flags[i], err = q.flag(name); err != nil {
			s.writeRequestError(w, r, err, false)
			return nil, nil, false
		}
	}
	return q, flags, true
}
