package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

const testSecret = "socketio-test-secret-0123456789abcdef"

// Seed payloads, as the seed documents show them (trimmed).
const (
	seedAppointment = `{"id":123,"date":"2025-01-23T00:00:00.000Z","startTime":"09:00","endTime":"09:15","accountId":1,"doctor":{"id":1,"name":"Dr. Victor"},"patient":{"id":456,"name":"João Silva","contact":{"phone":"(81) 99999-9999"}},"status":{"id":1,"name":"Agendado"}}`
	seedCheckin     = `{"id":123,"accountId":1,"status":{"id":2,"name":"Check-in"},"patient":{"id":456,"name":"João Silva"}}`
	seedDoctor      = `{"id":7,"name":"Dra. Ana","accountId":1,"doctorProcedures":[{"procedure":{"id":3,"name":"Raio-X"}}]}`
)

// allEvents is what the test clients listen to.
var allEvents = []string{
	"appointments.created", "appointments.checkin", "doctors.created",
	socketio.EventResync, socketio.EventDisconnect,
}

// memLog is an in-memory event log standing in for notifier.events: hubs only see
// it through ReplayFunc and BoundsFunc. Publishing appends and fans out to every
// hub attached, as several notifier instances reading one log would.
type memLog struct {
	mu     sync.Mutex
	msgs   []*hub.Message // ids 1..n
	pruned int64
	hubs   []*hub.Hub
}

func (l *memLog) attach(h *hub.Hub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hubs = append(l.hubs, h)
}

func (l *memLog) head() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.msgs))
}

// publish appends an event of account and publishes it; it returns its id.
func (l *memLog) publish(account int64, kind decode.Kind, data string) int64 {
	l.mu.Lock()
	id := int64(len(l.msgs) + 1)
	ev := enrich.Event{ID: id, Kind: kind, AccountID: account, Data: []byte(data)}
	l.msgs = append(l.msgs, hub.NewMessage(ev))
	hubs := append([]*hub.Hub(nil), l.hubs...)
	l.mu.Unlock()
	for _, h := range hubs {
		// Each instance encodes its own Message: a Message belongs to one hub.
		h.Publish([]*hub.Message{hub.NewMessage(ev)})
	}
	return id
}

// prune forgets everything up to the head, as the log's retention would.
func (l *memLog) prune() { l.pruneThrough(l.head()) }

// pruneThrough forgets the events up to id.
func (l *memLog) pruneThrough(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruned = id
}

// replay reads the log as eventlog.ReadAccount does: a range starting below what
// retention kept is refused with hub.ErrPruned.
func (l *memLog) replay(_ context.Context, account, after, through int64, limit int) ([]*hub.Message, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after < l.pruned {
		return nil, after, fmt.Errorf("replay account %d after %d: pruned through %d: %w", account, after, l.pruned, hub.ErrPruned)
	}
	var out []*hub.Message
	read := 0
	for id := after + 1; id <= through && id <= int64(len(l.msgs)); id++ {
		if read == limit {
			return out, id - 1, nil
		}
		read++
		m := l.msgs[id-1]
		if m.AccountID == account {
			// A new encoding of the same event, as after a restart.
			out = append(out, hub.NewMessage(enrich.Event{ID: m.ID, Kind: m.Kind, Name: m.Name, AccountID: m.AccountID, Data: m.Data, Origin: m.Origin}))
		}
	}
	return out, through, nil
}

func (l *memLog) bounds(context.Context) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pruned, int64(len(l.msgs)), nil
}

// clock is a settable hub clock, for lag.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	log      *memLog
	hub      *hub.Hub
	hd       *socketio.Handler
	srv      *httptest.Server
	base     string // srv.URL
	verifier *auth.Verifier
	metrics  *metrics.Registry
	handler  atomic.Pointer[http.Handler] // what srv serves: hd unless swapped
}

// tlog sends slog output to t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newVerifier(t testing.TB) *auth.Verifier {
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(testSecret), AccountClaim: auth.DefaultAccountClaim, Leeway: auth.DefaultLeeway})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// setup starts a server with its own hub and log. mutate adjusts the configs.
func setup(t testing.TB, mutate ...func(*socketio.Config, *hub.Config)) *testBundle {
	t.Helper()
	return setupServer(t, nil, mutate...)
}

