package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The node-to-node transport is hashicorp/raft's NetworkTransport over
// streamLayer, which resolves peers only when it dials them and
// authenticates every connection with the cluster secret before any Raft
// byte flows. DESIGN.md ("Node-to-node transport") describes the handshake
// and why it is shaped this way.

// The handshake on the wire. Every message has a fixed length.
//
//	dialer  → listener  hello      magic(12) | purpose(1) | client nonce(32)
//	listener → dialer   challenge  magic(12) | server nonce(32)
//	dialer  → listener  proof      HMAC-SHA256(K, "client" | hello | challenge | binding)
//	listener → dialer   verdict    0x01 | HMAC-SHA256(K, "server" | hello | challenge | binding)
//	                               or 0x00 alone, then the listener closes
//
// K = HMAC-SHA256(cluster secret, transportKeyLabel); binding is empty on
// plain TCP and 32 bytes of TLS keying material (tlsBindingLabel) under TLS.
const (
	handshakeMagic = "CAIRN-RAFT/1"
	// purposeRaft marks a connection that carries Raft RPCs. The byte
	// leaves room for other node-to-node streams on the same port.
	purposeRaft byte = 0x01

	nonceSize     = 32
	proofSize     = sha256.Size
	helloSize     = len(handshakeMagic) + 1 + nonceSize
	challengeSize = len(handshakeMagic) + nonceSize

	verdictRefused  byte = 0x00
	verdictAccepted byte = 0x01

	labelClient = "client"
	labelServer = "server"

	// transportKeyLabel derives the handshake key from the cluster secret,
	// so a MAC made here means nothing to any other use of the secret.
	transportKeyLabel = "cairn raft transport key v1"
	// tlsBindingLabel names the TLS exporter whose output ties the
	// handshake to the TLS session it runs in.
	tlsBindingLabel = "EXPORTER-cairn-raft-handshake"
)

const (
	defaultHandshakeTimeout     = 5 * time.Second
	defaultDialTimeout          = 10 * time.Second
	defaultMaxPendingHandshakes = 64
	defaultRefusalLogInterval   = 10 * time.Second
)

var (
	// errSecretMismatch means the two ends of a connection do not hold the
	// same cluster secret (or the other end is not a Cairn node).
	errSecretMismatch = errors.New("cluster secret mismatch (or restore epoch mismatch: a node restored from a backup only talks to nodes restored from the same backup)")
	// errNoHello means the peer closed the connection before sending a
	// byte: a port probe (a Kubernetes tcpSocket check), not an attack.
	errNoHello = errors.New("closed before the handshake")
)

// newTransport listens for Raft on cfg.RaftAddr and advertises
// cfg.RaftAdvertise.
func (n *Node) newTransport(logger hclog.Logger) (*raft.NetworkTransport, error) {
	layer, err := listenRaft(streamLayerConfig{
		ListenAddr: n.cfg.RaftAddr,
		Advertise:  n.cfg.RaftAdvertise,
		Secret:     n.cfg.Secret,
		Epoch:      n.cfg.Epoch,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  logger,
	}), nil
}

// streamLayerConfig configures listenRaft.
type streamLayerConfig struct {
	// ListenAddr is the host:port to listen on.
	ListenAddr string
	// Advertise is the address peers dial, returned verbatim by Addr and
	// never resolved here (ListenAddr when empty; a listen port of 0, for
	// tests, is replaced by the port the kernel chose).
	Advertise string
	// Secret is the cluster secret; empty only for a single node.
	Secret []byte
	// Epoch is the restore epoch of this node's data ("" if it was never
	// restored from a backup). It is mixed into the handshake key, so nodes
	// of different epochs refuse each other: a node that did not restore
	// can never push its stale log over a restored cluster.
	Epoch string

	// ServerTLS and ClientTLS, set together, wrap every accepted and
	// dialled connection in TLS before the handshake. For mTLS set
	// ServerTLS.ClientAuth to tls.RequireAndVerifyClientCert and give
	// ClientTLS a certificate. ClientTLS.ServerName defaults to the host
	// of the address dialled.
	ServerTLS *tls.Config
	ClientTLS *tls.Config

	Logger hclog.Logger

	// HandshakeTimeout bounds the whole handshake of one connection, TLS
	// included (defaultHandshakeTimeout when zero).
	HandshakeTimeout time.Duration
	// MaxPendingHandshakes bounds the connections being authenticated at
	// once; beyond it new connections wait in the kernel's backlog.
	MaxPendingHandshakes int
	// RefusalLogInterval is how often at most a refused connection from
	// one host is logged.
	RefusalLogInterval time.Duration
}

