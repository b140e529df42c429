// Package connlimit caps an http.Server's open connections, whatever they carry:
// requests, idle keep-alive, and WebSockets hijacked from them.
//
// A Limiter's counts are guarded by its one mutex, a leaf: nothing else is locked and
// no I/O happens while it is held (a dropped connection is closed after it).
package connlimit

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"

	"github.com/pgnotifier/notifier/internal/metrics"
)

// maxOverLimit is how many connections accepted beyond the limit may wait for their
// one request at a time; past it, new connections are closed at once, unanswered, so
// that a flood of idle sockets costs no more than this many goroutines.
const maxOverLimit = 256

// Limiter caps the HTTP server's open connections, whatever they carry: requests,
// idle keep-alive, or WebSockets hijacked from them (/ws and /socket.io/), which count
// until they close. Install ConnContext, ConnState and Handler on the http.Server.
//
// A connection accepted while limit are open is over the limit: it serves one request,
// answered with Connection: close. Handlers refuse new long-lived work on it
// (OverLimit: /ws and Socket.IO handshakes get 503); other requests, such as
// /healthz, /metrics or an existing polling session's, are answered. A response
// with Connection: close gives its connection's place back as it is written, so a
// client that was refused may retry at once.
type Limiter struct {
	limit int

	mu    sync.Mutex
	conns map[net.Conn]*connSlot // served by the http.Server: not hijacked
	open  int                    // connections within the limit
	over  int                    // connections over the limit, not yet closed

	gauge             *metrics.Gauge
	refused, overflow *metrics.Counter
}

// connSlot is one accepted connection's place; released is guarded by the limiter's mu.
type connSlot struct {
	over     bool // accepted over the limit; set before the connection is served
	released bool
}

type slotKey struct{}

const refusedHelp = "Connections accepted over http.max_connections, by what became of them: limit, one request answered (503 for a handshake) and closed; overflow, closed at once."

// New returns a limiter of limit open connections (0: no limit, only
// counted).
func New(limit int, m *metrics.Registry) *Limiter {
	return &Limiter{
		limit:    limit,
		conns:    make(map[net.Conn]*connSlot),
		gauge:    m.Gauge("notifier_http_connections", "Open TCP connections, WebSockets included, counted against http.max_connections."),
		refused:  m.Counter("notifier_http_connections_refused_total", refusedHelp, "reason", "limit"),
		overflow: m.Counter("notifier_http_connections_refused_total", refusedHelp, "reason", "overflow"),
	}
}

// ConnContext is the http.Server's ConnContext: it counts c and tells whether it is
// within the limit.
func (l *Limiter) ConnContext(ctx context.Context, c net.Conn) context.Context {
	s := &connSlot{}
	drop := false
	l.mu.Lock()
	switch {
	case l.limit == 0 || l.open < l.limit:
		l.open++
	case l.over < maxOverLimit:
		s.over = true
		l.over++
		l.refused.Inc()
	default:
		s.over = true
		l.over++
		l.overflow.Inc()
		drop = true
	}
	l.conns[c] = s
	l.gauge.Set(int64(l.open + l.over))
	l.mu.Unlock()
	if drop {
		_ = c.Close() // the server's read fails at once, and ConnState releases it
	}
	return context.WithValue(ctx, slotKey{}, s)
}

// ConnState is the http.Server's ConnState: a closed connection gives its place
// back; a hijacked one keeps it until the hijacker closes it.
func (l *Limiter) ConnState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateHijacked, http.StateClosed:
		l.mu.Lock()
		s := l.conns[c]
		delete(l.conns, c)
		if state == http.StateClosed && s != nil {
			l.releaseLocked(s)
		}
		l.mu.Unlock()
	}
}

func (l *Limiter) release(s *connSlot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(s)
}

func (l *Limiter) releaseLocked(s *connSlot) {
	if s.released {
		return
	}
	s.released = true
	if s.over {
		l.over--
	} else {
		l.open--
	}
	l.gauge.Set(int64(l.open + l.over))
}

// OverLimit reports whether r came on a connection accepted over the limit: a
// handshake on it is refused.
func (l *Limiter) OverLimit(r *http.Request) bool {
	s, _ := r.Context().Value(slotKey{}).(*connSlot)
	return s != nil && s.over
}

// Handler wraps next: requests on a connection over the limit are answered with
// Connection: close, and a hijacked connection keeps its place until it is closed.
// A request that did not come through ConnContext is served as is.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := r.Context().Value(slotKey{}).(*connSlot)
		if s == nil {
			next.ServeHTTP(w, r)
			return
		}
		if s.over {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(&limitedWriter{ResponseWriter: w, l: l, s: s}, r)
	})
}

// limitedWriter gives the connection's place back when the response closes the
// connection, and hands out hijacked connections that do so when closed.
type limitedWriter struct {
	http.ResponseWriter
	l     *Limiter
	s     *connSlot
	wrote bool
}

// header notes the response's start: one that closes the connection gives its
// place back now.
func (w *limitedWriter) header() {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.Header().Get("Connection") == "close" {
		w.l.release(w.s)
	}
}

// WriteHeader writes the status line and headers.
func (w *limitedWriter) WriteHeader(status int) {
	w.header()
	w.ResponseWriter.WriteHeader(status)
}

// Write writes body bytes, the headers first if need be.
func (w *limitedWriter) Write(b []byte) (int, error) {
	w.header()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (deadlines, flush).
func (w *limitedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands over the connection, which keeps its place until it is closed.
func (w *limitedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &hijackedConn{Conn: c, l: w.l, s: w.s}, brw, nil
}

// hijackedConn is a hijacked connection that gives its place back when closed.
type hijackedConn struct {
	net.Conn
	l *Limiter
	s *connSlot
}

// Close closes the connection and gives its place back.
func (c *hijackedConn) Close() error {
	err := c.Conn.Close()
	c.l.release(c.s)
	return err
}

// errNoSocket: the hijacked connection has no socket of its own to reach.
var errNoSocket = errors.New("connlimit: connection has no socket")

// SyscallConn reaches the socket beneath, as the connection's own would: the
// hijacker may read it directly (Socket.IO watches a probing WebSocket's socket).
func (c *hijackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSocket
	}
	return sc.SyscallConn()
}
