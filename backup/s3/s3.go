package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairndb/cairn/backup"
)

// Errors of the s3 package. Every error a Store returns that matches one
// of them also carries the SDK's error (errors.As reaches it).
var (
	// ErrUnreachable means the endpoint could not be reached, or did not
	// answer in time.
	ErrUnreachable = errors.New("unreachable")

	// ErrCredentials means the endpoint does not accept the credentials:
	// an unknown access key id, or a secret that does not match it.
	ErrCredentials = errors.New("credentials rejected")

	// ErrAccessDenied means the credentials are valid but lack a
	// permission the operation needs.
	ErrAccessDenied = errors.New("access denied")

	// ErrNoBucket means the bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
)

// Defaults of Config.
const (
	DefaultRegion      = "us-east-1"
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 2
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 5

	// MinPartSize is the smallest part S3 accepts in a multipart upload
	// (every part but the last).
	MinPartSize = manager.MinUploadPartSize
)

// listWorkers bounds the HeadObject calls List makes at once.
const listWorkers = 8

// metaPrefix starts every user-metadata key a Store writes: S3 sends
// them as x-amz-meta-cairn-*.
const metaPrefix = "cairn-"

// Config says where and how to reach the bucket. The zero value of every
// field but Bucket has a usable default.
type Config struct {
	// URL is the endpoint, e.g. "http://127.0.0.1:7070" or
	// "https://s3.eu-central-1.amazonaws.com". Empty means AWS S3 in
	// Region.
	URL string
	// Bucket is required.
	Bucket string
	// Region signs requests; default "us-east-1".
	Region string
	// PathStyle addresses the bucket as URL/BUCKET/KEY instead of
	// BUCKET.HOST/KEY; most S3-compatible stores need it.
	PathStyle bool
	// Key is the access key id and Secret the secret access key. Both
	// empty selects the AWS default credential chain (environment, shared
	// files, web identity, instance role). Secret is never logged and
	// never appears in an error.
	Key    string
	Secret string
	// Prefix is put before every backup name, e.g. "prod/cairn/"; a
	// leading "/" is dropped and a trailing "/" added.
	Prefix string

	// PartSize is the size of one part of a multipart upload (default
	// 16 MiB, at least 5 MiB; S3 allows 10,000 parts, so the default
	// takes backups up to 156 GiB). Put holds about Concurrency+3 parts
	// of a stream in memory (Concurrency+1 buffers, and the first part,
	// which the uploader reads with io.ReadAll), and none when its reader
	// is an io.ReaderAt and io.Seeker (an *os.File).
	PartSize int64
	// Concurrency is how many parts are uploaded at once (default 2).
	Concurrency int
	// Timeout bounds, for each HTTP request, the connection (including
	// TLS) and the wait for the response's headers after the request is
	// sent (default 30s). It does not limit how long a body takes to
	// transfer: the caller's context does.
	Timeout time.Duration
	// MaxAttempts is how many times a request is tried before its error
	// is returned, with jittered exponential backoff between (default 5).
	MaxAttempts int
}

// String describes the config without its secret.
func (c Config) String() string {
	secret := ""
	if c.Secret != "" {
		secret = "<redacted>"
	}
	return fmt.Sprintf("{URL:%s Bucket:%s Region:%s PathStyle:%t Key:%s Secret:%s Prefix:%s PartSize:%d Concurrency:%d Timeout:%s MaxAttempts:%d}",
		c.URL, c.Bucket, c.Region, c.PathStyle, c.Key, secret, c.Prefix, c.PartSize, c.Concurrency, c.Timeout, c.MaxAttempts)
}