// streamLayer is a raft.StreamLayer over TCP (optionally TLS) whose
// connections are authenticated with the cluster secret. A background loop
// accepts connections and runs each handshake in its own goroutine;
// Accept returns only connections that passed.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte
	serverTLS *tls.Config
	clientTLS *tls.Config
	logger    hclog.Logger
	timeout   time.Duration
	refusals  *refusalLimiter

	// ctx ends when Close starts; it aborts handshakes and dials.
	ctx    context.Context
	cancel context.CancelFunc
	// slots holds one token per handshake in progress.
	slots chan struct{}
	// accepted hands authenticated connections to Accept.
	accepted chan net.Conn
	// wg owns the accept loop and every handshake goroutine.
	wg sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// listenRaft listens on cfg.ListenAddr and starts accepting connections.
func listenRaft(cfg streamLayerConfig) (*streamLayer, error) {
	if (cfg.ServerTLS == nil) != (cfg.ClientTLS == nil) {
		return nil, errors.New("raft transport: set both the server and the client TLS config, or neither")
	}
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = cfg.ListenAddr
	}
	host, port, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %q: peers cannot dial an unspecified host; set the advertise address", advertise)
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.ListenAddr, err)
	}
	if port == "0" && cfg.Advertise == "" {
		if _, bound, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			port = bound
			advertise = net.JoinHostPort(host, port)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		ln.Close()
		return nil, fmt.Errorf("raft advertise address %q: port must be a number from 1 to 65535", advertise)
	}

	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = defaultMaxPendingHandshakes
	}
	if cfg.RefusalLogInterval <= 0 {
		cfg.RefusalLogInterval = defaultRefusalLogInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &streamLayer{
		ln:        ln,
		advertise: advertiseAddr(advertise),
		key:       transportKey(cfg.Secret, cfg.Epoch),
		serverTLS: cfg.ServerTLS,
		clientTLS: cfg.ClientTLS,
		logger:    cfg.Logger,
		timeout:   cfg.HandshakeTimeout,
		refusals:  newRefusalLimiter(cfg.RefusalLogInterval),
		ctx:       ctx,
		cancel:    cancel,
		slots:     make(chan struct{}, cfg.MaxPendingHandshakes),
		accepted:  make(chan net.Conn),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// advertiseAddr is a host:port as configured. It is never resolved: a
// peer's name may not resolve until its pod has started.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// transportKey derives the handshake's HMAC key from the cluster secret
// and the restore epoch.
func transportKey(secret []byte, epoch string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(transportKeyLabel))
	if epoch != "" {
		m.Write([]byte("\nepoch " + epoch))
	}
	return m.Sum(nil)
}

// Addr returns the advertise address, verbatim.
func (l *streamLayer) Addr() net.Addr { return l.advertise }

// Accept returns the next connection that passed the handshake, or
// net.ErrClosed once the layer is closed. Refused connections are logged
// and never returned.
func (l *streamLayer) Accept() (net.Conn, error) {
	if l.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	select {
	case conn := <-l.accepted:
		return conn, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops the listener, aborts handshakes in progress and waits for
// every goroutine the layer started. Connections already returned by
// Accept or Dial are their owner's to close.
func (l *streamLayer) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			l.closeErr = fmt.Errorf("close raft listener: %w", err)
		}
		l.wg.Wait()
	})
	return l.closeErr
}

// Dial connects to a peer, resolving its name now, and runs the handshake.
// Any failure is an error Raft retries with its own backoff.
func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	peer := string(address)
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline}
	raw, err := d.DialContext(l.ctx, "tcp", peer)
	if err != nil {
		l.logger.Debug("dial raft peer", "peer", peer, "error", err)
		return nil, fmt.Errorf("dial raft peer %s: %w", peer, err)
	}
	hsDeadline := time.Now().Add(l.timeout)
	if deadline.Before(hsDeadline) {
		hsDeadline = deadline
	}
	conn, err := l.clientHandshake(raw, peer, hsDeadline)
	if err != nil {
		raw.Close()
		l.logger.Debug("raft handshake", "peer", peer, "error", err)
		return nil, fmt.Errorf("raft handshake with %s: %w", peer, err)
	}
	return conn, nil
}

