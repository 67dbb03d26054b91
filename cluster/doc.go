// Package cluster runs a Cairn node in Raft mode and declares the Backend
// interface the HTTP API runs on.
//
// Node wraps hashicorp/raft with raft-boltdb as log and stable store and a
// file snapshot store. Raft's traffic runs over a stream layer of our own
// (transport.go) over TCP (TLS-ready, not yet configurable). Every
// connection proves knowledge of the cluster secret, both ways, in a
// challenge-response handshake before Raft may use it, and the layer never
// resolves addresses before it dials them.
//
// On the leader, each request is analysed and rewritten
// (statemachine.Rewriter), encoded (package command) and applied through the
// log; the statemachine.FSM applies it to SQLite on every node. Reads are
// served at one of four levels (none, weak, linearizable, strong); a
// follower serves level none itself.
//
// A follower forwards everything else to the leader: one signed HTTP POST
// to the leader's ForwardPath (/internal/v1/forward), which InternalHandler
// serves. The leader runs it and never forwards it again. While no leader
// is known, or the one tried refuses or cannot be reached, a request waits
// and tries again for up to Config.LeaderWait (never past its own
// deadline), then fails with ErrNoLeader, which the HTTP API answers with
// 503. Node-to-node HTTP requests (forwarding, /join, /remove) all carry
// an AuthHeader, an HMAC made with the cluster secret over method, path,
// time and body (SignRequest, VerifyRequest).
//
// Membership: at its first start a node bootstraps the configured members,
// the same list on every node. Before that, a node whose configuration
// lists peers asks them (GET /status) whether a cluster with a leader
// already exists; if one does, it skips bootstrap and asks the leader to
// add it (POST /join, retried until it succeeds). Join and Remove change
// the Raft configuration on the leader. Raft stores only ids and Raft
// addresses, so the HTTP address of each member that joined is kept in the
// replicated table _cairn_members, which every node reads to find the
// leader's HTTP address.
//
// Errors are reported with the sentinels in backend.go. A write whose fate
// is not known, whether Raft could not tell or the answer from the leader
// was lost, is ErrUnknownOutcome, never "not written". DESIGN.md explains
// why the package is built this way.
package cluster
