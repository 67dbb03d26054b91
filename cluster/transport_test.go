package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

var (
	secretA = []byte("alpha-secret-0123456789abcdef")
	secretB = []byte("bravo-secret-0123456789abcdef")
)

// transportLogBuffer is a bytes.Buffer safe for the layer's goroutines to log into
// while the test reads it.
type transportLogBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *transportLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *transportLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTransportTestLogger logs at debug level, as slog text, into the returned buffer.
func newTransportTestLogger() (*transportLogBuffer, hclog.Logger) {
	buf := &transportLogBuffer{}
	h := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return buf, newHCLog(slog.New(h), "raft")
}

func mustListenRaft(t *testing.T, cfg streamLayerConfig) *streamLayer {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	l, err := listenRaft(cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// acceptAsync calls Accept once in the background. The goroutine ends when
// a connection comes or the layer closes.
func acceptAsync(l *streamLayer) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		conn, err := l.Accept()
		ch <- acceptResult{conn, err}
	}()
	return ch
}

func mustAccept(t *testing.T, ch <-chan acceptResult) net.Conn {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.conn.Close() })
		return r.conn
	case <-time.After(5 * time.Second):
		t.Fatal("accept did not return")
	}
	return nil
}

func mustDial(t *testing.T, l *streamLayer, addr string) net.Conn {
	t.Helper()
	conn, err := l.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitTransportLog waits until buf contains want.
func waitTransportLog(t *testing.T, buf *transportLogBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never contained %q; log:\n%s", want, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits until the other end closes conn.
func waitClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection was not closed by the listener")
	}
}

// exchange checks that bytes flow both ways between a and b.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, dir := range []struct {
		from, to net.Conn
		msg      string
	}{{a, b, "ping"}, {b, a, "pong"}} {
		if _, err := dir.from.Write([]byte(dir.msg)); err != nil {
			t.Fatalf("write %s: %v", dir.msg, err)
		}
		got := make([]byte, len(dir.msg))
		dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(dir.to, got); err != nil {
			t.Fatalf("read %s: %v", dir.msg, err)
		}
		if string(got) != dir.msg {
			t.Fatalf("read %q, want %q", got, dir.msg)
		}
	}
}

// assertNoSecrets fails if a log holds the secret in any common encoding,
// or a long hex or base64 run such as a MAC or nonce.
func assertNoSecrets(t *testing.T, log string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, enc := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s)} {
			if strings.Contains(log, enc) {
				t.Fatalf("log contains the secret (%q):\n%s", enc, log)
			}
		}
	}
	if m := regexp.MustCompile(`[0-9a-fA-F]{32,}|[A-Za-z0-9+/]{40,}`).FindString(log); m != "" {
		t.Fatalf("log contains %q, which looks like key material:\n%s", m, log)
	}
}

