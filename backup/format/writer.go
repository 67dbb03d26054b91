package format

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// writerConfig holds the writer's tunables. Only tests and benchmarks use
// other values than defaultWriterConfig; readers accept any chunk size in
// [minChunkSize, maxChunkSize] and windows up to maxDecoderWindow.
type writerConfig struct {
	chunkSize int
	level     zstd.EncoderLevel
	window    int
	lowMem    bool // zstd.WithLowerEncoderMem
}

// defaultWriterConfig: 64 KiB chunks, zstd SpeedFastest with a 1 MiB
// window, the full-size encoder history (WithLowerEncoderMem moves the
// whole window down on every block and costs a third of the throughput).
// doc.go gives the measurements behind each choice.
var defaultWriterConfig = writerConfig{
	chunkSize: 64 << 10,
	level:     zstd.SpeedFastest,
	window:    1 << 20,
}

var errWriteAfterClose = errors.New("backup writer: write after close")

// Writer compresses (zstd) what is written to it and, when it has a key
// ring, encrypts it under the ring's active key, in authenticated chunks.
// Close writes the end marker. A Writer is not safe for concurrent use.
type Writer struct {
	h      Header
	zw     *zstd.Encoder
	cw     *chunkWriter
	sha    hash.Hash
	size   int64
	sum    string
	closed bool
	err    error // sticky: the first error ends the backup
}

// NewWriter writes the header of a backup to w and returns a Writer for
// its plaintext. It sets h.Version to Version and h.KeyID to the ring's
// active key id; a nil ring writes an unencrypted backup, and a non-nil
// ring without an active key is an error. h.Time is stored in UTC, to the
// nanosecond.
func NewWriter(w io.Writer, h Header, ring *KeyRing) (*Writer, error) {
	return newWriter(w, h, ring, defaultWriterConfig)
}

func newWriter(w io.Writer, h Header, ring *KeyRing, cfg writerConfig) (*Writer, error) {
	raw := rawHeader{Header: h, chunkSize: cfg.chunkSize}
	raw.Version = Version
	raw.Time = h.Time.UTC()
	raw.KeyID = ""
	var aead cipher.AEAD
	if ring != nil {
		key, ok := ring.key(ring.ActiveID())
		if !ok {
			return nil, errors.New("new backup writer: key ring has no active key")
		}
		raw.KeyID = ring.ActiveID()
		raw.cipher = cipherChaCha20
		if _, err := rand.Read(raw.salt[:]); err != nil {
			return nil, fmt.Errorf("new backup writer: salt: %w", err)
		}
		var err error
		if aead, err = fileAEAD(key, &raw.salt); err != nil {
			return nil, fmt.Errorf("new backup writer: %w", err)
		}
	}
	if err := raw.encode(); err != nil {
		return nil, fmt.Errorf("new backup writer: %w", err)
	}
	head := make([]byte, 0, len(raw.bytes)+checksumLen+tagLen)
	head = append(head, raw.bytes...)
	head = append(head, raw.sum[:]...)
	if aead != nil {
		var nonce [chacha20poly1305.NonceSize]byte
		setNonce(&nonce, 0, kindHeader)
		head = aead.Seal(head, nonce[:], nil, raw.bytes)
	}
	cw := newChunkWriter(w, aead, raw.sum[:], cfg.chunkSize)
	// One encoder goroutine-free stream with a bounded window keeps memory
	// constant whatever the size of the backup.
	zw, err := zstd.NewWriter(cw,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(cfg.level),
		zstd.WithWindowSize(cfg.window),
		zstd.WithLowerEncoderMem(cfg.lowMem),
	)
	if err != nil {
		return nil, fmt.Errorf("new backup writer: zstd: %w", err)
	}
	if _, err := w.Write(head); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	return &Writer{h: raw.Header, zw: zw, cw: cw, sha: sha256.New()}, nil
}

// Header returns the header as written: with Version and KeyID set.
func (w *Writer) Header() Header { return w.h }

// Write compresses, encrypts and writes p. After an error every further
// call returns that error: the backup is unusable.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errWriteAfterClose
	}
	n, err := w.zw.Write(p)
	w.sha.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		w.err = w.cause(err)
		return n, w.err
	}
	return n, nil
}

