package socketio_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// Arrival-order tests: requests sent back to back on different connections take
// effect in the order they were sent, whichever of net/http's goroutines reaches the
// session first (arrival.go). Each sends the sequence of a test of the public
// Engine.IO protocol suite, over real TCP, many times.

const arrivalRounds = 200

// patient lets a loop hold a request back far longer than a loaded machine (-race,
// parallel packages) can delay a goroutine, so that the tests check the order and
// never the bound (arrivalWait, 100ms in production).
func patient(hd *socketio.Handler) { hd.SetArrivalWait(time.Minute) }

// watchHolds returns a channel of the sessions whose loop held a request back (up to
// size pending, the rest dropped) and a handler setup that makes the holds patient and
// reports them there.
func watchHolds(size int) (<-chan string, func(*socketio.Handler)) {
	held := make(chan string, size)
	return held, func(hd *socketio.Handler) {
		patient(hd)
		hd.OnHold(func(sid string) {
			select {
			case held <- sid:
			default:
			}
		})
	}
}

// rawConn dials the test server: one request per connection, as the suites' fetch
// sends them (Connection: close), and nothing pooled behind the test's back.
func (b *testBundle) rawConn(t testing.TB) net.Conn {
	t.Helper()
	u, err := url.Parse(b.base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes one request on c and returns what reads its response.
func send(t testing.TB, c net.Conn, method, target, body string) func() response {
	t.Helper()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: notifier\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return func() response {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return response{body: err.Error()}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return response{body: err.Error()}
		}
		return response{resp.StatusCode, string(b), resp.Header}
	}
}

func pollTarget(sid string) string {
	return socketio.Path + "?EIO=4&transport=polling&sid=" + url.QueryEscape(sid)
}

// TestCloseAfterGetInArrivalOrder: a GET and a POST carrying the close packet, sent
// back to back on two connections (the suite's "forcefully closes the session"):
// the GET is pending when the session closes and gets a noop, the POST ok, and the
// session is gone. net/http often reads the POST first: its connection's goroutine,
// started last, runs first.
func TestCloseAfterGetInArrivalOrder(t *testing.T) {
	t.Parallel()
	b := setupHandler(t, nil, patient)
	for i := range arrivalRounds {
		p := b.openPolling(t)
		getConn, postConn := b.rawConn(t), b.rawConn(t)
		get := send(t, getConn, http.MethodGet, pollTarget(p.sid), "")
		post := send(t, postConn, http.MethodPost, pollTarget(p.sid), "1")
		if r := get(); r.status != http.StatusOK || r.body != "6" {
			t.Fatalf("#%d: GET sent before the close = %d %q, want 200 6", i, r.status, r.body)
		}
		if r := post(); r.status != http.StatusOK || r.body != "ok" {
			t.Fatalf("#%d: POST 1 = %d %q, want 200 ok", i, r.status, r.body)
		}
		if r := p.get(); r.status != http.StatusBadRequest {
			t.Fatalf("#%d: GET after the close = %d %q, want 400", i, r.status, r.body)
		}
		getConn.Close()
		postConn.Close()
	}
}

// TestGetAfterProbeInArrivalOrder: 2probe and 5 over a probing WebSocket, then a
// polling GET on a new connection (the suite's "ignores HTTP requests with same sid
// after upgrade"): the GET meets the upgraded session and gets 400, even when the
// WebSocket's reader has not read the frames yet when the GET reaches the session;
// the WebSocket gets 3probe.
func TestGetAfterProbeInArrivalOrder(t *testing.T) {
	t.Parallel()
	b := setupHandler(t, nil, patient)
	for i := range arrivalRounds {
		p := b.openPolling(t)
		conn, _, err := b.dialWS(t, p.sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := &wsSession{t: t, conn: conn}
		w.send("2probe")
		w.send("5")
		getConn := b.rawConn(t)
		r := send(t, getConn, http.MethodGet, pollTarget(p.sid), "")()
		if r.status != http.StatusBadRequest {
			t.Fatalf("#%d: GET after 2probe and 5 = %d %q, want 400", i, r.status, r.body)
		}
		checkError(t, r, http.StatusBadRequest, 3)
		if got := w.read(); got != "3probe" {
			t.Fatalf("#%d: WebSocket got %q, want 3probe", i, got)
		}
		getConn.Close()
		conn.Close()
	}
}

// TestDelayedGetBeforeClose holds the GET's goroutine after net/http has read it and
// before it reaches the handler, until the POST with the close packet, sent after it,
// has reached the session: the loop holds the POST back for the GET's connection,
// accepted first, and the GET still gets the noop.
func TestDelayedGetBeforeClose(t *testing.T) {
	t.Parallel()
	held, holds := watchHolds(16) // the hold ends with the GET
	b := setupHandler(t, nil, holds)
	inner := *b.handler.Load()
	arrived := make(chan struct{}, 1)
	var gate atomic.Pointer[chan struct{}] // set while the next polling GET is to be held
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if release := gate.Load(); release != nil && r.Method == http.MethodGet && r.URL.Query().Get("sid") != "" {
			arrived <- struct{}{}
			<-*release
		}
		inner.ServeHTTP(w, r)
	})
	b.handler.Store(&h)
	for i := range 20 {
		p := b.openPolling(t)
		release := make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free) // a failed iteration must not leave the GET's goroutine stuck
		gate.Store(&release)
		getConn, postConn := b.rawConn(t), b.rawConn(t)
		get := send(t, getConn, http.MethodGet, pollTarget(p.sid), "")
		<-arrived // read by net/http, stuck before the handler
		gate.Store(nil)
		post := send(t, postConn, http.MethodPost, pollTarget(p.sid), "1")
		posted := make(chan response, 1)
		go func() { posted <- post() }()
		// The loop either holds the POST back, or (the bug) applies it and answers it.
		var early *response
	wait:
		for {
			select {
			case sid := <-held:
				if sid == p.sid {
					break wait
				}
				// A later look of an earlier iteration's loop, which held again.
			case r := <-posted:
				early = &r
				break wait
			}
		}
		free()
		if r := get(); r.status != http.StatusOK || r.body != "6" {
			t.Fatalf("#%d: GET sent before the close = %d %q, want 200 6 (POST answered first: %v)", i, r.status, r.body, early != nil)
		}
		r := <-posted
		if early != nil {
			r = *early
		}
		if r.status != http.StatusOK || r.body != "ok" {
			t.Fatalf("#%d: POST 1 = %d %q, want 200 ok", i, r.status, r.body)
		}
		p.gone()
	}
}

