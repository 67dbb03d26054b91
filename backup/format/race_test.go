//go:build race

package format

// raceEnabled: the race detector slows zstd and SHA-256 down about
// fifteenfold, so long streaming tests shrink under it.
const raceEnabled = true
