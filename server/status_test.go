package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// threeNodes is the status of node 2, a follower of node 1, in a cluster
// with a non-voter 4; the HTTP addresses are filled in by the tests.
func threeNodes(httpAddrs map[string]string) cluster.Status {
	members := []cluster.Member{
		{ID: "1", RaftAddr: "10.0.0.1:4002", HTTPAddr: httpAddrs["1"], Voter: true},
		{ID: "2", RaftAddr: "10.0.0.2:4002", HTTPAddr: httpAddrs["2"], Voter: true},
		{ID: "3", RaftAddr: "10.0.0.3:4002", HTTPAddr: httpAddrs["3"], Voter: true},
		{ID: "4", RaftAddr: "10.0.0.4:4002", HTTPAddr: httpAddrs["4"], Voter: false},
	}
	return cluster.Status{
		Mode:              "raft",
		NodeID:            "2",
		RaftAddr:          "10.0.0.2:4002",
		HTTPAddr:          httpAddrs["2"],
		State:             "Follower",
		Leader:            members[0],
		Term:              4,
		CommitIndex:       13,
		AppliedIndex:      12,
		LastLogIndex:      14,
		LastSnapshotIndex: 8,
		Members:           members,
		LastContact:       32 * time.Millisecond,
		DBPath:            "/data/state_machine/db/cairn.db",
		DBSize:            208896,
		DataDir:           "/data",
	}
}

func statusStore(st cluster.Status, err error) *fakeStore {
	return &fakeStore{status: func(context.Context) (cluster.Status, error) { return st, err }}
}

