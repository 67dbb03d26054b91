package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/cairndb/cairn/statemachine"
	"github.com/cairndb/cairn/statemachine/command"
)

// forwardSecret is the cluster secret of every test node here.
var forwardSecret = []byte("forward-test-secret-0123456789")

func TestStatementResult_RoundTrip(t *testing.T) {
	in := []command.Result{
		{
			Columns: []string{"i", "f", "t", "b", "n"},
			Types:   []string{"integer", "real", "text", "blob", ""},
			Values: [][]any{
				{int64(math.MaxInt64), 1.5, "héllo", []byte{0x00, 0xff, 'x'}, nil},
				{int64(math.MinInt64), -0.25, "", []byte{}, nil},
				{int64(1<<53 + 1), math.MaxFloat64, "\x00", []byte("text-looking blob"), nil},
				{int64(0), math.SmallestNonzeroFloat64, "42", []byte("42"), nil},
			},
			Seconds: 0.00125,
		},
		// A read that found no rows: columns, no values.
		{Columns: []string{"x"}, Types: []string{"integer"}},
		// A statement that yields rows but names no columns.
		{Columns: []string{}, Types: []string{}},
		// A write.
		{LastInsertID: math.MaxInt64, RowsAffected: 3, Seconds: 2},
		{LastInsertID: -1, RowsAffected: 0},
		// A SQL error, with and without columns.
		{Error: "no such table: nosuch"},
		{Columns: []string{"a"}, Types: []string{"text"}, Error: "interrupted"},
		{},
	}
	ms, err := command.NewStatementResults(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&command.ForwardResponse{Results: ms})
	if err != nil {
		t.Fatal(err)
	}
	var resp command.ForwardResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	out := command.GoResults(resp.GetResults())
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip changed results:\n got %#v\nwant %#v", out, in)
	}
	// DeepEqual does not tell text from blob for nil; check the kinds too.
	if _, ok := out[0].Values[1][3].([]byte); !ok {
		t.Errorf("empty blob came back as %T", out[0].Values[1][3])
	}
	if _, ok := out[0].Values[1][2].(string); !ok {
		t.Errorf("empty text came back as %T", out[0].Values[1][2])
	}
	if out[1].Values != nil || out[1].Columns == nil {
		t.Errorf("read without rows came back as %#v", out[1])
	}
	if out[3].Columns != nil {
		t.Errorf("write came back with columns %#v", out[3].Columns)
	}

	t.Run("NonFinite", func(t *testing.T) {
		for _, f := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
			v, err := command.NewValue(f)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := proto.Marshal(v)
			var got command.Value
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			g, ok := got.GoValue().(float64)
			if !ok || math.Float64bits(g) != math.Float64bits(f) {
				t.Errorf("%v came back as %#v", f, got.GoValue())
			}
		}
	})
	t.Run("UnsupportedType", func(t *testing.T) {
		_, err := command.NewStatementResults([]command.Result{{Columns: []string{"x"}, Types: []string{""}, Values: [][]any{{true}}}})
		if err == nil || !strings.Contains(err.Error(), "bool") {
			t.Fatalf("err = %v, want an unsupported type error", err)
		}
	})
}

