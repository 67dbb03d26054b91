package format

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the format version this package writes.
const Version = 1

// Errors of the format package. The errors returned wrap them with where
// the problem is ("backup corrupt: chunk 12: authentication failed"); match
// them with errors.Is.
var (
	// ErrNotBackup means the data does not start with the backup magic:
	// it is not a Cairn backup (it may be a plain SQLite file).
	ErrNotBackup = errors.New("not a cairn backup")

	// ErrUnsupportedVersion means the backup was written in a format
	// version this build cannot read.
	ErrUnsupportedVersion = errors.New("unsupported backup format version")

	// ErrUnknownKey means the backup is encrypted under a key id that the
	// key ring does not hold (or no key ring was given). The error names
	// the key id.
	ErrUnknownKey = errors.New("unknown encryption key")

	// ErrCorrupt means the backup failed an integrity check: its header,
	// a chunk or the end marker does not authenticate (or, unencrypted,
	// does not match its checksum), or the plaintext does not match the
	// SHA-256 and length recorded at the end.
	ErrCorrupt = errors.New("backup corrupt")

	// ErrTruncated means the backup ends before its end marker. A
	// truncated backup is corrupt too: errors.Is(err, ErrCorrupt) also
	// holds for it.
	ErrTruncated error = truncatedError{}
)

// truncatedError is the type of ErrTruncated, so that it also matches
// ErrCorrupt.
type truncatedError struct{}

func (truncatedError) Error() string        { return "backup truncated" }
func (truncatedError) Is(target error) bool { return target == ErrCorrupt }

// Header is the clear-text start of a backup file. It is authenticated:
// when the backup is encrypted, the header is bound into the AEAD as
// associated data, so tampering with it is detected by NewReader.
type Header struct {
	// Version is the format version; NewWriter sets it to Version.
	Version int
	// KeyID names the key the backup is encrypted under; "" means it is
	// not encrypted. NewWriter sets it from the key ring.
	KeyID string
	// RaftIndex is the last Raft log index the backup contains.
	RaftIndex uint64
	// NodeID is the node that took the backup.
	NodeID string
	// Cluster is the name of the cluster the node belongs to.
	Cluster string
	// Time is when the backup was taken, UTC.
	Time time.Time
}

// The layout constants; doc.go describes the layout they make up.
const (
	magic          = "CAIRNBK\x00"
	preludeLen     = len(magic) + 2 + 2 // magic, version, fields length
	fixedFieldsLen = 1 + 1 + 4 + 8 + 8 + 4 + saltLen
	minFieldsLen   = fixedFieldsLen + 3*2 // three empty strings
	maxFieldsLen   = 4096
	saltLen        = 32
	checksumLen    = sha256.Size
	tagLen         = chacha20poly1305.Overhead
	crcLen         = 4
	frameHeaderLen = 1 + 4 // kind, body length
	trailerLen     = sha256.Size + 8
	maxKeyIDLen    = 64
	maxStringLen   = 1024
	minChunkSize   = 64
	maxChunkSize   = 4 << 20

	cipherNone     = 0 // chunks carry a CRC-32C
	cipherChaCha20 = 1 // ChaCha20-Poly1305 under an HKDF-SHA256 file key

	compressionZstd = 1

	kindData   = 0x00 // a chunk of the compressed stream
	kindEnd    = 0x01 // the end marker: SHA-256 and length of the plaintext
	kindHeader = 0x02 // nonce domain of the header tag only; never a chunk

	hkdfInfo = "cairn backup v1 chacha20-poly1305 file key"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rawHeader is a header as it sits in the file, with the fields Header
// does not show.
type rawHeader struct {
	Header
	cipher    byte
	chunkSize int
	salt      [saltLen]byte
	// bytes is the prelude and the fields: what the checksum covers and
	// the header tag authenticates.
	bytes []byte
	// sum is SHA-256(bytes); every chunk binds it as associated data.
	sum [checksumLen]byte
	// tag is the AEAD tag over bytes (encrypted backups only).
	tag [tagLen]byte
}

// encode lays out the prelude and fields, and sets bytes and sum.
func (h *rawHeader) encode() error {
	if len(h.KeyID) > maxKeyIDLen {
		return fmt.Errorf("header: key id is %d bytes, max %d", len(h.KeyID), maxKeyIDLen)
	}
	if len(h.NodeID) > maxStringLen {
		return fmt.Errorf("header: node id is %d bytes, max %d", len(h.NodeID), maxStringLen)
	}
	if len(h.Cluster) > maxStringLen {
		return fmt.Errorf("header: cluster is %d bytes, max %d", len(h.Cluster), maxStringLen)
	}
	n := minFieldsLen + len(h.KeyID) + len(h.NodeID) + len(h.Cluster)
	b := make([]byte, 0, preludeLen+n)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, uint16(h.Version))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, h.cipher, compressionZstd)
	b = binary.BigEndian.AppendUint32(b, uint32(h.chunkSize))
	b = binary.BigEndian.AppendUint64(b, h.RaftIndex)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(h.Time.Nanosecond()))
	b = append(b, h.salt[:]...)
	for _, s := range []string{h.KeyID, h.NodeID, h.Cluster} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	h.bytes = b
	h.sum = sha256.Sum256(b)
	return nil
}

// ReadHeader reads the header of a backup, for listings and to pick the
// key, and leaves r at the first chunk. It checks the header's SHA-256
// checksum, which catches accidents; only NewReader, which has the key,
// authenticates an encrypted backup's header.
func ReadHeader(r io.Reader) (Header, error) {
	h, err := readHeader(r)
	if err != nil {
		return Header{}, err
	}
	return h.Header, nil
}