// setupServer is setup with server, when not nil, adjusting the http.Server (its
// timeouts) before it starts.
func setupServer(t testing.TB, server func(*http.Server), mutate ...func(*socketio.Config, *hub.Config)) *testBundle {
	t.Helper()
	return setupHandler(t, server, nil, mutate...)
}

// setupHandler is setupServer with handler, when not nil, adjusting the Handler
// through its test seams (export_test.go) before the server starts.
func setupHandler(t testing.TB, server func(*http.Server), handler func(*socketio.Handler), mutate ...func(*socketio.Config, *hub.Config)) *testBundle {
	t.Helper()
	b := &testBundle{log: &memLog{}, verifier: newVerifier(t), metrics: metrics.New()}
	cfg := socketio.Config{
		Events:         decode.AllKinds,
		RecoverySecret: []byte(testSecret),
		Logger:         testLogger(t),
		Metrics:        b.metrics,
	}
	hcfg := hub.Config{ReplayPage: 3, ReplayFunc: b.log.replay, BoundsFunc: b.log.bounds}
	for _, m := range mutate {
		m(&cfg, &hcfg)
	}
	b.hub = hub.New(hcfg, 0)
	b.log.attach(b.hub)
	b.hd = socketio.New(cfg, b.hub, b.verifier)
	var h http.Handler = b.hd
	b.handler.Store(&h)
	mux := http.NewServeMux()
	mux.Handle(socketio.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*b.handler.Load()).ServeHTTP(w, r)
	}))
	// Wired as notifier.Service wires it: connections stamped at accept, and the
	// first requests of other routes settled by Arrivals.
	b.srv = httptest.NewUnstartedServer(b.hd.Arrivals(mux))
	b.srv.Config.ConnContext = b.hd.ConnContext
	b.srv.Config.ConnState = b.hd.ConnState
	if server != nil {
		server(b.srv.Config)
	}
	if handler != nil {
		handler(b.hd)
	}
	b.srv.Start()
	b.base = b.srv.URL
	t.Cleanup(func() {
		b.hd.Close()
		b.hub.Close()
		b.srv.Close()
		b.hd.Wait()
	})
	return b
}

// token mints a token for account valid for ttl from now.
func token(t testing.TB, account int64, ttl time.Duration) string {
	t.Helper()
	return tokenAt(t, account, time.Now(), ttl)
}

// tokenAt mints a token as if at now.
func tokenAt(t testing.TB, account int64, now time.Time, ttl time.Duration) string {
	t.Helper()
	s, err := auth.Mint([]byte(testSecret), auth.DefaultAccountClaim, account, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// --- raw protocol clients ---

// eioURL returns the Engine.IO URL for transport and sid.
func (b *testBundle) eioURL(transport, sid string) string {
	q := url.Values{"EIO": {"4"}, "transport": {transport}}
	if sid != "" {
		q.Set("sid", sid)
	}
	return b.base + socketio.Path + "?" + q.Encode()
}

type response struct {
	status int
	body   string
	header http.Header
}

func do(t testing.TB, method, u, body string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, string(b), resp.Header}
}

// openInfo is the open packet's payload.
type openInfo struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t testing.TB, packet string) openInfo {
	t.Helper()
	if !strings.HasPrefix(packet, "0") {
		t.Fatalf("open packet = %q", packet)
	}
	var o openInfo
	if err := json.Unmarshal([]byte(packet[1:]), &o); err != nil {
		t.Fatalf("open packet %q: %v", packet, err)
	}
	return o
}

// pollingSession is a raw Engine.IO polling session.
type pollingSession struct {
	t   testing.TB
	b   *testBundle
	sid string
}

func (b *testBundle) openPolling(t testing.TB) *pollingSession {
	t.Helper()
	r := do(t, http.MethodGet, b.eioURL("polling", ""), "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("handshake: %d %s", r.status, r.body)
	}
	o := parseOpen(t, r.body)
	if len(o.Upgrades) != 1 || o.Upgrades[0] != "websocket" {
		t.Fatalf("upgrades = %v", o.Upgrades)
	}
	return &pollingSession{t: t, b: b, sid: o.SID}
}

func (p *pollingSession) get() response {
	p.t.Helper()
	return do(p.t, http.MethodGet, p.b.eioURL("polling", p.sid), "", nil)
}

