package socketio_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// Raw protocol tests: net/http and gorilla speaking Engine.IO by hand, for what the
// real client never does.

func checkError(t testing.TB, r response, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%s), want %d", r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Code == nil || body.Message == "" {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if *body.Code != code {
		t.Fatalf("body %s, want code %d", r.body, code)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.openPolling(t)
	base := b.base + socketio.Path
	for _, tc := range []struct {
		name, method, url string
		status, code      int
		body              string
	}{
		{"no EIO", "GET", base + "?transport=polling", 400, 5, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO 3", "GET", base + "?EIO=3&transport=polling", 400, 5, ""},
		{"unknown transport", "GET", base + "?EIO=4&transport=flash", 400, 0, `{"code":0,"message":"Transport unknown"}`},
		{"POST handshake", "POST", base + "?EIO=4&transport=polling", 400, 2, `{"code":2,"message":"Bad handshake method"}`},
		{"unknown sid GET", "GET", b.eioURL("polling", "nope"), 400, 1, `{"code":1,"message":"Session ID unknown"}`},
		{"unknown sid POST", "POST", b.eioURL("polling", "nope"), 400, 1, ""},
		{"unknown sid websocket", "GET", b.eioURL("websocket", "nope"), 400, 1, ""},
		{"PUT on a session", "PUT", b.eioURL("polling", p.sid), 400, 3, ""},
		{"websocket handshake without upgrade", "GET", b.eioURL("websocket", ""), 400, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, "", nil)
			checkError(t, r, tc.status, tc.code)
			if tc.body != "" && r.body != tc.body {
				t.Errorf("body = %s, want %s", r.body, tc.body)
			}
		})
	}
	// The session survived the PUT.
	p.mustPost("3")
}

func TestPollingExchange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.openPolling(t)
	ack := p.connect(token(t, 1, time.Hour))
	var a struct{ SID, PID string }
	if err := json.Unmarshal([]byte(ack[2:]), &a); err != nil || a.SID == "" || a.PID == "" || a.SID == p.sid {
		t.Fatalf("ack %q: %v", ack, err)
	}
	id1 := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	id2 := b.log.publish(1, decode.DoctorCreated, `{"id":2}`)
	// Both queued before the GET: one answer, joined by \x1e.
	r := p.get()
	want := eventFrame("appointments.created", `{"id":1}`, id1) + "\x1e" + eventFrame("doctors.created", `{"id":2}`, id2)
	if r.status != 200 || r.body != want {
		t.Fatalf("GET = %d %q, want %q", r.status, r.body, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	// The client's close: 41 then 1; the session is gone.
	p.mustPost("41\x1e1")
	p.gone()
}

func TestOverlappingGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	results := make(chan response, 2)
	for range 2 {
		go func() { results <- p.get() }()
	}
	// Whichever came second got 400 and closed the session; the first got close.
	r1, r2 := <-results, <-results
	if r1.status != 200 {
		r1, r2 = r2, r1
	}
	if r1.status != 200 || r1.body != "1" {
		t.Fatalf("pending GET = %d %q, want 200 1", r1.status, r1.body)
	}
	checkError(t, r2, 400, 3)
	p.gone()
}

func TestOversizedPost(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.MaxPayload = 100 })
	p := b.openPolling(t)
	big := `42["x","` + strings.Repeat("a", 200) + `"]`
	checkError(t, p.post(big), 413, 3)
	// Without Content-Length (chunked) the body is cut at the limit as well.
	req, err := http.NewRequest(http.MethodPost, b.eioURL("polling", p.sid), struct{ *strings.Reader }{strings.NewReader(big)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || req.ContentLength != 0 {
		t.Fatalf("chunked POST: %d (content length %d), want 413", resp.StatusCode, req.ContentLength)
	}
	// A packet over the limit on a WebSocket closes it.
	w := b.openWS(t)
	w.sendRefused(big)
	w.closed()
}

func TestMalformedPackets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, packet string }{
		{"engine.io type", "9"},
		{"empty record", "3\x1e\x1e3"},
		{"socket.io type", "49"},
		{"bad JSON", `42["x",`},
		{"event not an array", `42{"a":1}`},
		{"connect with an array", `40["x"]`},
		{"ping from the client", "2"},
		{"connect error from the client", `44{"message":"x"}`},
	} {
		t.Run(tc.name+" polling", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.openPolling(t)
			r := p.post(tc.packet)
			if r.status != 200 && r.status != 400 {
				t.Fatalf("POST = %d %s", r.status, r.body)
			}
			p.gone()
		})
		if strings.Contains(tc.packet, "\x1e") {
			continue
		}
		t.Run(tc.name+" websocket", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			w := b.openWS(t)
			w.send(tc.packet)
			w.closed()
		})
	}
}

func TestBinaryPacketsCloseTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A WebSocket binary frame.
	w := b.openWS(t)
	w.connect(token(t, 1, time.Hour))
	if err := w.conn.WriteMessage(websocket.BinaryMessage, []byte{4, 1, 2}); err != nil {
		t.Fatal(err)
	}
	w.closed()
	// A Socket.IO BINARY_EVENT.
	w = b.openWS(t)
	w.connect(token(t, 1, time.Hour))
	w.send(`451-["x",{"_placeholder":true,"num":0}]`)
	w.closed()
	// A base64 binary packet in a polling payload.
	p := b.openPolling(t)
	checkError(t, p.post("bAQID"), 400, 3)
	p.gone()
}

func TestClientEventsAreIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sender, listener := b.openWS(t), b.openWS(t)
	sender.connect(token(t, 1, time.Hour))
	listener.connect(token(t, 1, time.Hour))
	sender.send(`42["appointments.created",{"id":666}]`)
	sender.send(`421["appointments.created",{"id":667}]`)
	sender.send(`431["ok"]`)
	sender.send(`42/other,["x"]`)
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	want := eventFrame("appointments.created", `{"id":1}`, id)
	// Nothing relayed to the other socket, nor echoed or acknowledged to the sender,
	// which is still connected.
	if got := listener.read(); got != want {
		t.Fatalf("listener got %q, want %q", got, want)
	}
	if got := sender.read(); got != want {
		t.Fatalf("sender got %q, want %q", got, want)
	}
}

func TestMissingPongClosesTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PingTimeout = 100 * time.Millisecond
	})
	w := b.openWS(t)
	if w.open.PingInterval != 50 || w.open.PingTimeout != 100 {
		t.Fatalf("open = %+v", w.open)
	}
	w.connect(token(t, 1, time.Hour)) // answers pings while it waits
	w.closed()                        // does not answer: closed after the timeout

	// A polling client that stops polling is reaped the same way.
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	for {
		r := p.get() // the ping, never answered
		if r.status != 200 {
			checkError(t, r, 400, 1)
			break
		}
		if r.body == "1" {
			checkError(t, p.get(), 400, 1)
			break
		}
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.ConnectTimeout = 50 * time.Millisecond })
	b.openWS(t).closed()
}

func TestInvalidNamespace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.openWS(t)
	w.send(`40/admin,{"token":"x"}`)
	if got := w.read(); got != `44/admin,{"message":"Invalid namespace"}` {
		t.Fatalf("got %q", got)
	}
	// "/" still works on the same session.
	w.connect(token(t, 1, time.Hour))
	// A second CONNECT to "/" is a protocol error.
	w.send(`40{"token":"x"}`)
	w.closed()
}