func TestStreamLayer_Dial(t *testing.T) {
	t.Run("RightSecretBytesFlowBothWays", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		accepted := acceptAsync(server)
		c := mustDial(t, client, server.Addr().String())
		s := mustAccept(t, accepted)
		exchange(t, c, s)
	})

	t.Run("EmptySecretSingleNode", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{})
		client := mustListenRaft(t, streamLayerConfig{})
		accepted := acceptAsync(server)
		c := mustDial(t, client, server.Addr().String())
		exchange(t, c, mustAccept(t, accepted))

		stranger := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		if _, err := stranger.Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second); !errors.Is(err, errSecretMismatch) {
			t.Fatalf("dial with a secret into a node without one: %v, want %v", err, errSecretMismatch)
		}
	})

	t.Run("WrongSecretRefusedOnBothSides", func(t *testing.T) {
		serverLog, serverLogger := newTransportTestLogger()
		clientLog, clientLogger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, Logger: serverLogger})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretB, Logger: clientLogger})
		accepted := acceptAsync(server)

		addr := server.Addr().String()
		conn, err := client.Dial(raft.ServerAddress(addr), 5*time.Second)
		if err == nil {
			conn.Close()
			t.Fatal("dial with the wrong secret succeeded")
		}
		if !errors.Is(err, errSecretMismatch) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("dial error %q: want the peer %s and %q", err, addr, errSecretMismatch)
		}

		waitTransportLog(t, serverLog, `reason="wrong cluster secret or restore epoch"`)
		if !strings.Contains(serverLog.String(), "remote=127.0.0.1:") || !strings.Contains(serverLog.String(), "level=WARN") {
			t.Fatalf("refusal not logged at warn with the remote address:\n%s", serverLog)
		}
		select {
		case r := <-accepted:
			t.Fatalf("accept returned %v, %v for a refused connection", r.conn, r.err)
		default:
		}
		assertNoSecrets(t, serverLog.String()+clientLog.String(), secretA, secretB, transportKey(secretA, ""), transportKey(secretB, ""))
	})

	t.Run("ImpostorListenerRefused", func(t *testing.T) {
		// A listener that accepts any proof but does not know the
		// secret: the dialer must not trust it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.ReadFull(c, make([]byte, helloSize))
			c.Write(append([]byte(handshakeMagic), make([]byte, nonceSize)...))
			io.ReadFull(c, make([]byte, proofSize))
			c.Write(append([]byte{verdictAccepted}, make([]byte, proofSize)...))
			io.Copy(io.Discard, c)
		}()
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		_, err = client.Dial(raft.ServerAddress(ln.Addr().String()), 5*time.Second)
		if !errors.Is(err, errSecretMismatch) || !strings.Contains(err.Error(), "proof is wrong") {
			t.Fatalf("dial to an impostor: %v", err)
		}
		<-done
	})

	t.Run("UnresolvableNameFailsFast", func(t *testing.T) {
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		start := time.Now()
		conn, err := client.Dial("cairn-9.invalid:4002", 2*time.Second)
		if err == nil {
			conn.Close()
			t.Fatal("dial to an unresolvable name succeeded")
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Fatalf("dial took %s", elapsed)
		}
		if !strings.Contains(err.Error(), "cairn-9.invalid:4002") {
			t.Fatalf("error %q does not name the peer", err)
		}
	})

	t.Run("AfterCloseFails", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		client.Close()
		if _, err := client.Dial(raft.ServerAddress(server.Addr().String()), time.Second); err == nil {
			t.Fatal("dial after close succeeded")
		}
	})
}

func TestStreamLayer_Accept(t *testing.T) {
	t.Run("SilentClientDoesNotBlockOthers", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, HandshakeTimeout: time.Minute})
		silent, err := net.Dial("tcp", server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		accepted := acceptAsync(server)
		c := mustDial(t, client, server.Addr().String())
		exchange(t, c, mustAccept(t, accepted))
	})

	t.Run("SilentClientTimesOut", func(t *testing.T) {
		log, logger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, HandshakeTimeout: 100 * time.Millisecond, Logger: logger})
		silent, err := net.Dial("tcp", server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		waitClosed(t, silent)
		waitTransportLog(t, log, `reason="bad handshake"`)
		waitTransportLog(t, log, "timeout")
	})

	t.Run("GarbageClientRefused", func(t *testing.T) {
		log, logger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, Logger: logger})
		accepted := acceptAsync(server)
		garbage, err := net.Dial("tcp", server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer garbage.Close()
		garbage.Write([]byte("GET / HTTP/1.1\r\nHost: cairn\r\n\r\n" + strings.Repeat("x", 64)))
		waitClosed(t, garbage)
		waitTransportLog(t, log, `reason="bad handshake"`)
		waitTransportLog(t, log, "not a CAIRN-RAFT/1 hello")
		select {
		case r := <-accepted:
			t.Fatalf("accept returned %v, %v for garbage", r.conn, r.err)
		default:
		}
	})

	t.Run("WrongProofGetsRefusedVerdict", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		for _, tc := range []struct {
			name   string
			secret []byte
			want   byte
		}{{"RightSecret", secretA, verdictAccepted}, {"WrongSecret", secretB, verdictRefused}} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := net.Dial("tcp", server.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if got := handRolledVerdict(t, c, tc.secret, nil); got != tc.want {
					t.Fatalf("verdict %d, want %d", got, tc.want)
				}
			})
		}
	})

	t.Run("PortProbeNotWarned", func(t *testing.T) {
		log, logger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, Logger: logger})
		probe, err := net.Dial("tcp", server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		probe.Close()
		waitTransportLog(t, log, "closed before the handshake")
		if strings.Contains(log.String(), "level=WARN") {
			t.Fatalf("a port probe was logged at warn:\n%s", log)
		}
	})

	t.Run("RefusalsRateLimited", func(t *testing.T) {
		log, logger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, Logger: logger, RefusalLogInterval: time.Hour})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretB})
		for range 3 {
			if _, err := client.Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second); !errors.Is(err, errSecretMismatch) {
				t.Fatalf("dial: %v", err)
			}
		}
		// The listener logs just after it answers: wait until it has
		// counted the two refusals it held back.
		deadline := time.Now().Add(5 * time.Second)
		for suppressedFor(server.refusals, "127.0.0.1") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("refusals not counted; log:\n%s", log)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n := strings.Count(log.String(), "refused raft connection"); n != 1 {
			t.Fatalf("%d refusal lines, want 1:\n%s", n, log)
		}
	})
}

