package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// smallChunks makes files of many chunks out of little data, for the
// tests that walk every byte or every chunk of a file.
var smallChunks = writerConfig{chunkSize: 256, level: zstd.SpeedFastest, window: 1 << 20}

var testHeader = Header{
	RaftIndex: 4242,
	NodeID:    "node-1",
	Cluster:   "prod",
	Time:      time.Date(2026, 11, 23, 10, 38, 20, 123456789, time.UTC),
}

// testKey returns the key a test ring holds for id.
func testKey(id string) []byte {
	k := sha256.Sum256([]byte("cairn test key " + id))
	return k[:]
}

// mustRing returns a ring of testKey keys named ids, active the given id.
func mustRing(t testing.TB, active string, ids ...string) *KeyRing {
	t.Helper()
	var entries []string
	for _, id := range ids {
		entries = append(entries, id+"/"+base64.StdEncoding.EncodeToString(testKey(id)))
	}
	ring, err := ParseKeyRing(entries, active)
	if err != nil {
		t.Fatalf("ParseKeyRing: %v", err)
	}
	return ring
}

// mustWrite writes a backup of data and returns the file.
func mustWrite(t testing.TB, data []byte, ring *KeyRing, cfg writerConfig) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, testHeader, ring, cfg)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sum, size := w.Sum()
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) || size != int64(len(data)) {
		t.Fatalf("Sum() = %s, %d; want %x, %d", sum, size, want, len(data))
	}
	return buf.Bytes()
}

// readBackup reads a whole backup.
func readBackup(file []byte, ring *KeyRing) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(file), ring)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// frame is where one chunk sits in a file.
type frame struct {
	off, end int // [off, end) in the file, frame header included
	kind     byte
}

// layout parses a file by the layout in doc.go: the length of the header
// and the frames after it.
func layout(t testing.TB, file []byte) (headerLen int, frames []frame) {
	t.Helper()
	fieldsLen := int(binary.BigEndian.Uint16(file[10:12]))
	headerLen = preludeLen + fieldsLen + checksumLen
	if file[preludeLen] == cipherChaCha20 {
		headerLen += tagLen
	}
	for off := headerLen; off < len(file); {
		n := int(binary.BigEndian.Uint32(file[off+1:]))
		frames = append(frames, frame{off: off, end: off + frameHeaderLen + n, kind: file[off]})
		off += frameHeaderLen + n
	}
	if len(frames) == 0 || frames[len(frames)-1].kind != kindEnd || frames[len(frames)-1].end != len(file) {
		t.Fatalf("layout: file does not end with an end marker: %+v", frames)
	}
	return headerLen, frames
}

// randomBytes returns n reproducible random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sqliteLike generates size bytes that look like a SQLite database:
// 4 KiB table b-tree leaf pages of records (ids, names, emails,
// timestamps, statuses, amounts, random 16-byte tokens, a little text),
// filled 60–95 %, and now and then a free page. It is generated as it is
// read, so a test can stream gigabytes without holding them.
type sqliteLike struct {
	rng   *rand.Rand
	left  int64
	page  [4096]byte
	pos   int // read position in page; len(page) when spent
	rowid uint64
	now   int64
	cell  []byte
}

func newSQLiteLike(size int64, seed uint64) *sqliteLike {
	return &sqliteLike{
		rng:  rand.New(rand.NewPCG(seed, 0x5eed)),
		left: size,
		pos:  4096,
		now:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
	}
}

func (g *sqliteLike) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for len(p) > 0 && g.left > 0 {
		if g.pos == len(g.page) {
			g.fill()
		}
		k := copy(p[:min(int64(len(p)), g.left)], g.page[g.pos:])
		g.pos += k
		g.left -= int64(k)
		n += k
		p = p[k:]
	}
	return n, nil
}

var (
	firstNames = strings.Fields("Ada Alan Barbara Claude Donald Edsger Frances Grace Hedy John Ken Leslie Linus Margaret Niklaus Radia Rob Robert Shafi Sophie Tim Tony Vint Whitfield Yukihiro Ziggy")
	lastNames  = strings.Fields("Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Lamarr Backus Thompson Lamport Torvalds Hamilton Wirth Perlman Pike Tarjan Goldwasser Wilson Berners-Lee Hoare Cerf Diffie Matsumoto Stardust")
	domains    = strings.Fields("example.com example.org mail.test corp.example cairn.dev")
	statuses   = strings.Fields("active pending disabled")
	words      = strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua")
)

