package connlimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/metrics"
)

// TestLimiterOverflow: past maxOverLimit connections waiting over the limit, new
// ones are closed at once; those waiting are each answered one request and closed,
// and every place is given back.
func TestLimiterOverflow(t *testing.T) {
	t.Parallel()
	reg := metrics.New()
	l := New(1, reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		if l.OverLimit(r) {
			w.Header().Set("Connection", "close")
			http.Error(w, "full", http.StatusServiceUnavailable)
			return
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		_, _ = io.Copy(io.Discard, c) // until the client closes
		_ = c.Close()
	})
	srv := &http.Server{Handler: l.Handler(mux), ConnContext: l.ConnContext, ConnState: l.ConnState, ReadHeaderTimeout: 20 * time.Second}
	addr := serve(t, srv)
	request := func(c net.Conn, path string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	gauge := func() int64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return int64(l.open + l.over)
	}

	held := dial()
	if resp := request(held, "/hold"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first connection: %s", resp.Status)
	}
	waiting := make([]net.Conn, maxOverLimit)
	for i := range waiting {
		waiting[i] = dial()
	}
	const dropped = 5
	for range dropped {
		c := dial()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("connection past the overflow: %v, want EOF", err)
		}
	}
	if got := l.refused.Value(); got != maxOverLimit {
		t.Errorf("refused = %d, want %d", got, maxOverLimit)
	}
	if got := l.overflow.Value(); got != dropped {
		t.Errorf("overflow = %d, want %d", got, dropped)
	}
	if resp := request(waiting[0], "/hold"); resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Fatalf("handshake over the limit: %s, close %v", resp.Status, resp.Close)
	}
	if resp := request(waiting[1], "/healthz"); resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("healthz over the limit: %s, close %v", resp.Status, resp.Close)
	}
	for _, c := range waiting {
		_ = c.Close()
	}
	_ = held.Close()
	deadline := time.Now().Add(20 * time.Second)
	for gauge() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted after every one closed", gauge())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := l.gauge.Value(); n != 0 {
		t.Fatalf("notifier_http_connections = %d", n)
	}
}

// TestHijackedConnKeepsItsSocket: a connection hijacked through the Limiter still
// offers its socket (syscall.Conn), as the server's own does, so that a hijacker can
// watch it; one without a socket says so.
func TestHijackedConnKeepsItsSocket(t *testing.T) {
	t.Parallel()
	l := New(0, metrics.New())
	got := make(chan error, 1)
	srv := &http.Server{
		Handler: l.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				got <- err
				return
			}
			defer c.Close()
			sc, ok := c.(syscall.Conn)
			if !ok {
				got <- errors.New("the hijacked connection is not a syscall.Conn")
				return
			}
			rc, err := sc.SyscallConn()
			if err == nil {
				err = rc.Control(func(uintptr) {})
			}
			got <- err
		})),
		ConnContext: l.ConnContext, ConnState: l.ConnState, ReadHeaderTimeout: 20 * time.Second,
	}
	c, err := net.Dial("tcp", serve(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("hijacked socket: %v", err)
	}

	pipe, other := net.Pipe()
	defer pipe.Close()
	defer other.Close()
	if _, err := (&hijackedConn{Conn: pipe, l: l, s: &connSlot{}}).SyscallConn(); !errors.Is(err, errNoSocket) {
		t.Fatalf("SyscallConn of a pipe = %v, want errNoSocket", err)
	}
}

// serve runs srv on a loopback port until the test ends and returns its address.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return ln.Addr().String()
}