func (p *pollingSession) post(body string) response {
	p.t.Helper()
	return do(p.t, http.MethodPost, p.b.eioURL("polling", p.sid), body, nil)
}

// mustPost posts and expects ok.
func (p *pollingSession) mustPost(body string) {
	p.t.Helper()
	if r := p.post(body); r.status != http.StatusOK || r.body != "ok" {
		p.t.Fatalf("POST %q: %d %s", body, r.status, r.body)
	}
}

// packets GETs until it has n packets, answering pings.
func (p *pollingSession) packets(n int) []string {
	p.t.Helper()
	var out []string
	for len(out) < n {
		r := p.get()
		if r.status != http.StatusOK {
			p.t.Fatalf("GET: %d %s (have %q)", r.status, r.body, out)
		}
		for _, pk := range strings.Split(r.body, "\x1e") {
			switch pk {
			case "2":
				p.mustPost("3")
			case "6":
			default:
				out = append(out, pk)
			}
		}
	}
	return out
}

// gone checks that the session is closed: a GET still pending at the close gets
// the close packet, then the sid is unknown.
func (p *pollingSession) gone() {
	p.t.Helper()
	r := p.get()
	if r.status == http.StatusOK {
		if r.body != "1" {
			p.t.Fatalf("GET on a closed session = %q", r.body)
		}
		r = p.get()
	}
	if r.status != http.StatusBadRequest || r.body != `{"code":1,"message":"Session ID unknown"}` {
		p.t.Fatalf("GET on a closed session = %d %s", r.status, r.body)
	}
}

// connect sends CONNECT with the token and returns the ack's payload.
func (p *pollingSession) connect(tok string) string {
	p.t.Helper()
	p.mustPost(`40{"token":"` + tok + `"}`)
	ack := p.packets(1)[0]
	if !strings.HasPrefix(ack, `40{"sid":`) {
		p.t.Fatalf("CONNECT answered %q", ack)
	}
	return ack
}

// wsSession is a raw Engine.IO WebSocket-only session.
type wsSession struct {
	t    testing.TB
	conn *websocket.Conn
	open openInfo
}

func (b *testBundle) dialWS(t testing.TB, sid string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(b.eioURL("websocket", sid), "http")
	return websocket.DefaultDialer.Dial(u, header)
}

func (b *testBundle) openWS(t testing.TB) *wsSession {
	t.Helper()
	conn, _, err := b.dialWS(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := &wsSession{t: t, conn: conn}
	w.open = parseOpen(t, w.read())
	if len(w.open.Upgrades) != 0 {
		t.Fatalf("upgrades = %v over websocket", w.open.Upgrades)
	}
	return w
}

// read returns the next text frame, answering pings.
func (w *wsSession) read() string {
	w.t.Helper()
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, b, err := w.conn.ReadMessage()
		if err != nil {
			w.t.Fatalf("read: %v", err)
		}
		if typ != websocket.TextMessage {
			w.t.Fatalf("frame type %d", typ)
		}
		if string(b) == "2" {
			w.send("3")
			continue
		}
		return string(b)
	}
}

func (w *wsSession) send(s string) {
	w.t.Helper()
	if err := w.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatalf("write %q: %v", s, err)
	}
}

// sendRefused sends a message the server refuses by closing the connection: the
// close may come while the message is still being written, so the write may fail.
func (w *wsSession) sendRefused(s string) {
	w.t.Helper()
	_ = w.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

// connect sends CONNECT with the token and returns the ack.
func (w *wsSession) connect(tok string) string {
	w.t.Helper()
	w.send(`40{"token":"` + tok + `"}`)
	ack := w.read()
	if !strings.HasPrefix(ack, `40{"sid":`) {
		w.t.Fatalf("CONNECT answered %q", ack)
	}
	return ack
}

// closed waits until the server closes the connection; it fails on a text frame
// other than a ping.
func (w *wsSession) closed() {
	w.t.Helper()
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := w.conn.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				w.t.Fatal("connection still open")
			}
			return
		}
		if string(b) != "2" {
			w.t.Fatalf("got %q, want the connection closed", b)
		}
	}
}

// eventFrame is what the server sends for a hub message.
func eventFrame(name string, data string, id int64) string {
	return fmt.Sprintf(`42["%s",%s,"%d"]`, name, data, id)
}