func (g *sqliteLike) fill() {
	g.pos = 0
	clear(g.page[:])
	if g.rng.IntN(32) == 0 { // a free page: a trunk pointer and zeros
		binary.BigEndian.PutUint32(g.page[:], g.rng.Uint32()%100000)
		return
	}
	g.page[0] = 0x0d // table b-tree leaf
	fill := 0.60 + 0.35*g.rng.Float64()
	off, cells := len(g.page), 0
	for float64(len(g.page)-off) < fill*float64(len(g.page)) {
		rec := g.record()
		if off-len(rec) < 8+2*(cells+1) {
			break
		}
		off -= len(rec)
		copy(g.page[off:], rec)
		binary.BigEndian.PutUint16(g.page[8+2*cells:], uint16(off))
		cells++
	}
	binary.BigEndian.PutUint16(g.page[3:], uint16(cells))
	binary.BigEndian.PutUint16(g.page[5:], uint16(off))
}

func (g *sqliteLike) record() []byte {
	r := g.rng
	g.rowid++
	g.now += int64(r.IntN(90))
	first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	name := first + " " + last
	email := strings.ToLower(first+"."+last) + "@" + domains[r.IntN(len(domains))]
	ts := time.Unix(g.now, 0).UTC().Format(time.RFC3339)
	status := statuses[r.IntN(len(statuses))]
	var note []byte
	for range r.IntN(4) {
		note = append(note, words[r.IntN(len(words))]...)
		note = append(note, ' ')
	}
	texts := []string{name, email, ts, status, string(note)}
	// Record header: its size, then serial types (int, 5 texts, int, blob).
	b := g.cell[:0]
	b = binary.AppendUvarint(b, 0) // payload size, patched below
	b = binary.AppendUvarint(b, g.rowid)
	hdr := []byte{0, 4}
	for _, s := range texts {
		hdr = binary.AppendUvarint(hdr, uint64(13+2*len(s)))
	}
	hdr = append(hdr, 3, 12+2*16)
	hdr[0] = byte(len(hdr))
	b = append(b, hdr...)
	b = binary.BigEndian.AppendUint32(b, uint32(g.rowid))
	for _, s := range texts {
		b = append(b, s...)
	}
	amount := r.IntN(1_000_000)
	b = append(b, byte(amount>>16), byte(amount>>8), byte(amount))
	for range 2 {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	b[0] = byte(len(b) & 0x7f)
	g.cell = b
	return b
}

// sqliteData returns size bytes of sqliteLike data.
func sqliteData(size int, seed uint64) []byte {
	b := make([]byte, size)
	if _, err := io.ReadFull(newSQLiteLike(int64(size), seed), b); err != nil {
		panic(err)
	}
	return b
}

// exactlyOneChunk returns random data that compresses to exactly one full
// chunk: the case where Close has no partial chunk left to flush.
func exactlyOneChunk(t *testing.T, cfg writerConfig) []byte {
	t.Helper()
	data := randomBytes(cfg.chunkSize, 7)
	for range 8 {
		_, frames := layout(t, mustWrite(t, data, nil, cfg))
		compressed := 0
		for _, f := range frames[:len(frames)-1] {
			compressed += f.end - f.off - frameHeaderLen - crcLen
		}
		if compressed == cfg.chunkSize {
			return data
		}
		data = data[:len(data)-(compressed-cfg.chunkSize)]
	}
	t.Fatal("found no size that compresses to exactly one chunk")
	return nil
}

func TestWriter_RoundTrip(t *testing.T) {
	cfg := defaultWriterConfig
	cases := []struct {
		name string
		data []byte
		// chunks is the number of data chunks expected; -1: more than 1.
		chunks int
	}{
		{"Empty", nil, 1},
		{"OneByte", []byte{42}, 1},
		{"ExactlyOneChunk", exactlyOneChunk(t, cfg), 1},
		{"ChunkOfPlaintext", randomBytes(cfg.chunkSize, 3), 2},
		{"ManyChunksRandom", randomBytes(3*cfg.chunkSize+12345, 4), -1},
		{"ManyChunksCompressible", sqliteData(4<<20, 5), -1},
	}
	rings := []struct {
		name string
		ring *KeyRing
	}{
		{"Plain", nil},
		{"Encrypted", mustRing(t, "k1", "k1")},
	}
	for _, rc := range rings {
		for _, tc := range cases {
			t.Run(rc.name+"/"+tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				w, err := NewWriter(&buf, testHeader, rc.ring)
				if err != nil {
					t.Fatal(err)
				}
				// Write in uneven pieces, as io.Copy from a slow source would.
				for p, i := tc.data, 1; len(p) > 0; i++ {
					k := min(len(p), i*997)
					if _, err := w.Write(p[:k]); err != nil {
						t.Fatal(err)
					}
					p = p[k:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				file := buf.Bytes()
				_, frames := layout(t, file)
				if n := len(frames) - 1; tc.chunks >= 0 && n != tc.chunks || tc.chunks < 0 && n < 2 {
					t.Errorf("%d data chunks, want %d", n, tc.chunks)
				}

				wantHeader := testHeader
				wantHeader.Version = Version
				wantHeader.KeyID = rc.ring.ActiveID()
				if got := w.Header(); got != wantHeader {
					t.Errorf("Writer.Header() = %+v, want %+v", got, wantHeader)
				}
				if got, err := ReadHeader(bytes.NewReader(file)); err != nil || got != wantHeader {
					t.Errorf("ReadHeader() = %+v, %v; want %+v", got, err, wantHeader)
				}

				r, err := NewReader(bytes.NewReader(file), rc.ring)
				if err != nil {
					t.Fatal(err)
				}
				if got := r.Header(); got != wantHeader {
					t.Errorf("Reader.Header() = %+v, want %+v", got, wantHeader)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("read %d bytes that differ from the %d written", len(got), len(tc.data))
				}
				if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
				}
				sum, size := w.Sum()
				want := sha256.Sum256(tc.data)
				if sum != hex.EncodeToString(want[:]) || size != int64(len(tc.data)) {
					t.Errorf("Sum() = %s, %d; want %x, %d", sum, size, want, len(tc.data))
				}
			})
		}
	}
}

func TestWriter_Encrypts(t *testing.T) {
	data := bytes.Repeat([]byte("SQLite format 3\x00 secret row "), 1000)
	ring := mustRing(t, "k1", "k1")
	a := mustWrite(t, data, ring, defaultWriterConfig)
	b := mustWrite(t, data, ring, defaultWriterConfig)
	if bytes.Contains(a, []byte("secret row")) {
		t.Error("encrypted file holds plaintext")
	}
	ha, _ := layout(t, a)
	if bytes.Equal(a[ha:], b[ha:]) {
		t.Error("two encryptions of the same data are equal: the salt is not random")
	}
	// The same data unencrypted is only compressed: zstd keeps a literal.
	if plain := mustWrite(t, data, nil, defaultWriterConfig); !bytes.Contains(plain, []byte("secret row")) {
		t.Error("unencrypted file does not hold the compressed literal (is it compressed?)")
	}
}

// failingWriter fails every write after the first ok bytes.
type failingWriter struct {
	ok     int
	closed bool
}

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		n := f.ok
		f.ok = 0
		return n, errDiskFull
	}
	f.ok -= len(p)
	return len(p), nil
}

