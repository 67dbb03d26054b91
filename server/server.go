package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/statemachine/command"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxBodySize      = 10 << 20 // 10 MiB
	DefaultRequestTimeout   = 30 * time.Second
	DefaultReadTimeout      = 60 * time.Second
	DefaultWriteTimeout     = 90 * time.Second
	DefaultIdleTimeout      = 120 * time.Second
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultNodeProbeTimeout = 2 * time.Second
)

// readHeaderTimeout bounds how long a client may take to send its headers.
const readHeaderTimeout = 10 * time.Second

// Log keys used by the server, fixed so that log queries can rely on them.
const (
	logKeyRequestID = "request_id"
	logKeyMethod    = "method"
	logKeyPath      = "path"
	logKeyStatus    = "status"
	logKeyDuration  = "duration"
	logKeyBytes     = "bytes"
	logKeyRemote    = "remote"
	logKeyError     = "error"
	logKeyAddr      = "addr"
	logKeyUser      = "user"
)

// handleMetrics serves GET /metrics in Prometheus' format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.handler.ServeHTTP(w, r)
}

// InternalPrefix is the path under which Config.Internal serves.
const InternalPrefix = "/internal/"

// requestIDHeader carries the request ID in and out, and on to the
// leader when a request is forwarded.
const requestIDHeader = cluster.RequestIDHeader

// Config tunes a Server. Zero fields take the Default values above.
type Config struct {
	// MaxBodySize bounds a request body in bytes; a larger one is
	// answered with 413.
	MaxBodySize int64
	// RequestTimeout bounds one call to the Store. A client may shorten it
	// with ?timeout=.
	RequestTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout are those of http.Server.
	// WriteTimeout should exceed RequestTimeout, or a timed-out call cannot
	// be reported.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// ShutdownTimeout bounds the graceful shutdown that Serve starts when
	// its context is done.
	ShutdownTimeout time.Duration
	// NodeProbeTimeout bounds the reachability check of each peer in
	// /nodes (a client may change it with ?timeout=).
	NodeProbeTimeout time.Duration
	// Version is the build version reported by /status and /livez.
	Version string
	// NodeID is this node's id, reported by /livez without asking the
	// Store.
	NodeID string
	// Authenticate, when set, checks node-to-node and operator calls
	// (/join, /remove) with their body; an error answers 401.
	Authenticate func(r *http.Request, body []byte) error
	// Backups serves /v1/backups; nil answers 501 with BackupsDisabled.
	Backups Backups
	// BackupsDisabled says why there are no backups (Postgres mode, …).
	BackupsDisabled string
	// Health adds subsystems (backups, S3, disk) to /healthz.
	Health HealthFunc
	// Ready, when set, is a readiness condition beyond the store's (the
	// schema holding every migration): /readyz and /healthz need both.
	Ready func(ctx context.Context) error
	// Collectors are added to /metrics.
	Collectors []prometheus.Collector
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Internal, when set, serves every path under /internal/: the
	// node-to-node endpoints, which authenticate requests themselves.
	Internal http.Handler

	// MaxConcurrent bounds the statement calls (/db/execute, /db/query,
	// /db/request) that run on the Store at once; zero means no bound. A
	// call past it waits up to QueueTimeout for a slot, then is answered
	// 503 with Retry-After: 1. Nothing else is bounded: probes, /status
	// and /metrics keep answering under any load.
	MaxConcurrent int
	// QueueTimeout is how long a statement call waits for a slot when
	// MaxConcurrent calls are running; zero refuses it at once.
	QueueTimeout time.Duration
	// PoolStats, when set (Postgres mode), reports the connection pool:
	// /metrics shows it, and statement calls are shed with 503 while the
	// pool is pressed (see poolTier in limit.go).
	PoolStats func() cluster.PoolStats
	// ShedProbeInterval is how often, while calls are shed for pool
	// pressure, the pool is looked at again; shedding stops at the first
	// look that finds no pressure.
	ShedProbeInterval time.Duration
	// Users, when it holds any user, makes every endpoint but the probes,
	// /internal/, /join and /remove ask for HTTP Basic credentials and a
	// permission; nil or empty leaves the API open. SetUsers replaces it
	// while the server runs.
	Users *UserSet
	// MetricsOpen leaves /metrics open to unauthenticated scrapes when
	// Users are set; otherwise it needs the status permission.
	// SetMetricsOpen changes it while the server runs.
	MetricsOpen bool
	// AccessLog logs every request at info level; otherwise requests that
	// succeed log at debug level.
	AccessLog bool
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.NodeProbeTimeout <= 0 {
		c.NodeProbeTimeout = DefaultNodeProbeTimeout
	}
	if c.ShedProbeInterval <= 0 {
		c.ShedProbeInterval = DefaultShedProbeInterval
	}
	return c
}

