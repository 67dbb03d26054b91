package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/cairndb/cairn/statemachine/command"
)

// ForwardPath is where a node serves the requests its peers forward to it
// (see InternalHandler).
const ForwardPath = "/internal/v1/forward"

// Defaults for the zero fields of Config that forwarding uses.
const (
	// DefaultLeaderWait bounds how long a request waits for a leader.
	DefaultLeaderWait = 5 * time.Second
	// DefaultMaxForwardBodySize bounds a forwarded request's body.
	DefaultMaxForwardBodySize = 64 << 20
)

const (
	// authLogInterval is the least time between two warnings about refused
	// requests; the ones in between are counted, not logged.
	authLogInterval = 10 * time.Second

	// leaderPoll is how often a request waiting for a leader looks again.
	leaderPoll = 20 * time.Millisecond
	// forwardDialTimeout bounds connecting to the leader.
	forwardDialTimeout = 5 * time.Second
	// defaultForwardTimeout bounds a forwarded request whose context has
	// no deadline.
	defaultForwardTimeout = time.Minute
	// maxForwardResponse bounds the leader's answer.
	maxForwardResponse = 1 << 30

	protobufContentType = "application/x-protobuf"
)

// newForwardClient returns the HTTP client a node forwards requests with.
// Each request is bounded by its context; the client itself bounds only
// connecting. It never follows redirects nor uses a proxy.
func newForwardClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// route serves a request that needs the leader: here when this node leads,
// otherwise forwarded to the leader. When no leader is known, or the one
// tried does not lead any more, it waits and tries again, for at most
// Config.LeaderWait and never past ctx's deadline, then fails with
// ErrNoLeader. Only refusals are retried (ErrNotLeader, ErrNoLeader, a
// closing leader, a leader that could not be dialled): none of them leaves
// a write behind.
func (n *Node) route(ctx context.Context, fr *command.ForwardRequest, write bool, local func(context.Context) ([]command.Result, error)) ([]command.Result, error) {
	var (
		start     time.Time
		waitUntil time.Time
		timer     *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if n.closed.Load() {
			return nil, ErrClosed
		}
		var (
			res []command.Result
			err error
		)
		if n.raft.State() == raft.Leader {
			res, err = local(ctx)
		} else if addr, id := n.raft.LeaderWithID(); addr == "" {
			err = ErrNoLeader
		} else if id == raft.ServerID(n.cfg.ID) {
			// Raft still names this node, which no longer leads.
			err = ErrNotLeader
		} else {
			res, err = n.forward(ctx, id, fr, write)
		}
		if err == nil || !retryable(err) {
			return res, err
		}

		now := time.Now()
		if start.IsZero() {
			start, waitUntil = now, now.Add(n.cfg.LeaderWait)
			if dl, ok := ctx.Deadline(); ok && dl.Before(waitUntil) {
				waitUntil = dl
			}
		}
		if !now.Before(waitUntil) {
			return nil, leaderWaitError(err, now.Sub(start), nil)
		}
		d := min(leaderPoll, waitUntil.Sub(now))
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, leaderWaitError(err, time.Since(start), ctx.Err())
		case <-timer.C:
		}
	}
}

// retryable reports whether err is a refusal that left nothing behind, so
// the request may be tried again once a leader is found.
func retryable(err error) bool {
	if errors.Is(err, ErrUnknownOutcome) {
		return false
	}
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) {
		return true
	}
	// A leader that is shutting down refused the request.
	var re *remoteError
	return errors.As(err, &re) && re.code == command.ErrorCode_ERROR_CODE_CLOSED
}

