package notifier_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/sioclient"
)

// Resource attacks on the HTTP server, each bounded in count and time, on 127.0.0.1.
// They measure the process's goroutines and resident memory before, during and after
// and require the goroutines to come back near where they were. They do not call
// t.Parallel: Go runs them before the parallel tests, so the counts are theirs.

// usage is the process's goroutines and resident memory at one moment.
type usage struct {
	goroutines int
	rssMiB     float64
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, RSS %.1f MiB", u.goroutines, u.rssMiB)
}

// measure samples the usage, after returning what the garbage collector can free to
// the system.
func measure(t *testing.T) usage {
	t.Helper()
	debug.FreeOSMemory()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var kib float64
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
		}
	}
	return usage{goroutines: runtime.NumGoroutine(), rssMiB: kib / 1024}
}

// settle waits for the goroutines to come back to at most limit (the server ends a
// connection's goroutines after the client saw it end: there is no signal to wait
// on) and returns the usage then.
func settle(t *testing.T, limit int) usage {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > limit {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), limit, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	return measure(t)
}

// goroutineSlack is how far above the baseline the goroutines may settle: the test's
// own HTTP client and the pool's background work come and go.
const goroutineSlack = 15

// metricValue reads series (name and labels) from a /metrics page.
func metricValue(t *testing.T, page, series string) int64 {
	t.Helper()
	for line := range strings.Lines(page) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no series %s in:\n%s", series, page)
	return 0
}

func (b *testBundle) eioURL(sid string) string {
	q := url.Values{"EIO": {"4"}, "transport": {"polling"}}
	if sid != "" {
		q.Set("sid", sid)
	}
	return b.base + "/socket.io/?" + q.Encode()
}

// eioError is an Engine.IO error body.
type eioError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// tryHandshake opens a polling session with client; a refusal comes back as its
// status and body. It may run in any goroutine.
func (b *testBundle) tryHandshake(client *http.Client) (sid string, status int, refusal eioError, err error) {
	resp, err := client.Get(b.eioURL(""))
	if err != nil {
		return "", 0, refusal, fmt.Errorf("handshake: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, refusal, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(body, &refusal); err != nil {
			return "", 0, refusal, fmt.Errorf("handshake refused with %d %q: %w", resp.StatusCode, body, err)
		}
		return "", resp.StatusCode, refusal, nil
	}
	var open struct{ SID string }
	if len(body) == 0 || body[0] != '0' || json.Unmarshal(body[1:], &open) != nil || open.SID == "" {
		return "", 0, refusal, fmt.Errorf("handshake answered %q", body)
	}
	return open.SID, http.StatusOK, refusal, nil
}

// handshake opens a polling session.
func (b *testBundle) handshake(t *testing.T) string {
	t.Helper()
	sid, status, why, err := b.tryHandshake(http.DefaultClient)
	if err != nil || status != http.StatusOK {
		t.Fatalf("handshake: %d %+v %v", status, why, err)
	}
	return sid
}

// sioPost posts an Engine.IO payload to a polling session and expects "ok".
func (b *testBundle) sioPost(t *testing.T, sid, payload string) {
	t.Helper()
	resp, err := http.Post(b.eioURL(sid), "text/plain", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("POST %.20q: %d %s", payload, resp.StatusCode, body)
	}
}