// GoString is String, so that %#v does not print the secret either.
func (c Config) GoString() string { return "s3.Config" + c.String() }

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Bucket == "" {
		return c, errors.New("s3 config: bucket is required")
	}
	if strings.ContainsAny(c.Bucket, "/ \t\r\n") {
		return c, fmt.Errorf("s3 config: bucket %q: a bucket name has no \"/\" or spaces", c.Bucket)
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return c, fmt.Errorf("s3 config: url %q: %w", c.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return c, fmt.Errorf("s3 config: url %q: scheme must be http or https", c.URL)
		}
		if u.Host == "" {
			return c, fmt.Errorf("s3 config: url %q: no host", c.URL)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return c, fmt.Errorf("s3 config: url %q: only scheme, host, port and path are allowed", c.URL)
		}
		c.URL = strings.TrimSuffix(c.URL, "/")
	}
	if (c.Key == "") != (c.Secret == "") {
		return c, errors.New("s3 config: key and secret are set together, or both left empty for the AWS default credentials")
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	c.Prefix = strings.TrimLeft(c.Prefix, "/")
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = DefaultPartSize
	case c.PartSize < MinPartSize:
		return c, fmt.Errorf("s3 config: part size %d: S3 needs at least %d (5 MiB)", c.PartSize, int64(MinPartSize))
	}
	switch {
	case c.Concurrency == 0:
		c.Concurrency = DefaultConcurrency
	case c.Concurrency < 0:
		return c, fmt.Errorf("s3 config: concurrency %d: must be positive", c.Concurrency)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return c, fmt.Errorf("s3 config: timeout %s: must be positive", c.Timeout)
	}
	switch {
	case c.MaxAttempts == 0:
		c.MaxAttempts = DefaultMaxAttempts
	case c.MaxAttempts < 0:
		return c, fmt.Errorf("s3 config: max attempts %d: must be positive", c.MaxAttempts)
	}
	return c, nil
}

// Store keeps backups as objects in an S3 bucket. It is safe for
// concurrent use.
type Store struct {
	cfg      Config // normalised, with defaults
	endpoint string // for messages: cfg.URL, or the AWS endpoint of the region
	client   *awss3.Client
	//lint:ignore SA1019 deprecated for transfermanager, not yet a dependency (see New)
	uploader *manager.Uploader
	pageSize int32 // keys per ListObjectsV2 page; 0: the server's (1000). Tests lower it.
}

var _ backup.Store = (*Store)(nil)

// New builds a Store from cfg. It checks cfg but does no network I/O: use
// Check to test the endpoint, credentials and bucket.
func New(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	var creds aws.CredentialsProvider
	if cfg.Key != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.Key, cfg.Secret, "")
	} else {
		// Reads the environment and the shared config files only: the
		// providers that need the network run on first use.
		awsCfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("s3 config: load AWS default credentials: %w", err)
		}
		creds = awsCfg.Credentials
	}

	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = cfg.Timeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = cfg.Timeout
			tr.ResponseHeaderTimeout = cfg.Timeout
		})
	opts := awss3.Options{
		Region:       cfg.Region,
		Credentials:  aws.NewCredentialsCache(creds),
		UsePathStyle: cfg.PathStyle,
		HTTPClient:   hc,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			// No client-side retry quota: a backup makes few calls, and
			// each should get all its attempts.
			o.RateLimiter = ratelimit.None
		}),
		// Checksums only where S3 requires them: the trailing checksums
		// the SDK adds by default are refused by several S3-compatible
		// stores.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	endpoint := "https://s3." + cfg.Region + ".amazonaws.com"
	if cfg.URL != "" {
		opts.BaseEndpoint = aws.String(cfg.URL)
		endpoint = cfg.URL
	}
	client := awss3.New(opts)

	// manager.Uploader is deprecated in favour of feature/s3/transfermanager,
	// which is not yet a dependency; it still does what Put needs.
	//lint:ignore SA1019 see above
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
		u.LeavePartsOnError = false
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})

	return &Store{cfg: cfg, endpoint: endpoint, client: client, uploader: uploader}, nil
}