// leaderWaitError is the error of a request that found no leader to serve
// it in time. last is the last attempt's error, cause the context's error
// when that ended the wait.
func leaderWaitError(last error, waited time.Duration, cause error) error {
	waited = waited.Round(time.Millisecond)
	if cause != nil {
		return fmt.Errorf("%w: gave up waiting for a leader after %s: %w (last attempt: %v)", ErrNoLeader, waited, cause, last)
	}
	if last == ErrNoLeader {
		return fmt.Errorf("%w: none elected within %s", ErrNoLeader, waited)
	}
	return fmt.Errorf("%w: none reachable within %s (last attempt: %v)", ErrNoLeader, waited, last)
}

// forward sends fr to the leader and returns its results as if they had
// been produced here. A write that may have reached the leader but whose
// answer was lost fails with ErrUnknownOutcome; one that certainly did not
// (the connection could not be made) fails with ErrNoLeader.
func (n *Node) forward(ctx context.Context, leader raft.ServerID, fr *command.ForwardRequest, write bool) ([]command.Result, error) {
	addr := n.httpAddrs(ctx, string(leader))[string(leader)]
	if addr == "" {
		return nil, fmt.Errorf("%w: no HTTP address known for leader %s", ErrNotLeader, leader)
	}
	if len(n.cfg.Secret) == 0 {
		// There is another node to forward to, so the leader refuses a
		// request signed with the empty key (see serveForward).
		return nil, fmt.Errorf("forward to leader %s: no cluster secret is configured, so requests cannot be forwarded", leader)
	}

	fctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, defaultForwardTimeout)
		defer cancel()
	}
	dl, _ := fctx.Deadline()
	fr.TimeoutNs = max(int64(time.Until(dl)), 1)
	body, err := proto.Marshal(fr)
	if err != nil {
		return nil, fmt.Errorf("encode forwarded request: %w", err)
	}
	if int64(len(body)) > n.cfg.MaxForwardBodySize {
		return nil, fmt.Errorf("forward to leader %s: the request takes %d bytes, more than the %d a forwarded request may", leader, len(body), n.cfg.MaxForwardBodySize)
	}
	hreq, err := http.NewRequestWithContext(fctx, http.MethodPost, "http://"+addr+ForwardPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("forward to leader %s: %w", leader, err)
	}
	hreq.Header.Set("Content-Type", protobufContentType)
	if id := RequestID(ctx); id != "" {
		// The leader logs the forwarded request under the client's id.
		hreq.Header.Set(RequestIDHeader, id)
	}
	SignRequest(hreq, n.cfg.Secret, body)

	resp, err := n.client.Do(hreq)
	if err != nil {
		return nil, forwardFailure(fctx, leader, err, write)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardResponse+1))
	if err != nil {
		return nil, forwardFailure(fctx, leader, err, write)
	}
	if len(rb) > maxForwardResponse {
		return nil, badAnswer(leader, write, fmt.Errorf("answer exceeds %d bytes", maxForwardResponse))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(leader, resp.StatusCode, rb, write)
	}
	var out command.ForwardResponse
	if err := proto.Unmarshal(rb, &out); err != nil {
		return nil, badAnswer(leader, write, fmt.Errorf("decode answer: %w", err))
	}
	results := command.GoResults(out.GetResults())
	if out.GetCode() == command.ErrorCode_ERROR_CODE_NONE {
		return results, nil
	}
	if len(results) == 0 {
		results = nil
	}
	return results, codeError(out.GetCode(), out.GetError())
}

// forwardFailure maps a transport error of a forwarded request. A failed
// dial sent nothing; anything later may have delivered a write.
func forwardFailure(ctx context.Context, leader raft.ServerID, err error, write bool) error {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("%w: leader %s unreachable: %v", ErrNoLeader, leader, err)
	case write:
		return fmt.Errorf("forward to leader %s: %w: %w", leader, ErrUnknownOutcome, err)
	case ctx.Err() != nil:
		return fmt.Errorf("forward to leader %s: %w", leader, err)
	}
	// A read changed nothing: try again, perhaps with a new leader.
	return fmt.Errorf("%w: leader %s went away: %v", ErrNoLeader, leader, err)
}