// sioGet returns a polling GET's answer.
func (b *testBundle) sioGet(t *testing.T, client *http.Client, sid string) string {
	t.Helper()
	resp, err := client.Get(b.eioURL(sid))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// sioConnect sends CONNECT with a token of account on a polling session and waits
// for the ack.
func (b *testBundle) sioConnect(t *testing.T, sid string, account int64) {
	t.Helper()
	b.sioPost(t, sid, `40{"token":"`+token(t, account, time.Hour)+`"}`)
	if ack := b.sioGet(t, http.DefaultClient, sid); !strings.HasPrefix(ack, `40{"sid":`) {
		t.Fatalf("CONNECT answered %q", ack)
	}
}

// TestExhaustUnauthenticatedSessions (review finding 7): handshakes that never
// CONNECT, as fast as four keep-alive connections carry them, open no more than
// socketio.max_unauthenticated_per_address sessions; the rest get 429 and a JSON
// reason, counted; the sessions opened are closed after socketio.connect_timeout.
func TestExhaustUnauthenticatedSessions(t *testing.T) {
	const attempts, perAddress, workers = 2000, 20, 4
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.SocketIO.MaxUnauthenticated = 50
			c.SocketIO.MaxUnauthenticatedPerAddress = perAddress
			c.SocketIO.ConnectTimeout = 2 * time.Second
		}
	})
	before := measure(t)
	tr := &http.Transport{MaxConnsPerHost: workers, MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var sids []string
	var refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range attempts / workers {
				sid, status, why, err := b.tryHandshake(client)
				if err != nil {
					t.Error(err)
					return
				}
				if status == http.StatusOK {
					mu.Lock()
					sids = append(sids, sid)
					mu.Unlock()
					continue
				}
				if status != http.StatusTooManyRequests || why.Message != "too many unauthenticated sessions from this address" {
					t.Errorf("refusal %d %+v, want 429", status, why)
					return
				}
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	during := measure(t)
	page := b.metrics(t)
	t.Logf("%d handshakes in %s: %d sessions, %d refused", attempts, elapsed.Round(time.Millisecond), len(sids), refused.Load())
	if open := metricValue(t, page, "notifier_socketio_sessions_unauthenticated"); open > perAddress {
		t.Errorf("%d unauthenticated sessions open, want at most %d", open, perAddress)
	}
	if got := metricValue(t, page, `notifier_connections_refused_total{reason="address_limit",transport="socketio"}`); got != refused.Load() {
		t.Errorf("refusals counted %d, answered %d", got, refused.Load())
	}
	// Only sessions that timed out meanwhile can have left room for more.
	if elapsed < 2*time.Second && len(sids) != perAddress {
		t.Errorf("%d sessions opened, want %d", len(sids), perAddress)
	}
	if grew := during.goroutines - before.goroutines; grew > 3*perAddress+goroutineSlack {
		t.Errorf("goroutines grew by %d with %d sessions allowed", grew, perAddress)
	}
	// Each session is closed at its connect timeout: a pending GET gets the close
	// packet (or, once it is gone, 400).
	for _, sid := range sids {
		wg.Go(func() {
			resp, err := http.Get(b.eioURL(sid))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusOK && string(body) != "1" {
				t.Errorf("pending GET = %q, want the close packet", body)
			}
		})
	}
	wg.Wait()
	http.DefaultClient.CloseIdleConnections()
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("before: %s; during: %s; after: %s", before, during, after)
	page = b.metrics(t)
	if n := metricValue(t, page, "notifier_socketio_sessions"); n != 0 {
		t.Errorf("notifier_socketio_sessions = %d after the timeout", n)
	}
	if n := metricValue(t, page, `notifier_connections_closed_total{reason="connect_timeout",transport="socketio"}`); n != int64(len(sids)) {
		t.Errorf("connect timeouts counted %d, want %d", n, len(sids))
	}
}

// holdBodies POSTs to each session, on a connection of its own, a body that
// announces size bytes and holds its last kilobyte. It measures the usage once
// every body was written (or refused under way) and once every request ended, and
// returns the larger, with how the server ended each request: the status line of
// its answer, "closed" when it closed without one, or "still held" after
// waitTimeout.
func (b *testBundle) holdBodies(t *testing.T, sids []string, size int) (usage, map[string]int) {
	t.Helper()
	body := bytes.Repeat([]byte("6"), size-1000)
	var written sync.WaitGroup
	done := make(chan string, len(sids))
	for _, sid := range sids {
		written.Add(1)
		go func() {
			c, err := net.Dial("tcp", b.base[len("http://"):])
			if err != nil {
				written.Done()
				done <- "dial: " + err.Error()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitTimeout))
			if _, err := fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", sid, size); err == nil {
				_, _ = c.Write(body) // fails if the server answered and closed first
			}
			written.Done()
			line, err := bufio.NewReader(c).ReadString('\n')
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				done <- "still held"
			case err != nil:
				done <- "closed"
			default:
				done <- strings.TrimSpace(line)
			}
		}()
	}
	written.Wait()
	during := measure(t)
	answers := map[string]int{}
	for range sids {
		answers[<-done]++
	}
	if u := measure(t); u.rssMiB > during.rssMiB {
		during = u
	}
	return during, answers
}