// Put uploads the backup read from r as PREFIX+info.Name, with info as
// the object's metadata. The object appears only when the upload
// completes; on any error the multipart upload is aborted, so nothing is
// listed. When info.Size is set, a reader that yields a different number
// of bytes fails the upload.
func (s *Store) Put(ctx context.Context, info backup.Info, r io.Reader) error {
	if _, _, err := backup.ParseName(info.Name); err != nil {
		return fmt.Errorf("s3 put: %w", err)
	}
	op := "s3 put " + info.Name

	body, counter, err := uploadBody(r, info.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	//lint:ignore SA1019 see New
	_, err = s.uploader.Upload(ctx, &awss3.PutObjectInput{
		Bucket:      aws.String(s.cfg.Bucket),
		Key:         aws.String(s.key(info.Name)),
		Body:        body,
		ContentType: aws.String("application/octet-stream"),
		Metadata:    encodeMeta(info),
	})
	if err == nil {
		return nil
	}
	var failed manager.MultiUploadFailure
	var abortErr error
	if errors.As(err, &failed) && failed.UploadID() != "" {
		abortErr = s.abort(ctx, info.Name, failed.UploadID())
	}
	if counter != nil && counter.err != nil {
		err = fmt.Errorf("%s: read backup: %w", op, counter.err)
	} else {
		err = s.explain(op, err, false)
	}
	if abortErr != nil {
		err = fmt.Errorf("%w (and its incomplete multipart upload %s could not be aborted: it is not listed, but its parts take space until aborted or removed by a lifecycle rule: %v)",
			err, failed.UploadID(), abortErr)
	}
	return err
}

// abort aborts a multipart upload whose Put failed. The uploader aborts
// it already, but with the caller's context, which may be what was
// cancelled; this call is not, and a second abort finds nothing to do.
func (s *Store) abort(ctx context.Context, name, uploadID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(s.key(name)),
		UploadId: aws.String(uploadID),
	})
	if err == nil || errorCode(err) == "NoSuchUpload" || httpStatus(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// List returns every backup under Prefix, newest first. Objects whose
// names are not backup names are ignored, and so are "directories" below
// Prefix. A backup whose metadata is missing (put there by hand) is
// listed with what its name and size tell.
func (s *Store) List(ctx context.Context) ([]backup.Info, error) {
	const op = "s3 list"
	in := &awss3.ListObjectsV2Input{
		Bucket:    aws.String(s.cfg.Bucket),
		Delimiter: aws.String("/"),
	}
	if s.cfg.Prefix != "" {
		in.Prefix = aws.String(s.cfg.Prefix)
	}
	if s.pageSize > 0 {
		in.MaxKeys = aws.Int32(s.pageSize)
	}
	var names []string
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.explain(op, err, false)
		}
		for _, o := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(o.Key), s.cfg.Prefix)
			if !ok {
				continue
			}
			if _, _, err := backup.ParseName(name); err == nil {
				names = append(names, name)
			}
		}
	}

	infos, err := s.headAll(ctx, names)
	if err != nil {
		return nil, err
	}
	backup.SortNewestFirst(infos)
	return infos, nil
}

// headAll reads the metadata of the named objects, listWorkers at a time.
// An object deleted since it was listed is left out.
func (s *Store) headAll(ctx context.Context, names []string) ([]backup.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex // guards firstErr
		firstErr error
		infos    = make([]backup.Info, len(names))
		found    = make([]bool, len(names))
		jobs     = make(chan int)
		wg       sync.WaitGroup
	)
	for range min(listWorkers, len(names)) {
		wg.Go(func() {
			for i := range jobs {
				out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{
					Bucket: aws.String(s.cfg.Bucket),
					Key:    aws.String(s.key(names[i])),
				})
				if err != nil {
					err = s.explain("s3 list: read metadata of "+names[i], err, true)
					if errors.Is(err, backup.ErrNotFound) {
						continue
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					continue
				}
				infos[i] = decodeMeta(names[i], out.Metadata, out.ContentLength)
				found[i] = true
			}
		})
	}
feed:
	for i := range names {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()

	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3 list: %w", err)
	}
	out := infos[:0]
	for i, ok := range found {
		if ok {
			out = append(out, infos[i])
		}
	}
	return out, nil
}

// Get opens the named backup. A missing one is backup.ErrNotFound. The
// caller closes the body.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, backup.Info, error) {
	if _, _, err := backup.ParseName(name); err != nil {
		return nil, backup.Info{}, fmt.Errorf("s3 get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.key(name)),
	})
	if err != nil {
		return nil, backup.Info{}, s.explain("s3 get "+name, err, true)
	}
	return out.Body, decodeMeta(name, out.Metadata, out.ContentLength), nil
}