func (f *failingWriter) Close() error { f.closed = true; return nil }

func TestWriter_Errors(t *testing.T) {
	t.Run("WriteAfterClose", func(t *testing.T) {
		w, err := NewWriter(io.Discard, testHeader, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("Write after Close succeeded")
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("DoesNotCloseUnderlying", func(t *testing.T) {
		f := &failingWriter{ok: 1 << 30}
		w, err := NewWriter(f, testHeader, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if f.closed {
			t.Error("Close closed the underlying writer")
		}
	})
	t.Run("HeaderWriteFails", func(t *testing.T) {
		_, err := NewWriter(&failingWriter{ok: 10}, testHeader, nil)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("NewWriter = %v, want %v", err, errDiskFull)
		}
	})
	t.Run("ChunkWriteFails", func(t *testing.T) {
		for _, ring := range []*KeyRing{nil, mustRing(t, "k1", "k1")} {
			f := &failingWriter{ok: 1000}
			w, err := NewWriter(f, testHeader, ring)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(1<<20, 1)
			_, werr := w.Write(data)
			cerr := w.Close()
			if !errors.Is(werr, errDiskFull) && !errors.Is(cerr, errDiskFull) {
				t.Errorf("Write = %v, Close = %v; want %v", werr, cerr, errDiskFull)
			}
			if _, err := w.Write(data); err == nil {
				t.Error("Write after a failure succeeded")
			}
			if sum, n := w.Sum(); sum != "" || n != 0 {
				t.Errorf("Sum() after a failure = %q, %d", sum, n)
			}
		}
	})
	t.Run("EndMarkerWriteFails", func(t *testing.T) {
		var ok bytes.Buffer
		mustWriteTo(t, &ok, []byte("hello"), nil)
		f := &failingWriter{ok: ok.Len() - 1}
		w, err := NewWriter(f, testHeader, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "end marker") {
			t.Errorf("Close = %v, want a failed end marker", err)
		}
	})
	t.Run("NoActiveKey", func(t *testing.T) {
		if _, err := NewWriter(io.Discard, testHeader, &KeyRing{}); err == nil {
			t.Error("NewWriter with a ring without an active key succeeded")
		}
	})
	t.Run("LongNodeID", func(t *testing.T) {
		h := testHeader
		h.NodeID = strings.Repeat("n", maxStringLen+1)
		if _, err := NewWriter(io.Discard, h, nil); err == nil {
			t.Error("NewWriter with a 1025-byte node id succeeded")
		}
	})
}

func mustWriteTo(t *testing.T, dst io.Writer, data []byte, ring *KeyRing) {
	t.Helper()
	w, err := NewWriter(dst, testHeader, ring)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReader_KeyRotation(t *testing.T) {
	data := sqliteData(200_000, 9)
	old := mustWrite(t, data, mustRing(t, "k1", "k1"), defaultWriterConfig)
	rotated := mustRing(t, "k2", "k1", "k2")
	cur := mustWrite(t, data, rotated, defaultWriterConfig)

	t.Run("BothReadAfterRotation", func(t *testing.T) {
		for name, file := range map[string][]byte{"k1": old, "k2": cur} {
			h, err := ReadHeader(bytes.NewReader(file))
			if err != nil || h.KeyID != name {
				t.Errorf("ReadHeader: key id %q, %v; want %q", h.KeyID, err, name)
			}
			got, err := readBackup(file, rotated)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("file under %s: %v", name, err)
			}
		}
	})
	t.Run("RetiredKey", func(t *testing.T) {
		_, err := readBackup(old, mustRing(t, "k2", "k2"))
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) {
			t.Errorf("err = %v, want ErrUnknownKey naming k1", err)
		}
	})
	t.Run("NoRing", func(t *testing.T) {
		_, err := readBackup(old, nil)
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) {
			t.Errorf("err = %v, want ErrUnknownKey naming k1", err)
		}
	})
	t.Run("SameIDOtherKey", func(t *testing.T) {
		other := base64.StdEncoding.EncodeToString(randomBytes(KeySize, 1))
		ring, err := ParseKeyRing([]string{"k1/" + other}, "k1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = readBackup(old, ring)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "header: authentication failed") {
			t.Errorf("err = %v, want the header to fail authentication", err)
		}
	})
	t.Run("PlainReadsWithAnyRing", func(t *testing.T) {
		got, err := readBackup(mustWrite(t, data, nil, defaultWriterConfig), rotated)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("err = %v", err)
		}
	})
}

