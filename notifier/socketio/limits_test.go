package socketio_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// metric returns the value of series (name and labels, as /metrics shows them).
func metric(t testing.TB, reg *metrics.Registry, series string) int64 {
	t.Helper()
	var b strings.Builder
	if err := reg.Write(&b); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no series %s in:\n%s", series, b.String())
	return 0
}

func checkMetric(t testing.TB, reg *metrics.Registry, series string, want int64) {
	t.Helper()
	if got := metric(t, reg, series); got != want {
		t.Errorf("%s = %d, want %d", series, got, want)
	}
}

// checkRefusal checks a refused handshake: status, Engine.IO code 4 and message.
func checkRefusal(t testing.TB, r response, status int, message string) {
	t.Helper()
	checkError(t, r, status, 4)
	var body struct{ Message string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Message != message {
		t.Fatalf("body %s, want message %q", r.body, message)
	}
}

// TestUnauthenticatedLimit: past Config.MaxUnauthenticated sessions without a
// connected socket, handshakes over polling and WebSocket get 503 and a JSON reason;
// a CONNECT takes its session out of the count, a DISCONNECT or a close gives the
// place back.
func TestUnauthenticatedLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.MaxUnauthenticated = 3 })
	ps := []*pollingSession{b.openPolling(t), b.openPolling(t), b.openPolling(t)}
	const full = "too many unauthenticated sessions"
	checkRefusal(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", nil), http.StatusServiceUnavailable, full)
	if _, resp, err := b.dialWS(t, "", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket handshake past the limit: %v, want 503", err)
	}
	checkMetric(t, b.metrics, `notifier_connections_refused_total{reason="unauthenticated_limit",transport="socketio"}`, 2)
	checkMetric(t, b.metrics, `notifier_socketio_sessions`, 3)
	checkMetric(t, b.metrics, `notifier_socketio_sessions_unauthenticated`, 3)

	ps[0].connect(token(t, 1, time.Hour))
	checkMetric(t, b.metrics, `notifier_socketio_sessions_unauthenticated`, 2)
	extra := b.openPolling(t)
	checkRefusal(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", nil), http.StatusServiceUnavailable, full)

	// DISCONNECT: the session counts again (the second POST waits for the loop to
	// have handled the first).
	ps[0].mustPost("41")
	ps[0].mustPost("6")
	checkMetric(t, b.metrics, `notifier_socketio_sessions_unauthenticated`, 4)
	checkRefusal(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", nil), http.StatusServiceUnavailable, full)

	for _, p := range []*pollingSession{ps[0], ps[1], extra} {
		p.mustPost("1")
		p.gone()
	}
	checkMetric(t, b.metrics, `notifier_socketio_sessions_unauthenticated`, 1)
	b.openPolling(t)
	b.openWS(t)
	checkMetric(t, b.metrics, `notifier_socketio_sessions`, 3)
	checkMetric(t, b.metrics, `notifier_connections_refused_total{reason="unauthenticated_limit",transport="socketio"}`, 4)
}

// TestUnauthenticatedPerAddress: past Config.MaxUnauthenticatedPerAddress sessions
// from one address, a handshake gets 429; a session that connects leaves room.
func TestUnauthenticatedPerAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.MaxUnauthenticatedPerAddress = 2 })
	p := b.openPolling(t)
	b.openWS(t)
	const full = "too many unauthenticated sessions from this address"
	checkRefusal(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", nil), http.StatusTooManyRequests, full)
	if _, resp, err := b.dialWS(t, "", nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("WebSocket handshake past the limit: %v, want 429", err)
	}
	checkMetric(t, b.metrics, `notifier_connections_refused_total{reason="address_limit",transport="socketio"}`, 2)
	p.connect(token(t, 1, time.Hour))
	b.openPolling(t)
}