func TestErrorCode(t *testing.T) {
	cases := []struct {
		err  error
		code command.ErrorCode
	}{
		{ErrNotLeader, command.ErrorCode_ERROR_CODE_NOT_LEADER},
		{ErrNoLeader, command.ErrorCode_ERROR_CODE_NO_LEADER},
		{ErrUnknownOutcome, command.ErrorCode_ERROR_CODE_UNKNOWN_OUTCOME},
		{ErrNotReadOnly, command.ErrorCode_ERROR_CODE_NOT_READ_ONLY},
		{ErrInvalidStatement, command.ErrorCode_ERROR_CODE_INVALID_STATEMENT},
		{ErrClosed, command.ErrorCode_ERROR_CODE_CLOSED},
		{ErrStale, command.ErrorCode_ERROR_CODE_STALE},
		{ErrTimeout, command.ErrorCode_ERROR_CODE_TIMEOUT},
		{context.DeadlineExceeded, command.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED},
		{context.Canceled, command.ErrorCode_ERROR_CODE_CANCELED},
	}
	for _, c := range cases {
		t.Run(c.code.String(), func(t *testing.T) {
			err := fmt.Errorf("apply at index 7: %w", c.err)
			code := errorCode(err)
			if code != c.code {
				t.Fatalf("errorCode(%v) = %v, want %v", err, code, c.code)
			}
			// Through the wire and back.
			b, _ := proto.Marshal(&command.ForwardResponse{Code: code, Error: err.Error()})
			var resp command.ForwardResponse
			if err := proto.Unmarshal(b, &resp); err != nil {
				t.Fatal(err)
			}
			back := codeError(resp.GetCode(), resp.GetError())
			if !errors.Is(back, c.err) {
				t.Errorf("errors.Is(%v, %v) = false after the hop", back, c.err)
			}
			if back.Error() != err.Error() {
				t.Errorf("message = %q, want %q", back.Error(), err.Error())
			}
			for _, other := range cases {
				if other.err != c.err && errors.Is(back, other.err) {
					t.Errorf("%v also matches %v", back, other.err)
				}
			}
			if got := errorCode(back); got != c.code {
				t.Errorf("errorCode after the hop = %v, want %v", got, c.code)
			}
		})
	}
	t.Run("UnknownOutcomeWins", func(t *testing.T) {
		err := fmt.Errorf("forward: %w: %w", ErrUnknownOutcome, context.DeadlineExceeded)
		if got := errorCode(err); got != command.ErrorCode_ERROR_CODE_UNKNOWN_OUTCOME {
			t.Fatalf("errorCode = %v", got)
		}
	})
	t.Run("Other", func(t *testing.T) {
		err := errors.New("disk I/O error")
		if got := errorCode(err); got != command.ErrorCode_ERROR_CODE_OTHER {
			t.Fatalf("errorCode = %v", got)
		}
		back := codeError(command.ErrorCode_ERROR_CODE_OTHER, err.Error())
		if back == nil || back.Error() != err.Error() {
			t.Fatalf("codeError = %v", back)
		}
		for _, c := range cases {
			if errors.Is(back, c.err) {
				t.Errorf("OTHER matches %v", c.err)
			}
		}
	})
	t.Run("None", func(t *testing.T) {
		if errorCode(nil) != command.ErrorCode_ERROR_CODE_NONE || codeError(command.ErrorCode_ERROR_CODE_NONE, "") != nil {
			t.Fatal("nil does not map to NONE and back")
		}
	})
	t.Run("UnknownCode", func(t *testing.T) {
		// A newer leader may answer with a code this binary does not know.
		back := codeError(command.ErrorCode(99), "")
		if back == nil || back.Error() == "" {
			t.Fatalf("codeError(99) = %v", back)
		}
	})
	t.Run("EmptyMessage", func(t *testing.T) {
		if back := codeError(command.ErrorCode_ERROR_CODE_NO_LEADER, ""); back.Error() != ErrNoLeader.Error() {
			t.Fatalf("message = %q", back.Error())
		}
	})
}

// syncBuffer is a bytes.Buffer safe to log into from handlers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// signedRequest returns a request to path signed with key at time at.
func signedRequest(method, path string, key, body []byte, at time.Time) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	signRequest(r, key, body, at)
	return r
}

// bodyProbe is a request body that records whether anything read it.
type bodyProbe struct{ read bool }

func (b *bodyProbe) Read([]byte) (int, error) {
	b.read = true
	return 0, io.EOF
}

