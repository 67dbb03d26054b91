package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// fakeStore is a Store built from function fields; a call to a field that
// is not set fails with errNotStubbed.
type fakeStore struct {
	execute func(ctx context.Context, req *command.Request) ([]command.Result, error)
	query   func(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error)
	request func(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error)
	status  func(ctx context.Context) (cluster.Status, error)
	ready   func(ctx context.Context) error
}

var errNotStubbed = errors.New("fake store: method not stubbed")

func (f *fakeStore) Execute(ctx context.Context, req *command.Request) ([]command.Result, error) {
	if f.execute == nil {
		return nil, errNotStubbed
	}
	return f.execute(ctx, req)
}

func (f *fakeStore) Query(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error) {
	if f.query == nil {
		return nil, errNotStubbed
	}
	return f.query(ctx, req, opts)
}

func (f *fakeStore) Request(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error) {
	if f.request == nil {
		return nil, errNotStubbed
	}
	return f.request(ctx, req, opts)
}

func (f *fakeStore) Status(ctx context.Context) (cluster.Status, error) {
	if f.status == nil {
		return cluster.Status{}, errNotStubbed
	}
	return f.status(ctx)
}

func (f *fakeStore) Ready(ctx context.Context) error {
	if f.ready == nil {
		return errNotStubbed
	}
	return f.ready(ctx)
}

// syncBuffer is a bytes.Buffer safe for a logger shared by handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// newTestServer returns a server on store that logs JSON into the returned
// buffer at debug level.
func newTestServer(t *testing.T, store Store, cfg Config) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Version == "" {
		cfg.Version = "v0.0.0-test"
	}
	return New(cfg, store, logger), logs
}

// serve sends one request to h in process and returns the recorded
// response.
func serve(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// mustListen binds s on a free loopback port and serves it until the test
// ends.
func mustListen(t *testing.T, s *Server) {
	t.Helper()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// errorBody decodes a {"error": "..."} body.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	msg, ok := body["error"].(string)
	if !ok || len(body) != 1 {
		t.Fatalf("body %q is not {\"error\": string}", rec.Body.String())
	}
	return msg
}

func TestServer_Routing(t *testing.T) {
	s, _ := newTestServer(t, &fakeStore{}, Config{})
	h := s.Handler()

	t.Run("UnknownPath", func(t *testing.T) {
		rec := serve(t, h, http.MethodGet, "/nope", "")
		if rec.Code != http.StatusNotFound {
			t.Fatalf("status = %d, want 404", rec.Code)
		}
		if msg := errorBody(t, rec); !strings.Contains(msg, "/nope") {
			t.Errorf("error %q does not name the path", msg)
		}
	})

	t.Run("MethodNotAllowed", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, allow string
		}{
			{http.MethodGet, "/db/execute", "POST"},
			{http.MethodPut, "/db/query", "GET, POST"},
			{http.MethodDelete, "/db/request", "POST"},
			{http.MethodPost, "/status", "GET, HEAD"},
			{http.MethodPost, "/nodes", "GET, HEAD"},
			{http.MethodPost, "/readyz", "GET, HEAD"},
			{http.MethodPatch, "/livez", "GET, HEAD"},
		} {
			rec := serve(t, h, tc.method, tc.path, "")
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status = %d, want 405", tc.method, tc.path, rec.Code)
				continue
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
			}
			if msg := errorBody(t, rec); !strings.Contains(msg, tc.method) {
				t.Errorf("%s %s: error %q does not name the method", tc.method, tc.path, msg)
			}
		}
	})

	t.Run("Options", func(t *testing.T) {
		rec := serve(t, h, http.MethodOptions, "/db/query", "")
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d, want 204", rec.Code)
		}
		if got := rec.Header().Get("Allow"); got != "GET, POST, OPTIONS" {
			t.Errorf("Allow = %q", got)
		}
	})

	t.Run("VersionHeader", func(t *testing.T) {
		rec := serve(t, h, http.MethodGet, "/livez", "")
		if got := rec.Header().Get("X-Cairn-Version"); got != "v0.0.0-test" {
			t.Errorf("X-Cairn-Version = %q", got)
		}
	})
}