// Close flushes the compressed stream and writes the end marker with the
// SHA-256 and length of the plaintext. It does not close the underlying
// writer. Calling Close again returns the first call's result.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.zw.Close(); err != nil {
		w.err = w.cause(err)
		return w.err
	}
	if err := w.cw.flush(); err != nil {
		w.err = err
		return err
	}
	var trailer [trailerLen]byte
	w.sha.Sum(trailer[:0])
	binary.BigEndian.PutUint64(trailer[sha256.Size:], uint64(w.size))
	if err := w.cw.end(trailer[:]); err != nil {
		w.err = err
		return err
	}
	w.sum = hex.EncodeToString(trailer[:sha256.Size])
	return nil
}

// Sum returns the hex SHA-256 and the length of the plaintext written. It
// is valid after a successful Close; before that it returns "" and 0.
func (w *Writer) Sum() (sha256hex string, plaintextSize int64) {
	if !w.closed || w.err != nil {
		return "", 0
	}
	return w.sum, w.size
}

// cause prefers the chunk writer's error (the real I/O error) over what
// the encoder made of it.
func (w *Writer) cause(err error) error {
	if w.cw.err != nil {
		return w.cw.err
	}
	return fmt.Errorf("compress: %w", err)
}

// chunkWriter cuts the compressed stream into chunks of size bytes, seals
// each and writes it as a frame. It allocates once.
type chunkWriter struct {
	w    io.Writer
	aead cipher.AEAD // nil: unencrypted, chunks carry a CRC-32C
	ad   []byte      // the header checksum
	size int         // payload bytes per full chunk
	// buf holds one frame: frame header, payload, and room for the tag.
	buf     []byte
	n       int // payload bytes in buf
	counter uint64
	nonce   [chacha20poly1305.NonceSize]byte
	crcPre  [9]byte
	err     error
}

func newChunkWriter(w io.Writer, aead cipher.AEAD, ad []byte, size int) *chunkWriter {
	return &chunkWriter{
		w:    w,
		aead: aead,
		ad:   ad,
		size: size,
		buf:  make([]byte, frameHeaderLen+size+max(tagLen, crcLen)),
	}
}

// Write buffers p and writes every chunk it fills.
func (c *chunkWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	written := 0
	for len(p) > 0 {
		k := copy(c.buf[frameHeaderLen+c.n:frameHeaderLen+c.size], p)
		c.n += k
		written += k
		p = p[k:]
		if c.n == c.size {
			if err := c.emit(kindData); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush writes the last, partial data chunk, if any.
func (c *chunkWriter) flush() error {
	if c.err != nil {
		return c.err
	}
	if c.n == 0 {
		return nil
	}
	return c.emit(kindData)
}

// end writes the end marker. The chunk writer must be flushed.
func (c *chunkWriter) end(trailer []byte) error {
	if c.err != nil {
		return c.err
	}
	c.n = copy(c.buf[frameHeaderLen:], trailer)
	return c.emit(kindEnd)
}

// emit seals the buffered payload in place and writes the frame.
func (c *chunkWriter) emit(kind byte) error {
	payload := c.buf[frameHeaderLen : frameHeaderLen+c.n]
	var body []byte
	if c.aead != nil {
		setNonce(&c.nonce, c.counter, kind)
		body = c.aead.Seal(payload[:0], c.nonce[:], payload, c.ad)
	} else {
		body = binary.BigEndian.AppendUint32(payload, chunkCRC(&c.crcPre, c.counter, kind, payload))
	}
	c.buf[0] = kind
	binary.BigEndian.PutUint32(c.buf[1:frameHeaderLen], uint32(len(body)))
	if _, err := c.w.Write(c.buf[:frameHeaderLen+len(body)]); err != nil {
		if kind == kindEnd {
			c.err = fmt.Errorf("write end marker: %w", err)
		} else {
			c.err = fmt.Errorf("write chunk %d: %w", c.counter, err)
		}
		return c.err
	}
	c.counter++
	c.n = 0
	return nil
}