// TestExhaustHeldBodies (review finding 8): polling POSTs that announce a megabyte
// and hold it. A session that has not connected may send no more than a CONNECT
// needs: 413 at once. One that has may send socketio.max_payload, but the body must
// arrive within http.read_timeout: 400 after it, and the session is closed.
func TestExhaustHeldBodies(t *testing.T) {
	const unauthenticated, connected, size = 100, 10, 1_000_000
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.SocketIO.MaxUnauthenticatedPerAddress = 0
			c.HTTP.HandshakeTimeout, c.HTTP.ReadTimeout = time.Second, 2*time.Second
		}
	})
	var open, joined []string
	for range unauthenticated {
		open = append(open, b.handshake(t))
	}
	for range connected {
		sid := b.handshake(t)
		b.sioConnect(t, sid, 1)
		joined = append(joined, sid)
	}
	http.DefaultClient.CloseIdleConnections()

	before := measure(t)
	during, answers := b.holdBodies(t, open, size)
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("%d sessions without a socket: before: %s; during: %s; after: %s; answers %v", unauthenticated, before, during, after, answers)
	if n := answers["HTTP/1.1 413 Request Entity Too Large"] + answers["closed"]; n != unauthenticated {
		t.Errorf("answers %v: want every body refused at once", answers)
	}
	if grew := during.rssMiB - before.rssMiB; grew > 32 {
		t.Errorf("RSS grew by %.1f MiB with %d bodies held", grew, unauthenticated)
	}

	before = after
	during, answers = b.holdBodies(t, joined, size)
	after = settle(t, before.goroutines+goroutineSlack)
	t.Logf("%d connected sessions: before: %s; during: %s; after: %s; answers %v", connected, before, during, after, answers)
	if n := answers["HTTP/1.1 400 Bad Request"]; n != connected {
		t.Errorf("answers %v: want every body cut at the read timeout", answers)
	}
	page := b.metrics(t)
	if n := metricValue(t, page, `notifier_connections_closed_total{reason="transport_error",transport="socketio"}`); n != connected {
		t.Errorf("sessions closed for a body cut short: %d, want %d", n, connected)
	}
}

// TestExhaustSlowBodies (review finding 8): POST bodies that trickle a byte every
// 100 ms are cut at http.read_timeout with 400, well before they would end.
func TestExhaustSlowBodies(t *testing.T) {
	const n = 50
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.SocketIO.MaxUnauthenticatedPerAddress = 0
			c.HTTP.HandshakeTimeout, c.HTTP.ReadTimeout = time.Second, time.Second
		}
	})
	var sids []string
	for range n {
		sids = append(sids, b.handshake(t))
	}
	http.DefaultClient.CloseIdleConnections()
	before := measure(t)
	done := make(chan string, n)
	for _, sid := range sids {
		go func() {
			c, err := net.Dial("tcp", b.base[len("http://"):])
			if err != nil {
				done <- err.Error()
				return
			}
			defer c.Close()
			_, _ = fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", sid)
			r := bufio.NewReader(c)
			for end := time.Now().Add(waitTimeout); time.Now().Before(end); {
				if _, err := c.Write([]byte("6")); err != nil {
					done <- "closed"
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // the trickle's pace
				line, err := r.ReadString('\n')
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				if err != nil {
					done <- "closed"
					return
				}
				done <- strings.TrimSpace(line)
				return
			}
			done <- "still trickling"
		}()
	}
	answers := map[string]int{}
	var during usage
	for i := range n {
		answers[<-done]++
		if i == 0 {
			during = measure(t) // the others still trickle
		}
	}
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("before: %s; during: %s; after: %s; answers %v", before, during, after, answers)
	if answers["HTTP/1.1 400 Bad Request"]+answers["closed"] != n {
		t.Errorf("answers %v: want every slow body cut", answers)
	}
}