func suppressedFor(r *refusalLimiter, key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.last[key]; ok {
		return e.suppressed
	}
	return 0
}

// handRolledVerdict plays the dialer's side of the handshake on c, from the
// protocol as documented (not from the code under test), and returns the
// listener's verdict byte.
func handRolledVerdict(t *testing.T, c net.Conn, secret, binding []byte) byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hello := append([]byte("CAIRN-RAFT/1\x01"), bytes.Repeat([]byte{7}, 32)...)
	if len(hello) != 45 {
		t.Fatalf("hello is %d bytes", len(hello))
	}
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	challenge := make([]byte, 44)
	if _, err := io.ReadFull(c, challenge); err != nil {
		t.Fatal(err)
	}
	if string(challenge[:12]) != "CAIRN-RAFT/1" {
		t.Fatalf("challenge starts %q", challenge[:12])
	}
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("cairn raft transport key v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte("client"))
	m.Write(hello)
	m.Write(challenge)
	m.Write(binding)
	if _, err := c.Write(m.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	verdict := make([]byte, 1)
	if _, err := io.ReadFull(c, verdict); err != nil {
		t.Fatal(err)
	}
	return verdict[0]
}

func TestRefusalLimiter_Allow(t *testing.T) {
	r := newRefusalLimiter(10 * time.Second)
	now := time.Now()
	if ok, _ := r.allow("a", now); !ok {
		t.Fatal("first line held back")
	}
	for range 3 {
		if ok, _ := r.allow("a", now.Add(time.Second)); ok {
			t.Fatal("line within the interval allowed")
		}
	}
	if ok, _ := r.allow("b", now.Add(time.Second)); !ok {
		t.Fatal("another host held back")
	}
	if ok, n := r.allow("a", now.Add(11*time.Second)); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d suppressed; want true, 3", ok, n)
	}
}

