package ws_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/connlimit"
	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/ws"
)

// limited is a /ws handler (and /healthz) behind a connlimit.Limiter, as the notifier
// serves them.
type limited struct {
	reg  *metrics.Registry
	addr string // host:port
}

// serveLimited serves cfg's handler behind a limiter of max connections on an
// http.Server whose keep-alive connections close after idle.
func serveLimited(t *testing.T, cfg ws.Config, max int, idle time.Duration) *limited {
	t.Helper()
	l := &memLog{}
	h := hub.New(hub.Config{ReplayFunc: l.replay, BoundsFunc: l.bounds}, 0)
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(secret), AccountClaim: auth.DefaultAccountClaim})
	if err != nil {
		t.Fatal(err)
	}
	s := &limited{reg: metrics.New()}
	conns := connlimit.New(max, s.reg)
	cfg.Events, cfg.Metrics, cfg.OverLimit = decode.AllKinds, s.reg, conns.OverLimit
	hd := ws.New(cfg, h, v)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", hd)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{
		Handler:           conns.Handler(mux),
		ConnContext:       conns.ConnContext,
		ConnState:         conns.ConnState,
		ReadHeaderTimeout: 20 * time.Second,
		IdleTimeout:       idle,
	}
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
		h.Close()
		hd.Wait()
		_ = srv.Close()
		<-served
	})
	s.addr = ln.Addr().String()
	return s
}

// dial opens a /ws connection as account 1 with d; the response is that of a refusal.
func (s *limited) dial(t *testing.T, d *websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), auth.DefaultAccountClaim, 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, resp, err := d.DialContext(t.Context(), "ws://"+s.addr+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err == nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, resp, err
}

func (s *limited) mustDial(t *testing.T) *websocket.Conn {
	t.Helper()
	conn, resp, err := s.dial(t, websocket.DefaultDialer)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, body(resp))
	}
	return conn
}

func body(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + strings.TrimSpace(string(b))
}

func (s *limited) metric(t *testing.T, series string) int64 {
	t.Helper()
	var b strings.Builder
	if err := s.reg.Write(&b); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no series %s in:\n%s", series, b.String())
	return 0
}

func (s *limited) checkMetric(t *testing.T, series string, want int64) {
	t.Helper()
	if got := s.metric(t, series); got != want {
		t.Errorf("%s = %d, want %d", series, got, want)
	}
}

// waitMetric waits for series to reach want: what the server does after a client
// saw its connection end (the count drops after the close) has no other signal.
func (s *limited) waitMetric(t *testing.T, series string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.metric(t, series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", series, s.metric(t, series), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readToEnd reads conn until it ends and returns the error it ended with.
func readToEnd(conn *websocket.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return err
		}
	}
}

// closeCode reads conn until it ends and returns the close code it ended with.
func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	return codeOf(t, readToEnd(conn))
}

func codeOf(t *testing.T, err error) int {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("ended without a close frame: %v", err)
	}
	return ce.Code
}

// TestPingFlood: pings count against ws.max_client_messages like messages: a
// flood of them is closed with 1008, not answered pong for pong.
func TestPingFlood(t *testing.T) {
	t.Parallel()
	s := serveLimited(t, ws.Config{MaxClientMessages: 5}, 0, time.Minute)
	conn := s.mustDial(t)
	var pongs atomic.Int64
	conn.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	ended := make(chan error, 1)
	go func() { ended <- readToEnd(conn) }()
	for range 100 {
		if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
			break // closed under us
		}
	}
	if c := codeOf(t, <-ended); c != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", c)
	}
	if n := pongs.Load(); n >= 50 {
		t.Fatalf("%d pongs for 100 pings at 5 a second", n)
	}
	s.checkMetric(t, `notifier_connections_closed_total{reason="client_flood",transport="ws"}`, 1)
}

// TestFragmentedMessageTooBig: a message over ws.read_limit is closed with 1009 and
// counted, whether it comes whole or in fragments that each fit.
func TestFragmentedMessageTooBig(t *testing.T) {
	t.Parallel()
	s := serveLimited(t, ws.Config{ReadLimit: 128}, 0, time.Minute)
	// A write buffer of the limit: the message of twice the limit leaves in two
	// frames that each fit.
	conn, resp, err := s.dial(t, &websocket.Dialer{WriteBufferSize: 128})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, body(resp))
	}
	w, err := conn.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(strings.Repeat("x", 256)))
	_ = w.Close()
	if c := closeCode(t, conn); c != websocket.CloseMessageTooBig {
		t.Fatalf("fragmented: close code %d, want 1009", c)
	}
	whole := s.mustDial(t)
	_ = whole.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 256)))
	if c := closeCode(t, whole); c != websocket.CloseMessageTooBig {
		t.Fatalf("whole: close code %d, want 1009", c)
	}
	s.waitMetric(t, `notifier_connections_closed_total{reason="message_too_big",transport="ws"}`, 2)
	// Fragments of a message within the limit are fine.
	calm, resp, err := s.dial(t, &websocket.Dialer{WriteBufferSize: 50})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, body(resp))
	}
	w, err = calm.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(strings.Repeat("x", 120)))
	_ = w.Close()
	if err := calm.WriteControl(websocket.PingMessage, []byte("after"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	pong := make(chan string, 1)
	calm.SetPongHandler(func(data string) error { pong <- data; return nil })
	go func() { _, _, _ = calm.ReadMessage() }()
	select {
	case got := <-pong:
		if got != "after" {
			t.Fatalf("pong %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no pong: the connection did not survive a fragmented message within the limit")
	}
}

// TestConnectionLimitCountsSockets: http.max_connections counts WebSockets until
// they close and idle keep-alive connections until IdleTimeout; a handshake over
// the limit gets 503 with a JSON reason and a metric, /healthz is still answered.
func TestConnectionLimitCountsSockets(t *testing.T) {
	t.Parallel()
	s := serveLimited(t, ws.Config{}, 3, 300*time.Millisecond)
	first := s.mustDial(t)
	s.mustDial(t)
	// An idle keep-alive connection holds the third place.
	keep, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	br := bufio.NewReader(keep)
	if _, err := io.WriteString(keep, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive GET: %v %v", err, resp)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	s.checkMetric(t, `notifier_http_connections`, 3)

	_, resp, err = s.dial(t, websocket.DefaultDialer)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth connection: %v %s, want 503", err, body(resp))
	}
	if got := body(resp); !strings.Contains(got, `{"error":"too many connections"}`) {
		t.Fatalf("refusal body %s", got)
	}
	s.checkMetric(t, `notifier_connections_refused_total{reason="limit",transport="ws"}`, 1)
	s.checkMetric(t, `notifier_http_connections_refused_total{reason="limit"}`, 1)

	// Over the limit, /healthz is answered, and the connection closed after it.
	r, err := http.Get("http://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !r.Close {
		t.Fatalf("healthz over the limit: %d, close %v", r.StatusCode, r.Close)
	}

	// The idle connection is closed after IdleTimeout, and its place freed.
	_ = keep.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: %v, want EOF", err)
	}
	s.waitMetric(t, `notifier_http_connections`, 2)
	s.mustDial(t)

	// A WebSocket that closes frees its place.
	_ = first.Close()
	s.waitMetric(t, `notifier_http_connections`, 2)
	s.mustDial(t)
	s.waitMetric(t, `notifier_connections{transport="ws"}`, 3)
}