func TestServer_RequestID(t *testing.T) {
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range []struct {
		name, in string
		keep     bool
	}{
		{"Honoured", "abc-123_DEF.4:5", true},
		{"Missing", "", false},
		{"Spaces", "abc def", false},
		{"Newline", "abc\nlevel=ERROR", false},
		{"Quote", `abc"def`, false},
		{"TooLong", strings.Repeat("a", 129), false},
		{"MaxLength", strings.Repeat("a", 128), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := newTestServer(t, &fakeStore{}, Config{})
			req := httptest.NewRequest(http.MethodGet, "/livez", nil)
			if tc.in != "" {
				req.Header.Set(requestIDHeader, tc.in)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)

			id := rec.Header().Get(requestIDHeader)
			if tc.keep && id != tc.in {
				t.Fatalf("X-Request-Id = %q, want %q", id, tc.in)
			}
			if !tc.keep && !generated.MatchString(id) {
				t.Fatalf("X-Request-Id = %q, want a generated 32-hex-digit id", id)
			}
			lines := logs.lines(t)
			if len(lines) != 1 {
				t.Fatalf("got %d log lines, want 1: %v", len(lines), lines)
			}
			if got := lines[0][logKeyRequestID]; got != id {
				t.Errorf("log request_id = %v, want %q", got, id)
			}
		})
	}
}

func TestServer_Logging(t *testing.T) {
	store := &fakeStore{
		execute: func(context.Context, *command.Request) ([]command.Result, error) {
			return nil, cluster.ErrUnknownOutcome
		},
	}
	s, logs := newTestServer(t, store, Config{})
	req := httptest.NewRequest(http.MethodPost, "/db/execute", strings.NewReader(`[["INSERT INTO secrets VALUES(?)", "hunter2"]]`))
	req.Header.Set(requestIDHeader, "req-42")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}

	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1", len(lines))
	}
	l := lines[0]
	for key, want := range map[string]any{
		logKeyRequestID: "req-42",
		logKeyMethod:    "POST",
		logKeyPath:      "/db/execute",
		logKeyStatus:    float64(500),
		"level":         "ERROR",
		"component":     "http",
	} {
		if l[key] != want {
			t.Errorf("log %s = %v, want %v", key, l[key], want)
		}
	}
	if msg, _ := l[logKeyError].(string); !strings.Contains(msg, "write outcome unknown") {
		t.Errorf("log error = %q, want the cause", msg)
	}
	raw, _ := json.Marshal(l)
	if bytes.Contains(raw, []byte("hunter2")) || bytes.Contains(raw, []byte("secrets")) {
		t.Errorf("the log line leaks SQL or parameters: %s", raw)
	}
}

func TestServer_PanicRecovery(t *testing.T) {
	store := &fakeStore{
		execute: func(context.Context, *command.Request) ([]command.Result, error) {
			panic("boom")
		},
	}
	s, logs := newTestServer(t, store, Config{})
	rec := serve(t, s.Handler(), http.MethodPost, "/db/execute", `["SELECT 1"]`)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if msg := errorBody(t, rec); msg != "internal server error" {
		t.Errorf("error = %q", msg)
	}
	var sawPanic bool
	for _, l := range logs.lines(t) {
		if l["msg"] == "handler panicked" && strings.Contains(l[logKeyError].(string), "boom") {
			sawPanic = true
		}
	}
	if !sawPanic {
		t.Error("the panic was not logged")
	}
}