func TestServer_Status(t *testing.T) {
	t.Run("ReadLikeGorqlite", func(t *testing.T) {
		st := threeNodes(map[string]string{"1": "10.0.0.1:4001", "2": "10.0.0.2:4001"})
		s, _ := newTestServer(t, statusStore(st, nil), Config{Version: "v1.2.3"})
		rec := serve(t, s.Handler(), http.MethodGet, "/status", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}

		// gorqlite (cluster.go) decodes /status into a map and asserts
		// store.leader.node_id to be a string.
		sections := make(map[string]any)
		if err := json.Unmarshal(rec.Body.Bytes(), &sections); err != nil {
			t.Fatal(err)
		}
		sMap := sections["store"].(map[string]any)
		leaderMap, ok := sMap["leader"].(map[string]any)
		if !ok {
			t.Fatalf("store.leader is not an object: %v", sMap["leader"])
		}
		if got := leaderMap["node_id"].(string); got != "1" {
			t.Errorf("store.leader.node_id = %q, want 1", got)
		}
		if _, ok := sMap["metadata"]; ok {
			t.Error("store.metadata is set: gorqlite would look the leader up there instead of /nodes")
		}

		var body struct {
			Build struct{ Version string }
			Node  struct {
				ID     string
				Uptime string
			}
			HTTP struct {
				BindAddr string `json:"bind_addr"`
				Addr     string
			}
			Store struct {
				NodeID string `json:"node_id"`
				Addr   string
				Leader struct {
					NodeID string `json:"node_id"`
					Addr   string
				}
				Raft struct {
					State        string
					Term         uint64
					CommitIndex  uint64 `json:"commit_index"`
					AppliedIndex uint64 `json:"applied_index"`
					LastLogIndex uint64 `json:"last_log_index"`
					LastContact  string `json:"last_contact"`
					NumPeers     int    `json:"num_peers"`
				}
				Nodes []struct {
					ID, Addr, Suffrage string
				}
				SQLite3 struct {
					Path   string
					DBSize int64 `json:"db_size"`
				}
			}
			Cairn struct {
				Mode               string
				Version            string
				NodeID             string `json:"node_id"`
				State              string
				Leader             *cluster.Member
				Term               uint64
				CommitIndex        uint64  `json:"commit_index"`
				AppliedIndex       uint64  `json:"applied_index"`
				LastLogIndex       uint64  `json:"last_log_index"`
				LastSnapshotIndex  uint64  `json:"last_snapshot_index"`
				LastContactSeconds float64 `json:"last_contact_seconds"`
				Members            []cluster.Member
				DBPath             string `json:"db_path"`
				DBSize             int64  `json:"db_size"`
				DataDir            string `json:"data_dir"`
				UptimeSeconds      float64
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what      string
			got, want any
		}{
			{"build.version", body.Build.Version, "v1.2.3"},
			{"node.id", body.Node.ID, "2"},
			{"http.addr", body.HTTP.Addr, "10.0.0.2:4001"},
			{"store.node_id", body.Store.NodeID, "2"},
			{"store.addr", body.Store.Addr, "10.0.0.2:4002"},
			{"store.leader.addr", body.Store.Leader.Addr, "10.0.0.1:4002"},
			{"store.raft.state", body.Store.Raft.State, "Follower"},
			{"store.raft.term", body.Store.Raft.Term, uint64(4)},
			{"store.raft.commit_index", body.Store.Raft.CommitIndex, uint64(13)},
			{"store.raft.applied_index", body.Store.Raft.AppliedIndex, uint64(12)},
			{"store.raft.last_log_index", body.Store.Raft.LastLogIndex, uint64(14)},
			{"store.raft.last_contact", body.Store.Raft.LastContact, "32ms"},
			{"store.raft.num_peers", body.Store.Raft.NumPeers, 2},
			{"store.nodes", len(body.Store.Nodes), 4},
			{"store.nodes[3].suffrage", body.Store.Nodes[3].Suffrage, "Nonvoter"},
			{"store.sqlite3.db_size", body.Store.SQLite3.DBSize, int64(208896)},
			{"cairn.mode", body.Cairn.Mode, "raft"},
			{"cairn.version", body.Cairn.Version, "v1.2.3"},
			{"cairn.leader", *body.Cairn.Leader, st.Leader},
			{"cairn.last_snapshot_index", body.Cairn.LastSnapshotIndex, uint64(8)},
			{"cairn.last_contact_seconds", body.Cairn.LastContactSeconds, 0.032},
			{"cairn.members", len(body.Cairn.Members), 4},
			{"cairn.db_path", body.Cairn.DBPath, st.DBPath},
			{"cairn.data_dir", body.Cairn.DataDir, "/data"},
		} {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
		if body.Node.Uptime == "" || body.Cairn.UptimeSeconds < 0 {
			t.Errorf("uptime missing: %q %v", body.Node.Uptime, body.Cairn.UptimeSeconds)
		}
	})

	t.Run("NoLeader", func(t *testing.T) {
		st := threeNodes(nil)
		st.Leader, st.State = cluster.Member{}, "Candidate"
		s, _ := newTestServer(t, statusStore(st, nil), Config{})
		rec := serve(t, s.Handler(), http.MethodGet, "/status?pretty", "")
		sections := make(map[string]any)
		if err := json.Unmarshal(rec.Body.Bytes(), &sections); err != nil {
			t.Fatal(err)
		}
		leader := sections["store"].(map[string]any)["leader"].(map[string]any)
		if id, ok := leader["node_id"].(string); !ok || id != "" {
			t.Errorf("store.leader.node_id = %#v, want the empty string", leader["node_id"])
		}
		if _, ok := sections["cairn"].(map[string]any)["leader"]; ok {
			t.Error("cairn.leader is set without a leader")
		}
		if !strings.Contains(rec.Body.String(), "\n    \"build\": {") {
			t.Errorf("?pretty did not indent: %s", rec.Body)
		}
	})

	t.Run("StoreError", func(t *testing.T) {
		s, _ := newTestServer(t, statusStore(cluster.Status{}, cluster.ErrClosed), Config{})
		rec := serve(t, s.Handler(), http.MethodGet, "/status", "")
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, "backend closed") {
			t.Errorf("error = %q", msg)
		}
	})
}

// gorqlitePeers decodes /nodes the way gorqlite's processNodeInfoBody
// does and returns the leader and the other peers as host:port.
func gorqlitePeers(t *testing.T, body []byte) (string, []string) {
	t.Helper()
	nodes := make(map[string]struct {
		APIAddr   string `json:"api_addr,omitempty"`
		Addr      string `json:"addr,omitempty"`
		Reachable bool   `json:"reachable,omitempty"`
		Leader    bool   `json:"leader"`
	})
	if err := json.Unmarshal(body, &nodes); err != nil {
		t.Fatalf("gorqlite could not unmarshal /nodes: %v", err)
	}
	var leader string
	var peers []string
	for _, v := range nodes {
		if !v.Reachable || v.APIAddr == "" {
			continue
		}
		u, err := url.Parse(v.APIAddr)
		if err != nil {
			t.Fatalf("could not parse API address %q", v.APIAddr)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			t.Fatalf("could not split host of %q: %v", v.APIAddr, err)
		}
		if v.Leader {
			leader = net.JoinHostPort(host, port)
		} else {
			peers = append(peers, net.JoinHostPort(host, port))
		}
	}
	slices.Sort(peers)
	return leader, peers
}

// livePeer is a fake node that answers /livez.
func livePeer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/livez" {
			http.NotFound(w, r)
			return
		}
		_, _ = fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// deadAddr is an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestServer_Nodes(t *testing.T) {
	leaderAddr, selfAddr, downAddr, nonVoterAddr := livePeer(t), "10.9.9.9:4001", deadAddr(t), livePeer(t)
	st := threeNodes(map[string]string{"1": leaderAddr, "2": selfAddr, "3": downAddr, "4": nonVoterAddr})
	s, _ := newTestServer(t, statusStore(st, nil), Config{})
	h := s.Handler()

	t.Run("LegacyForGorqlite", func(t *testing.T) {
		rec := serve(t, h, http.MethodGet, "/nodes", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}
		leader, peers := gorqlitePeers(t, rec.Body.Bytes())
		if leader != leaderAddr {
			t.Errorf("gorqlite leader = %q, want %q", leader, leaderAddr)
		}
		if want := []string{selfAddr}; !slices.Equal(peers, want) {
			t.Errorf("gorqlite peers = %v, want %v (the unreachable node and the non-voter left out)", peers, want)
		}

		var nodes map[string]nodeInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &nodes); err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 3 {
			t.Fatalf("got %d nodes, want the 3 voters: %v", len(nodes), nodes)
		}
		want := map[string]nodeInfo{
			"1": {ID: "1", APIAddr: "http://" + leaderAddr, Addr: "10.0.0.1:4002", Voter: true, Reachable: true, Leader: true},
			"2": {ID: "2", APIAddr: "http://" + selfAddr, Addr: "10.0.0.2:4002", Voter: true, Reachable: true},
			"3": {ID: "3", APIAddr: "http://" + downAddr, Addr: "10.0.0.3:4002", Voter: true},
		}
		for id, w := range want {
			g := nodes[id]
			if id == "1" && g.Time <= 0 {
				t.Errorf("node 1: no probe time")
			}
			if id == "3" && !strings.Contains(g.Error, "GET http://"+downAddr+"/livez: ") {
				t.Errorf("node 3: error %q does not say the probe failed", g.Error)
			}
			g.Time, g.Error = 0, ""
			if g != w {
				t.Errorf("node %s = %+v, want %+v", id, g, w)
			}
		}
	})

	t.Run("Version2WithNonVoters", func(t *testing.T) {
		rec := serve(t, h, http.MethodGet, "/nodes?ver=2&nonvoters", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
		}
		var body struct {
			Nodes []nodeInfo `json:"nodes"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range body.Nodes {
			ids = append(ids, n.ID)
		}
		if !slices.Equal(ids, []string{"1", "2", "3", "4"}) {
			t.Fatalf("ids = %v, want sorted 1-4", ids)
		}
		if n := body.Nodes[3]; n.Voter || !n.Reachable || n.Leader {
			t.Errorf("non-voter = %+v", n)
		}
	})

	t.Run("ProbeTimeout", func(t *testing.T) {
		stuck := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-stuck:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(stuck)
		st := threeNodes(map[string]string{"1": strings.TrimPrefix(slow.URL, "http://"), "2": selfAddr})
		s, _ := newTestServer(t, statusStore(st, nil), Config{})
		rec := serve(t, s.Handler(), http.MethodGet, "/nodes?timeout=50ms", "")
		var nodes map[string]nodeInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &nodes); err != nil {
			t.Fatal(err)
		}
		if n := nodes["1"]; n.Reachable || !strings.Contains(n.Error, "deadline exceeded") {
			t.Errorf("slow leader = %+v, want unreachable after the timeout", n)
		}
		if n := nodes["3"]; n.Reachable || n.APIAddr != "" || n.Error == "" {
			t.Errorf("node without an HTTP address = %+v", n)
		}
	})

	t.Run("LoneNodeWithoutMembers", func(t *testing.T) {
		st := cluster.Status{Mode: "postgres", NodeID: "1", HTTPAddr: "db.example:4001"}
		s, _ := newTestServer(t, statusStore(st, nil), Config{})
		rec := serve(t, s.Handler(), http.MethodGet, "/nodes", "")
		leader, peers := gorqlitePeers(t, rec.Body.Bytes())
		if leader != "" || !slices.Equal(peers, []string{"db.example:4001"}) {
			t.Errorf("gorqlite sees leader %q, peers %v", leader, peers)
		}
	})

	t.Run("BadParams", func(t *testing.T) {
		for _, target := range []string{"/nodes?ver=3", "/nodes?timeout=x", "/nodes?nonvoters=perhaps"} {
			if rec := serve(t, h, http.MethodGet, target, ""); rec.Code != http.StatusBadRequest {
				t.Errorf("%s: status = %d, want 400", target, rec.Code)
			}
		}
	})

	t.Run("StoreError", func(t *testing.T) {
		s, _ := newTestServer(t, statusStore(cluster.Status{}, errors.New("boom")), Config{})
		if rec := serve(t, s.Handler(), http.MethodGet, "/nodes", ""); rec.Code != http.StatusInternalServerError {
			t.Errorf("status = %d, want 500", rec.Code)
		}
	})
}

func TestServer_NodesOverRealListeners(t *testing.T) {
	// Two real Cairn servers: node 2 reports node 1 reachable by probing
	// node 1's /livez over TCP.
	one, _ := newTestServer(t, &fakeStore{}, Config{NodeID: "1"})
	mustListen(t, one)
	st := threeNodes(map[string]string{"1": one.Addr()})
	st.Members = st.Members[:2]
	two, _ := newTestServer(t, statusStore(st, nil), Config{NodeID: "2"})
	mustListen(t, two)
	st.Members[1].HTTPAddr = two.Addr()

	resp, err := http.Get(two.URL() + "/nodes")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var nodes map[string]nodeInfo
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		t.Fatal(err)
	}
	if n := nodes["1"]; !n.Reachable || !n.Leader || n.APIAddr != one.URL() {
		t.Errorf("node 1 = %+v", n)
	}
	if n := nodes["2"]; !n.Reachable || n.Leader || n.APIAddr != two.URL() {
		t.Errorf("node 2 = %+v", n)
	}
}

func TestServer_Readyz(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		ready  error
		status int
		body   string
	}{
		{"Ready", "/readyz", nil, 200, "[+]node ok\n[+]leader ok\n[+]store ok"},
		{"NoLeader", "/readyz", fmt.Errorf("wait for leader: %w", cluster.ErrNoLeader), 503, "[+]node ok\n[-]leader not ok: wait for leader: no leader"},
		{"StoreNotReady", "/readyz", errors.New("applying the log\nat 12 of 40"), 503, "[+]node ok\n[-]store not ok: applying the log at 12 of 40"},
		{"NoLeaderParam", "/readyz?noleader", errors.New("must not be asked"), 200, "[+]node ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			store := &fakeStore{ready: func(context.Context) error { called = true; return tc.ready }}
			s, _ := newTestServer(t, store, Config{})
			rec := serve(t, s.Handler(), http.MethodGet, tc.target, "")
			if rec.Code != tc.status || rec.Body.String() != tc.body {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, tc.status, tc.body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.target == "/readyz?noleader" && called {
				t.Error("?noleader asked the store")
			}
		})
	}
}

func TestServer_Livez(t *testing.T) {
	// Every store method fails: /livez must not call any.
	s, _ := newTestServer(t, &fakeStore{}, Config{Version: "v9.8.7", NodeID: "3"})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := serve(t, s.Handler(), method, "/livez", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status = %d", method, rec.Code)
		}
		if method == http.MethodHead {
			continue
		}
		if got, want := rec.Body.String(), `{"status":"ok","version":"v9.8.7","node_id":"3"}`+"\n"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
	}
}
