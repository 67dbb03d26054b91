package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairndb/cairn/internal/testproc"
)

// EnvBinary names the variable that points at a versitygw binary.
const EnvBinary = "CAIRN_VERSITYGW"

// Region is the region the server signs for.
const Region = "us-east-1"

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = 30 * time.Second

// Server is a running versitygw. Its fields are what an S3 client needs;
// requests must be path-style.
type Server struct {
	URL    string // "http://127.0.0.1:PORT"
	Region string
	Key    string // the root access key id
	Secret string // the root secret access key
	Bucket string // a fresh, empty bucket made by Start

	Dir string // the posix root: one directory per bucket
	Log string // the file that holds the server's output

	client  *awss3.Client
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	stopped sync.Once
}

// buckets numbers the buckets made in this process.
var buckets atomic.Int64

// Start starts versitygw, waits until it answers, makes a fresh bucket,
// and stops the server when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	t.Logf("versitygw serving %s on %s, bucket %s", s.Dir, s.URL, s.Bucket)
	return s
}

// Launch starts versitygw over a new directory under dir, waits until it
// answers and makes a fresh bucket. The caller stops it with Stop. Tests
// use Start; programs (the bench) use Launch.
func Launch(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		return nil, err
	}
	key, err := randomHex(6)
	if err != nil {
		return nil, err
	}
	secret, err := randomHex(20)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Region: Region,
		Key:    "CAIRNTEST" + strings.ToUpper(key),
		Secret: secret,
		Dir:    root,
		Log:    filepath.Join(dir, "versitygw.log"),
	}
	// A free port may be taken between choosing and binding it: try a
	// few.
	for attempt := 1; ; attempt++ {
		err := s.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			return nil, fmt.Errorf("start versitygw: %w\n%s", err, s.logTail())
		}
	}
	s.client = awss3.New(awss3.Options{
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.Key, s.Secret, ""),
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
	})
	if s.Bucket, err = s.newBucket(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin string) error {
	addr, err := testproc.FreeAddr()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()

	cmd := exec.Command(bin, "--port", addr, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.Key, "ROOT_SECRET_KEY="+s.Secret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	url := "http://" + addr
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return fmt.Errorf("versitygw on %s exited: %v", addr, cmd.ProcessState)
		default:
		}
		// Any HTTP answer, even 403, means it serves.
		if resp, err := hc.Get(url + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw on %s did not answer within %s", addr, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.URL, s.cmd, s.exited = url, cmd, exited
	return nil
}

// NewBucket makes another fresh bucket on the server and returns its
// name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name, err := s.newBucket()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func (s *Server) newBucket() (string, error) {
	suffix, err := randomHex(4)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("cairn-test-%d-%s", buckets.Add(1), suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w\n%s", name, err, s.logTail())
	}
	return name, nil
}

// Client is an SDK client for the server, for what a test must do
// outside the code under test (put a foreign object, list multipart
// uploads).
func (s *Server) Client() *awss3.Client { return s.client }

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.cmd == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// Binary finds the versitygw binary: $CAIRN_VERSITYGW, then
// .cache/bin/versitygw under the module root, then PATH.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if testproc.IsExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("versitygw not found: $%s=%s is not an executable file", EnvBinary, p)
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".cache", "bin", "versitygw")
		if testproc.IsExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found: run `make test-deps` (or set $" + EnvBinary + ")")
}

// moduleRoot walks up from the working directory to the directory that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// logTail is the end of the server's output, for failure messages.
func (s *Server) logTail() string { return testproc.LogTail(s.Log, "versitygw output") }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