// Store is what the server runs requests on: the method set of
// cluster.Backend (the Raft node, or the Postgres pool).
type Store interface {
	// Execute applies statements that change data.
	Execute(ctx context.Context, req *command.Request) ([]command.Result, error)
	// Query runs read-only statements at the given level.
	Query(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error)
	// Request runs a mix of reads and writes.
	Request(ctx context.Context, req *command.Request, opts cluster.QueryOptions) ([]command.Result, error)
	// Status describes the node.
	Status(ctx context.Context) (cluster.Status, error)
	// Ready returns nil when the node can serve requests.
	Ready(ctx context.Context) error
}

// Server is Cairn's HTTP API server.
type Server struct {
	cfg     Config
	store   Store
	logger  *slog.Logger
	started time.Time
	metrics *metrics

	handler http.Handler
	routes  map[string]route
	httpSrv *http.Server
	// peers is the client that probes other nodes for /nodes.
	peers *http.Client

	// baseCtx is the parent of every handler's context; cancelBase aborts
	// the requests still running when a graceful shutdown runs out of time.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu      sync.Mutex // guards ln and serving
	ln      net.Listener
	serving bool

	// users is the current UserSet (Config.Users, then SetUsers), and
	// metricsOpen Config.MetricsOpen, then SetMetricsOpen.
	users       atomic.Pointer[UserSet]
	metricsOpen atomic.Bool
	// limit bounds the statement calls running at once (nil: no bound);
	// shedder refuses them under pool pressure (nil outside Postgres
	// mode); inFlight counts those running on the Store.
	limit    *limiter
	shedder  *poolShedder
	inFlight atomic.Int64

	// bg owns the server's background goroutines (the recovery probe of
	// load shedding); Close stops them through baseCtx and waits.
	bgMu     sync.Mutex // guards bgClosed and the Add of bg
	bgClosed bool
	bg       sync.WaitGroup
}

// New builds a server on store. It does no I/O: call Listen, then Serve.
// A nil logger discards logs.
func New(cfg Config, store Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		store:   store,
		logger:  slog.New(requestHandler{logger.Handler()}).With("component", "http"),
		started: time.Now(),
		peers: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		limit: newLimiter(cfg.MaxConcurrent, cfg.QueueTimeout),
	}
	s.users.Store(cfg.Users)
	s.metricsOpen.Store(cfg.MetricsOpen)
	if cfg.PoolStats != nil {
		s.shedder = &poolShedder{stats: cfg.PoolStats, interval: cfg.ShedProbeInterval, spawn: s.spawn}
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.routes = map[string]route{
		"/db/execute":   {methods: []string{http.MethodPost}, handle: s.handleExecute},
		"/db/query":     {methods: []string{http.MethodGet, http.MethodPost}, handle: s.handleQuery},
		"/db/request":   {methods: []string{http.MethodPost}, handle: s.handleRequest},
		"/status":       {methods: []string{http.MethodGet, http.MethodHead}, handle: s.handleStatus},
		"/nodes":        {methods: []string{http.MethodGet, http.MethodHead}, handle: s.handleNodes},
		"/readyz":       {methods: []string{http.MethodGet, http.MethodHead}, handle: s.handleReadyz},
		"/livez":        {methods: []string{http.MethodGet, http.MethodHead}, handle: s.handleLivez},
		"/healthz":      {methods: []string{http.MethodGet, http.MethodHead}, handle: s.handleHealthz},
		"/metrics":      {methods: []string{http.MethodGet}, handle: s.handleMetrics},
		"/join":         {methods: []string{http.MethodPost}, handle: s.handleJoin},
		"/remove":       {methods: []string{http.MethodPost, http.MethodDelete}, handle: s.handleRemove},
		MaintenancePath: {methods: []string{http.MethodGet, http.MethodHead, http.MethodPost}, handle: s.handleMaintenance},
	}
	s.metrics = newMetrics(s)
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
	}
	return s
}

