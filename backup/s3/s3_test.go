package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairndb/cairn/backup"
	"github.com/cairndb/cairn/internal/backuptest"
	"github.com/cairndb/cairn/internal/s3test"
)

const mib = 1 << 20

// mustNewStore returns a Store on a fresh bucket of srv, with small
// timeouts, after applying edit to its config.
func mustNewStore(t *testing.T, srv *s3test.Server, edit func(*Config)) *Store {
	t.Helper()
	cfg := testConfig(srv, srv.NewBucket(t))
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func testConfig(srv *s3test.Server, bucket string) Config {
	return Config{
		URL:         srv.URL,
		Bucket:      bucket,
		Region:      srv.Region,
		PathStyle:   true,
		Key:         srv.Key,
		Secret:      srv.Secret,
		Timeout:     10 * time.Second,
		MaxAttempts: 2,
	}
}

func TestStore_Contract(t *testing.T) {
	srv := s3test.Start(t)
	backuptest.RunStoreContract(t, func(t *testing.T) backup.Store {
		return mustNewStore(t, srv, nil)
	})
	t.Run("WithPrefix", func(t *testing.T) {
		backuptest.RunStoreContract(t, func(t *testing.T) backup.Store {
			return mustNewStore(t, srv, func(c *Config) { c.Prefix = "prod/cairn" })
		})
	})
}

func TestStore(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()

	t.Run("MetadataRoundTrip", func(t *testing.T) {
		s := mustNewStore(t, srv, nil)
		info := backup.Info{
			Time:          time.Date(2026, 11, 23, 10, 38, 20, 987654321, time.UTC),
			NodeID:        "nœud-3",      // not ASCII
			Cluster:       " prod 100% ", // spaces at the ends, a "%"
			RaftIndex:     1<<63 + 5,
			SHA256:        strings.Repeat("ab", 32),
			KeyID:         "k/2026 ✓",
			FormatVersion: 7,
		}
		info.Name = backup.NewName(info.Time, info.RaftIndex)
		body := backuptest.Body(11, 4321)
		backuptest.MustPut(t, s, info, body)
		info.Size = int64(len(body))

		infos, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) != 1 {
			t.Fatalf("List: %v", infos)
		}
		backuptest.AssertInfo(t, "List", infos[0], info)
		got, gotInfo := backuptest.MustGet(t, s, info.Name)
		backuptest.AssertInfo(t, "Get", gotInfo, info)
		if !bytes.Equal(got, body) {
			t.Fatal("Get: body differs")
		}

		// One user-metadata key per field, every value ASCII.
		head, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(info.Name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"time", "node-id", "cluster", "raft-index", "size", "sha256", "key-id", "format-version"} {
			v, ok := head.Metadata[metaPrefix+k]
			if !ok {
				t.Errorf("metadata lacks %s%s: %v", metaPrefix, k, head.Metadata)
			}
			for _, c := range []byte(v) {
				if c < 0x20 || c > 0x7e {
					t.Errorf("metadata %s%s = %q is not printable ASCII", metaPrefix, k, v)
					break
				}
			}
		}
		if v := head.Metadata[metaPrefix+"sha256"]; v != info.SHA256 {
			t.Errorf("plain ASCII value stored as %q, want it unchanged", v)
		}
	})

	t.Run("Multipart40MiB", func(t *testing.T) {
		const size = 40 * mib
		s := mustNewStore(t, srv, func(c *Config) { c.PartSize = 5 * mib; c.Concurrency = 2 })
		info := backuptest.NewInfo(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 1000)
		info.Size = size

		peak := watchHeap(t)
		sum := sha256.New()
		start := time.Now()
		if err := s.Put(ctx, info, io.TeeReader(newStream(1, size), sum)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		grew := peak()
		t.Logf("put 40 MiB in %s; heap grew at most %.1f MiB", time.Since(start).Round(time.Millisecond), float64(grew)/mib)
		// Parts in memory: the first (read with io.ReadAll, so up to
		// twice its size while it grows) and Concurrency+1 pooled ones;
		// never the whole object.
		if limit := int64(6 * 5 * mib); grew > limit {
			t.Errorf("heap grew %.1f MiB during a 40 MiB upload; want at most %d MiB", float64(grew)/mib, limit/mib)
		}

		head, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(info.Name)})
		if err != nil {
			t.Fatal(err)
		}
		if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-8") {
			t.Errorf("ETag %s: want a multipart ETag of 8 parts", etag)
		}

		rc, got, err := s.Get(ctx, info.Name)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer rc.Close()
		if got.Size != size {
			t.Errorf("Get: size %d, want %d", got.Size, size)
		}
		back := sha256.New()
		if _, err := io.Copy(back, rc); err != nil {
			t.Fatalf("read back: %v", err)
		}
		if !bytes.Equal(back.Sum(nil), sum.Sum(nil)) {
			t.Fatal("read back: SHA-256 differs from what was put")
		}
	})

	t.Run("MultipartFromFile", func(t *testing.T) {
		// An *os.File goes through unbuffered, from its current offset.
		s := mustNewStore(t, srv, func(c *Config) { c.PartSize = 5 * mib })
		body := backuptest.Body(12, 11*mib+17)
		path := filepath.Join(t.TempDir(), "backup")
		if err := os.WriteFile(path, append([]byte("skipped"), body...), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Seek(int64(len("skipped")), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		info := backuptest.NewInfo(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 1001)
		info.Size = int64(len(body))
		if err := s.Put(ctx, info, f); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, _ := backuptest.MustGet(t, s, info.Name)
		if !bytes.Equal(got, body) {
			t.Fatalf("read back %d bytes, not the %d put", len(got), len(body))
		}
	})

	t.Run("ReaderFailsHalfway", func(t *testing.T) {
		s := mustNewStore(t, srv, func(c *Config) { c.PartSize = 5 * mib })
		info := backuptest.NewInfo(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 1002)
		err := s.Put(ctx, info, backuptest.FailingReader(newStream(2, 40*mib), 12*mib))
		if !errors.Is(err, backuptest.ErrBrokenReader) {
			t.Fatalf("Put: %v, want the reader's error", err)
		}
		t.Logf("Put: %v", err)
		backuptest.AssertEmpty(t, s, info.Name)
		assertNoUploads(t, s)
	})

	t.Run("CanceledMidUpload", func(t *testing.T) {
		// The uploader's own abort uses the cancelled context and fails;
		// Put aborts again with one that is not.
		s := mustNewStore(t, srv, func(c *Config) { c.PartSize = 5 * mib })
		info := backuptest.NewInfo(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 1003)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var n atomic.Int64
		stream := newStream(3, 40*mib)
		r := readFunc(func(p []byte) (int, error) {
			if n.Load() > 16*mib {
				cancel()
			}
			k, err := stream.Read(p)
			n.Add(int64(k))
			return k, err
		})
		err := s.Put(cctx, info, r)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put: %v, want context.Canceled", err)
		}
		t.Logf("Put: %v", err)
		backuptest.AssertEmpty(t, s, info.Name)
		assertNoUploads(t, s)
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		s := mustNewStore(t, srv, nil)
		info := backuptest.NewInfo(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 1004)
		info.Size = 1000
		body := backuptest.Body(13, 999)
		if err := s.Put(ctx, info, bytes.NewReader(body)); err == nil || !strings.Contains(err.Error(), "1000") {
			t.Errorf("Put of a seekable reader short of info.Size: %v", err)
		}
		if err := s.Put(ctx, info, backuptest.OnlyReader(bytes.NewReader(body))); err == nil || !strings.Contains(err.Error(), "1000") {
			t.Errorf("Put of a stream short of info.Size: %v", err)
		}
		backuptest.AssertEmpty(t, s, info.Name)
	})

	t.Run("ListPaginates", func(t *testing.T) {
		s := mustNewStore(t, srv, nil)
		s.pageSize = 2
		base := time.Date(2026, 11, 1, 2, 30, 0, 0, time.UTC)
		var want []string
		for i := 11; i >= 0; i-- {
			want = append(want, backup.NewName(base.AddDate(0, 0, i), uint64(i)))
		}
		for _, i := range rand.Perm(12) {
			backuptest.MustPut(t, s, backuptest.NewInfo(base.AddDate(0, 0, i), uint64(i)), []byte{byte(i)})
		}
		infos, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := backuptest.Names(infos); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("List:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("ForeignObjects", func(t *testing.T) {
		// Objects that are not backups are ignored; a backup without
		// metadata (copied by hand) is listed with what its name says.
		s := mustNewStore(t, srv, func(c *Config) { c.Prefix = "prod/cairn/" })
		name := backup.NewName(time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC), 77)
		for key, body := range map[string]string{
			"prod/cairn/" + name:           "by hand",
			"prod/cairn/notes.txt":         "x",
			"prod/cairn/old/" + name:       "x",
			"prod/" + name:                 "x",
			name:                           "x",
			"prod/cairn/" + name + ".json": "x",
		} {
			putRaw(t, s, key, body)
		}
		infos, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := backup.Info{Name: name, Time: time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC), RaftIndex: 77, Size: int64(len("by hand"))}
		if len(infos) != 1 {
			t.Fatalf("List: %v, want only %s", backuptest.Names(infos), name)
		}
		backuptest.AssertInfo(t, "List", infos[0], want)
	})

	t.Run("Prefix", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		stores := map[string]*Store{}
		for _, prefix := range []string{"", "/prod/cairn", "staging/"} {
			cfg := testConfig(srv, bucket)
			cfg.Prefix = prefix
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stores[prefix] = s
			info := backuptest.NewInfo(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), uint64(len(prefix)))
			backuptest.MustPut(t, s, info, []byte(prefix))
		}
		for prefix, s := range stores {
			infos, err := s.List(ctx)
			if err != nil {
				t.Fatalf("List %q: %v", prefix, err)
			}
			want := backup.NewName(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), uint64(len(prefix)))
			if got := backuptest.Names(infos); len(got) != 1 || got[0] != want {
				t.Errorf("List with prefix %q: %v, want [%s]", prefix, got, want)
			}
		}
		// The keys are PREFIX/NAME, the prefix normalised.
		out, err := srv.Client().ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		want := []string{
			backup.NewName(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 0),
			"prod/cairn/" + backup.NewName(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), uint64(len("/prod/cairn"))),
			"staging/" + backup.NewName(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), uint64(len("staging/"))),
		}
		if fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Errorf("keys:\n got %v\nwant %v", keys, want)
		}
		// A backup outside the prefix is not there for Get.
		if _, _, err := stores["staging/"].Get(ctx, want[0]); !errors.Is(err, backup.ErrNotFound) {
			t.Errorf("Get outside the prefix: %v, want backup.ErrNotFound", err)
		}
	})

	t.Run("Check", func(t *testing.T) {
		s := mustNewStore(t, srv, func(c *Config) { c.Prefix = "prod/" })
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})

	t.Run("WrongSecret", func(t *testing.T) {
		const wrong = "wrong-secret-Zq8xV1"
		s := mustNewStore(t, srv, func(c *Config) { c.Secret = wrong })
		for op, err := range storeErrors(t, s) {
			t.Logf("%s: %v", op, err)
			if !errors.Is(err, ErrCredentials) {
				t.Errorf("%s: %v, want ErrCredentials", op, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, "credentials") || !strings.Contains(msg, srv.Key) || !strings.Contains(msg, "secret") {
				t.Errorf("%s: %q does not say that the secret of access key id %s is wrong", op, msg, srv.Key)
			}
			if strings.Contains(msg, wrong) || strings.Contains(msg, srv.Secret) {
				t.Errorf("%s: %q contains a secret", op, msg)
			}
		}
	})

	t.Run("UnknownAccessKey", func(t *testing.T) {
		s := mustNewStore(t, srv, func(c *Config) { c.Key = "AKIANOSUCHKEY" })
		for op, err := range storeErrors(t, s) {
			t.Logf("%s: %v", op, err)
			if !errors.Is(err, ErrCredentials) {
				t.Errorf("%s: %v, want ErrCredentials", op, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, "AKIANOSUCHKEY") || strings.Contains(msg, srv.Secret) {
				t.Errorf("%s: %q should name the access key id and not the secret", op, msg)
			}
		}
	})

	t.Run("MissingBucket", func(t *testing.T) {
		s, err := New(testConfig(srv, "no-such-bucket"))
		if err != nil {
			t.Fatal(err)
		}
		for op, err := range storeErrors(t, s) {
			t.Logf("%s: %v", op, err)
			if !errors.Is(err, ErrNoBucket) || !strings.Contains(err.Error(), `"no-such-bucket"`) {
				t.Errorf("%s: %v, want ErrNoBucket naming the bucket", op, err)
			}
		}
	})
}

// TestStore_Unreachable needs no server: nothing listens on port 1.
func TestStore_Unreachable(t *testing.T) {
	s, err := New(Config{
		URL: "http://127.0.0.1:1", Bucket: "b", PathStyle: true, Key: "AK", Secret: "SECRET",
		Timeout: time.Second, MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	for op, err := range storeErrors(t, s) {
		t.Logf("%s: %v", op, err)
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: %v, want ErrUnreachable", op, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "s3 endpoint http://127.0.0.1:1 unreachable") {
			t.Errorf("%s: %q does not name the unreachable endpoint", op, msg)
		}
	}
}

func TestNew(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:7070", Bucket: "b", Key: "AK", Secret: "S3CR3T"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		err  string // "" for no error
	}{
		{"Valid", func(*Config) {}, ""},
		{"AWSDefault", func(c *Config) { c.URL = "" }, ""},
		{"NoBucket", func(c *Config) { c.Bucket = "" }, "bucket is required"},
		{"SlashInBucket", func(c *Config) { c.Bucket = "a/b" }, "bucket"},
		{"BadScheme", func(c *Config) { c.URL = "ftp://host" }, "scheme must be http or https"},
		{"NoHost", func(c *Config) { c.URL = "http://" }, "no host"},
		{"Unparsable", func(c *Config) { c.URL = "http://[::1" }, "url"},
		{"Query", func(c *Config) { c.URL = "http://host/?x=1" }, "only scheme"},
		{"KeyWithoutSecret", func(c *Config) { c.Secret = "" }, "key and secret"},
		{"SecretWithoutKey", func(c *Config) { c.Key = "" }, "key and secret"},
		{"SmallParts", func(c *Config) { c.PartSize = mib }, "part size"},
		{"NegativeConcurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency"},
		{"NegativeTimeout", func(c *Config) { c.Timeout = -time.Second }, "timeout"},
		{"NegativeAttempts", func(c *Config) { c.MaxAttempts = -1 }, "max attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := New(cfg)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("New: %v, want an error with %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "S3CR3T"):
				t.Fatalf("New: %v shows the secret", err)
			}
		})
	}

	t.Run("Defaults", func(t *testing.T) {
		s, err := New(Config{Bucket: "b", Key: "AK", Secret: "S", Prefix: "//prod/cairn", URL: "http://h:1/"})
		if err != nil {
			t.Fatal(err)
		}
		want := Config{URL: "http://h:1", Bucket: "b", Key: "AK", Secret: "S", Prefix: "prod/cairn/", Region: "us-east-1",
			PartSize: 16 * mib, Concurrency: 2, Timeout: 30 * time.Second, MaxAttempts: 5}
		if s.cfg != want {
			t.Fatalf("config\n got %v\nwant %v", s.cfg, want)
		}
	})

	t.Run("SecretNotPrinted", func(t *testing.T) {
		cfg := base
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(f, cfg); strings.Contains(out, "S3CR3T") || !strings.Contains(out, "AK") {
				t.Errorf("Sprintf(%q) = %s", f, out)
			}
		}
	})
}

