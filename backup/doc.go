// Package backup will own Cairn's scheduled backups: the leader-only cron
// schedule, consistent archives of the database (a Source), local retention
// and the Store interface that backup/s3 implements. It is delivered by the
// backup issue (#4); until then it holds no code, and the package map test
// (internal/layout) already enforces that it imports neither cluster nor
// statemachine.
package backup