// TestExhaustConnectionLimit (review finding 9): http.max_connections counts every
// socket: unauthenticated Socket.IO WebSockets past it are refused before the upgrade
// (503, JSON reason, counted), so is /ws, and /healthz and /metrics are still
// answered; closed sockets give their places back.
func TestExhaustConnectionLimit(t *testing.T) {
	const limit, attempts = 20, 200
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.HTTP.MaxConnections = limit
			c.SocketIO.MaxUnauthenticated, c.SocketIO.MaxUnauthenticatedPerAddress = 0, 0
		}
	})
	before := measure(t)
	u := "ws" + b.base[len("http"):] + "/socket.io/?EIO=4&transport=websocket"
	var open []*websocket.Conn
	refused := 0
	for range attempts {
		conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			open = append(open, conn)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("refusal: %v %s", err, respBody(resp))
		}
		var why eioError
		if body, _ := io.ReadAll(resp.Body); json.Unmarshal(body, &why) != nil || why != (eioError{4, "too many connections"}) {
			t.Fatalf("refusal body %q", body)
		}
		refused++
	}
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	during := measure(t)
	if len(open) != limit || refused != attempts-limit {
		t.Errorf("%d WebSockets accepted, %d refused; want %d and %d", len(open), refused, limit, attempts-limit)
	}
	if _, resp, err := b.tryDial(t, token(t, 1, time.Hour), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/ws past the limit: %v %s, want 503", err, respBody(resp))
	}
	health, err := http.Get(b.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Fatalf("/healthz past the limit: %d", health.StatusCode)
	}
	page := b.metrics(t)
	for series, want := range map[string]int64{
		"notifier_http_connections":                                               limit + 1, // and this scrape
		`notifier_http_connections_refused_total{reason="limit"}`:                 attempts - limit + 3,
		`notifier_connections_refused_total{reason="limit",transport="socketio"}`: attempts - limit,
		`notifier_connections_refused_total{reason="limit",transport="ws"}`:       1,
		"notifier_socketio_sessions":                                              limit,
		`notifier_http_connections_refused_total{reason="overflow"}`:              0,
	} {
		if got := metricValue(t, page, series); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
	for _, c := range open {
		_ = c.Close()
	}
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("before: %s; during (%d sockets): %s; after: %s", before, len(open), during, after)
	// Every place is back: the server closes each socket after the client did, and
	// a scrape then counts only itself.
	deadline := time.Now().Add(waitTimeout)
	for metricValue(t, b.scrape(t), "notifier_http_connections") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("connections still counted after every socket closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape reads /metrics on a connection of its own, closed after it.
func (b *testBundle) scrape(t *testing.T) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(b.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestExhaustIdleConnections (review finding 9): idle keep-alive connections are
// closed after http.idle_timeout.
func TestExhaustIdleConnections(t *testing.T) {
	const n = 50
	b := setup(t, func(o *setupOpts) {
		// A read timeout longer than the wait: only the idle timeout closes them.
		o.mutate = func(c *configT) { c.HTTP.IdleTimeout, c.HTTP.ReadTimeout = 500*time.Millisecond, time.Minute }
	})
	before := measure(t)
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", b.base[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	during := measure(t)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection %d: %v, want closed by the server", i, err)
		}
	}
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("before: %s; during (%d idle): %s; after: %s", before, n, during, after)
}