// Handler returns the server's root handler, for in-process tests and for
// mounting under another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds addr (host:port; port 0 picks a free one). It does not
// serve yet.
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return fmt.Errorf("listen on %s: already listening on %s", addr, s.ln.Addr())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address (host:port), or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the server's base URL, such as http://127.0.0.1:4001, or ""
// before Listen.
func (s *Server) URL() string {
	addr := s.Addr()
	if addr == "" {
		return ""
	}
	return "http://" + addr
}

// Serve serves HTTP on the listener bound by Listen and blocks until the
// server stops. It returns nil after Close, or after ctx is done: then it
// shuts the server down itself, gracefully, within Config.ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln, serving := s.ln, s.serving
	if ln != nil {
		s.serving = true
	}
	s.mu.Unlock()
	if ln == nil {
		return errors.New("serve HTTP: not listening (call Listen first)")
	}
	if serving {
		return errors.New("serve HTTP: already serving")
	}

	s.logger.Info("serving HTTP", logKeyAddr, ln.Addr().String())
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			defer cancel()
			if err := s.Close(sctx); err != nil {
				s.logger.Warn("HTTP shutdown incomplete", logKeyError, err)
			}
		case <-stopped:
		}
	})
	err := s.httpSrv.Serve(ln)
	close(stopped)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
}

// Close shuts the server down gracefully: it stops accepting connections
// and waits for in-flight requests to finish. When ctx is done first, it
// cancels the requests still running, closes their connections and
// returns an error that wraps ctx's.
func (s *Server) Close(ctx context.Context) error {
	err := s.httpSrv.Shutdown(ctx)

	// Shutdown closes only listeners that Serve is using; close ours in
	// case Serve never ran.
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			s.logger.Warn("close HTTP listener", logKeyError, cerr)
		}
	}
	s.cancelBase()
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.bg.Wait()
	s.peers.CloseIdleConnections()
	if err != nil {
		_ = s.httpSrv.Close()
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	return nil
}

// spawn runs f in a goroutine the server owns, with a context that ends
// when the server closes; it reports false, without running f, once the
// server is closing.
func (s *Server) spawn(f func(ctx context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgClosed {
		return false
	}
	s.bg.Go(func() { f(s.baseCtx) })
	return true
}

// route is one endpoint: the methods it allows and its handler.
type route struct {
	methods []string
	handle  http.HandlerFunc
}

// serveHTTP is the root handler: it gives the request an ID, recovers
// panics, dispatches on the path and logs one line when done.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{id: requestID(r.Header.Get(requestIDHeader))}
	w.Header().Set(requestIDHeader, info.id)
	if s.cfg.Version != "" {
		w.Header().Set("X-Cairn-Version", s.cfg.Version)
	}
	rec := &responseRecorder{ResponseWriter: w}
	r = r.WithContext(cluster.WithRequestID(context.WithValue(r.Context(), requestInfoKey{}, info), info.id))

	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			info.err = fmt.Errorf("panic: %v", p)
			s.logger.Error("handler panicked", logKeyRequestID, info.id, logKeyError, info.err, "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				s.writeError(rec, r, apiError{status: http.StatusInternalServerError, msg: "internal server error"}, false)
			}
		}
		d := time.Since(start)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.observe(s, r.URL.Path, status, d)
		s.logRequest(r, rec, info, d)
	}()
	s.dispatch(rec, r)
}

