package format

import (
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// maxDecoderWindow bounds the zstd window a reader accepts, and so the
// memory a hostile or broken file can make it take.
const maxDecoderWindow = 8 << 20

// Reader returns the plaintext of a backup, checking it as it goes. A
// Reader is not safe for concurrent use.
type Reader struct {
	h    Header
	cr   *chunkReader
	zr   *zstd.Decoder
	sha  hash.Hash
	size int64
	err  error // sticky: io.EOF once verified, or the first error
}

// NewReader reads the header of a backup from r and returns a Reader for
// its plaintext. An encrypted backup needs its key, found in ring by the
// header's key id: a nil ring, or one without that id, gives ErrUnknownKey
// naming the id. An unencrypted backup needs no ring, and reads with any:
// a caller that requires encryption checks Header().KeyID.
//
// Read fails with ErrCorrupt (or ErrTruncated) as soon as a chunk does
// not authenticate or the file ends early, and returns io.EOF only once
// the end marker has authenticated and the SHA-256 and length of
// everything read match it.
func NewReader(r io.Reader, ring *KeyRing) (*Reader, error) {
	h, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	var aead cipher.AEAD
	if h.cipher == cipherChaCha20 {
		key, ok := ring.key(h.KeyID)
		if !ok {
			if ring == nil {
				return nil, fmt.Errorf("%w: backup is encrypted under key %q and no key ring is configured", ErrUnknownKey, h.KeyID)
			}
			return nil, fmt.Errorf("%w: backup is encrypted under key %q, which is not in the key ring", ErrUnknownKey, h.KeyID)
		}
		if aead, err = fileAEAD(key, &h.salt); err != nil {
			return nil, err
		}
		var nonce [chacha20poly1305.NonceSize]byte
		setNonce(&nonce, 0, kindHeader)
		if _, err := aead.Open(nil, nonce[:], h.tag[:], h.bytes); err != nil {
			return nil, fmt.Errorf("%w: header: authentication failed", ErrCorrupt)
		}
	}
	cr := newChunkReader(r, aead, h.sum[:], h.chunkSize)
	// Synchronous (concurrency 1: no goroutines to leak, nothing read
	// until the first Read), low-memory, with a bounded window.
	zr, err := zstd.NewReader(cr,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
	)
	if err != nil {
		return nil, fmt.Errorf("new backup reader: zstd: %w", err)
	}
	return &Reader{h: h.Header, cr: cr, zr: zr, sha: sha256.New()}, nil
}

// Header returns the backup's header.
func (r *Reader) Header() Header { return r.h }

// Read reads plaintext. See NewReader for the errors.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.zr.Read(p)
	r.sha.Write(p[:n])
	r.size += int64(n)
	switch err {
	case nil:
		return n, nil
	case io.EOF:
		if r.err = r.finish(); r.err == nil {
			r.err = io.EOF
		}
	default:
		r.err = r.cause(err)
	}
	return n, r.err
}

// finish checks, once the compressed stream has ended, that the chunks
// end there too and that the plaintext matches the end marker.
func (r *Reader) finish() error {
	if !r.cr.ended {
		n, err := io.Copy(io.Discard, r.cr)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %d bytes after the compressed stream", ErrCorrupt, n)
		}
	}
	if r.size != int64(r.cr.length) {
		return fmt.Errorf("%w: end marker: length mismatch (%d bytes recorded, %d read)", ErrCorrupt, r.cr.length, r.size)
	}
	var sum [sha256.Size]byte
	if !bytes.Equal(r.sha.Sum(sum[:0]), r.cr.sum[:]) {
		return fmt.Errorf("%w: end marker: SHA-256 mismatch", ErrCorrupt)
	}
	return nil
}

// cause prefers the chunk reader's error (corruption, truncation or the
// real I/O error) over what the decoder made of it.
func (r *Reader) cause(err error) error {
	if r.cr.err != nil && r.cr.err != io.EOF {
		return r.cr.err
	}
	return fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
}

// chunkReader reads frames, opens each chunk and returns the compressed
// stream; io.EOF once the end marker has authenticated and the file has
// ended. It allocates once.
type chunkReader struct {
	r        io.Reader
	aead     cipher.AEAD // nil: unencrypted, chunks carry a CRC-32C
	ad       []byte      // the header checksum
	size     int         // max payload bytes of a chunk
	overhead int         // tag or CRC bytes per chunk
	buf      []byte
	pending  []byte // opened payload not yet read
	counter  uint64
	fh       [frameHeaderLen]byte
	nonce    [chacha20poly1305.NonceSize]byte
	crcPre   [9]byte
	err      error // sticky; io.EOF after the end marker

	ended  bool              // the end marker authenticated
	sum    [sha256.Size]byte // from the end marker
	length uint64            // from the end marker
}

func newChunkReader(r io.Reader, aead cipher.AEAD, ad []byte, size int) *chunkReader {
	c := &chunkReader{r: r, aead: aead, ad: ad, size: size, overhead: crcLen}
	if aead != nil {
		c.overhead = tagLen
	}
	c.buf = make([]byte, size+c.overhead)
	return c
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.err = c.next()
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// next reads and opens the next chunk.
func (c *chunkReader) next() error {
	if _, err := io.ReadFull(c.r, c.fh[:]); err != nil {
		if err == io.EOF {
			return fmt.Errorf("%w: file ends before the end marker (after %d chunks)", ErrTruncated, c.counter)
		}
		return readErr(c.where(kindData), err)
	}
	kind, n := c.fh[0], int(binary.BigEndian.Uint32(c.fh[1:]))
	switch kind {
	case kindData:
		if n <= c.overhead || n > c.size+c.overhead {
			return fmt.Errorf("%w: %s: length %d out of range", ErrCorrupt, c.where(kind), n)
		}
	case kindEnd:
		if n != trailerLen+c.overhead {
			return fmt.Errorf("%w: %s: length %d, want %d", ErrCorrupt, c.where(kind), n, trailerLen+c.overhead)
		}
	default:
		return fmt.Errorf("%w: %s: unknown kind 0x%02x", ErrCorrupt, c.where(kindData), kind)
	}
	body := c.buf[:n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		return readErr(c.where(kind), err)
	}
	var payload []byte
	if c.aead != nil {
		setNonce(&c.nonce, c.counter, kind)
		var err error
		if payload, err = c.aead.Open(body[:0], c.nonce[:], body, c.ad); err != nil {
			return fmt.Errorf("%w: %s: authentication failed", ErrCorrupt, c.where(kind))
		}
	} else {
		payload = body[:n-crcLen]
		if binary.BigEndian.Uint32(body[n-crcLen:]) != chunkCRC(&c.crcPre, c.counter, kind, payload) {
			return fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, c.where(kind))
		}
	}
	if kind == kindData {
		c.pending = payload
		c.counter++
		return nil
	}
	copy(c.sum[:], payload)
	c.length = binary.BigEndian.Uint64(payload[sha256.Size:])
	c.ended = true
	// The end marker ends the file.
	switch k, err := io.ReadFull(c.r, c.fh[:1]); {
	case k > 0:
		return fmt.Errorf("%w: data after the end marker", ErrCorrupt)
	case err != io.EOF:
		return fmt.Errorf("read after the end marker: %w", err)
	}
	return io.EOF
}

// where names the current chunk in errors. It is called on errors only,
// so the read path does not allocate.
func (c *chunkReader) where(kind byte) string {
	if kind == kindEnd {
		return fmt.Sprintf("end marker (chunk %d)", c.counter)
	}
	return fmt.Sprintf("chunk %d", c.counter)
}