func TestMetaValue(t *testing.T) {
	for _, v := range []string{"", "plain", "a b", " lead", "trail ", "100%", "%41", "nœud", "tab\there", "k/2026", "\x00"} {
		enc := metaValue(v)
		for _, c := range []byte(enc) {
			if c < 0x20 || c > 0x7e {
				t.Errorf("metaValue(%q) = %q: not printable ASCII", v, enc)
			}
		}
		if strings.TrimSpace(enc) != enc {
			t.Errorf("metaValue(%q) = %q: spaces at an end", v, enc)
		}
		if got := unmetaValue(enc); got != v {
			t.Errorf("unmetaValue(metaValue(%q)) = %q", v, got)
		}
	}
	if got := metaValue("plain value"); got != "plain value" {
		t.Errorf("metaValue(plain value) = %q, want it unchanged", got)
	}
}

// storeErrors calls every method of s at once, each expected to fail
// within callLimit (s has small timeouts and few attempts).
func storeErrors(t *testing.T, s *Store) map[string]error {
	t.Helper()
	const callLimit = 10 * time.Second
	ctx := context.Background()
	name := backup.NewName(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1)
	calls := map[string]func() error{
		"Check": func() error { return s.Check(ctx) },
		"List": func() error {
			_, err := s.List(ctx)
			return err
		},
		"Put": func() error {
			return s.Put(ctx, backuptest.NewInfo(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1), strings.NewReader("x"))
		},
		"Get": func() error {
			rc, _, err := s.Get(ctx, name)
			if err == nil {
				rc.Close()
				return errors.New("no error")
			}
			return err
		},
		"Delete": func() error { return s.Delete(ctx, name) },
	}
	var (
		mu   sync.Mutex // guards errs
		errs = map[string]error{}
		wg   sync.WaitGroup
	)
	for op, call := range calls {
		wg.Go(func() {
			start := time.Now()
			err := call()
			if d := time.Since(start); d > callLimit {
				t.Errorf("%s took %s, want under %s", op, d, callLimit)
			}
			mu.Lock()
			errs[op] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

// assertNoUploads checks that no multipart upload is left in s's bucket.
func assertNoUploads(t *testing.T, s *Store) {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload left behind: key %s, id %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}

// putRaw puts an object as another tool would: no metadata.
func putRaw(t *testing.T, s *Store, key, body string) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), &awss3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// newStream is n pseudo-random bytes from seed, made as they are read: a
// large body that is not in memory and cannot seek.
func newStream(seed uint64, n int64) io.Reader {
	r := rand.New(rand.NewPCG(seed, ^seed))
	var word [8]byte
	return io.LimitReader(readFunc(func(p []byte) (int, error) {
		for i := 0; i < len(p); i += 8 {
			binary.LittleEndian.PutUint64(word[:], r.Uint64())
			copy(p[i:], word[:])
		}
		return len(p), nil
	}), n)
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// watchHeap samples the heap until the returned function is called, which
// returns how far it grew above where it started.
func watchHeap(t *testing.T) func() int64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := int64(ms.HeapAlloc)
	var (
		peak atomic.Int64
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapAlloc); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	var once sync.Once
	done := func() int64 {
		once.Do(func() { close(stop); wg.Wait() })
		return peak.Load() - base
	}
	t.Cleanup(func() { done() })
	return done
}