// TestNode_InternalHandler checks what the handler does around
// VerifyRequest (TestVerifyRequest covers the checks themselves).
func TestNode_InternalHandler(t *testing.T) {
	logs := &syncBuffer{}
	n := New(Config{
		ID:                 "1",
		Members:            []Member{{ID: "1"}, {ID: "2"}},
		Secret:             forwardSecret,
		MaxForwardBodySize: 1024,
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
	}, nil)
	h := n.InternalHandler()
	refusals := 0

	valid, _ := proto.Marshal(&command.ForwardRequest{Type: command.Type_TYPE_QUERY, Request: req("SELECT 1")})
	big := bytes.Repeat([]byte{'x'}, 2048)
	cases := []struct {
		name   string
		req    *http.Request
		status int
		want   string
	}{
		{"OtherPath", signedRequest("POST", "/internal/v1/other", forwardSecret, valid, time.Now()), http.StatusNotFound, "no such internal endpoint"},
		{"GET", signedRequest("GET", ForwardPath, forwardSecret, nil, time.Now()), http.StatusMethodNotAllowed, "not allowed"},
		{"WrongSecret", signedRequest("POST", ForwardPath, []byte("not-the-cluster-secret-at-all"), valid, time.Now()), http.StatusUnauthorized, "bad MAC"},
		{"TooLarge", signedRequest("POST", ForwardPath, forwardSecret, big, time.Now()), http.StatusRequestEntityTooLarge, "larger than 1024 bytes"},
		{"NotProtobuf", signedRequest("POST", ForwardPath, forwardSecret, []byte{0xff, 0xff}, time.Now()), http.StatusBadRequest, "decode forwarded request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, c.req)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("answer = %d %q, want %d %q", w.Code, w.Body.String(), c.status, c.want)
			}
			if w.Code == http.StatusUnauthorized {
				refusals++
				if got := w.Header().Get("WWW-Authenticate"); got != "Cairn v1" {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
			if strings.Contains(w.Body.String(), string(forwardSecret)) {
				t.Fatal("answer reveals the secret")
			}
		})
	}

	t.Run("HeaderCheckedBeforeBody", func(t *testing.T) {
		skewed := signedRequest("POST", ForwardPath, forwardSecret, valid, time.Now().Add(-2*MaxAuthSkew)).Header.Get(AuthHeader)
		for _, header := range []string{"", "v1 nonsense", skewed} {
			probe := &bodyProbe{}
			r := httptest.NewRequest("POST", ForwardPath, probe)
			if header != "" {
				r.Header.Set(AuthHeader, header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			refusals++
			if w.Code != http.StatusUnauthorized {
				t.Errorf("header %q: answer = %d %q, want 401", header, w.Code, w.Body.String())
			}
			if probe.read {
				t.Errorf("header %q: body read before the header was refused", header)
			}
		}
	})

	t.Run("BadTypeAndLevel", func(t *testing.T) {
		for _, fr := range []*command.ForwardRequest{
			{Type: command.Type_TYPE_NOOP, Request: req("SELECT 1")},
			{Type: command.Type_TYPE_QUERY, Request: req("SELECT 1"), Level: 9},
		} {
			b, _ := proto.Marshal(fr)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, signedRequest("POST", ForwardPath, forwardSecret, b, time.Now()))
			if w.Code != http.StatusBadRequest {
				t.Errorf("%v: answer = %d %q, want 400", fr, w.Code, w.Body.String())
			}
		}
	})

	t.Run("NoSecret", func(t *testing.T) {
		noSecret := func(members ...Member) http.Handler {
			return New(Config{ID: "1", Members: members, Logger: slog.New(slog.DiscardHandler)}, nil).InternalHandler()
		}
		// With peers, even a request signed with the empty key is refused.
		w := httptest.NewRecorder()
		noSecret(Member{ID: "1"}, Member{ID: "2"}).ServeHTTP(w, signedRequest("POST", ForwardPath, nil, valid, time.Now()))
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "no cluster secret") {
			t.Fatalf("with peers: answer = %d %q, want 401", w.Code, w.Body.String())
		}
		// Alone, it checks the empty key as /join does: this request gets
		// past authentication and fails on its body.
		alone := noSecret(Member{ID: "1"})
		w = httptest.NewRecorder()
		alone.ServeHTTP(w, signedRequest("POST", ForwardPath, nil, []byte{0xff, 0xff}, time.Now()))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "decode forwarded request") {
			t.Fatalf("alone: answer = %d %q, want 400", w.Code, w.Body.String())
		}
		w = httptest.NewRecorder()
		alone.ServeHTTP(w, signedRequest("POST", ForwardPath, forwardSecret, valid, time.Now()))
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("alone, signed with a secret: answer = %d %q, want 401", w.Code, w.Body.String())
		}
	})

	t.Run("WarningsRateLimited", func(t *testing.T) {
		out := logs.String()
		if got := strings.Count(out, "refused forwarded request"); got != 1 {
			t.Errorf("%d warnings logged for %d refusals, want 1:\n%s", got, refusals, out)
		}
		if refusals < 2 {
			t.Errorf("only %d refusals: nothing was rate-limited", refusals)
		}
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "remote=") {
			t.Errorf("warning lacks level or remote address:\n%s", out)
		}
		if strings.Contains(out, string(forwardSecret)) {
			t.Error("log reveals the secret")
		}
	})
}

func TestLogLimiter_Allow(t *testing.T) {
	var l logLimiter
	t0 := time.Now()
	if ok, n := l.allow(t0); !ok || n != 0 {
		t.Fatalf("first = %v, %d", ok, n)
	}
	for i := range 3 {
		if ok, _ := l.allow(t0.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatalf("event %d within the interval let through", i)
		}
	}
	if ok, n := l.allow(t0.Add(authLogInterval)); !ok || n != 3 {
		t.Fatalf("after the interval = %v, %d suppressed, want true, 3", ok, n)
	}
}

