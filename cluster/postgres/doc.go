// Package postgres is Cairn's Postgres mode: the HTTP API's cluster.Backend
// served by an external PostgreSQL through a pgx connection pool, with no
// Raft and no backups. PostgreSQL owns durability and replication; any
// number of Cairn nodes may share one database.
//
// Requests keep the Raft mode's semantics: without a transaction each
// statement commits on its own and a failing one does not stop the rest;
// with one, the first failure rolls everything back. /db/query runs in a
// read-only transaction, so a statement that writes is refused
// (cluster.ErrNotReadOnly). Read levels and freshness are accepted and
// ignored: every read sees PostgreSQL's committed state.
//
// Values are converted for JSON without loss: integers as int64, numeric
// as a decimal string, bytea as bytes (base64 in JSON), timestamps as RFC
// 3339 strings, json and jsonb as the JSON PostgreSQL stored, arrays as
// arrays. SQL errors carry PostgreSQL's message and SQLSTATE.
//
// The pool checks a connection that was idle for more than a second before
// lending it out, and all idle connections every HealthCheckPeriod, so
// after PostgreSQL restarts (or the database is dropped and made again)
// the pool heals by itself: the first requests may fail cleanly with
// cluster.ErrUnavailable, none hangs past its deadline. Open does not need
// PostgreSQL to be up; Ready reports it.
package postgres
