package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// ErrInvalidMember means a join or remove request names no usable member
// (empty id or address, or this node removing the last voter).
var ErrInvalidMember = errors.New("invalid member")

// membersTable holds the HTTP address of every member that joined after
// bootstrap. It lives in the replicated database, so every node (and every
// snapshot) agrees on it; the _cairn_ prefix is reserved.
const membersTable = "_cairn_members"

// Join adds m to the cluster, as a voter or not. It must run on the
// leader. Joining again with the same id and addresses is a no-op; a node
// that rejoins at a new address replaces its old entry.
func (n *Node) Join(ctx context.Context, m Member) error {
	if m.ID == "" || m.RaftAddr == "" || m.HTTPAddr == "" {
		return fmt.Errorf("%w: id, raft address and http address are all required", ErrInvalidMember)
	}
	// Whatever came of it, the member table may have changed.
	defer n.forgetHTTPAddrs()
	servers, err := n.leaderServers()
	if err != nil {
		return err
	}
	wantSuffrage := raft.Nonvoter
	if m.Voter {
		wantSuffrage = raft.Voter
	}
	known := false
	for _, s := range servers {
		sameID, sameAddr := s.ID == raft.ServerID(m.ID), s.Address == raft.ServerAddress(m.RaftAddr)
		switch {
		case sameID && sameAddr && s.Suffrage == wantSuffrage:
			known = true
		case sameID || sameAddr:
			// Rejoining at a new address (or a new id at an old
			// address): drop the stale entry first.
			if err := waitFuture(ctx, n.raft.RemoveServer(s.ID, 0, n.applyTimeout(ctx))); err != nil {
				return n.raftError("remove stale member "+string(s.ID), err, true)
			}
		}
	}
	if !known {
		var fut raft.IndexFuture
		if m.Voter {
			fut = n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.applyTimeout(ctx))
		} else {
			fut = n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.applyTimeout(ctx))
		}
		if err := waitFuture(ctx, fut); err != nil {
			return n.raftError("add member "+m.ID, err, true)
		}
		n.logger.Info("member joined", "member", m.ID, "raft_addr", m.RaftAddr, "http_addr", m.HTTPAddr, "voter", m.Voter)
	}
	return n.setMemberHTTP(ctx, m.ID, m.HTTPAddr)
}

// Remove takes the member with the given id out of the cluster. It must run
// on the leader; removing the leader itself makes it step down once the
// change is committed.
func (n *Node) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: an id is required", ErrInvalidMember)
	}
	defer n.forgetHTTPAddrs()
	servers, err := n.leaderServers()
	if err != nil {
		return err
	}
	found, voters := false, 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == raft.ServerID(id) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%w: no member with id %q", ErrInvalidMember, id)
	}
	if voters == 1 && id == n.cfg.ID {
		return fmt.Errorf("%w: %q is the last voter", ErrInvalidMember, id)
	}
	// Forget the HTTP address first, while this node certainly leads.
	if err := n.deleteMemberHTTP(ctx, id); err != nil {
		return err
	}
	if err := waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, n.applyTimeout(ctx))); err != nil {
		return n.raftError("remove member "+id, err, true)
	}
	n.logger.Info("member removed", "member", id)
	return nil
}

// leaderServers is the configuration's servers, read on the leader: a
// membership change must run there.
func (n *Node) leaderServers() ([]raft.Server, error) {
	if err := n.checkLeader(); err != nil {
		return nil, err
	}
	return n.servers()
}

func (n *Node) setMemberHTTP(ctx context.Context, id, httpAddr string) error {
	p1, _ := command.NewParam("", id)
	p2, _ := command.NewParam("", httpAddr)
	return n.applyInternal(ctx, &command.Request{Transaction: true, Statements: []*command.Statement{
		{Sql: "CREATE TABLE IF NOT EXISTS " + membersTable + " (id TEXT PRIMARY KEY, http_addr TEXT NOT NULL)"},
		{Sql: "INSERT INTO " + membersTable + " (id, http_addr) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET http_addr = excluded.http_addr", Params: []*command.Param{p1, p2}},
	}})
}

func (n *Node) deleteMemberHTTP(ctx context.Context, id string) error {
	p, _ := command.NewParam("", id)
	return n.applyInternal(ctx, &command.Request{Transaction: true, Statements: []*command.Statement{
		{Sql: "CREATE TABLE IF NOT EXISTS " + membersTable + " (id TEXT PRIMARY KEY, http_addr TEXT NOT NULL)"},
		{Sql: "DELETE FROM " + membersTable + " WHERE id = ?", Params: []*command.Param{p}},
	}})
}

// applyInternal commits deterministic SQL of Cairn's own through the log.
func (n *Node) applyInternal(ctx context.Context, req *command.Request) error {
	res, err := n.apply(ctx, command.Type_TYPE_EXECUTE, req)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error != "" {
			return fmt.Errorf("update %s: %s", membersTable, r.Error)
		}
	}
	return nil
}