// badAnswer is the error for an answer that cannot be read: a write may
// have been applied all the same.
func badAnswer(leader raft.ServerID, write bool, err error) error {
	if write {
		return fmt.Errorf("forward to leader %s: %w: %w", leader, ErrUnknownOutcome, err)
	}
	return fmt.Errorf("forward to leader %s: %w", leader, err)
}

// statusError maps a non-200 answer. The leader's handler refuses with a
// 4xx before it runs anything; a 5xx may come after a write ran.
func statusError(leader raft.ServerID, status int, body []byte, write bool) error {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("forward to leader %s: refused as unauthenticated (is the cluster secret the same on every node, and are the clocks in sync?): %s", leader, msg)
	case write && status >= 500:
		return fmt.Errorf("forward to leader %s: %w: HTTP %d: %s", leader, ErrUnknownOutcome, status, msg)
	}
	return fmt.Errorf("forward to leader %s: HTTP %d: %s", leader, status, msg)
}

// InternalHandler serves the node-to-node endpoints under /internal/:
// ForwardPath, where the leader runs the requests its followers forward,
// and 404 for anything else. Every request must carry a valid AuthHeader
// (see VerifyRequest), or it is refused with 401. Serve it only once Open
// has returned.
func (n *Node) InternalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ForwardPath {
			http.Error(w, "no such internal endpoint: "+r.URL.Path, http.StatusNotFound)
			return
		}
		n.serveForward(w, r)
	})
}

