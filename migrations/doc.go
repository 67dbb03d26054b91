// Package migrations applies versioned SQL schema migrations to a Cairn
// database, in Raft mode (SQLite) and in Postgres mode alike.
//
// # Files
//
// A migration is a file named NNNN_name.sql at the root of a directory
// (db.migrations_dir) or of any fs.FS, such as an embed.FS. NNNN is its
// version: migrations are applied in version order. A file may have dialect
// variants, NNNN_name.sqlite.sql and NNNN_name.postgres.sql, which replace
// the generic file of that version in their dialect; a variant without a
// generic file is a migration of that dialect only (an empty variant is a
// way to skip a version in one dialect). Load reads them, splits each into
// statements with a splitter that knows the dialect's quoting, comments
// and bodies (SQLite triggers, PostgreSQL dollar quoting and BEGIN ATOMIC),
// and records the SHA-256 of each file.
//
// # Applying
//
// A Runner applies each pending migration in its own transaction, whose
// first statement records it in the table _cairn_migrations (version, name,
// checksum, applied_at, duration_ms). A migration therefore may not contain
// BEGIN, COMMIT or ROLLBACK (Load refuses it), nor statements that cannot
// run inside a transaction: VACUUM in SQLite; CREATE INDEX CONCURRENTLY,
// CREATE DATABASE and ALTER TYPE … ADD VALUE (before PostgreSQL 12) in
// PostgreSQL. In SQLite, PRAGMA foreign_keys has no effect inside a
// transaction: use PRAGMA defer_foreign_keys = ON for table rebuilds.
//
// Running again is a no-op. The runner refuses, before applying anything, a
// migration that was applied from a file that has since changed (naming the
// file and both checksums). A failing migration rolls back entirely and
// stops the run with the file, the statement and the database's error.
//
// Several runners may start at once, one per node. In Postgres mode the
// Execer's Lock takes a PostgreSQL advisory lock (AdvisoryLockKey), so
// they take turns. In Raft mode every transaction goes through the Raft
// log, and the record row that opens each migration's transaction makes
// the runners safe without a lock: the second transaction for a version
// fails on the primary key and rolls back whole.
//
// # Using it as a library
//
// A Go program embeds its migrations with embed.FS, loads them with Load
// (through fs.Sub for a subdirectory) and runs them with a Runner over an
// Execer: Cairn's command line has adapters for its two backends, and the
// package example shows one over database/sql.
//
// The package imports no other Cairn package.
package migrations