// TestProbeFramesBeforeLaterGet: the probe's reader has read 2probe and holds 5 unread
// (its read-ahead is full: the payload limit is 6 bytes), the loop is busy, and a
// GET arrives. The loop applies the GET only once the reader has caught up with what
// reached the server before it: the upgrade is done and the GET gets 400.
func TestProbeFramesBeforeLaterGet(t *testing.T) {
	t.Parallel()
	g := newLoopGate()
	b := setupHandler(t, nil, patient, func(c *socketio.Config, _ *hub.Config) {
		c.NowFunc = g.now
		c.MaxPayload = len("2probe") // 2probe fills the reader's read-ahead
	})
	for i := range 20 {
		// A handshake with a bearer token, so that a CONNECT within 6 bytes ("40")
		// verifies it, in NowFunc, where the gate holds the loop.
		r := do(t, http.MethodGet, b.eioURL("polling", ""), "", http.Header{"Authorization": {"Bearer x"}})
		if r.status != http.StatusOK {
			t.Fatalf("handshake: %d %s", r.status, r.body)
		}
		sid := parseOpen(t, r.body).SID
		g.release = make(chan struct{})
		g.armed.Store(true)
		connected := async(http.MethodPost, b.eioURL("polling", sid), "40")
		<-g.entered
		if r := <-connected; r.status != http.StatusOK || r.body != "ok" {
			t.Fatalf("CONNECT POST = %d %q", r.status, r.body)
		}
		conn, _, err := b.dialWS(t, sid, nil)
		if err != nil {
			close(g.release)
			t.Fatal(err)
		}
		w := &wsSession{t: t, conn: conn}
		w.send("2probe")
		w.send("5")
		if !b.hd.AwaitQueued(sid, 2) { // the probe and 2probe; 5 waits for room
			t.Fatal("session gone")
		}
		getConn := b.rawConn(t)
		get := send(t, getConn, http.MethodGet, pollTarget(sid), "")
		if !b.hd.AwaitQueued(sid, 3) {
			t.Fatal("session gone")
		}
		close(g.release)
		if r := get(); r.status != http.StatusBadRequest {
			t.Fatalf("#%d: GET after 2probe and 5 = %d %q, want 400", i, r.status, r.body)
		}
		for _, want := range []string{"3probe", refusedConnect} {
			if got := w.read(); got != want {
				t.Fatalf("#%d: WebSocket got %q, want %q", i, got, want)
			}
		}
		getConn.Close()
		conn.Close()
	}
}

// TestFirstRequestsOfOtherRoutesSettle: a connection whose first request is for
// another route stops counting as an earlier arrival once that request starts
// (Arrivals): the client's next polling request is not held back for it.
func TestFirstRequestsOfOtherRoutesSettle(t *testing.T) {
	t.Parallel()
	held, holds := watchHolds(1)
	b := setupHandler(t, nil, holds)
	p := b.openPolling(t)
	if r := send(t, b.rawConn(t), http.MethodGet, "/elsewhere", "")(); r.status != http.StatusNotFound {
		t.Fatalf("GET /elsewhere = %d", r.status)
	}
	p.mustPost("3")
	select {
	case <-held:
		t.Fatal("the POST was held back for the connection of /elsewhere")
	default:
	}
}

// TestConnectionsWithoutRequestSettle: a connection that closes before sending a
// request (a load balancer's TCP check) stops holding back its address's polling
// requests when the server sees it close, not arrivalWait later.
func TestConnectionsWithoutRequestSettle(t *testing.T) {
	t.Parallel()
	held, holds := watchHolds(1)
	closed := make(chan struct{}, 1)
	b := setupHandler(t, func(srv *http.Server) {
		next := srv.ConnState
		srv.ConnState = func(c net.Conn, state http.ConnState) {
			next(c, state)
			if state == http.StateClosed {
				select {
				case closed <- struct{}{}:
				default:
				}
			}
		}
	}, holds)
	p := b.openPolling(t)
	for range len(closed) {
		<-closed
	}
	b.rawConn(t).Close()
	<-closed
	p.mustPost("3")
	select {
	case <-held:
		t.Fatal("the POST was held back for a connection that had closed without a request")
	default:
	}
}