// serveForward runs a forwarded request on this node, never forwarding it
// again: a node that does not lead answers ErrNotLeader or ErrNoLeader and
// the sender tries again. SQL errors travel inside the results; the
// request's own error travels as a code, with HTTP 200 either way.
//
// A node without a secret checks MACs made with the empty key, as /join
// does, while it is the only member: that grants nothing its public API
// does not. Once it has peers it refuses every forwarded request, because
// a key that everyone knows proves nothing about the sender.
func (n *Node) serveForward(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
		return
	}
	if len(n.cfg.Secret) == 0 && n.memberCount() > 1 {
		n.refuse(w, r, fmt.Errorf("%w: this node has no cluster secret, and a cluster of several nodes needs one", ErrUnauthenticated))
		return
	}
	// The header is checked before the body is read, so that a request
	// that cannot be authentic costs no more than its headers.
	auth, err := checkAuthHeader(r, time.Now())
	if err != nil {
		n.refuse(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n.cfg.MaxForwardBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("forwarded request larger than %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := auth.checkMAC(r, n.cfg.Secret, body); err != nil {
		n.refuse(w, r, err)
		return
	}

	var fr command.ForwardRequest
	if err := proto.Unmarshal(body, &fr); err != nil {
		http.Error(w, "decode forwarded request: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch fr.GetType() {
	case command.Type_TYPE_EXECUTE, command.Type_TYPE_QUERY, command.Type_TYPE_REQUEST:
	default:
		http.Error(w, fmt.Sprintf("forwarded request of unknown type %v", fr.GetType()), http.StatusBadRequest)
		return
	}
	if fr.GetLevel() > uint32(command.LevelStrong) {
		http.Error(w, fmt.Sprintf("forwarded request at unknown read level %d", fr.GetLevel()), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if t := fr.GetTimeoutNs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		defer cancel()
	}
	opts := QueryOptions{Level: command.Level(fr.GetLevel()), Freshness: time.Duration(fr.GetFreshnessNs())}
	results, err := n.serveLocal(ctx, fr.GetType(), fr.GetRequest(), opts)

	resp := &command.ForwardResponse{Code: errorCode(err)}
	if err != nil {
		resp.Error = err.Error()
	}
	if resp.Results, err = command.NewStatementResults(results); err != nil {
		resp.Results = nil
		if resp.Code == command.ErrorCode_ERROR_CODE_NONE {
			resp.Code = command.ErrorCode_ERROR_CODE_OTHER
			resp.Error = "encode results: " + err.Error()
		}
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		http.Error(w, "encode answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", protobufContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		n.logger.Debug("write forwarded answer", "remote", r.RemoteAddr, "error", err)
	}
}

// memberCount is how many servers the Raft configuration holds, or, before
// Open, how many members are configured.
func (n *Node) memberCount() int {
	if n.raft == nil {
		return len(n.cfg.Members)
	}
	servers, err := n.servers()
	if err != nil {
		return len(n.cfg.Members)
	}
	return len(servers)
}

// refuse answers 401 with the reason, which never holds the secret, and
// warns about it, at most once per authLogInterval.
func (n *Node) refuse(w http.ResponseWriter, r *http.Request, reason error) {
	if ok, suppressed := n.authLog.allow(time.Now()); ok {
		n.logger.Warn("refused forwarded request", "remote", r.RemoteAddr, "reason", reason.Error(), "suppressed", suppressed)
	}
	w.Header().Set("WWW-Authenticate", "Cairn "+authScheme)
	http.Error(w, reason.Error(), http.StatusUnauthorized)
}

// logLimiter lets one event through per authLogInterval and counts the
// others. The zero value is ready to use.
type logLimiter struct {
	mu         sync.Mutex // guards last and suppressed
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged and, if so, how many
// were suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < authLogInterval {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// errorCodes pairs each error code with the error it stands for. Order
// matters: an error that wraps several is given the first one's code.
var errorCodes = []struct {
	code command.ErrorCode
	err  error
}{
	{command.ErrorCode_ERROR_CODE_UNKNOWN_OUTCOME, ErrUnknownOutcome},
	{command.ErrorCode_ERROR_CODE_NOT_LEADER, ErrNotLeader},
	{command.ErrorCode_ERROR_CODE_NO_LEADER, ErrNoLeader},
	{command.ErrorCode_ERROR_CODE_CLOSED, ErrClosed},
	{command.ErrorCode_ERROR_CODE_TIMEOUT, ErrTimeout},
	{command.ErrorCode_ERROR_CODE_NOT_READ_ONLY, ErrNotReadOnly},
	{command.ErrorCode_ERROR_CODE_INVALID_STATEMENT, ErrInvalidStatement},
	{command.ErrorCode_ERROR_CODE_STALE, ErrStale},
	{command.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED, context.DeadlineExceeded},
	{command.ErrorCode_ERROR_CODE_CANCELED, context.Canceled},
	{command.ErrorCode_ERROR_CODE_MAINTENANCE, ErrMaintenance},
}

// errorCode is the code that err travels as to the node that forwarded the
// request.
func errorCode(err error) command.ErrorCode {
	if err == nil {
		return command.ErrorCode_ERROR_CODE_NONE
	}
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return command.ErrorCode_ERROR_CODE_OTHER
}

// codeError rebuilds the error a peer answered with: its message, wrapping
// the sentinel its code stands for, so that errors.Is holds after the hop.
func codeError(code command.ErrorCode, msg string) error {
	if code == command.ErrorCode_ERROR_CODE_NONE {
		return nil
	}
	re := &remoteError{code: code, msg: msg}
	for _, c := range errorCodes {
		if c.code == code {
			re.sentinel = c.err
			break
		}
	}
	if re.msg == "" {
		if re.sentinel != nil {
			re.msg = re.sentinel.Error()
		} else {
			re.msg = "unknown error on the leader"
		}
	}
	return re
}

// remoteError is an error a peer answered a forwarded request with. Its
// message is the peer's own.
type remoteError struct {
	code     command.ErrorCode
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }

// Unwrap returns the sentinel the error's code stands for, or nil.
func (e *remoteError) Unwrap() error { return e.sentinel }

// RequestIDHeader carries a request's id between clients and nodes.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the client request it
// serves; a request forwarded to the leader takes the id along.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