// mustForwarder returns a node that is not opened but can forward: leader
// "9" is at addr.
func mustForwarder(t *testing.T, addr string) *Node {
	t.Helper()
	db, err := statemachine.OpenFresh(filepath.Join(t.TempDir(), "cairn.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := New(Config{
		ID:      "1",
		Members: []Member{{ID: "1"}, {ID: "9", HTTPAddr: addr}},
		Secret:  forwardSecret,
		Logger:  slog.New(slog.DiscardHandler),
	}, db)
	t.Cleanup(n.client.CloseIdleConnections)
	return n
}

func TestNode_HTTPAddrs(t *testing.T) {
	ctx := context.Background()
	n := mustForwarder(t, "10.0.0.9:4001")
	// record changes the member table under the cache, as applying a
	// join from the log does on a follower, with no call to Join here.
	record := func(t *testing.T, id, addr string) {
		t.Helper()
		p1, _ := command.NewParam("", id)
		p2, _ := command.NewParam("", addr)
		res, err := n.db.Execute(ctx, &command.Request{Transaction: true, Statements: []*command.Statement{
			{Sql: "CREATE TABLE IF NOT EXISTS " + membersTable + " (id TEXT PRIMARY KEY, http_addr TEXT NOT NULL)"},
			{Sql: "INSERT INTO " + membersTable + " (id, http_addr) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET http_addr = excluded.http_addr", Params: []*command.Param{p1, p2}},
		}})
		if err != nil || len(res) != 2 || res[0].Error != "" || res[1].Error != "" {
			t.Fatalf("record %s: %+v, %v", id, res, err)
		}
	}
	check := func(t *testing.T, need string, want map[string]string) {
		t.Helper()
		got := n.httpAddrs(ctx, need)
		for id, addr := range want {
			if got[id] != addr {
				t.Errorf("httpAddrs(%q)[%q] = %q, want %q (all: %v)", need, id, got[id], addr, got)
			}
		}
	}

	t.Run("ConfiguredWithoutTable", func(t *testing.T) {
		check(t, "9", map[string]string{"9": "10.0.0.9:4001"})
		if c := n.addrs.Load(); c == nil || c.addrs["9"] != "10.0.0.9:4001" {
			t.Fatalf("cache = %+v: a missing table is an answer worth keeping", c)
		}
	})
	t.Run("Reused", func(t *testing.T) {
		record(t, "9", "10.0.0.99:4001")
		check(t, "9", map[string]string{"9": "10.0.0.9:4001"})
		check(t, "", map[string]string{"9": "10.0.0.9:4001"})
	})
	t.Run("ReadAgainWhenNeededAddressMissing", func(t *testing.T) {
		record(t, "5", "10.0.0.5:4001")
		check(t, "5", map[string]string{"5": "10.0.0.5:4001", "9": "10.0.0.99:4001"})
	})
	t.Run("Expires", func(t *testing.T) {
		record(t, "9", "10.0.0.98:4001")
		c := n.addrs.Load()
		n.addrs.Store(&memberAddrs{addrs: c.addrs, at: c.at.Add(-addrCacheTTL)})
		check(t, "9", map[string]string{"9": "10.0.0.98:4001"})
	})
	t.Run("Forgotten", func(t *testing.T) {
		record(t, "9", "10.0.0.97:4001")
		n.forgetHTTPAddrs()
		check(t, "9", map[string]string{"9": "10.0.0.97:4001"})
	})
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if i%4 == 0 {
						n.forgetHTTPAddrs()
					}
					if got := n.httpAddrs(ctx, "9")["9"]; got != "10.0.0.97:4001" {
						t.Errorf("httpAddrs[9] = %q", got)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
	t.Run("UnreadableDatabaseNotKept", func(t *testing.T) {
		n.forgetHTTPAddrs()
		n.db.Close()
		check(t, "9", map[string]string{"9": "10.0.0.9:4001"})
		if c := n.addrs.Load(); c.addrs != nil {
			t.Fatalf("cache = %+v after a failed read", c.addrs)
		}
	})
}

// TestNode_MembershipForgetsHTTPAddrs checks that Join and Remove on the
// leader show at once, not after the cache expires.
func TestNode_MembershipForgetsHTTPAddrs(t *testing.T) {
	ctx := context.Background()
	tn := mustOpenNode(t, t.TempDir(), freeAddr(t))
	if got := tn.httpAddrs(ctx, "")["1"]; got != "127.0.0.1:4001" {
		t.Fatalf("httpAddrs[1] = %q", got)
	}
	// A non-voter never counts for the quorum, so this commits although
	// nothing listens at its Raft address.
	if err := tn.Join(ctx, Member{ID: "2", RaftAddr: freeAddr(t), HTTPAddr: "127.0.0.1:4999"}); err != nil {
		t.Fatalf("join: %v", err)
	}
	if got := tn.httpAddrs(ctx, "")["2"]; got != "127.0.0.1:4999" {
		t.Fatalf("after join: httpAddrs[2] = %q", got)
	}
	if err := tn.Remove(ctx, "2"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got, ok := tn.httpAddrs(ctx, "")["2"]; ok {
		t.Fatalf("after remove: httpAddrs[2] = %q", got)
	}
}

func TestNode_Forward(t *testing.T) {
	fr := func() *command.ForwardRequest {
		return &command.ForwardRequest{Type: command.Type_TYPE_EXECUTE, Request: req("INSERT INTO t VALUES (1)")}
	}
	answer := func(resp *command.ForwardResponse) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path != ForwardPath {
				http.NotFound(w, r)
				return
			}
			if err := VerifyRequest(r, forwardSecret, body, time.Now()); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			b, _ := proto.Marshal(resp)
			w.Write(b)
		}
	}
	// dropAfterRead reads the whole request, then drops the connection
	// without answering: the request may have run.
	dropAfterRead := func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			http.Error(w, "boom", code)
		}
	}
	type want struct {
		is    []error
		isNot []error
		msg   string
	}
	unknown := want{is: []error{ErrUnknownOutcome}, isNot: []error{ErrNoLeader, ErrNotLeader}}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		write   bool
		want    want
	}{
		{"Results", answer(&command.ForwardResponse{Results: []*command.StatementResult{{RowsAffected: 1}}}), true, want{}},
		{"NotLeader", answer(&command.ForwardResponse{Code: command.ErrorCode_ERROR_CODE_NOT_LEADER, Error: "not the leader"}), true, want{is: []error{ErrNotLeader}, isNot: []error{ErrUnknownOutcome}}},
		{"UnknownOutcome", answer(&command.ForwardResponse{Code: command.ErrorCode_ERROR_CODE_UNKNOWN_OUTCOME, Error: "apply: write outcome unknown: leadership lost"}), true, want{is: []error{ErrUnknownOutcome}, msg: "leadership lost"}},
		{"DroppedWrite", dropAfterRead, true, unknown},
		{"DroppedRead", dropAfterRead, false, want{is: []error{ErrNoLeader}, isNot: []error{ErrUnknownOutcome}}},
		{"ServerErrorWrite", status(http.StatusInternalServerError), true, unknown},
		{"ServerErrorRead", status(http.StatusInternalServerError), false, want{isNot: []error{ErrUnknownOutcome, ErrNoLeader}, msg: "HTTP 500"}},
		{"Unauthorized", status(http.StatusUnauthorized), true, want{isNot: []error{ErrUnknownOutcome, ErrNoLeader}, msg: "unauthenticated"}},
		{"Garbage", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte{0xff, 0xff, 0xff}) }, true, unknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			n := mustForwarder(t, srv.Listener.Addr().String())
			res, err := n.forward(context.Background(), "9", fr(), c.write)
			if c.want.is == nil && c.want.msg == "" {
				if err != nil || len(res) != 1 || res[0].RowsAffected != 1 {
					t.Fatalf("forward = %v, %v", res, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("forward = %v, want an error", res)
			}
			for _, e := range c.want.is {
				if !errors.Is(err, e) {
					t.Errorf("err = %v, want %v", err, e)
				}
			}
			for _, e := range c.want.isNot {
				if errors.Is(err, e) {
					t.Errorf("err = %v, must not be %v", err, e)
				}
			}
			if !strings.Contains(err.Error(), c.want.msg) {
				t.Errorf("err = %v, want it to say %q", err, c.want.msg)
			}
		})
	}

	t.Run("Refused", func(t *testing.T) {
		// Nothing listens: nothing was sent, so the write is safe to retry.
		n := mustForwarder(t, freeAddr(t))
		_, err := n.forward(context.Background(), "9", fr(), true)
		if !errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("err = %v, want ErrNoLeader", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			<-release
		}))
		defer srv.Close()
		defer close(release)
		n := mustForwarder(t, srv.Listener.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := n.forward(ctx, "9", fr(), true)
		if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnknownOutcome wrapping the deadline", err)
		}
	})
	t.Run("NoAddress", func(t *testing.T) {
		n := mustForwarder(t, "")
		if _, err := n.forward(context.Background(), "9", fr(), true); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("err = %v, want ErrNotLeader", err)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		n := mustForwarder(t, "127.0.0.1:1")
		n.cfg.MaxForwardBodySize = 16
		_, err := n.forward(context.Background(), "9", fr(), true)
		if err == nil || errors.Is(err, ErrUnknownOutcome) || !strings.Contains(err.Error(), "more than the 16") {
			t.Fatalf("err = %v", err)
		}
	})
}

