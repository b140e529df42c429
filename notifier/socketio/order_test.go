package socketio_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// Ordering tests: a session's inputs take effect in the order the server read
// them, even when they wait for a busy loop together. The tests keep the loop busy
// in Config.NowFunc, which it calls when it verifies a CONNECT.

// loopGate holds a session loop in Config.NowFunc once armed.
type loopGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{} // of the current hold
}

func newLoopGate() *loopGate { return &loopGate{entered: make(chan struct{})} }

func (g *loopGate) now() time.Time {
	if g.armed.CompareAndSwap(true, false) {
		release := g.release
		g.entered <- struct{}{}
		<-release
	}
	return time.Now()
}

// hold posts a CONNECT with a malformed token to p and returns once p's loop is held
// verifying it and the POST is answered (the loop took it). release lets the loop
// go on; it runs at cleanup too, so that a failed test does not leave it held.
func (g *loopGate) hold(t *testing.T, p *pollingSession) (release func()) {
	t.Helper()
	g.release = make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(release)
	g.armed.Store(true)
	posted := async(http.MethodPost, p.b.eioURL("polling", p.sid), `40{"token":"x"}`)
	<-g.entered
	if r := <-posted; r.status != http.StatusOK || r.body != "ok" {
		t.Fatalf("CONNECT POST = %d %q", r.status, r.body)
	}
	return release
}

// async sends a request from its own goroutine; status 0 means it failed.
func async(method, u, body string) <-chan response {
	out := make(chan response, 1)
	go func() {
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			out <- response{body: err.Error()}
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- response{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			out <- response{body: err.Error()}
			return
		}
		out <- response{resp.StatusCode, string(b), resp.Header}
	}()
	return out
}

const refusedConnect = `44{"message":"malformed token","data":{"code":"invalid_token"}}`

// TestGetThenCloseInOrder: a GET, then a POST with the close packet, both waiting
// for the loop: the GET is answered (with what the loop had queued: here the
// refused CONNECT's error), then the session closes. It never gets 400.
func TestGetThenCloseInOrder(t *testing.T) {
	t.Parallel()
	g := newLoopGate()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.NowFunc = g.now })
	for i := range 50 {
		p := b.openPolling(t)
		release := g.hold(t, p)
		get := async(http.MethodGet, b.eioURL("polling", p.sid), "")
		if !b.hd.AwaitQueued(p.sid, 1) {
			t.Fatal("session gone")
		}
		closed := async(http.MethodPost, b.eioURL("polling", p.sid), "1")
		if !b.hd.AwaitQueued(p.sid, 2) {
			t.Fatal("session gone")
		}
		release()
		if r := <-get; r.status != http.StatusOK || r.body != refusedConnect {
			t.Fatalf("#%d: GET = %d %q, want 200 %s", i, r.status, r.body, refusedConnect)
		}
		if r := <-closed; r.status != http.StatusOK || r.body != "ok" {
			t.Fatalf("#%d: POST 1 = %d %q", i, r.status, r.body)
		}
		p.gone()
	}
}

// TestGetAfterUpgradeInOrder: 2probe and 5 over the probe, then a GET, all waiting
// for the loop: the upgrade happens first and the GET gets 400, as polling after an
// upgrade does; the WebSocket gets 3probe, then what was queued.
func TestGetAfterUpgradeInOrder(t *testing.T) {
	t.Parallel()
	g := newLoopGate()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.NowFunc = g.now })
	for i := range 50 {
		p := b.openPolling(t)
		release := g.hold(t, p)
		conn, _, err := b.dialWS(t, p.sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := &wsSession{t: t, conn: conn}
		w.send("2probe")
		w.send("5")
		if !b.hd.AwaitQueued(p.sid, 3) { // the probe and both frames
			t.Fatal("session gone")
		}
		get := async(http.MethodGet, b.eioURL("polling", p.sid), "")
		if !b.hd.AwaitQueued(p.sid, 4) {
			t.Fatal("session gone")
		}
		release()
		if r := <-get; r.status != http.StatusBadRequest {
			t.Fatalf("#%d: GET after the upgrade = %d %q, want 400", i, r.status, r.body)
		} else {
			checkError(t, r, http.StatusBadRequest, 3)
		}
		for _, want := range []string{"3probe", refusedConnect} {
			if got := w.read(); got != want {
				t.Fatalf("#%d: WebSocket got %q, want %q", i, got, want)
			}
		}
		conn.Close()
	}
}

// TestProtocolErrorSendsCloseFrame: a packet that breaks the protocol over a
// WebSocket ends the session with a close frame without a status code, as the
// reference server sends, which the client reports as 1005, not 1006.
func TestProtocolErrorSendsCloseFrame(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name    string
		connect bool
		send    func(*websocket.Conn) error
	}{
		{"engine.io parse error", false, text("abc")},
		{"socket.io parse error", false, text("4abc")},
		{"event not an array", true, text("42{}")},
		{"bad ack id", true, text(`42abc["x"]`)},
		{"binary frame", true, func(c *websocket.Conn) error { return c.WriteMessage(websocket.BinaryMessage, []byte{4, 1}) }},
		{"duplicate connect", true, text(`40{"token":"x"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := b.openWS(t)
			if tc.connect {
				w.connect(token(t, 1, time.Hour))
			}
			if err := tc.send(w.conn); err != nil {
				t.Fatal(err)
			}
			for {
				_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, msg, err := w.conn.ReadMessage()
				if err == nil {
					if string(msg) != "2" {
						t.Fatalf("got %q, want the close frame", msg)
					}
					continue
				}
				if !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
					t.Fatalf("read: %v, want a close frame without a status code (1005)", err)
				}
				break
			}
		})
	}
}

func text(s string) func(*websocket.Conn) error {
	return func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte(s)) }
}

// TestConnectTimeoutDespiteHeartbeat: a session whose client keeps the heartbeat
// going but never gets a socket connected (its CONNECT is refused) is ended by
// Config.ConnectTimeout, not kept alive by its pongs.
func TestConnectTimeoutDespiteHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.PingInterval = 10 * time.Millisecond
		c.PingTimeout = time.Minute
		c.ConnectTimeout = 100 * time.Millisecond
	})
	w := b.openWS(t)
	w.send(`40{"token":"x"}`)
	if got := w.read(); got != refusedConnect {
		t.Fatalf("CONNECT answered %q", got)
	}
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := w.conn.ReadMessage()
		if err != nil {
			break
		}
		if string(msg) != "2" {
			t.Fatalf("got %q", msg)
		}
		w.send("3")
	}
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="connect_timeout",transport="socketio"}`, 1)
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="ping_timeout",transport="socketio"}`, 0)
}