func TestStreamLayer_Addr(t *testing.T) {
	t.Run("AdvertiseVerbatimEvenIfUnresolvable", func(t *testing.T) {
		l := mustListenRaft(t, streamLayerConfig{Advertise: "cairn-9.invalid:4002"})
		if got := l.Addr().String(); got != "cairn-9.invalid:4002" {
			t.Fatalf("Addr() = %q", got)
		}
		if got := l.Addr().Network(); got != "tcp" {
			t.Fatalf("Network() = %q", got)
		}
	})

	t.Run("DefaultsToListenAddress", func(t *testing.T) {
		l := mustListenRaft(t, streamLayerConfig{})
		if l.Addr().String() == "127.0.0.1:0" || !strings.HasPrefix(l.Addr().String(), "127.0.0.1:") {
			t.Fatalf("Addr() = %q, want the bound loopback address", l.Addr())
		}
	})

	t.Run("InvalidAdvertiseRefused", func(t *testing.T) {
		for _, tc := range []struct{ listen, advertise string }{
			{"0.0.0.0:0", ""},
			{"127.0.0.1:0", ":4002"},
			{"127.0.0.1:0", "[::]:4002"},
			{"127.0.0.1:0", "cairn-0"},
			{"127.0.0.1:0", "cairn-0:raft"},
			{"127.0.0.1:0", "cairn-0:0"},
		} {
			if l, err := listenRaft(streamLayerConfig{ListenAddr: tc.listen, Advertise: tc.advertise}); err == nil {
				l.Close()
				t.Errorf("listen %q advertise %q: no error", tc.listen, tc.advertise)
			} else if !strings.Contains(err.Error(), "advertise") {
				t.Errorf("listen %q advertise %q: %v", tc.listen, tc.advertise, err)
			}
		}
	})

	t.Run("NodeTransportAdvertisesVerbatim", func(t *testing.T) {
		n := New(Config{RaftAddr: "127.0.0.1:0", RaftAdvertise: "cairn-9.invalid:4002", Secret: secretA}, nil)
		tr, err := n.newTransport(hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if got := tr.LocalAddr(); got != "cairn-9.invalid:4002" {
			t.Fatalf("LocalAddr() = %q", got)
		}
	})
}

func TestStreamLayer_Close(t *testing.T) {
	t.Run("AbortsHandshakesInProgress", func(t *testing.T) {
		server, err := listenRaft(streamLayerConfig{ListenAddr: "127.0.0.1:0", Secret: secretA, HandshakeTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		silent, err := net.Dial("tcp", server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		// Half a hello: the handshake goroutine is blocked reading.
		silent.Write([]byte("CAIRN"))
		mustCloseSoon(t, server)
		waitClosed(t, silent)
	})

	t.Run("ClosesUnacceptedConnections", func(t *testing.T) {
		server, err := listenRaft(streamLayerConfig{ListenAddr: "127.0.0.1:0", Secret: secretA})
		if err != nil {
			t.Fatal(err)
		}
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		// Authenticated, but nobody calls Accept.
		c := mustDial(t, client, server.Addr().String())
		mustCloseSoon(t, server)
		waitClosed(t, c)
	})

	t.Run("AcceptReturnsErrClosed", func(t *testing.T) {
		server, err := listenRaft(streamLayerConfig{ListenAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		pending := acceptAsync(server)
		mustCloseSoon(t, server)
		if r := <-pending; !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("pending accept: %v", r.err)
		}
		if _, err := server.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("accept after close: %v", err)
		}
		if err := server.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

// mustCloseSoon closes l and fails if Close, which waits for every
// goroutine the layer started, takes long.
func mustCloseSoon(t *testing.T, l *streamLayer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return: a goroutine is stuck")
	}
}

// selfSignedTLS returns mTLS configs around one self-signed certificate for
// 127.0.0.1, used as both the server's and the client's.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn test node"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	return server, client
}

func TestStreamLayer_TLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)

	t.Run("MutualTLSAndSecret", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, ServerTLS: serverTLS, ClientTLS: clientTLS})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA, ServerTLS: serverTLS, ClientTLS: clientTLS})
		accepted := acceptAsync(server)
		c := mustDial(t, client, server.Addr().String())
		s := mustAccept(t, accepted)
		if _, ok := c.(*tls.Conn); !ok {
			t.Fatalf("dialled connection is %T, want *tls.Conn", c)
		}
		if _, ok := s.(*tls.Conn); !ok {
			t.Fatalf("accepted connection is %T, want *tls.Conn", s)
		}
		exchange(t, c, s)
	})

	t.Run("WrongSecretOverTLS", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, ServerTLS: serverTLS, ClientTLS: clientTLS})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretB, ServerTLS: serverTLS, ClientTLS: clientTLS})
		if _, err := client.Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second); !errors.Is(err, errSecretMismatch) {
			t.Fatalf("dial: %v, want %v", err, errSecretMismatch)
		}
	})

	t.Run("ProofBoundToTLSSession", func(t *testing.T) {
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, ServerTLS: serverTLS, ClientTLS: clientTLS})
		for _, tc := range []struct {
			name    string
			binding bool
			want    byte
		}{{"WithBinding", true, verdictAccepted}, {"WithoutBinding", false, verdictRefused}} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := tls.Dial("tcp", server.Addr().String(), clientTLS)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var binding []byte
				if tc.binding {
					st := c.ConnectionState()
					if binding, err = st.ExportKeyingMaterial("EXPORTER-cairn-raft-handshake", nil, 32); err != nil {
						t.Fatal(err)
					}
				}
				if got := handRolledVerdict(t, c, secretA, binding); got != tc.want {
					t.Fatalf("verdict %d, want %d", got, tc.want)
				}
			})
		}
	})

	t.Run("PlainClientRefused", func(t *testing.T) {
		log, logger := newTransportTestLogger()
		server := mustListenRaft(t, streamLayerConfig{Secret: secretA, ServerTLS: serverTLS, ClientTLS: clientTLS, Logger: logger})
		client := mustListenRaft(t, streamLayerConfig{Secret: secretA})
		if _, err := client.Dial(raft.ServerAddress(server.Addr().String()), 5*time.Second); err == nil {
			t.Fatal("plain dial into a TLS listener succeeded")
		}
		waitTransportLog(t, log, "tls handshake")
	})

	t.Run("HalfConfigRefused", func(t *testing.T) {
		if _, err := listenRaft(streamLayerConfig{ListenAddr: "127.0.0.1:0", ServerTLS: serverTLS}); err == nil {
			t.Fatal("server TLS without client TLS accepted")
		}
	})
}