// acceptLoop accepts connections and starts a handshake for each, at most
// cap(l.slots) at a time, until Close.
func (l *streamLayer) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		raw, err := l.ln.Accept()
		if err != nil {
			<-l.slots
			if l.ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if ok, suppressed := l.refusals.allow("accept", time.Now()); ok {
				l.logger.Error("accept raft connection", "error", err, "retry_in", delay, "suppressed", suppressed)
			}
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		l.wg.Add(1)
		go l.serve(raw)
	}
}

// serve authenticates one accepted connection and hands it to Accept.
func (l *streamLayer) serve(raw net.Conn) {
	defer l.wg.Done()
	conn, err := l.serverHandshake(raw)
	<-l.slots
	if err != nil {
		raw.Close()
		l.refused(raw.RemoteAddr(), err)
		return
	}
	select {
	case l.accepted <- conn:
	case <-l.ctx.Done():
		conn.Close()
	}
}

// serverHandshake is the listener's side of the handshake. It returns the
// connection to use (TLS-wrapped if configured) with its deadline cleared.
func (l *streamLayer) serverHandshake(raw net.Conn) (net.Conn, error) {
	stop := context.AfterFunc(l.ctx, func() { raw.Close() })
	defer stop()
	if err := raw.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return nil, err
	}
	conn, binding, err := l.secure(raw, l.serverTLS, "")
	if err != nil {
		return nil, err
	}

	var hello [helloSize]byte
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		if errors.Is(err, io.EOF) { // no byte at all
			return nil, errNoHello
		}
		return nil, fmt.Errorf("read hello: %w", err)
	}
	if string(hello[:len(handshakeMagic)]) != handshakeMagic {
		return nil, errors.New("not a " + handshakeMagic + " hello")
	}
	if p := hello[len(handshakeMagic)]; p != purposeRaft {
		return nil, fmt.Errorf("unknown purpose %d", p)
	}

	var challenge [challengeSize]byte
	copy(challenge[:], handshakeMagic)
	rand.Read(challenge[len(handshakeMagic):]) // never fails (Go 1.24+)
	if _, err := conn.Write(challenge[:]); err != nil {
		return nil, fmt.Errorf("write challenge: %w", err)
	}

	var proof [proofSize]byte
	if _, err := io.ReadFull(conn, proof[:]); err != nil {
		return nil, fmt.Errorf("read proof: %w", err)
	}
	if !hmac.Equal(proof[:], l.proof(labelClient, hello[:], challenge[:], binding)) {
		conn.Write([]byte{verdictRefused}) // best effort: tells the dialer why
		return nil, errSecretMismatch
	}

	verdict := append([]byte{verdictAccepted}, l.proof(labelServer, hello[:], challenge[:], binding)...)
	if _, err := conn.Write(verdict); err != nil {
		return nil, fmt.Errorf("write verdict: %w", err)
	}
	if !stop() {
		return nil, net.ErrClosed
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}