// Delete removes the named backup; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, _, err := backup.ParseName(name); err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.key(name)),
	})
	if err != nil {
		err = s.explain("s3 delete "+name, err, true)
		if errors.Is(err, backup.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// Check tests that the endpoint answers, accepts the credentials, and
// lets them list the bucket under Prefix, for /healthz and for start-up.
// It lists at most one key rather than calling HeadBucket: a HEAD
// response has no body to say why it failed, and listing under Prefix is
// what a policy scoped to that prefix allows.
func (s *Store) Check(ctx context.Context) error {
	in := &awss3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		MaxKeys: aws.Int32(1),
	}
	if s.cfg.Prefix != "" {
		in.Prefix = aws.String(s.cfg.Prefix)
	}
	if _, err := s.client.ListObjectsV2(ctx, in); err != nil {
		return s.explain("s3 check", err, false)
	}
	return nil
}

// String names the bucket and prefix, e.g. "s3://backups/prod/cairn/ at
// http://127.0.0.1:7070".
func (s *Store) String() string {
	return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix + " at " + s.endpoint
}

// key is the object key of a backup name.
func (s *Store) key(name string) string { return s.cfg.Prefix + name }

// uploadBody returns what Put hands the uploader. An io.ReaderAt that
// seeks (an *os.File) goes through unbuffered, as a section from its
// current offset; anything else is counted, so that a read error can be
// told from an S3 one and a wrong size fails the upload before it
// completes.
func uploadBody(r io.Reader, size int64) (io.Reader, *countingReader, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		cur, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, nil, fmt.Errorf("read backup: %w", err)
		}
		end, err := ra.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, nil, fmt.Errorf("read backup: %w", err)
		}
		if _, err := ra.Seek(cur, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("read backup: %w", err)
		}
		if size > 0 && end-cur != size {
			return nil, nil, fmt.Errorf("read backup: %d bytes, but its info says %d", end-cur, size)
		}
		return io.NewSectionReader(ra, cur, end-cur), nil, nil
	}
	c := &countingReader{r: r, want: size}
	return c, c, nil
}

// countingReader passes reads through, keeps the first error that is not
// io.EOF, and turns an io.EOF at the wrong size into an error. The
// uploader reads it from one goroutine.
type countingReader struct {
	r    io.Reader
	want int64 // expected size; 0 when unknown
	n    int64
	err  error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF && c.want > 0 && c.n != c.want {
		err = fmt.Errorf("%d bytes, but its info says %d", c.n, c.want)
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// encodeMeta turns info into user metadata, one key per field, leaving
// out empty fields. The name is the key itself.
func encodeMeta(info backup.Info) map[string]string {
	m := map[string]string{
		metaPrefix + "raft-index":     strconv.FormatUint(info.RaftIndex, 10),
		metaPrefix + "size":           strconv.FormatInt(info.Size, 10),
		metaPrefix + "format-version": strconv.Itoa(info.FormatVersion),
	}
	if !info.Time.IsZero() {
		m[metaPrefix+"time"] = info.Time.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range map[string]string{
		"node-id": info.NodeID,
		"cluster": info.Cluster,
		"sha256":  info.SHA256,
		"key-id":  info.KeyID,
	} {
		if v != "" {
			m[metaPrefix+k] = metaValue(v)
		}
	}
	return m
}

// decodeMeta rebuilds an Info from an object's name, metadata and size.
// What the metadata lacks comes from the name (time, Raft index) or stays
// zero. Size is always the object's own.
func decodeMeta(name string, meta map[string]string, size *int64) backup.Info {
	get := func(k string) string {
		k = metaPrefix + k
		if v, ok := meta[k]; ok {
			return unmetaValue(v)
		}
		for mk, v := range meta { // stores differ in the case of keys
			if strings.EqualFold(mk, k) {
				return unmetaValue(v)
			}
		}
		return ""
	}
	info := backup.Info{
		Name:    name,
		NodeID:  get("node-id"),
		Cluster: get("cluster"),
		SHA256:  get("sha256"),
		KeyID:   get("key-id"),
		Size:    aws.ToInt64(size),
	}
	info.Time, info.RaftIndex, _ = backup.ParseName(name)
	if t, err := time.Parse(time.RFC3339Nano, get("time")); err == nil {
		info.Time = t.UTC()
	}
	if n, err := strconv.ParseUint(get("raft-index"), 10, 64); err == nil {
		info.RaftIndex = n
	}
	if n, err := strconv.Atoi(get("format-version")); err == nil {
		info.FormatVersion = n
	}
	return info
}

// metaValue makes v safe as an HTTP header value: printable ASCII is kept
// as it is (readable in any S3 console), anything else is percent-encoded.
// unmetaValue undoes it; a "%" always gets encoded, so decoding a plain
// value changes nothing.
func metaValue(v string) string {
	if strings.TrimSpace(v) != v {
		return url.PathEscape(v)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '%' {
			return url.PathEscape(v)
		}
	}
	return v
}

func unmetaValue(v string) string {
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