// readHeader reads and checks the prelude, the fields, the checksum and,
// for encrypted backups, the (still unverified) header tag.
func readHeader(r io.Reader) (*rawHeader, error) {
	var prelude [preludeLen]byte
	n, err := io.ReadFull(r, prelude[:])
	if m := min(n, len(magic)); string(prelude[:m]) != magic[:m] {
		return nil, ErrNotBackup
	}
	if err != nil {
		return nil, readErr("header", err)
	}
	if v := binary.BigEndian.Uint16(prelude[len(magic):]); v != Version {
		return nil, fmt.Errorf("%w %d (this build reads %d)", ErrUnsupportedVersion, v, Version)
	}
	fieldsLen := int(binary.BigEndian.Uint16(prelude[len(magic)+2:]))
	if fieldsLen < minFieldsLen || fieldsLen > maxFieldsLen {
		return nil, fmt.Errorf("%w: header: length %d out of range", ErrCorrupt, fieldsLen)
	}
	b := make([]byte, preludeLen+fieldsLen+checksumLen)
	copy(b, prelude[:])
	if _, err := io.ReadFull(r, b[preludeLen:]); err != nil {
		return nil, readErr("header", err)
	}
	h := &rawHeader{bytes: b[:preludeLen+fieldsLen]}
	h.sum = sha256.Sum256(h.bytes)
	if !bytes.Equal(h.sum[:], b[preludeLen+fieldsLen:]) {
		return nil, fmt.Errorf("%w: header: checksum mismatch", ErrCorrupt)
	}
	if err := h.decodeFields(h.bytes[preludeLen:]); err != nil {
		return nil, fmt.Errorf("%w: header: %s", ErrCorrupt, err)
	}
	if h.cipher == cipherChaCha20 {
		if _, err := io.ReadFull(r, h.tag[:]); err != nil {
			return nil, readErr("header", err)
		}
	}
	return h, nil
}

// decodeFields parses the fields of a version 1 header.
func (h *rawHeader) decodeFields(f []byte) error {
	h.Version = Version
	h.cipher, f = f[0], f[1:]
	if h.cipher != cipherNone && h.cipher != cipherChaCha20 {
		return fmt.Errorf("unknown cipher %d", h.cipher)
	}
	if c := f[0]; c != compressionZstd {
		return fmt.Errorf("unknown compression %d", c)
	}
	f = f[1:]
	cs := binary.BigEndian.Uint32(f)
	if cs < minChunkSize || cs > maxChunkSize {
		return fmt.Errorf("chunk size %d out of range", cs)
	}
	h.chunkSize = int(cs)
	h.RaftIndex = binary.BigEndian.Uint64(f[4:])
	sec := int64(binary.BigEndian.Uint64(f[12:]))
	nsec := binary.BigEndian.Uint32(f[20:])
	if nsec >= uint32(time.Second) {
		return fmt.Errorf("time: %d nanoseconds", nsec)
	}
	h.Time = time.Unix(sec, int64(nsec)).UTC()
	copy(h.salt[:], f[24:])
	f = f[24+saltLen:]
	var strs [3]string
	for i := range strs {
		if len(f) < 2 {
			return errors.New("fields too short")
		}
		n := int(binary.BigEndian.Uint16(f))
		if len(f) < 2+n {
			return errors.New("fields too short")
		}
		strs[i], f = string(f[2:2+n]), f[2+n:]
	}
	if len(f) != 0 {
		return fmt.Errorf("%d stray bytes after the fields", len(f))
	}
	h.KeyID, h.NodeID, h.Cluster = strs[0], strs[1], strs[2]
	switch h.cipher {
	case cipherNone:
		if h.KeyID != "" || h.salt != [saltLen]byte{} {
			return errors.New("key id or salt set on an unencrypted backup")
		}
	case cipherChaCha20:
		if err := checkKeyID(h.KeyID); err != nil {
			return err
		}
	}
	return nil
}

// readErr turns a short read into ErrTruncated and wraps other read errors.
func readErr(where string, err error) error {
	switch err {
	case io.EOF:
		return fmt.Errorf("%w: %s: file ends before it", ErrTruncated, where)
	case io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: %s: file ends inside it", ErrTruncated, where)
	}
	return fmt.Errorf("read %s: %w", where, err)
}

// fileAEAD derives the file key from the master key and the header's salt.
func fileAEAD(master *[KeySize]byte, salt *[saltLen]byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, master[:], salt[:], hkdfInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive file key: %w", err)
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("derive file key: %w", err)
	}
	return aead, nil
}

// setNonce fills a 12-byte nonce: three zero bytes, the chunk counter
// (uint64 big-endian), then the chunk kind (STREAM's last-chunk flag, plus
// the header domain). Every file has its own key, so the counter alone
// makes nonces unique.
func setNonce(n *[chacha20poly1305.NonceSize]byte, counter uint64, kind byte) {
	n[0], n[1], n[2] = 0, 0, 0
	binary.BigEndian.PutUint64(n[3:11], counter)
	n[11] = kind
}

// chunkCRC is the CRC-32C an unencrypted chunk carries: over the counter,
// the kind and the payload, so dropped or reordered chunks are caught too.
// pre is scratch space, so that the read and write paths do not allocate.
func chunkCRC(pre *[9]byte, counter uint64, kind byte, payload []byte) uint32 {
	binary.BigEndian.PutUint64(pre[:8], counter)
	pre[8] = kind
	return crc32.Update(crc32.Checksum(pre[:], castagnoli), castagnoli, payload)
}
