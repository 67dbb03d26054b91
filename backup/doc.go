// Package backup takes Cairn's scheduled backups: on the leader only, on a
// cron schedule, it asks a Source for a consistent copy of the database,
// turns it into an archive (package backup/format: compressed, and
// encrypted under the active key of a key ring), keeps it in a Local
// directory and uploads it to a remote Store (backup/s3), then prunes both
// by age without ever deleting the newest good backup.
//
// The package imports neither cluster nor statemachine: cmd hands it the
// database as a Source and the node's leadership as a gate, as rqlite's
// startAutoBackups does.
package backup