// wantErr checks err against the error expected when byte i of a file is
// damaged: the magic gives ErrNotBackup, the version ErrUnsupportedVersion,
// anything else ErrCorrupt.
func wantErr(i int) error {
	switch {
	case i < len(magic):
		return ErrNotBackup
	case i < len(magic)+2:
		return ErrUnsupportedVersion
	}
	return ErrCorrupt
}

func TestReader_Tampered(t *testing.T) {
	data := sqliteData(1<<20, 11)
	for _, rc := range []struct {
		name string
		ring *KeyRing
		fail string // what a damaged chunk reports
	}{
		{"Plain", nil, "checksum mismatch"},
		{"Encrypted", mustRing(t, "k1", "k1"), "authentication failed"},
	} {
		file := mustWrite(t, data, rc.ring, defaultWriterConfig)
		headerLen, frames := layout(t, file)
		end := frames[len(frames)-1]
		headerTag := 0
		if rc.ring != nil {
			headerTag = tagLen
		}
		cases := []struct {
			name string
			at   int
			want string
		}{
			{"HeaderRaftIndex", preludeLen + 6, "header: checksum mismatch"},
			{"HeaderNodeID", preludeLen + fixedFieldsLen + 2 + len(rc.ring.ActiveID()) + 2, "header: checksum mismatch"},
			{"HeaderChecksum", headerLen - headerTag - 1, "header: checksum mismatch"},
			{"ChunkKind", frames[1].off, "chunk 1"},
			{"ChunkLength", frames[1].off + 4, "chunk 1"},
			{"ChunkFirstByte", frames[1].off + frameHeaderLen, "chunk 1: " + rc.fail},
			{"ChunkMiddle", (frames[2].off + frames[2].end) / 2, "chunk 2: " + rc.fail},
			{"ChunkLastByte", frames[2].end - 1, "chunk 2: " + rc.fail},
			{"TrailerSHA256", end.off + frameHeaderLen + 3, "end marker (chunk " + fmt.Sprint(len(frames)-1) + "): " + rc.fail},
			{"TrailerLength", end.off + frameHeaderLen + 39, "end marker"},
			{"TrailerTag", end.end - 1, "end marker"},
		}
		if rc.ring != nil {
			cases = append(cases, struct {
				name string
				at   int
				want string
			}{"HeaderTag", headerLen - 1, "header: authentication failed"})
		}
		for _, tc := range cases {
			t.Run(rc.name+"/"+tc.name, func(t *testing.T) {
				bad := bytes.Clone(file)
				bad[tc.at] ^= 0x40
				_, err := readBackup(bad, rc.ring)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want ErrCorrupt with %q", err, tc.want)
				}
			})
		}
		t.Run(rc.name+"/EveryByte", func(t *testing.T) {
			file := mustWrite(t, sqliteData(3000, 12), rc.ring, smallChunks)
			for i := range file {
				for _, flip := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(file)
					bad[i] ^= flip
					got, err := readBackup(bad, rc.ring)
					if want := wantErr(i); !errors.Is(err, want) {
						t.Fatalf("byte %d ^ %#x: read %d bytes, err = %v; want %v", i, flip, len(got), err, want)
					}
				}
			}
		})
	}
	t.Run("Encrypted/HeaderReforged", func(t *testing.T) {
		// An attacker who changes the header and recomputes its
		// checksum is caught by the header tag.
		ring := mustRing(t, "k1", "k1")
		file := mustWrite(t, data, ring, defaultWriterConfig)
		fieldsEnd := preludeLen + int(binary.BigEndian.Uint16(file[10:]))
		file[preludeLen+13]++ // raft index
		sum := sha256.Sum256(file[:fieldsEnd])
		copy(file[fieldsEnd:], sum[:])
		if _, err := ReadHeader(bytes.NewReader(file)); err != nil {
			t.Fatalf("ReadHeader: %v (the checksum was recomputed)", err)
		}
		if _, err := readBackup(file, ring); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "header: authentication failed") {
			t.Errorf("err = %v, want the header tag to fail", err)
		}
	})
}