// mustNetworkTransport is a raft.NetworkTransport over a streamLayer.
func mustNetworkTransport(t *testing.T, secret []byte) *raft.NetworkTransport {
	t.Helper()
	layer := mustListenRaft(t, streamLayerConfig{Secret: secret})
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 5 * time.Second,
		Logger:  hclog.NewNullLogger(),
	})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// answerAppendEntries answers every AppendEntries on tr, sending each
// request on got, until the test ends.
func answerAppendEntries(t *testing.T, tr *raft.NetworkTransport) <-chan *raft.AppendEntriesRequest {
	got := make(chan *raft.AppendEntriesRequest, 8)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-tr.Consumer():
				req, ok := rpc.Command.(*raft.AppendEntriesRequest)
				if !ok {
					rpc.Respond(nil, errors.New("unexpected rpc"))
					continue
				}
				got <- req
				rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: 1, Success: true}, nil)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return got
}

func TestStreamLayer_NetworkTransport(t *testing.T) {
	req := func(from *raft.NetworkTransport) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("1"), Addr: []byte(from.LocalAddr())},
			Term:      3,
			Entries:   []*raft.Log{{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("INSERT INTO t VALUES (1)")}},
		}
	}

	t.Run("SameSecret", func(t *testing.T) {
		leader := mustNetworkTransport(t, secretA)
		follower := mustNetworkTransport(t, secretA)
		got := answerAppendEntries(t, follower)
		var resp raft.AppendEntriesResponse
		if err := leader.AppendEntries("2", follower.LocalAddr(), req(leader), &resp); err != nil {
			t.Fatalf("append entries: %v", err)
		}
		if !resp.Success || resp.Term != 3 {
			t.Fatalf("response %+v", resp)
		}
		r := <-got
		if len(r.Entries) != 1 || string(r.Entries[0].Data) != "INSERT INTO t VALUES (1)" {
			t.Fatalf("follower got %+v", r)
		}
	})

	t.Run("DifferentSecret", func(t *testing.T) {
		leader := mustNetworkTransport(t, secretA)
		follower := mustNetworkTransport(t, secretB)
		got := answerAppendEntries(t, follower)
		var resp raft.AppendEntriesResponse
		err := leader.AppendEntries("2", follower.LocalAddr(), req(leader), &resp)
		if !errors.Is(err, errSecretMismatch) || !strings.Contains(err.Error(), string(follower.LocalAddr())) {
			t.Fatalf("append entries: %v, want %v naming %s", err, errSecretMismatch, follower.LocalAddr())
		}
		select {
		case r := <-got:
			t.Fatalf("follower got an RPC through a refused connection: %+v", r)
		default:
		}
	})
}
