// Package restore will rebuild a node's state from a backup before Raft
// starts (CAIRN_BACKUP_RESTORE): fetch, decrypt and verify into a temporary
// file, swap the data directory atomically and reset the Raft state. It is
// delivered by the disaster-recovery issue (#5); until then it holds no
// code.
package restore