func TestReader_Truncated(t *testing.T) {
	for _, rc := range []struct {
		name string
		ring *KeyRing
	}{{"Plain", nil}, {"Encrypted", mustRing(t, "k1", "k1")}} {
		for _, cc := range []struct {
			name string
			cfg  writerConfig
			data []byte
		}{
			{"SmallChunks", smallChunks, sqliteData(5000, 13)},
			{"DefaultChunks", defaultWriterConfig, randomBytes(200_000, 14)},
			{"Empty", defaultWriterConfig, nil},
		} {
			t.Run(rc.name+"/"+cc.name, func(t *testing.T) {
				file := mustWrite(t, cc.data, rc.ring, cc.cfg)
				headerLen, frames := layout(t, file)
				offsets := map[int]bool{len(file) - 1: true}
				for i := 0; i <= headerLen; i++ {
					offsets[i] = true
				}
				for _, f := range frames {
					for _, o := range []int{f.off - 1, f.off, f.off + 1, f.off + frameHeaderLen, f.end - 1, f.end, f.end + 1} {
						if o >= 0 && o < len(file) {
							offsets[o] = true
						}
					}
				}
				for o := range offsets {
					got, err := readBackup(file[:o], rc.ring)
					if !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrCorrupt) {
						t.Errorf("truncated at %d of %d: read %d bytes, err = %v; want ErrTruncated", o, len(file), len(got), err)
					}
				}
			})
		}
	}
}

func TestReader_Chunks(t *testing.T) {
	data := sqliteData(6000, 15)
	for _, rc := range []struct {
		name string
		ring *KeyRing
	}{{"Plain", nil}, {"Encrypted", mustRing(t, "k1", "k1")}} {
		file := mustWrite(t, data, rc.ring, smallChunks)
		headerLen, frames := layout(t, file)
		if len(frames) < 5 {
			t.Fatalf("%d frames, want at least 5", len(frames))
		}
		chunk := func(i int) []byte { return file[frames[i].off:frames[i].end] }
		// build joins the header and the given chunks.
		build := func(chunks ...int) []byte {
			b := bytes.Clone(file[:headerLen])
			for _, i := range chunks {
				b = append(b, chunk(i)...)
			}
			return b
		}
		all := make([]int, len(frames))
		for i := range all {
			all[i] = i
		}
		last := len(frames) - 1
		cases := []struct {
			name string
			file []byte
			want error
		}{
			{"Intact", build(all...), nil},
			{"Reordered", build(append([]int{0, 2, 1}, all[3:]...)...), ErrCorrupt},
			{"Duplicated", build(append([]int{0, 1, 1}, all[2:]...)...), ErrCorrupt},
			{"Dropped", build(append([]int{0}, all[2:]...)...), ErrCorrupt},
			{"DroppedLastData", build(append(all[:last-1:last-1], last)...), ErrCorrupt},
			{"DroppedEnd", build(all[:last]...), ErrTruncated},
			{"EndMovedEarlier", build(0, 1, last), ErrCorrupt},
			{"EndTwice", build(append(all, last)...), ErrCorrupt},
			{"DataAfterEnd", append(build(all...), 0), ErrCorrupt},
		}
		if rc.ring != nil {
			other := mustWrite(t, data, rc.ring, smallChunks)
			oh, of := layout(t, other)
			spliced := build(0)
			spliced = append(spliced, other[of[1].off:of[1].end]...)
			for _, i := range all[2:] {
				spliced = append(spliced, chunk(i)...)
			}
			cases = append(cases,
				struct {
					name string
					file []byte
					want error
				}{"ChunkFromOtherFile", spliced, ErrCorrupt},
				struct {
					name string
					file []byte
					want error
				}{"HeaderFromOtherFile", append(bytes.Clone(other[:oh]), file[headerLen:]...), ErrCorrupt},
			)
		}
		for _, tc := range cases {
			t.Run(rc.name+"/"+tc.name, func(t *testing.T) {
				got, err := readBackup(tc.file, rc.ring)
				if tc.want == nil {
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("intact file: %v", err)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("read %d bytes, err = %v; want %v", len(got), err, tc.want)
				}
			})
		}
	}
}

