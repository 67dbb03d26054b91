// Package cluster runs a Cairn node in Raft mode and declares the Backend
// interface the HTTP API runs on.
//
// Node wraps hashicorp/raft with raft-boltdb as log and stable store, a file
// snapshot store and a TCP transport. On the leader it analyses and rewrites
// each request (statemachine.Rewriter), encodes it (package command) and
// applies it through the log; the statemachine.FSM applies it to SQLite on
// every node. Reads are served at one of four levels (none, weak,
// linearizable, strong). Errors are reported with the sentinels in
// backend.go; a write whose fate Raft could not tell is ErrUnknownOutcome,
// never "not written".
package cluster