// The upgrade, step by step: 2probe, 3probe, noop to the pending GET, 5, then the
// queue flushed over the WebSocket and polling refused.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	pending := make(chan response, 1)
	go func() { pending <- p.get() }()
	conn, _, err := b.dialWS(t, p.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := &wsSession{t: t, conn: conn}
	w.send("2probe")
	if got := w.read(); got != "3probe" {
		t.Fatalf("probe answered %q", got)
	}
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Fatalf("pending GET = %d %q, want noop", r.status, r.body)
	}
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`) // queued meanwhile
	w.send("5")
	if got, want := w.read(), eventFrame("appointments.created", `{"id":1}`, id); got != want {
		t.Fatalf("after upgrade got %q, want %q", got, want)
	}
	checkError(t, p.get(), 400, 3)
	checkError(t, p.post("3"), 400, 3)
	// A second WebSocket for the same session is refused.
	c2, _, err := b.dialWS(t, p.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	(&wsSession{t: t, conn: c2}).closed()
	// The upgraded session lives on.
	id = b.log.publish(1, decode.AppointmentCreated, `{"id":2}`)
	if got, want := w.read(), eventFrame("appointments.created", `{"id":2}`, id); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A probe that sends anything but 5 after 3probe is dropped; polling goes on.
func TestFailedProbeKeepsPolling(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	conn, _, err := b.dialWS(t, p.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &wsSession{t: t, conn: conn}
	w.send("2probe")
	if got := w.read(); got != "3probe" {
		t.Fatalf("probe answered %q", got)
	}
	w.send("4garbage")
	w.closed()
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	if got := p.packets(1)[0]; got != eventFrame("appointments.created", `{"id":1}`, id) {
		t.Fatalf("polling got %q", got)
	}
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Unix(1e9, 0)}
	b := setup(t, func(_ *socketio.Config, h *hub.Config) {
		h.MaxLag = time.Minute
		h.NowFunc = c.Now
	})
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	// The client stops polling while events wait, longer than the hub allows.
	b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	c.advance(2 * time.Minute)
	got := p.packets(2)
	want := []string{`42["notifier.disconnect",{"reason":"slow consumer"}]`, "41"}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := b.hub.Subscribers(); n != 0 {
		t.Fatalf("subscribers = %d", n)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.AllowedOrigins = []string{"https://dash.example"}
	})
	ok := http.Header{"Origin": {"https://dash.example"}}
	bad := http.Header{"Origin": {"https://evil.example"}}

	pre := do(t, http.MethodOptions, b.eioURL("polling", ""), "", http.Header{
		"Origin":                         {"https://dash.example"},
		"Access-Control-Request-Method":  {"GET"},
		"Access-Control-Request-Headers": {"authorization"},
	})
	if pre.status != http.StatusNoContent ||
		pre.header.Get("Access-Control-Allow-Origin") != "https://dash.example" ||
		!strings.Contains(strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")), "authorization") ||
		pre.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight = %d %v", pre.status, pre.header)
	}
	r := do(t, http.MethodGet, b.eioURL("polling", ""), "", ok)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Fatalf("handshake = %d %v", r.status, r.header)
	}
	checkError(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", bad), 403, 4)
	if _, resp, err := b.dialWS(t, "", bad); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("websocket from another origin: %v", err)
	}
	conn, _, err := b.dialWS(t, "", ok)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// Handler.Close ends sessions that have no socket too, so Wait returns.
func TestCloseEndsIdleSessions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.openWS(t)
	p := b.openPolling(t)
	b.hd.Close()
	b.hd.Wait()
	w.closed()
	p.gone()
	checkError(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", nil), 503, 4)
}

func TestOverlappingPost(t *testing.T) {
	t.Parallel()
	// However many noops the loop below sends, they are not a flood.
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.MaxClientPackets = 1 << 20 })
	p := b.openPolling(t)
	// The first POST's body never ends while the second one is sent.
	body, feed := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, b.eioURL("polling", p.sid), body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	_, _ = feed.Write([]byte("6")) // the request is on its way
	// A noop POST succeeds until the first POST holds the session's one slot.
	for {
		r := p.post("6")
		if r.status == 400 {
			checkError(t, r, 400, 3)
			break
		}
		if r.status != 200 {
			t.Fatalf("POST = %d %s", r.status, r.body)
		}
	}
	feed.Close()
	if code := <-first; code != 200 && code != 400 {
		t.Fatalf("first POST = %d", code)
	}
	p.gone()
}