// clusterNode is one node of a test cluster, serving its internal handler
// on the HTTP address the members list.
type clusterNode struct {
	*Node
	db   *statemachine.DB
	srv  *http.Server
	done chan struct{} // closed when srv.Serve returns

	stopHTTP sync.Once
	stopNode sync.Once
}

// closeHTTP stops serving: peers now find nothing listening.
func (cn *clusterNode) closeHTTP() {
	cn.stopHTTP.Do(func() {
		cn.srv.Close()
		<-cn.done
	})
}

// crash stops the node without handing leadership over, as a node that
// dies does.
func (cn *clusterNode) crash(t *testing.T) {
	t.Helper()
	cn.closeHTTP()
	if err := cn.Raft().Shutdown().Error(); err != nil {
		t.Fatalf("shut down raft on node %s: %v", cn.cfg.ID, err)
	}
}

// stop takes the node down entirely.
func (cn *clusterNode) stop() {
	cn.closeHTTP()
	cn.stopNode.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cn.Node.Close(ctx)
		cn.db.Close()
	})
}

// mustOpenCluster starts a three-node cluster on loopback, bootstrapped
// with identical members on every node, and waits for a leader.
func mustOpenCluster(t *testing.T, leaderWait time.Duration) []*clusterNode {
	t.Helper()
	const size = 3
	members := make([]Member, size)
	listeners := make([]net.Listener, size)
	for i := range size {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[i] = ln
		members[i] = Member{ID: strconv.Itoa(i + 1), RaftAddr: freeAddr(t), HTTPAddr: ln.Addr().String(), Voter: true}
	}
	nodes := make([]*clusterNode, size)
	for i, m := range members {
		dir := t.TempDir()
		db, err := statemachine.OpenFresh(filepath.Join(dir, "state_machine", "db", "cairn.db"))
		if err != nil {
			t.Fatal(err)
		}
		n := New(Config{
			ID:               m.ID,
			DataDir:          dir,
			RaftAddr:         m.RaftAddr,
			HTTPAdvertise:    m.HTTPAddr,
			Members:          members,
			Secret:           forwardSecret,
			HeartbeatTimeout: 200 * time.Millisecond,
			ElectionTimeout:  200 * time.Millisecond,
			LeaderWait:       leaderWait,
			Logger:           slog.New(slog.DiscardHandler),
		}, db)
		if err := n.Open(context.Background()); err != nil {
			db.Close()
			t.Fatalf("open node %s: %v", m.ID, err)
		}
		cn := &clusterNode{
			Node: n,
			db:   db,
			srv:  &http.Server{Handler: n.InternalHandler(), ReadHeaderTimeout: 5 * time.Second},
			done: make(chan struct{}),
		}
		go func(ln net.Listener) {
			defer close(cn.done)
			cn.srv.Serve(ln)
		}(listeners[i])
		nodes[i] = cn
		t.Cleanup(cn.stop)
	}
	eventually(t, 15*time.Second, "a leader every node agrees on", func() bool {
		return agreedLeader(nodes) != nil
	})
	return nodes
}

