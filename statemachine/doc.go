// Package statemachine owns the node's SQLite database and the Raft finite
// state machine that applies committed log entries to it.
//
//   - DB opens SQLite (modernc.org/sqlite, no cgo) in WAL mode with one write
//     connection and a pool of read-only ones, runs batches of statements,
//     and makes consistent copies with SQLite's online backup.
//   - FSM implements raft.FSM: it decodes each entry (package command),
//     dispatches it to DB, and streams snapshots as database files.
//   - Rewriter analyses SQL with github.com/rqlite/sql: it classifies each
//     statement as read-only or not, and rewrites non-deterministic calls
//     (RANDOM(), datetime('now'), CURRENT_TIMESTAMP…) to literals before a
//     write enters the log, so every replica computes the same rows.
//
// The package knows nothing of Raft networking or HTTP. See DESIGN.md for
// why the database file may run without fsync.
package statemachine
