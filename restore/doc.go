// Package restore rebuilds a node's state from a backup before Raft starts
// (CAIRN_BACKUP_RESTORE, `cairn restore`): fetch, decrypt and verify into a
// temporary file, build a fresh Raft state around it, swap it in place of
// the old one atomically and record a marker so that the same backup is
// not applied twice.
//
// # What a restore produces
//
// Every node given the same backup and the same cluster.nodes builds the
// same Raft state, so the cluster converges without any node sending its
// data to another:
//
//   - data_dir/raft/snapshots: one snapshot, index 1, term 1, whose
//     configuration is Options.Members (all voters, configuration index 1)
//     and whose contents are the FSM's stream: "CAIRNSN1", the index 1
//     (8 bytes big-endian: the index the FSM records as applied in the new
//     epoch, not the backup's index in the old cluster), then the database.
//   - data_dir/raft/raft.db: an empty log whose stable store holds
//     CurrentTerm = 1, so the first election of the new epoch is term 2.
//     raft.HasExistingState is true (the snapshot), so the node does not
//     bootstrap again; it restores the snapshot into its database and
//     elects a leader with its peers, all of which hold the same last
//     index and term.
//   - data_dir/restore.json: {name, sha256, epoch, applied_at, raft_index,
//     size}. Run compares a backup with it by name and SHA-256 of the
//     plaintext database (for S3, the listed checksum, before fetching;
//     for a file, the checksum computed while staging) and does not apply
//     the same backup again, so leaving the variable set is safe.
//
// The epoch is the first 16 hex digits of SHA-256("cairn restore epoch",
// name, sha256): the same on every node restoring that backup, and
// different from the epoch of any other backup. For a file: spec the name
// is the file's base name. The transport refuses peers of another epoch,
// so a node left on pre-restore data cannot rejoin and overwrite the
// restored cluster. Restoring A, then B, then A again gives the first
// epoch again: a node that missed the restore of B would then be
// accepted, so remove such a node's data directory first.
//
// # Staging
//
// The backup is read once, as a stream, into
// data_dir/.restore-RANDOM/restored.db (the data directory's disk, so the
// later renames are atomic). A Cairn backup goes through format.Reader,
// which authenticates every chunk and checks the SHA-256 and length of
// the whole plaintext before it reports the end; a file starting with the
// SQLite header is copied as is and hashed. Then Options.Verify checks the
// database (cmd runs PRAGMA integrity_check). Any failure so far removes
// the staging directory and leaves the data directory as it was.
//
// # The swap and crash safety
//
// The new Raft directory, with the marker inside it, is built and synced
// (every file 0600, every directory 0700) in the staging directory, then:
//
//  1. rename .restore-X/raft → raft.new; sync data_dir
//  2. rename raft → raft.old (when raft exists); sync data_dir
//  3. rename raft.new → raft; sync data_dir
//  4. rename raft/restore.json → restore.json; sync both
//  5. remove raft.old and the staging directories; sync data_dir
//
// Step 1 is the commit point: raft.new only ever appears complete,
// because it is built elsewhere and arrives by one rename. The marker
// travels inside it, so the marker always describes the Raft state it sits
// beside. Recovery (run first by Run, and by Recover) applies the same
// steps, each idempotent, to whatever a crash left:
//
//   - a crash before step 1 leaves raft untouched and a staging directory,
//     which is removed: the old state.
//   - raft.new and raft (crash between 1 and 2): the swap is finished.
//   - raft.new without raft (between 2 and 3, or a node that had no
//     state): raft.new becomes raft.
//   - raft/restore.json (between 3 and 4): moved out. Epoch reads it there
//     too, so the epoch is right even before recovery.
//   - raft.old beside raft (between 4 and 5): removed.
//
// So the data directory holds either the old Raft state or the new one
// with its marker, never a mix. The node's SQLite file is not touched: the
// node rebuilds it from the latest snapshot at every start.
package restore
