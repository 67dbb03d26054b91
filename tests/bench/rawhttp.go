package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The load generator shares the machine's two cores with the nodes it
// measures, so every microsecond it spends per request is taken from the
// system under test. Like wrk or oha, it therefore speaks just enough
// HTTP/1.1 itself: one keep-alive connection per worker and host, a
// request written in one buffer, the response read with Content-Length
// (or chunked) framing. net/http's client costs several times more CPU per
// request (two goroutines per connection and their hand-offs).

// maxWorkers bounds the concurrency of one workload.
const maxWorkers = 256

// rawConns holds each worker's connections by host; a worker's map is
// only touched by that worker.
var rawConns [maxWorkers]map[string]*rawConn

// rawConn is one keep-alive HTTP/1.1 connection.
type rawConn struct {
	host string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

// rawPost posts body to rawURL on worker w's connection to that host and
// returns the status and body. A broken connection is dropped, and the
// request retried once on a new one only when nothing was sent.
func rawPost(w int, rawURL string, body []byte) (int, []byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, nil, err
	}
	if rawConns[w] == nil {
		rawConns[w] = map[string]*rawConn{}
	}
	rc := rawConns[w][u.Host]
	if rc == nil {
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		rc = &rawConn{host: u.Host, c: c, r: bufio.NewReaderSize(c, 64<<10)}
		rawConns[w][u.Host] = rc
	}
	status, resp, err := rc.post(u.RequestURI(), body)
	if err != nil {
		rc.c.Close()
		delete(rawConns[w], u.Host)
	}
	return status, resp, err
}

func (rc *rawConn) post(path string, body []byte) (int, []byte, error) {
	rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	b := rc.buf[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, rc.host...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	rc.buf = b
	if _, err := rc.c.Write(b); err != nil {
		return 0, nil, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closeAfter := -1, false, false
	for {
		h, err := rc.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := strings.Cut(strings.TrimSpace(string(h)), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			closeAfter = strings.EqualFold(value, "close")
		}
	}
	var resp []byte
	switch {
	case chunked:
		for {
			l, err := rc.r.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(l)), 16, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("bad chunk size %q", l)
			}
			chunk := make([]byte, n+2)
			if _, err := io.ReadFull(rc.r, chunk); err != nil {
				return 0, nil, err
			}
			if n == 0 {
				break
			}
			resp = append(resp, chunk[:n]...)
		}
	case length >= 0:
		resp = make([]byte, length)
		if _, err := io.ReadFull(rc.r, resp); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errors.New("response without a length")
	}
	if closeAfter {
		return status, resp, errors.New("server closed the connection")
	}
	return status, resp, nil
}
