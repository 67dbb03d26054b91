// Package backuptest holds the contract every backup.Store passes
// (RunStoreContract, run by the tests of backup.Local and backup/s3), and
// the helpers it is built from.
package backuptest