// clientHandshake is the dialer's side of the handshake: it sends no Raft
// byte before the listener has proved it knows the secret.
func (l *streamLayer) clientHandshake(raw net.Conn, peer string, deadline time.Time) (net.Conn, error) {
	stop := context.AfterFunc(l.ctx, func() { raw.Close() })
	defer stop()
	if err := raw.SetDeadline(deadline); err != nil {
		return nil, err
	}
	conn, binding, err := l.secure(raw, l.clientTLS, peer)
	if err != nil {
		return nil, err
	}

	var hello [helloSize]byte
	copy(hello[:], handshakeMagic)
	hello[len(handshakeMagic)] = purposeRaft
	rand.Read(hello[len(handshakeMagic)+1:]) // never fails (Go 1.24+)
	if _, err := conn.Write(hello[:]); err != nil {
		return nil, fmt.Errorf("write hello: %w", err)
	}

	var challenge [challengeSize]byte
	if _, err := io.ReadFull(conn, challenge[:]); err != nil {
		return nil, fmt.Errorf("read challenge: %w", err)
	}
	if string(challenge[:len(handshakeMagic)]) != handshakeMagic {
		return nil, errors.New("peer does not speak " + handshakeMagic)
	}
	if _, err := conn.Write(l.proof(labelClient, hello[:], challenge[:], binding)); err != nil {
		return nil, fmt.Errorf("write proof: %w", err)
	}

	var verdict [1 + proofSize]byte
	if _, err := io.ReadFull(conn, verdict[:1]); err != nil {
		return nil, fmt.Errorf("read verdict: %w", err)
	}
	switch verdict[0] {
	case verdictAccepted:
	case verdictRefused:
		return nil, fmt.Errorf("%w: the peer refused our proof", errSecretMismatch)
	default:
		return nil, fmt.Errorf("bad verdict %d", verdict[0])
	}
	if _, err := io.ReadFull(conn, verdict[1:]); err != nil {
		return nil, fmt.Errorf("read verdict: %w", err)
	}
	if !hmac.Equal(verdict[1:], l.proof(labelServer, hello[:], challenge[:], binding)) {
		return nil, fmt.Errorf("%w: the peer's proof is wrong", errSecretMismatch)
	}
	if !stop() {
		return nil, net.ErrClosed
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}

// secure wraps raw in TLS when cfg is set and returns the channel binding
// the handshake's proofs cover: keying material exported from this TLS
// session (so a proof cannot be relayed into another session), or nothing
// on plain TCP. peer is the address dialled, empty on the listener.
func (l *streamLayer) secure(raw net.Conn, cfg *tls.Config, peer string) (net.Conn, []byte, error) {
	if cfg == nil {
		return raw, nil, nil
	}
	var conn *tls.Conn
	if peer == "" {
		conn = tls.Server(raw, cfg)
	} else {
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(peer)
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		conn = tls.Client(raw, cfg)
	}
	if err := conn.Handshake(); err != nil {
		if peer == "" && errors.Is(err, io.EOF) {
			return nil, nil, errNoHello
		}
		return nil, nil, fmt.Errorf("tls handshake: %w", err)
	}
	st := conn.ConnectionState()
	binding, err := st.ExportKeyingMaterial(tlsBindingLabel, nil, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("tls channel binding: %w", err)
	}
	return conn, binding, nil
}

// proof is HMAC-SHA256(K, label | hello | challenge | binding). Every part
// has a fixed length for a given connection, so the encoding is unambiguous.
func (l *streamLayer) proof(label string, hello, challenge, binding []byte) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(label))
	m.Write(hello)
	m.Write(challenge)
	m.Write(binding)
	return m.Sum(nil)
}

// refused logs a connection that failed the handshake: at most one line
// per remote host per interval, never with secret or proof bytes.
func (l *streamLayer) refused(remote net.Addr, err error) {
	if l.ctx.Err() != nil {
		return // closing: not the peer's fault
	}
	addr := remote.String()
	if errors.Is(err, errNoHello) {
		l.logger.Debug("raft connection closed before the handshake", "remote", addr)
		return
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		host = addr
	}
	ok, suppressed := l.refusals.allow(host, time.Now())
	if !ok {
		return
	}
	args := []any{"remote", addr}
	if errors.Is(err, errSecretMismatch) {
		args = append(args, "reason", "wrong cluster secret or restore epoch")
	} else {
		args = append(args, "reason", "bad handshake", "error", err)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.logger.Warn("refused raft connection", args...)
}

// refusalLimiter allows one log line per key per interval and counts the lines
// it held back, so a flood of bad connections cannot flood the log.
type refusalLimiter struct {
	interval time.Duration

	mu   sync.Mutex // guards last
	last map[string]*refusalEntry
}

type refusalEntry struct {
	at         time.Time
	suppressed int
}

// maxRefusalKeys bounds refusalLimiter's memory when many hosts connect.
const maxRefusalKeys = 1024

func newRefusalLimiter(interval time.Duration) *refusalLimiter {
	return &refusalLimiter{interval: interval, last: make(map[string]*refusalEntry)}
}

// allow reports whether a line for key may be logged at now and, if so,
// how many were held back since the last one.
func (r *refusalLimiter) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.last[key]
	if ok && now.Sub(e.at) < r.interval {
		e.suppressed++
		return false, 0
	}
	suppressed := 0
	if ok {
		suppressed = e.suppressed
	}
	if !ok && len(r.last) >= maxRefusalKeys {
		for k, v := range r.last {
			if now.Sub(v.at) >= r.interval {
				delete(r.last, k)
			}
		}
		if len(r.last) >= maxRefusalKeys {
			clear(r.last)
		}
	}
	r.last[key] = &refusalEntry{at: now}
	return true, suppressed
}