func TestReader_NotBackup(t *testing.T) {
	good := mustWrite(t, []byte("x"), nil, defaultWriterConfig)
	v2 := bytes.Clone(good)
	binary.BigEndian.PutUint16(v2[len(magic):], 2)
	sqlite := append([]byte("SQLite format 3\x00"), make([]byte, 4080)...)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"SQLiteFile", sqlite, ErrNotBackup},
		{"Text", []byte("hello"), ErrNotBackup},
		{"WrongMagic", append([]byte("CAIRNBK\x01"), good[8:]...), ErrNotBackup},
		{"Empty", nil, ErrTruncated},
		{"MagicPrefix", []byte("CAIRN"), ErrTruncated},
		{"Version2", v2, ErrUnsupportedVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadHeader(bytes.NewReader(tc.in)); !errors.Is(err, tc.want) {
				t.Errorf("ReadHeader: err = %v, want %v", err, tc.want)
			}
			if _, err := NewReader(bytes.NewReader(tc.in), nil); !errors.Is(err, tc.want) {
				t.Errorf("NewReader: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadHeader_LeavesReaderAtFirstChunk(t *testing.T) {
	for _, ring := range []*KeyRing{nil, mustRing(t, "k1", "k1")} {
		file := mustWrite(t, []byte("data"), ring, defaultWriterConfig)
		headerLen, _ := layout(t, file)
		r := bytes.NewReader(file)
		if _, err := ReadHeader(r); err != nil {
			t.Fatal(err)
		}
		if off := len(file) - r.Len(); off != headerLen {
			t.Errorf("key %q: ReadHeader consumed %d bytes, the header is %d", ring.ActiveID(), off, headerLen)
		}
	}
}

// readerFunc adapts a function to io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestReader_IOError(t *testing.T) {
	file := mustWrite(t, randomBytes(300_000, 16), mustRing(t, "k1", "k1"), defaultWriterConfig)
	errNet := errors.New("connection reset")
	src := bytes.NewReader(file[:len(file)/2])
	r, err := NewReader(readerFunc(func(p []byte) (int, error) {
		n, err := src.Read(p)
		if err == io.EOF {
			return n, errNet
		}
		return n, err
	}), mustRing(t, "k1", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	if !errors.Is(err, errNet) || errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v, want the I/O error, not corruption", err)
	}
}

func TestParseKeyRing(t *testing.T) {
	k1, k2 := randomBytes(KeySize, 21), randomBytes(KeySize, 22)
	std := base64.StdEncoding.EncodeToString
	t.Run("Valid", func(t *testing.T) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			ring, err := ParseKeyRing([]string{"k1/" + enc.EncodeToString(k1), " k.2_x-Y/" + enc.EncodeToString(k2) + " "}, "k.2_x-Y")
			if err != nil {
				t.Fatalf("%v", err)
			}
			if ring.ActiveID() != "k.2_x-Y" || fmt.Sprint(ring.IDs()) != "[k1 k.2_x-Y]" {
				t.Errorf("active %q, ids %q", ring.ActiveID(), ring.IDs())
			}
			if key, _ := ring.key("k1"); !bytes.Equal(key[:], k1) {
				t.Error("k1 decoded wrong")
			}
		}
	})
	t.Run("NoKeys", func(t *testing.T) {
		ring, err := ParseKeyRing(nil, "")
		if ring != nil || err != nil {
			t.Errorf("ParseKeyRing(nil, \"\") = %v, %v; want nil, nil", ring, err)
		}
		if ring.ActiveID() != "" || ring.IDs() != nil {
			t.Error("a nil ring has keys")
		}
	})
	cases := []struct {
		name    string
		entries []string
		active  string
		want    string
	}{
		{"Malformed", []string{"k1/" + std(k1), "nokeyhere"}, "k1", "key 1: malformed entry"},
		{"BareKey", []string{std(k1)}, "k1", "key 0: no id"},
		{"BareKeyRawURL", []string{base64.RawURLEncoding.EncodeToString(k1)}, "k1", "key 0: no id"},
		{"EmptyID", []string{"/" + std(k1)}, "k1", "key 0: empty key id"},
		{"IDWithSpace", []string{"k 1/" + std(k1)}, "k 1", "key 0: key id has characters outside"},
		{"IDWithPlus", []string{"ab+c/" + std(k1)}, "k1", "key 0: key id has characters outside"},
		{"LongID", []string{strings.Repeat("k", 65) + "/" + std(k1)}, "k1", "key 0: key id is 65 characters"},
		{"BadBase64", []string{"k1/" + std(k1), "k2/not*base64"}, "k1", `key 1 ("k2"): bad base64`},
		{"Short", []string{"k1/" + std(k1[:16])}, "k1", `key 0 ("k1"): key is 16 bytes, want 32`},
		{"Long", []string{"k1/" + std(append(k1, 0))}, "k1", `key 0 ("k1"): key is 33 bytes, want 32`},
		{"Empty", []string{"k1/"}, "k1", `key 0 ("k1"): key is 0 bytes`},
		{"Duplicate", []string{"k1/" + std(k1), "k2/" + std(k2), "k1/" + std(k2)}, "k1", `key 2 ("k1"): duplicate id (key 0 has it too)`},
		{"ActiveMissing", []string{"k1/" + std(k1), "k2/" + std(k2)}, "k3", `active key "k3" is not in the key ring (ids: k1, k2)`},
		{"ActiveUnset", []string{"k1/" + std(k1)}, "", "no active key set"},
		{"ActiveIsAKey", []string{"k1/" + std(k1)}, base64.RawStdEncoding.EncodeToString(k1), "looks like a key, not shown"},
		{"ActiveInvalid", []string{"k1/" + std(k1)}, std(k1), "invalid id, not shown"},
		{"EmptyRingActiveSet", nil, "k1", `active key "k1" is set but the key ring is empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ring, err := ParseKeyRing(tc.entries, tc.active)
			if err == nil || ring != nil {
				t.Fatalf("ParseKeyRing = %v, %v; want an error", ring, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", err, tc.want)
			}
			msg := err.Error()
			for _, e := range tc.entries {
				if _, enc, ok := strings.Cut(e, "/"); ok && len(enc) > 4 && strings.Contains(msg, enc) {
					t.Errorf("error %q shows key material", msg)
				}
			}
			assertNoKey(t, msg, k1, k2)
		})
	}
}

// assertNoKey fails if s shows any of keys in any usual encoding.
func assertNoKey(t *testing.T, s string, keys ...[]byte) {
	t.Helper()
	for _, k := range keys {
		needles := []string{
			base64.StdEncoding.EncodeToString(k)[:12],
			base64.URLEncoding.EncodeToString(k)[:12],
			hex.EncodeToString(k[:6]),
			strings.ToUpper(hex.EncodeToString(k[:6])),
			strings.Trim(fmt.Sprint(k[:6]), "[]"),
			strings.Trim(fmt.Sprintf("%#v", k[:4]), "[]byte{}"),
			string(k[:6]),
		}
		for _, n := range needles {
			if strings.Contains(s, n) {
				t.Errorf("output shows key material (%q):\n%s", n, s)
			}
		}
	}
}

func TestKeyRing_Format(t *testing.T) {
	k1, k2 := randomBytes(KeySize, 31), randomBytes(KeySize, 32)
	ring, err := ParseKeyRing([]string{
		"k1/" + base64.StdEncoding.EncodeToString(k1),
		"k2/" + base64.URLEncoding.EncodeToString(k2),
	}, "k2")
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		Ring    *KeyRing
		Value   KeyRing
		private KeyRing
		ptr     *KeyRing
	}
	values := map[string]any{
		"Pointer": ring,
		"Value":   *ring,
		"Struct":  holder{ring, *ring, *ring, ring},
		"Slice":   []*KeyRing{ring},
		"Map":     map[string]KeyRing{"r": *ring},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p"}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			for _, verb := range verbs {
				fmt.Fprintf(&out, verb+"\n", v)
			}
			if name == "Pointer" && !strings.Contains(out.String(), `KeyRing{active: "k2", ids: ["k1" "k2"]}`) {
				t.Errorf("%%v does not show the ids:\n%s", out.String())
			}
			assertNoKey(t, out.String(), k1, k2)
		})
	}
	t.Run("Slog", func(t *testing.T) {
		var out bytes.Buffer
		slog.New(slog.NewTextHandler(&out, nil)).Info("ring", "ring", ring, "value", *ring, "holder", holder{ring, *ring, *ring, ring})
		slog.New(slog.NewJSONHandler(&out, nil)).Info("ring", "ring", ring, "value", *ring, "holder", holder{ring, *ring, *ring, ring})
		if !strings.Contains(out.String(), "ring.active=k2") {
			t.Errorf("slog does not show the active id:\n%s", out.String())
		}
		assertNoKey(t, out.String(), k1, k2)
	})
	t.Run("Nil", func(t *testing.T) {
		var nilRing *KeyRing
		if s := fmt.Sprint(nilRing); s != "<nil>" {
			t.Errorf("fmt.Sprint(nil ring) = %q", s)
		}
	})
}

// TestReader_MemoryBounded streams a backup through an io.Pipe, a Writer
// at one end and a Reader at the other, so that nothing holds the backup,
// and checks that the heap stays small whatever the size. 256 MiB take
// about 4 s; -short, and the race detector (which makes it a minute),
// stream 32 MiB instead: the plain run is the one that proves the bound.
func TestReader_MemoryBounded(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() || raceEnabled {
		size = 32 << 20
	}
	ring := mustRing(t, "k1", "k1")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	})

	start := time.Now()
	pr, pw := io.Pipe()
	srcSum := sha256.New()
	var writer sync.WaitGroup
	var wsum string
	writer.Go(func() {
		w, err := NewWriter(pw, testHeader, ring)
		if err == nil {
			_, err = io.Copy(w, io.TeeReader(newSQLiteLike(size, 42), srcSum))
		}
		if err == nil {
			err = w.Close()
		}
		if err == nil {
			wsum, _ = w.Sum()
		}
		pw.CloseWithError(err)
	})
	r, err := NewReader(pr, ring)
	if err != nil {
		t.Fatal(err)
	}
	dstSum := sha256.New()
	n, err := io.Copy(dstSum, r)
	writer.Wait()
	close(stop)
	sampler.Wait()
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if n != size || !bytes.Equal(dstSum.Sum(nil), srcSum.Sum(nil)) || wsum != hex.EncodeToString(srcSum.Sum(nil)) {
		t.Fatalf("read back %d of %d bytes; sums: read %x, source %x, writer %s", n, size, dstSum.Sum(nil), srcSum.Sum(nil), wsum)
	}
	growth := int64(peak) - int64(base.HeapInuse)
	t.Logf("%d MiB written and read back in %v; HeapInuse %.1f MiB at start, peak %.1f MiB (growth %.1f MiB)",
		size>>20, time.Since(start).Round(time.Millisecond), mib(base.HeapInuse), mib(peak), float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("HeapInuse grew by %.1f MiB, want under 32 MiB", float64(growth)/(1<<20))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func FuzzReader(f *testing.F) {
	ring := mustRing(f, "k1", "k1")
	for _, data := range [][]byte{nil, {1}, sqliteData(300, 1), sqliteData(2000, 2)} {
		f.Add(mustWrite(f, data, nil, smallChunks))
		f.Add(mustWrite(f, data, ring, smallChunks))
	}
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, file []byte) {
		_, _ = ReadHeader(bytes.NewReader(file))
		for _, ring := range []*KeyRing{nil, ring} {
			r, err := NewReader(bytes.NewReader(file), ring)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, r)
		}
	})
}

var (
	benchOnce sync.Once
	benchData []byte
)

// benchmarkData is 64 MiB of SQLite-like data, generated once.
func benchmarkData() []byte {
	benchOnce.Do(func() { benchData = sqliteData(64<<20, 1) })
	return benchData
}

// countingWriter counts what it discards.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// benchConfigs are the settings compared in benchmarks; the first two are
// the defaults, the rest are what the defaults were chosen against.
func benchConfigs(b *testing.B) []struct {
	name string
	ring *KeyRing
	cfg  writerConfig
} {
	ring := mustRing(b, "k1", "k1")
	with := func(f func(*writerConfig)) writerConfig {
		c := defaultWriterConfig
		f(&c)
		return c
	}
	return []struct {
		name string
		ring *KeyRing
		cfg  writerConfig
	}{
		{"Plain", nil, defaultWriterConfig},
		{"Encrypted", ring, defaultWriterConfig},
		{"Encrypted/SpeedDefault", ring, with(func(c *writerConfig) { c.level = zstd.SpeedDefault })},
		{"Encrypted/Window4MiB", ring, with(func(c *writerConfig) { c.window = 4 << 20 })},
		{"Encrypted/Chunk1MiB", ring, with(func(c *writerConfig) { c.chunkSize = 1 << 20 })},
		{"Encrypted/LowMem", ring, with(func(c *writerConfig) { c.lowMem = true })},
	}
}

func BenchmarkWriter(b *testing.B) {
	data := benchmarkData()
	for _, bc := range benchConfigs(b) {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var out countingWriter
			for b.Loop() {
				out.n = 0
				w, err := newWriter(&out, testHeader, bc.ring, bc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data))/float64(out.n), "ratio")
		})
	}
}

func BenchmarkReader(b *testing.B) {
	data := benchmarkData()
	for _, bc := range benchConfigs(b) {
		b.Run(bc.name, func(b *testing.B) {
			file := mustWrite(b, data, bc.ring, bc.cfg)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(file), bc.ring)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