// addrCacheTTL is how long httpAddrs reuses what it read.
const addrCacheTTL = time.Second

// memberAddrs is what httpAddrs read, and when it started reading.
type memberAddrs struct {
	addrs map[string]string
	at    time.Time
}

// httpAddrs maps member id to HTTP address: the bootstrap members from the
// configuration, overridden by those recorded when members joined. The
// caller must not modify the map.
//
// Every forwarded request needs the leader's address, so the answer is
// kept for addrCacheTTL instead of queried each time. need is the id whose
// address the caller is after ("" for none): when the cached map lacks it
// (a member that joined since, and now leads), the table is read again at
// once. A follower learns of joins only through the log, so the TTL bounds
// how long it may use an address that changed.
func (n *Node) httpAddrs(ctx context.Context, need string) map[string]string {
	now := time.Now()
	old := n.addrs.Load()
	if old != nil && now.Sub(old.at) < addrCacheTTL && (need == "" || old.addrs[need] != "") {
		return old.addrs
	}
	addrs, ok := n.readHTTPAddrs(ctx)
	if ok {
		// Only over what was there when the read began: if Join or
		// Remove forgot the cache meanwhile, this read may predate their
		// write and must not be kept.
		n.addrs.CompareAndSwap(old, &memberAddrs{addrs: addrs, at: now})
	}
	return addrs
}

// forgetHTTPAddrs drops httpAddrs' cache, so that the next call reads the
// table. Storing a new empty entry rather than nil also makes any read
// already under way fail its CompareAndSwap.
func (n *Node) forgetHTTPAddrs() {
	n.addrs.Store(&memberAddrs{})
}

// readHTTPAddrs reads the addresses httpAddrs serves. ok is false when the
// database could not be read, an answer not worth keeping.
func (n *Node) readHTTPAddrs(ctx context.Context) (addrs map[string]string, ok bool) {
	addrs = make(map[string]string, len(n.cfg.Members))
	for _, m := range n.cfg.Members {
		addrs[m.ID] = m.HTTPAddr
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res, err := n.db.Query(ctx, &command.Request{Statements: []*command.Statement{
		{Sql: "SELECT id, http_addr FROM " + membersTable, ReturnsRows: true},
	}})
	if err != nil {
		// The database is being replaced, or the read timed out: the
		// configuration is all there is for now.
		if !errors.Is(err, statemachine.ErrDBClosed) {
			n.logger.Debug("read member addresses", "error", err)
		}
		return addrs, false
	}
	if len(res) != 1 || res[0].Error != "" {
		// No member has joined yet, so there is no table.
		return addrs, true
	}
	for _, row := range res[0].Values {
		id, _ := row[0].(string)
		addr, _ := row[1].(string)
		if id != "" && addr != "" {
			addrs[id] = addr
		}
	}
	return addrs, true
}

// discoverLeader asks the other configured members whether a cluster with
// a leader already exists and returns the leader's HTTP address, or "" when
// none answers with one (a fresh cluster being created).
func (n *Node) discoverLeader(ctx context.Context) string {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, m := range n.cfg.Members {
		if m.ID == n.cfg.ID || m.HTTPAddr == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTPAddr+"/status", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var st struct {
			Cairn Status `json:"cairn"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && st.Cairn.Leader.HTTPAddr != "" {
			return st.Cairn.Leader.HTTPAddr
		}
	}
	return ""
}

// joinLoop asks the cluster whose leader is at leaderHTTP to add this node,
// retrying until it succeeds or ctx ends.
func (n *Node) joinLoop(ctx context.Context, leaderHTTP string) {
	self := Member{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAdvertise, Voter: true}
	for _, m := range n.cfg.Members {
		if m.ID == n.cfg.ID {
			self.Voter = m.Voter
		}
	}
	body, err := json.Marshal(map[string]any{"id": self.ID, "addr": self.RaftAddr, "http_addr": self.HTTPAddr, "voter": self.Voter})
	if err != nil {
		n.logger.Error("encode join request", "error", err)
		return
	}
	for attempt := 1; ; attempt++ {
		err := PostMembership(ctx, leaderHTTP, http.MethodPost, "/join", body, n.cfg.Secret)
		if err == nil {
			n.logger.Info("joined existing cluster", "via", leaderHTTP, "attempts", attempt)
			return
		}
		n.logger.Warn("join existing cluster", "via", leaderHTTP, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if addr := n.discoverLeader(ctx); addr != "" {
			leaderHTTP = addr
		}
	}
}

// PostMembership sends a signed /join or /remove call to the node at addr,
// following the redirect a follower answers with to the leader.
func PostMembership(ctx context.Context, addr, method, path string, body, secret []byte) error {
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	target := "http://" + addr + path
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		SignRequest(req, secret, body)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusTemporaryRedirect, http.StatusMovedPermanently:
			target = resp.Header.Get("Location")
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", method, target, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, target, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return fmt.Errorf("%s %s: too many redirects", method, path)
}
