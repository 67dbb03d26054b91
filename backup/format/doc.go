// Package format is Cairn's backup file format, shared by backups and
// restore: a clear-text header, then the SQLite database compressed with
// zstd and (under the active key of a KeyRing) encrypted in authenticated
// chunks, then an authenticated end marker carrying the SHA-256 and length
// of the plaintext. The package imports nothing of the project.
//
// Writer and Reader stream: their memory is constant whatever the size of
// the backup (a Writer allocates about 3 MB, a Reader about 1.7 MB;
// writing 256 MiB through a pipe to a Reader grows the heap by about
// 10 MiB, garbage included).
//
// # Guarantees
//
// Encrypted backups (a key id in the header) are confidential and
// tamper-evident. Each file has its own key, derived with HKDF-SHA256
// from the master key and a random 32-byte salt, so nonces are plain
// counters. Every chunk is sealed with ChaCha20-Poly1305 under a nonce
// that binds its index and whether it is the end marker (the STREAM
// construction of Hoang, Reyhanitabar, Rogaway and Vizár, as in age), and
// with the header's SHA-256 as associated data. So a changed header, a
// changed, reordered, duplicated, dropped or foreign chunk, and a file cut
// short (even at a chunk boundary) all fail: a truncated file never reads
// as a shorter valid backup. Read reports a failed chunk as soon as it
// reaches it ("backup corrupt: chunk 12: authentication failed").
//
// Unencrypted backups (no key ring) have the same framing, with a CRC-32C
// per chunk instead of the AEAD tag and the same SHA-256 end marker. That
// catches accidents (bit rot, truncated uploads, mixed-up chunks), not an
// attacker, who can rewrite an unencrypted backup and its checksums at
// will. NewReader reads an unencrypted backup whatever the key ring: a
// caller that requires encryption checks Header().KeyID != "".
//
// Errors: ErrNotBackup (no magic: perhaps a plain SQLite file),
// ErrUnsupportedVersion, ErrUnknownKey (names the key id), ErrCorrupt and
// ErrTruncated (which also matches ErrCorrupt). I/O errors of the
// underlying reader or writer come back wrapped, and are not ErrCorrupt.
//
// # Layout, version 1
//
// Integers are big-endian. Offsets are in bytes.
//
// Prelude, 12 bytes, the same in every version:
//
//	 0  8  magic "CAIRNBK\x00" (43 41 49 52 4e 42 4b 00)
//	 8  2  format version (1)
//	10  2  F: length of the header fields that follow (64 ≤ F ≤ 4096)
//
// Header fields, F bytes:
//
//	 0  1  cipher: 0 = none, 1 = ChaCha20-Poly1305 with an HKDF-SHA256 file key
//	 1  1  compression: 1 = zstd
//	 2  4  C: chunk size, the most payload bytes a data chunk holds
//	       (65536 as written; readers accept 64 ≤ C ≤ 4 MiB)
//	 6  8  Raft index (uint64)
//	14  8  time: seconds since the Unix epoch, UTC (int64)
//	22  4  time: nanoseconds within the second (< 10^9)
//	26 32  salt: random when cipher = 1, all zeros when cipher = 0
//	58  2+n  key id: length n (uint16), n bytes; 1–64 bytes of
//	         [A-Za-z0-9._-] when cipher = 1, empty when cipher = 0
//	..  2+n  node id, the same way (at most 1024 bytes)
//	..  2+n  cluster name, the same way (at most 1024 bytes)
//
// The fields end exactly at F; a version 1 reader rejects anything else.
//
// Header checksum, 32 bytes: H = SHA-256 of the prelude and the fields.
//
// Header tag, 16 bytes, only when cipher = 1: the ChaCha20-Poly1305 tag
// of an empty plaintext, Seal(K, nonce(0, 0x02), "", AD = prelude ||
// fields).
//
// The file key, when cipher = 1:
//
//	K = HKDF-SHA256(secret = the 32-byte master key named by the key id,
//	                salt = the header's salt,
//	                info = "cairn backup v1 chacha20-poly1305 file key",
//	                length = 32)
//
// nonce(i, kind) is 12 bytes: three zero bytes, the chunk index i as a
// uint64, and the kind byte (0x00 data chunk, 0x01 end marker, 0x02
// header tag).
//
// Then the chunks, each a frame:
//
//	0  1  kind: 0x00 data chunk, 0x01 end marker
//	1  4  L: length of the body
//	5  L  body
//
// Data chunks i = 0, 1, …, n-1 come first, then exactly one end marker,
// whose index is n; the file ends right after it. A data chunk's payload
// P_i is 1 to C bytes; every data chunk but the last holds exactly C
// (readers do not rely on it). The body is, for cipher = 1:
//
//	Seal(K, nonce(i, kind), P_i, AD = H)     ciphertext || 16-byte tag
//
// and for cipher = 0:
//
//	P_i || CRC-32C (Castagnoli) of (uint64 i || kind || P_i), 4 bytes
//
// so L is len(P_i) + 16, or len(P_i) + 4. The end marker's payload is 40
// bytes: the SHA-256 of the plaintext, then its length in bytes (uint64).
//
// The concatenation P_0 || … || P_{n-1} is a zstd stream (RFC 8878; one
// frame as written, with the content checksum, a window of at most 1 MiB
// as written and 8 MiB as read). An empty plaintext still makes a zstd
// frame, so n ≥ 1. Decompressed, it is the plaintext: the SQLite database.
//
// To restore without this package: check the prelude; read F, the fields
// and H, and check H; if encrypted, derive K and open the header tag; then
// for i = 0, 1, …: read a frame, reject a length out of range, open or
// check it with index i and its kind, and feed data payloads to a zstd
// decoder; at the end marker, check that nothing follows, that the zstd
// stream ended, and that the SHA-256 and length of what it produced match.
// Use nothing before all of that has passed.
//
// An encrypted file is 12 + F + 32 + 16 bytes of header (F = 64 + the
// lengths of the three strings), 21 bytes per data chunk (0.03 % of a
// 64 KiB chunk) plus the compressed data, and 61 bytes of end marker.
//
// # Choices
//
// Measured on this project's 2-core build machine, which is shared and
// noisy: figures are medians of three runs of BenchmarkWriter and
// BenchmarkReader (64 MiB of generated SQLite-like pages) unless said
// otherwise.
//
// Chunks are 64 KiB, as in age: the framing costs 0.03 %, an error names
// a place within 64 KiB, and a reader needs one 64 KiB buffer. 1 MiB
// chunks were no faster (164 MB/s to write either way) and need a buffer
// 16 times the size.
//
// zstd runs at SpeedFastest with a 1 MiB window and one synchronous
// encoder (WithEncoderConcurrency(1): no goroutines). On a real 79 MiB
// SQLite database (users, sessions, an indexed event log; CPU time, best
// of five) SpeedFastest compressed at 166 MB/s to a ratio of 2.61,
// SpeedDefault at 134–138 MB/s to 2.67, SpeedBetterCompression at 36 MB/s
// to 2.79: SpeedFastest gives 22 % more throughput for 2.3 % more bytes
// (on the generated pages: 164 against 124 MB/s, ratio 2.97 against
// 3.23). The window did not change the ratio (2.609 at 1 and 4 MiB;
// SpeedDefault 2.666 at 1 MiB, 2.671 at 4 and 8 MiB) but sizes the memory
// of both ends (a 4 MiB window: 9.4 MB to write, 4.9 MB to read), so it is
// 1 MiB. WithLowerEncoderMem is off: it keeps a history of window +
// 128 KiB, so zstd moves the whole window down on every block; that cost
// 20 % of the throughput here for 1 MB saved (and a third at a 4 MiB
// window).
//
// Written: about 165 MB/s encrypted, 140–165 MB/s unencrypted (zstd is
// nearly all of it: ChaCha20-Poly1305 seals about 2 GB/s and only sees the
// compressed bytes; SHA-256 hashes about 1.4 GB/s). Read back: about
// 510 MB/s encrypted, 560 MB/s unencrypted.
//
// ChaCha20-Poly1305 from golang.org/x/crypto under an HKDF per-file key
// rather than XChaCha20 with a random nonce prefix: the per-file key
// makes counter nonces safe, leaves the master key out of every chunk
// operation, and gives the header tag and every chunk one key bound to
// one header.
package format