// TestExhaustHeaderBytes (review finding 9): request headers past
// http.max_header_bytes get 431.
func TestExhaustHeaderBytes(t *testing.T) {
	b := setup(t)
	req, err := http.NewRequest(http.MethodGet, b.base+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("x", 40<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// TestExhaustReadTimeoutSparesWebSockets (review finding 9): http.read_timeout bounds
// requests, not the WebSockets upgraded from them, nor a polling GET that waits for
// packets: each lives past it and gets an event after a ping.
func TestExhaustReadTimeoutSparesWebSockets(t *testing.T) {
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.HTTP.HandshakeTimeout, c.HTTP.ReadTimeout = 500*time.Millisecond, 500*time.Millisecond
			c.WS.PingInterval, c.WS.PongWait = 1500*time.Millisecond, 5*time.Second
			c.SocketIO.PingInterval = 1500 * time.Millisecond
		}
	})
	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		conn, resp, err := websocket.DefaultDialer.Dial("ws"+b.base[len("http"):]+"/ws?access_token="+token(t, 3, time.Hour), nil)
		if err != nil {
			t.Fatalf("dial: %v %s", err, respBody(resp))
		}
		defer conn.Close()
		pinged := make(chan struct{}, 1)
		conn.SetPingHandler(func(data string) error {
			select {
			case pinged <- struct{}{}:
			default:
			}
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		frames := make(chan []byte, 16)
		go func() {
			defer close(frames)
			for {
				_, p, err := conn.ReadMessage()
				if err != nil {
					return
				}
				frames <- p
			}
		}()
		select {
		case <-pinged:
		case p, ok := <-frames:
			t.Fatalf("before the first ping: %q (open %v)", p, ok)
		case <-time.After(waitTimeout):
			t.Fatal("no ping")
		}
		id := b.insertAppointment(t, 3)
		select {
		case p := <-frames:
			if !strings.Contains(string(p), `"appointments.created"`) || !strings.Contains(string(p), `"id":`+itoa(id)+`,`) {
				t.Fatalf("got %s, want appointment %d", p, id)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no event")
		}
	})
	t.Run("socket.io websocket", func(t *testing.T) {
		t.Parallel()
		conn, resp, err := websocket.DefaultDialer.Dial("ws"+b.base[len("http"):]+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatalf("dial: %v %s", err, respBody(resp))
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		read := func() string {
			t.Helper()
			_, p, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			return string(p)
		}
		if open := read(); !strings.HasPrefix(open, "0{") {
			t.Fatalf("open packet %q", open)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+token(t, 4, time.Hour)+`"}`)); err != nil {
			t.Fatal(err)
		}
		if ack := read(); !strings.HasPrefix(ack, `40{"sid":`) {
			t.Fatalf("ack %q", ack)
		}
		if ping := read(); ping != "2" {
			t.Fatalf("got %q, want the ping", ping)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
			t.Fatal(err)
		}
		b.insertAppointment(t, 4)
		if ev := read(); !strings.HasPrefix(ev, `42["appointments.created",`) {
			t.Fatalf("got %q, want the event", ev)
		}
	})
	t.Run("socket.io polling", func(t *testing.T) {
		t.Parallel()
		sid := b.handshake(t)
		b.sioConnect(t, sid, 5)
		if got := b.sioGet(t, http.DefaultClient, sid); got != "2" {
			t.Fatalf("long poll answered %q, want the ping", got)
		}
		b.sioPost(t, sid, "3")
		b.insertAppointment(t, 5)
		if got := b.sioGet(t, http.DefaultClient, sid); !strings.HasPrefix(got, `42["appointments.created",`) {
			t.Fatalf("got %q, want the event", got)
		}
	})
}

// TestExhaustClientFrames (review finding 10): what clients may send is bounded on
// both endpoints: /ws pings count as messages (1008), a Socket.IO socket that has not
// connected may not send half a megabyte, and packets past
// socketio.max_client_packets a second close the session.
func TestExhaustClientFrames(t *testing.T) {
	b := setup(t)
	before := measure(t)
	c := b.dial(t, 1, nil)
	for range 1000 {
		if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
			break
		}
	}
	if ce := c.closeErr(t); ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("ping flood: close %d %q, want 1008", ce.Code, ce.Text)
	}
	u := "ws" + b.base[len("http"):] + "/socket.io/?EIO=4&transport=websocket"
	big := `42["x","` + strings.Repeat("a", 500_000) + `"]`
	for _, tc := range []struct {
		name, packet string
		connect      bool
	}{
		{"half a megabyte before CONNECT", big, false},
		{"a flood of packets after CONNECT", `42["x",1]`, true},
	} {
		conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatalf("dial: %v %s", err, respBody(resp))
		}
		if tc.connect {
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+token(t, 1, time.Hour)+`"}`))
		}
		sent := 0
		for ; sent < 100; sent++ {
			if conn.WriteMessage(websocket.TextMessage, []byte(tc.packet)) != nil {
				break
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: still open after %d packets", tc.name, sent)
				}
				break
			}
		}
		conn.Close()
	}
	page := b.metrics(t)
	for series, want := range map[string]int64{
		`notifier_connections_closed_total{reason="client_flood",transport="ws"}`:                   1,
		`notifier_connections_closed_total{reason="message_too_big",transport="socketio"}`:          1,
		`notifier_connections_closed_total{reason="too_many_client_messages",transport="socketio"}`: 1,
	} {
		if got := metricValue(t, page, series); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	after := settle(t, before.goroutines+goroutineSlack)
	t.Logf("before: %s; after: %s", before, after)
}

// TestSocketIORefusedHandshakeRetried: the real socket.io-client takes a refused
// handshake (429 past socketio.max_unauthenticated_per_address) as a connect_error
// it retries, and connects once there is room.
func TestSocketIORefusedHandshakeRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.SocketIO.MaxUnauthenticatedPerAddress = 1 }
	})
	holder := b.handshake(t) // the address's one place
	c := b.sio(t, 1, func(o *sioclient.Options) {
		o.ReconnectionDelay, o.ReconnectionDelayMax = 100*time.Millisecond, 200*time.Millisecond
	})
	if ce := c.WaitConnectError(); !ce.Active {
		t.Fatalf("connect_error %+v: the client gave up", ce)
	}
	b.sioPost(t, holder, "1") // the holder leaves
	for connected := false; !connected; {
		switch v := c.Next().(type) {
		case sioclient.ConnectError:
			if !v.Active {
				t.Fatalf("connect_error %+v: the client gave up", v)
			}
		case sioclient.Connect:
			connected = true
		case sioclient.Upgrade: // polling, then the upgrade, in either order with the ack
		default:
			t.Fatalf("waiting for the connect, got %T %+v", v, v)
		}
	}
	id := b.insertAppointment(t, 1)
	if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(id) {
		t.Fatalf("got %s, want appointment %d", e, id)
	}
	if n := metricValue(t, b.metrics(t), `notifier_connections_refused_total{reason="address_limit",transport="socketio"}`); n < 1 {
		t.Fatalf("refusals counted: %d", n)
	}
}