// agreedLeader returns the node that leads, when every running node names
// it, else nil.
func agreedLeader(nodes []*clusterNode) *clusterNode {
	var leader *clusterNode
	for _, cn := range nodes {
		if cn.Raft().State() == raft.Leader {
			leader = cn
		}
	}
	if leader == nil {
		return nil
	}
	for _, cn := range nodes {
		if _, id := cn.Raft().LeaderWithID(); id != raft.ServerID(leader.cfg.ID) {
			return nil
		}
	}
	return leader
}

// eventually waits for cond, polling, and fails the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// withoutTimes returns results with Seconds zeroed, for comparison.
func withoutTimes(rs []command.Result) []command.Result {
	out := append([]command.Result(nil), rs...)
	for i := range out {
		out[i].Seconds = 0
	}
	return out
}

func TestNode_ForwardToLeader(t *testing.T) {
	const leaderWait = time.Second
	nodes := mustOpenCluster(t, leaderWait)
	leader := agreedLeader(nodes)
	var followers []*clusterNode
	for _, cn := range nodes {
		if cn != leader {
			followers = append(followers, cn)
		}
	}
	follower := followers[0]
	ctx := context.Background()

	// waitApplied waits until every running node has applied what the
	// leader has.
	waitApplied := func(t *testing.T) {
		t.Helper()
		target := leader.Raft().AppliedIndex()
		eventually(t, 10*time.Second, fmt.Sprintf("every node to apply index %d", target), func() bool {
			for _, cn := range nodes {
				if cn.Raft().AppliedIndex() < target {
					return false
				}
			}
			return true
		})
	}
	countOn := func(t *testing.T, cn *clusterNode) int64 {
		t.Helper()
		res, err := cn.Query(ctx, req("SELECT COUNT(*) FROM t"), QueryOptions{Level: command.LevelNone})
		if err != nil || len(res) != 1 || res[0].Error != "" {
			t.Fatalf("count on node %s: %v, %v", cn.cfg.ID, res, err)
		}
		return res[0].Values[0][0].(int64)
	}

	t.Run("ExecuteViaFollower", func(t *testing.T) {
		res, err := follower.Execute(ctx, req("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, n, r INTEGER, ts TEXT)"))
		if err != nil || len(res) != 1 || res[0].Error != "" {
			t.Fatalf("create table via follower: %v, %v", res, err)
		}
		r := &command.Request{Statements: []*command.Statement{{Sql: "INSERT INTO t (i, f, s, b, n, r, ts) VALUES (?, ?, ?, ?, ?, RANDOM(), CURRENT_TIMESTAMP)"}}}
		for _, v := range []any{int64(math.MaxInt64), 2.5, "héllo", []byte{0, 1, 0xff}, nil} {
			p, err := command.NewParam("", v)
			if err != nil {
				t.Fatal(err)
			}
			r.Statements[0].Params = append(r.Statements[0].Params, p)
		}
		res, err = follower.Execute(ctx, r)
		if err != nil || len(res) != 1 || res[0].Error != "" || res[0].RowsAffected != 1 || res[0].LastInsertID != 1 {
			t.Fatalf("insert via follower: %+v, %v", res, err)
		}
		waitApplied(t)
		var first []command.Result
		for _, cn := range nodes {
			got, err := cn.Query(ctx, req("SELECT * FROM t"), QueryOptions{Level: command.LevelNone})
			if err != nil {
				t.Fatalf("read node %s: %v", cn.cfg.ID, err)
			}
			got = withoutTimes(got)
			if first == nil {
				first = got
				row := got[0].Values[0]
				if row[1] != int64(math.MaxInt64) || row[2] != 2.5 || row[3] != "héllo" || !bytes.Equal(row[4].([]byte), []byte{0, 1, 0xff}) || row[5] != nil {
					t.Fatalf("row = %#v", row)
				}
				continue
			}
			if !reflect.DeepEqual(got, first) {
				t.Errorf("node %s has %#v, node %s has %#v", cn.cfg.ID, got, nodes[0].cfg.ID, first)
			}
		}
	})

	t.Run("ReadLevelsViaFollower", func(t *testing.T) {
		q := req("SELECT * FROM t", "SELECT COUNT(*) AS c, typeof(b) FROM t")
		want, err := leader.Query(ctx, q, QueryOptions{Level: command.LevelNone})
		if err != nil {
			t.Fatal(err)
		}
		for _, level := range []command.Level{command.LevelWeak, command.LevelLinearizable, command.LevelStrong} {
			t.Run(level.String(), func(t *testing.T) {
				got, err := follower.Query(ctx, q, QueryOptions{Level: level})
				if err != nil {
					t.Fatalf("query via follower: %v", err)
				}
				if !reflect.DeepEqual(withoutTimes(got), withoutTimes(want)) {
					t.Fatalf("via follower: %#v\n  on leader: %#v", got, want)
				}
			})
		}
	})

	t.Run("RequestViaFollower", func(t *testing.T) {
		before := countOn(t, leader)
		res, err := follower.Request(ctx, req("INSERT INTO t (s) VALUES ('req') RETURNING s", "SELECT COUNT(*) FROM t"), QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 || res[0].Values[0][0] != "req" || res[1].Values[0][0] != before+1 {
			t.Fatalf("results = %+v", res)
		}
		res, err = follower.Request(ctx, req("SELECT s FROM t WHERE s = 'req'"), QueryOptions{Level: command.LevelStrong})
		if err != nil || len(res) != 1 || len(res[0].Values) != 1 {
			t.Fatalf("read-only request via follower = %+v, %v", res, err)
		}
	})

	t.Run("SQLErrorViaFollower", func(t *testing.T) {
		res, err := follower.Execute(ctx, req("INSERT INTO nosuch VALUES (1)", "INSERT INTO t (s) VALUES ('after error')"))
		if err != nil {
			t.Fatalf("execute: %v", err)
		}
		if len(res) != 2 || !strings.Contains(res[0].Error, "no such table") || res[1].Error != "" || res[1].RowsAffected != 1 {
			t.Fatalf("results = %+v", res)
		}
		res, err = follower.Query(ctx, req("SELECT * FROM nosuch"), QueryOptions{Level: command.LevelWeak})
		if err != nil || len(res) != 1 || !strings.Contains(res[0].Error, "no such table") {
			t.Fatalf("query = %+v, %v", res, err)
		}
	})

	t.Run("QueryWithWriteRefused", func(t *testing.T) {
		before := countOn(t, leader)
		_, err := follower.Query(ctx, req("SELECT 1", "INSERT INTO t (s) VALUES ('sneaky')"), QueryOptions{Level: command.LevelStrong})
		if !errors.Is(err, ErrNotReadOnly) {
			t.Fatalf("err = %v, want ErrNotReadOnly", err)
		}
		// The leader refuses it too when it arrives forwarded.
		fr := &command.ForwardRequest{Type: command.Type_TYPE_QUERY, Request: req("INSERT INTO t (s) VALUES ('sneaky')")}
		if _, err := follower.forward(ctx, raft.ServerID(leader.cfg.ID), fr, false); !errors.Is(err, ErrNotReadOnly) {
			t.Fatalf("forwarded: err = %v, want ErrNotReadOnly", err)
		}
		if after := countOn(t, leader); after != before {
			t.Fatalf("count went from %d to %d", before, after)
		}
	})

	t.Run("NeverForwardedTwice", func(t *testing.T) {
		before := countOn(t, leader)
		other := followers[1]
		fr := &command.ForwardRequest{Type: command.Type_TYPE_EXECUTE, Request: req("INSERT INTO t (s) VALUES ('twice')")}
		_, err := follower.forward(ctx, raft.ServerID(other.cfg.ID), fr, true)
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("err = %v, want ErrNotLeader from the other follower", err)
		}
		if _, err := leader.Query(ctx, req("SELECT 1"), QueryOptions{Level: command.LevelStrong}); err != nil {
			t.Fatal(err)
		}
		if after := countOn(t, leader); after != before {
			t.Fatalf("count went from %d to %d", before, after)
		}
	})

	t.Run("LeaderUnreachable", func(t *testing.T) {
		before := countOn(t, leader)
		leader.closeHTTP()
		// A write sent on a pooled connection the leader closed an
		// instant earlier cannot be told from one the leader read and
		// then died on: its outcome is unknown. A real follower drops
		// such a connection within a round trip of the close; start
		// from an empty pool so that this test sees only refused dials.
		follower.client.CloseIdleConnections()
		start := time.Now()
		_, err := follower.Execute(ctx, req("INSERT INTO t (s) VALUES ('lost')"))
		elapsed := time.Since(start)
		if !errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("err = %v, want ErrNoLeader", err)
		}
		if elapsed < leaderWait || elapsed > leaderWait+2*time.Second {
			t.Errorf("gave up after %s, want about %s", elapsed, leaderWait)
		}
		if after := countOn(t, leader); after != before {
			t.Fatalf("count went from %d to %d", before, after)
		}
	})

	t.Run("NoLeader", func(t *testing.T) {
		survivor := followers[0]
		followers[1].crash(t)
		leader.crash(t)
		eventually(t, 10*time.Second, "the survivor to know no leader", func() bool {
			addr, _ := survivor.Raft().LeaderWithID()
			return addr == "" && survivor.Raft().State() != raft.Leader
		})

		start := time.Now()
		_, err := survivor.Execute(ctx, req("INSERT INTO t (s) VALUES ('no leader')"))
		elapsed := time.Since(start)
		if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("err = %v, want ErrNoLeader", err)
		}
		if elapsed < leaderWait || elapsed > leaderWait+2*time.Second {
			t.Errorf("gave up after %s, want about %s", elapsed, leaderWait)
		}

		// A request deadline shorter than LeaderWait ends the wait.
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err = survivor.Query(dctx, req("SELECT 1"), QueryOptions{Level: command.LevelLinearizable})
		elapsed = time.Since(start)
		if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("err = %v, want ErrNoLeader", err)
		}
		if elapsed > 200*time.Millisecond+time.Second {
			t.Errorf("gave up after %s, past the 200ms deadline", elapsed)
		}

		// Level none is served locally all the same.
		if n := countOn(t, survivor); n == 0 {
			t.Error("local read found no rows")
		}
	})
}