// dispatch checks the credentials, finds the route for the path and
// checks the method.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if s.cfg.Pprof && strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
		servePprof(w, r)
		return
	}
	if r.URL.Path == backupsPrefix || strings.HasPrefix(r.URL.Path, backupsPrefix+"/") {
		s.handleBackups(w, r)
		return
	}
	if s.cfg.Internal != nil && strings.HasPrefix(r.URL.Path, InternalPrefix) {
		s.cfg.Internal.ServeHTTP(w, r)
		return
	}
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.writeError(w, r, apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no such endpoint: %s", r.URL.Path)}, false)
		return
	}
	allow := strings.Join(rt.methods, ", ")
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", allow+", OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		w.Header().Set("Allow", allow)
		msg := fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
		s.writeError(w, r, apiError{status: http.StatusMethodNotAllowed, msg: msg}, false)
		return
	}
	rt.handle(w, r)
}

// writeError answers with {"error": msg}. The cause, when there is one, is
// recorded for the request's log line.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e apiError, pretty bool) {
	if info := infoFrom(r.Context()); info != nil && info.err == nil {
		info.err = errors.New(e.msg)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if err := writeJSON(w, e.status, errorResponse{Error: e.msg}, pretty); err != nil {
		s.noteWriteError(r, err)
	}
}

// noteWriteError records a failure to write a response body, which only
// the log can report.
func (s *Server) noteWriteError(r *http.Request, err error) {
	if info := infoFrom(r.Context()); info != nil {
		info.writeErr = err
	}
}

// logRequest writes the request's single log line: debug for success
// (info with Config.AccessLog), info for client errors, warn for
// unavailability, error for failures.
func (s *Server) logRequest(r *http.Request, rec *responseRecorder, info *requestInfo, d time.Duration) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelDebug
	if s.cfg.AccessLog {
		level = slog.LevelInfo
	}
	switch {
	case isProbe(r.URL.Path) && status == http.StatusServiceUnavailable:
		// Orchestrators poll probes every few seconds while a node starts
		// or drains; a 503 there is an answer, not an incident.
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = max(level, slog.LevelInfo)
	}
	if info.writeErr != nil && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	ctx := context.WithoutCancel(r.Context())
	if !s.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String(logKeyRequestID, info.id),
		slog.String(logKeyMethod, r.Method),
		slog.String(logKeyPath, r.URL.Path),
		slog.Int(logKeyStatus, status),
		slog.Duration(logKeyDuration, d),
		slog.Int64(logKeyBytes, rec.bytes),
		slog.String(logKeyRemote, r.RemoteAddr),
	}
	if info.user != "" {
		attrs = append(attrs, slog.String(logKeyUser, info.user))
	}
	if info.err != nil {
		attrs = append(attrs, slog.String(logKeyError, info.err.Error()))
	}
	if info.writeErr != nil {
		attrs = append(attrs, slog.String("write_error", info.writeErr.Error()))
	}
	s.logger.LogAttrs(ctx, level, "http request", attrs...)
}

// isProbe reports whether path is a health probe.
func isProbe(path string) bool {
	return path == "/readyz" || path == "/livez"
}

// requestInfo travels in a request's context so that handlers can record
// what the log line should say.
type requestInfo struct {
	id       string
	user     string // the authenticated user, if any
	err      error  // why the request failed, if it did
	writeErr error  // why the response could not be written, if so
}

type requestInfoKey struct{}

// infoFrom returns the request's info, or nil outside serveHTTP.
func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// requestID returns the client's request ID when it is sane (1 to 128
// characters of [A-Za-z0-9._:-], so it cannot forge log lines), else a new
// random one.
func requestID(in string) string {
	if validRequestID(in) {
		return in
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// responseRecorder remembers the status and size of a response.
type responseRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

// WriteHeader records the status.
func (w *responseRecorder) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write records the size.
func (w *responseRecorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