func TestServer_Lifecycle(t *testing.T) {
	t.Run("ListenServeClose", func(t *testing.T) {
		s, _ := newTestServer(t, &fakeStore{}, Config{})
		if s.Addr() != "" || s.URL() != "" {
			t.Fatalf("Addr/URL before Listen = %q/%q", s.Addr(), s.URL())
		}
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := s.Listen("127.0.0.1:0"); err == nil {
			t.Error("second Listen succeeded")
		}
		if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
			t.Fatalf("URL = %q", s.URL())
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()

		resp, err := http.Get(s.URL() + "/livez")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v, want nil after Close", err)
		}
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Error("the listener still accepts after Close")
		}
	})

	t.Run("ServeBeforeListen", func(t *testing.T) {
		s, _ := newTestServer(t, &fakeStore{}, Config{})
		if err := s.Serve(context.Background()); err == nil {
			t.Fatal("Serve without Listen succeeded")
		}
	})

	t.Run("CloseBeforeServe", func(t *testing.T) {
		s, _ := newTestServer(t, &fakeStore{}, Config{})
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Error("the listener still accepts after Close")
		}
		if err := s.Serve(context.Background()); err != nil {
			t.Fatalf("Serve after Close = %v, want nil", err)
		}
	})

	t.Run("ServeStopsWhenContextDone", func(t *testing.T) {
		s, _ := newTestServer(t, &fakeStore{}, Config{})
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx) }()
		resp, err := http.Get(s.URL() + "/livez")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Error("the listener still accepts after Serve returned")
		}
	})

	t.Run("GracefulFinishesInFlight", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		store := &fakeStore{
			execute: func(ctx context.Context, _ *command.Request) ([]command.Result, error) {
				close(entered)
				<-release
				return []command.Result{{LastInsertID: 7, RowsAffected: 1}}, ctx.Err()
			},
		}
		s, _ := newTestServer(t, store, Config{})
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()

		type result struct {
			status int
			body   string
			err    error
		}
		got := make(chan result, 1)
		go func() {
			resp, err := http.Post(s.URL()+"/db/execute", "application/json", strings.NewReader(`["INSERT INTO t VALUES(1)"]`))
			if err != nil {
				got <- result{err: err}
				return
			}
			defer func() { _ = resp.Body.Close() }()
			b, err := io.ReadAll(resp.Body)
			got <- result{status: resp.StatusCode, body: string(b), err: err}
		}()
		<-entered

		closed := make(chan error, 1)
		go func() { closed <- s.Close(context.Background()) }()
		// Wait until Close has stopped accepting; the request is still
		// in flight, so Close must not have returned.
		for {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				break
			}
			_ = c.Close()
			time.Sleep(time.Millisecond) // polling a condition, not waiting for time
		}
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a request was in flight", err)
		default:
		}

		close(release)
		r := <-got
		if r.err != nil || r.status != http.StatusOK || r.body != `{"results":[{"last_insert_id":7,"rows_affected":1}]}`+"\n" {
			t.Fatalf("in-flight request = %d %q %v, want 200 with its result", r.status, r.body, r.err)
		}
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v", err)
		}
	})

	t.Run("CloseDeadlineCancelsInFlight", func(t *testing.T) {
		entered, aborted := make(chan struct{}), make(chan error, 1)
		store := &fakeStore{
			execute: func(ctx context.Context, _ *command.Request) ([]command.Result, error) {
				close(entered)
				<-ctx.Done()
				aborted <- ctx.Err()
				return nil, ctx.Err()
			},
		}
		s, _ := newTestServer(t, store, Config{})
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()
		go func() {
			resp, err := http.Post(s.URL()+"/db/execute", "application/json", strings.NewReader(`["INSERT INTO t VALUES(1)"]`))
			if err == nil {
				_ = resp.Body.Close()
			}
		}()
		<-entered

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want it to wrap context.DeadlineExceeded", err)
		}
		if err := <-aborted; !errors.Is(err, context.Canceled) {
			t.Fatalf("in-flight store call ended with %v, want its context canceled", err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve = %v", err)
		}
	})
}