// TestConnectTimeoutFreesThePlace: a session that never sends CONNECT is closed
// after Config.ConnectTimeout and counted.
func TestConnectTimeoutFreesThePlace(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.ConnectTimeout = 50 * time.Millisecond
		c.MaxUnauthenticated = 1
	})
	b.openWS(t).closed()
	b.openPolling(t).gone() // the place is free again, until the timeout
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="connect_timeout",transport="socketio"}`, 2)
}

// TestUnauthenticatedPayload: before its socket connects, a session may send no more
// than a CONNECT needs, whatever Config.MaxPayload; after, up to MaxPayload.
func TestUnauthenticatedPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := `42["x","` + strings.Repeat("a", 20<<10) + `"]`
	p := b.openPolling(t)
	checkError(t, p.post(big), http.StatusRequestEntityTooLarge, 3)
	// A CONNECT with the largest token the verifier reads is not too big: it is
	// refused for what it is.
	p.mustPost(`40{"token":"` + strings.Repeat("a", 8<<10) + `"}`)
	if got := p.packets(1)[0]; !strings.HasPrefix(got, `44{"message":`) {
		t.Fatalf("CONNECT with a long token answered %q", got)
	}
	p.connect(token(t, 1, time.Hour))
	p.mustPost(big)

	w := b.openWS(t)
	w.sendRefused(big)
	w.closed()
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="message_too_big",transport="socketio"}`, 1)
	w = b.openWS(t)
	w.connect(token(t, 1, time.Hour))
	w.send(big)
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	if got, want := w.read(), eventFrame("appointments.created", `{"id":1}`, id); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestClientPacketFlood: more than Config.MaxClientPackets packets a second close
// the session, over either transport, before CONNECT or after; so do WebSocket
// pings.
func TestClientPacketFlood(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) { c.MaxClientPackets = 5 })
	flood := func(w *wsSession, typ int, data string) {
		t.Helper()
		for range 100 {
			var err error
			if typ == websocket.PingMessage {
				err = w.conn.WriteControl(typ, []byte(data), time.Now().Add(time.Second))
			} else {
				err = w.conn.WriteMessage(typ, []byte(data))
			}
			if err != nil {
				break // closed under us
			}
		}
		w.closed()
	}
	flood(b.openWS(t), websocket.TextMessage, "6")
	w := b.openWS(t)
	w.connect(token(t, 1, time.Hour))
	flood(w, websocket.TextMessage, `42["x",1]`)
	flood(b.openWS(t), websocket.PingMessage, "")

	p := b.openPolling(t)
	p.mustPost(strings.Repeat("6\x1e", 19) + "6")
	p.gone()
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="too_many_client_messages",transport="socketio"}`, 4)

	// Within the budget, nothing happens.
	calm := b.openWS(t)
	calm.send("6")
	calm.connect(token(t, 1, time.Hour))
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	if got, want := calm.read(), eventFrame("appointments.created", `{"id":1}`, id); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestLongPollOutlivesReadTimeout: a polling GET waits for packets longer than the
// server's ReadTimeout, and a WebSocket lives on past it: each sets its own
// deadlines.
func TestLongPollOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	b := setupServer(t, func(s *http.Server) {
		s.ReadTimeout = 300 * time.Millisecond
		s.IdleTimeout = time.Minute
	}, func(c *socketio.Config, _ *hub.Config) { c.PingInterval = time.Second })
	p := b.openPolling(t)
	p.connect(token(t, 1, time.Hour))
	if r := p.get(); r.status != http.StatusOK || r.body != "2" {
		t.Fatalf("GET = %d %q, want the ping a second after the handshake", r.status, r.body)
	}
	p.mustPost("3")
	id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	if got, want := p.packets(1)[0], eventFrame("appointments.created", `{"id":1}`, id); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	w := b.openWS(t)
	w.connect(token(t, 1, time.Hour))
	_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, ping, err := w.conn.ReadMessage(); err != nil || string(ping) != "2" {
		t.Fatalf("read %q, %v, want the ping", ping, err)
	}
	w.send("3")
	id = b.log.publish(1, decode.AppointmentCreated, `{"id":2}`)
	if got, want := w.read(), eventFrame("appointments.created", `{"id":2}`, id); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	checkMetric(t, b.metrics, `notifier_connections_closed_total{reason="poll_closed_prematurely",transport="socketio"}`, 0)
}

// TestOverLimitRefusesHandshakes: on a connection over http.max_connections a
// handshake or an upgrade gets 503; a polling session's own requests are served.
func TestOverLimitRefusesHandshakes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.OverLimit = func(r *http.Request) bool { return r.Header.Get("X-Over") != "" }
	})
	p := b.openPolling(t)
	h := http.Header{"X-Over": {"1"}}
	checkRefusal(t, do(t, http.MethodGet, b.eioURL("polling", ""), "", h), http.StatusServiceUnavailable, "too many connections")
	if _, resp, err := b.dialWS(t, "", h); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket handshake over the limit: %v, want 503", err)
	}
	if _, resp, err := b.dialWS(t, p.sid, h); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade over the limit: %v, want 503", err)
	}
	if r := do(t, http.MethodPost, b.eioURL("polling", p.sid), "6", h); r.status != http.StatusOK {
		t.Fatalf("POST of a session over the limit = %d %s", r.status, r.body)
	}
	checkMetric(t, b.metrics, `notifier_connections_refused_total{reason="limit",transport="socketio"}`, 3)
}
