package socketio_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// End-to-end tests with the real socket.io-client (internal/sioclient).

func jsonEqual(t testing.TB, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("event data %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("data = %s, want %s", gb, wb)
	}
}

// expectEvents waits for events with the given offsets, in order, and returns them.
func expectEvents(t testing.TB, c *sioclient.Client, ids ...int64) []sioclient.Event {
	t.Helper()
	var got []sioclient.Event
	for _, id := range ids {
		e := c.WaitEvent()
		if e.Offset != strconv.FormatInt(id, 10) {
			t.Fatalf("event %v, want offset %d (after %v)", e, id, got)
		}
		got = append(got, e)
	}
	return got
}

// connectAndUpgrade waits for connect and, over the default transports, the upgrade,
// in whichever order they come.
func connectAndUpgrade(t testing.TB, c *sioclient.Client, upgrade bool) sioclient.Connect {
	t.Helper()
	var conn *sioclient.Connect
	upgraded := !upgrade
	for conn == nil || !upgraded {
		switch v := c.Next().(type) {
		case sioclient.Connect:
			conn = &v
		case sioclient.Upgrade:
			if v.Transport != "websocket" {
				t.Fatalf("upgraded to %q", v.Transport)
			}
			upgraded = true
		default:
			t.Fatalf("waiting for connect, got %T %+v", v, v)
		}
	}
	return *conn
}

func TestSeedHandlersReceiveEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		transports []string
		tokenIn    sioclient.TokenIn
	}{
		{"polling then websocket, auth", nil, sioclient.InAuth},
		{"websocket only, auth", []string{"websocket"}, sioclient.InAuth},
		{"polling only, auth", []string{"polling"}, sioclient.InAuth},
		{"polling then websocket, extraHeaders", nil, sioclient.InHeader},
		{"websocket only, extraHeaders", []string{"websocket"}, sioclient.InHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Pings every 100 ms: the client must answer them over every transport.
			b := setup(t, func(c *socketio.Config, _ *hub.Config) {
				c.PingInterval = 100 * time.Millisecond
				c.PingTimeout = 2 * time.Second
			})
			c := sioclient.Start(t, sioclient.Options{
				URL: b.base, Token: token(t, 1, time.Hour), TokenIn: tc.tokenIn,
				Transports: tc.transports, Events: allEvents,
			})
			conn := connectAndUpgrade(t, c, tc.transports == nil)
			if conn.Recovered || conn.ID == "" {
				t.Fatalf("connect = %+v", conn)
			}
			// With the default transports the ack may come before or after the upgrade
			// (connectAndUpgrade saw both); otherwise the transport is the one asked for.
			if tc.transports != nil && conn.Transport != tc.transports[0] {
				t.Errorf("connected over %q, want %q", conn.Transport, tc.transports[0])
			}
			id1 := b.log.publish(1, decode.AppointmentCreated, seedAppointment)
			id2 := b.log.publish(1, decode.AppointmentCheckin, seedCheckin)
			id3 := b.log.publish(1, decode.DoctorCreated, seedDoctor)
			got := expectEvents(t, c, id1, id2, id3)
			for i, w := range []struct{ name, data string }{
				{"appointments.created", seedAppointment},
				{"appointments.checkin", seedCheckin},
				{"doctors.created", seedDoctor},
			} {
				if got[i].Name != w.name {
					t.Errorf("event %d = %s, want %s", i, got[i].Name, w.name)
				}
				jsonEqual(t, got[i].Data, w.data)
			}
		})
	}
}

func TestRefusedConnect(t *testing.T) {
	t.Parallel()
	expired := tokenAt(t, 1, time.Now().Add(-2*time.Hour), time.Hour)
	wrongKey := "eyJhbGciOiJIUzI1NiJ9.eyJhY2NvdW50SWQiOjEsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJlLWZyb20tYW5vdGhlci1rZXktMDEyMzQ1"
	for _, tc := range []struct {
		name       string
		token      string
		tokenIn    sioclient.TokenIn
		path       string
		transports []string
		message    string
		data       string
	}{
		{"garbage", "not-a-token", sioclient.InAuth, "", nil, "malformed token", `{"code":"invalid_token"}`},
		{"wrong key", wrongKey, sioclient.InAuth, "", []string{"websocket"}, "invalid signature", `{"code":"invalid_token"}`},
		{"expired", expired, sioclient.InAuth, "", nil, "token expired", `{"code":"token_expired"}`},
		{"expired in header", expired, sioclient.InHeader, "", []string{"websocket"}, "token expired", `{"code":"token_expired"}`},
		{"missing", "", sioclient.Nowhere, "", nil, "missing token", `{"code":"missing_token"}`},
		{"other namespace", "", sioclient.InAuth, "/admin", nil, "Invalid namespace", `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tok := tc.token
			if tc.path != "" {
				tok = token(t, 1, time.Hour)
			}
			c := sioclient.Start(t, sioclient.Options{
				URL: b.base + tc.path, Token: tok, TokenIn: tc.tokenIn,
				Transports: tc.transports, Events: allEvents,
			})
			e := c.WaitConnectError()
			if e.Message != tc.message {
				t.Errorf("err.message = %q, want %q", e.Message, tc.message)
			}
			if string(e.Data) != tc.data {
				t.Errorf("err.data = %s, want %s", e.Data, tc.data)
			}
			if e.Active {
				t.Error("socket.active after connect_error: the client would retry")
			}
		})
	}
}

func TestAccountIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c1 := sioclient.Start(t, sioclient.Options{URL: b.base, Token: token(t, 1, time.Hour), Events: allEvents})
	c2 := sioclient.Start(t, sioclient.Options{URL: b.base, Token: token(t, 2, time.Hour), Transports: []string{"websocket"}, Events: allEvents})
	c1.WaitConnect()
	c2.WaitConnect()
	a2 := b.log.publish(2, decode.AppointmentCreated, `{"id":1,"accountId":2}`)
	a1 := b.log.publish(1, decode.AppointmentCreated, `{"id":2,"accountId":1}`)
	b2 := b.log.publish(2, decode.DoctorCreated, `{"id":3,"accountId":2}`)
	b1 := b.log.publish(1, decode.DoctorCreated, `{"id":4,"accountId":1}`)
	// Events arrive in log order: had account 2's reached client 1, they would come
	// before account 1's.
	expectEvents(t, c1, a1, b1)
	expectEvents(t, c2, a2, b2)
}

func TestEventsOutsideAllowlistAreNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.Events = decode.Set(0).With(decode.AppointmentCreated)
	})
	c := sioclient.Start(t, sioclient.Options{URL: b.base, Token: token(t, 1, time.Hour), Transports: []string{"websocket"}, Events: allEvents})
	c.WaitConnect()
	b.log.publish(1, decode.DoctorCreated, seedDoctor)
	id := b.log.publish(1, decode.AppointmentCreated, seedAppointment)
	expectEvents(t, c, id)
}

func TestRecoveryAfterTransportDrop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling then websocket", nil},
		{"websocket only", []string{"websocket"}},
		{"polling only", []string{"polling"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := sioclient.Start(t, sioclient.Options{
				URL: b.base, Token: token(t, 1, time.Hour), Transports: tc.transports, Events: allEvents,
				ReconnectionDelay: 50 * time.Millisecond, ReconnectionDelayMax: 100 * time.Millisecond,
			})
			first := connectAndUpgrade(t, c, tc.transports == nil)
			ids := []int64{
				b.log.publish(1, decode.AppointmentCreated, `{"id":1}`),
				b.log.publish(2, decode.AppointmentCreated, `{"id":2}`), // another account's
				b.log.publish(1, decode.AppointmentCheckin, `{"id":3}`),
			}
			expectEvents(t, c, ids[0], ids[2])

			c.CloseEngine()
			if d := c.WaitDisconnect(); d.Reason != "forced close" || !d.Active {
				t.Fatalf("disconnect = %+v", d)
			}
			missed := []int64{
				b.log.publish(1, decode.AppointmentCreated, `{"id":4}`),
				b.log.publish(1, decode.DoctorCreated, `{"id":5}`),
				b.log.publish(1, decode.AppointmentCheckin, `{"id":6}`),
			}
			again := c.WaitConnect()
			if !again.Recovered || again.ID != first.ID {
				t.Fatalf("reconnect = %+v, want recovered with id %q", again, first.ID)
			}
			expectEvents(t, c, missed...)
			// Live again, with no duplicate in between.
			expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"id":7}`))
		})
	}
}

// A client that saw no event sends its pid without an offset: it still recovers,
// from the position the pid holds.
func TestRecoveryWithoutEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := sioclient.Start(t, sioclient.Options{
		URL: b.base, Token: token(t, 1, time.Hour), Transports: []string{"websocket"}, Events: allEvents,
		ReconnectionDelay: 50 * time.Millisecond, ReconnectionDelayMax: 100 * time.Millisecond,
	})
	first := c.WaitConnect()
	c.CloseEngine()
	c.WaitDisconnect()
	id1 := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
	id2 := b.log.publish(1, decode.AppointmentCreated, `{"id":2}`)
	again := c.WaitConnect()
	if !again.Recovered || again.ID != first.ID {
		t.Fatalf("reconnect = %+v, want recovered with id %q", again, first.ID)
	}
	expectEvents(t, c, id1, id2)
}

// The pid needs no shared memory: another instance (or a restarted one) with the
// same secret recovers the client from the log.
func TestRecoveryOnAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		secret    string
		recovered bool
	}{
		{"same secret", testSecret, true},
		{"other secret", "another-recovery-secret-0123456789", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := sioclient.Start(t, sioclient.Options{
				URL: b.base, Token: token(t, 1, time.Hour), Events: allEvents,
				ReconnectionDelay: 50 * time.Millisecond, ReconnectionDelayMax: 100 * time.Millisecond,
			})
			first := connectAndUpgrade(t, c, true)
			expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"id":1}`))

			// A second instance over the same log; the server now routes to it.
			h2 := hub.New(hub.Config{ReplayPage: 3, ReplayFunc: b.log.replay, BoundsFunc: b.log.bounds}, b.log.head())
			b.log.attach(h2)
			hd2 := socketio.New(socketio.Config{Events: decode.AllKinds, RecoverySecret: []byte(tc.secret), Logger: testLogger(t)}, h2, b.verifier)
			t.Cleanup(func() { hd2.Close(); h2.Close(); hd2.Wait() })
			var next http.Handler = hd2
			b.handler.Store(&next)

			c.CloseEngine()
			c.WaitDisconnect()
			id2 := b.log.publish(1, decode.AppointmentCreated, `{"id":2}`)
			again := c.WaitConnect()
			if again.Recovered != tc.recovered || (again.ID == first.ID) != tc.recovered {
				t.Fatalf("reconnect = %+v (first id %q), want recovered=%v", again, first.ID, tc.recovered)
			}
			if tc.recovered {
				expectEvents(t, c, id2)
			} else if e := c.WaitEvent(); e.Name != socketio.EventResync {
				// The pid is not this instance's: the client missed id2 and is told so.
				t.Fatalf("first event = %v, want %s", e, socketio.EventResync)
			}
			expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"id":3}`))
		})
	}
}

// An offset older than the log keeps cannot be recovered: a new sid and pid, and
// notifier.resync first.
func TestResyncWhenOffsetPruned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	no := false
	c := sioclient.Start(t, sioclient.Options{
		URL: b.base, Token: token(t, 1, time.Hour), Transports: []string{"websocket"}, Events: allEvents,
		Reconnection: &no,
	})
	first := c.WaitConnect()
	expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"id":1}`))
	c.CloseEngine()
	c.WaitDisconnect()
	b.log.publish(1, decode.AppointmentCreated, `{"id":2}`)
	b.log.prune()
	c.Connect()
	again := c.WaitConnect()
	if again.Recovered || again.ID == first.ID {
		t.Fatalf("reconnect = %+v, want a new, unrecovered socket", again)
	}
	e := c.WaitEvent()
	if e.Name != socketio.EventResync || e.Offset != "" {
		t.Fatalf("first event = %v, want %s", e, socketio.EventResync)
	}
	expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"id":3}`))
}

func TestTokenExpiryDisconnects(t *testing.T) {
	t.Parallel()
	for _, transports := range [][]string{nil, {"websocket"}, {"polling"}} {
		t.Run(transportName(transports), func(t *testing.T) {
			t.Parallel()
			// The server's clock jumps, when first read (at CONNECT), to 300 ms before
			// the token expires, however long the client took to start.
			tok := token(t, 1, time.Hour)
			claims, err := newVerifier(t).Verify(tok, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var (
				once  sync.Once
				shift time.Duration
			)
			b := setup(t, func(c *socketio.Config, _ *hub.Config) {
				c.NowFunc = func() time.Time {
					now := time.Now()
					once.Do(func() { shift = claims.ExpiresAt.Add(-300 * time.Millisecond).Sub(now) })
					return now.Add(shift)
				}
			})
			c := sioclient.Start(t, sioclient.Options{URL: b.base, Token: tok, Transports: transports, Events: allEvents})
			c.WaitConnect()
			e := c.WaitEvent()
			if e.Name != socketio.EventDisconnect {
				t.Fatalf("event = %v, want %s", e, socketio.EventDisconnect)
			}
			jsonEqual(t, e.Data, `{"reason":"token expired"}`)
			if d := c.WaitDisconnect(); d.Reason != "io server disconnect" || d.Active {
				t.Fatalf("disconnect = %+v, want io server disconnect, not active", d)
			}
		})
	}
}

func transportName(ts []string) string {
	if ts == nil {
		return "default"
	}
	return ts[0]
}

// At shutdown the client is told why, then its transport closes without a
// DISCONNECT: it reconnects by itself (to another instance) and recovers there.
func TestShutdownLetsClientsReconnect(t *testing.T) {
	t.Parallel()
	for _, transports := range [][]string{{"websocket"}, {"polling"}} {
		t.Run(transportName(transports), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := sioclient.Start(t, sioclient.Options{URL: b.base, Token: token(t, 1, time.Hour), Transports: transports, Events: allEvents})
			c.WaitConnect()
			b.hub.Close()
			e := c.WaitEvent()
			if e.Name != socketio.EventDisconnect {
				t.Fatalf("event = %v, want %s", e, socketio.EventDisconnect)
			}
			jsonEqual(t, e.Data, `{"reason":"server shutting down"}`)
			if d := c.WaitDisconnect(); d.Reason != "transport close" || !d.Active {
				t.Fatalf("disconnect = %+v, want transport close, active", d)
			}
			b.hd.Close()
			b.hd.Wait()
		})
	}
}

// Missed events beyond the hub's ring come from the log, page by page, in order.
func TestRecoveryFromTheLog(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *socketio.Config, h *hub.Config) {
		h.ReplayBuffer = 2
		h.ReplayPage = 3
		h.BatchSize = 4
	})
	c := sioclient.Start(t, sioclient.Options{
		URL: b.base, Token: token(t, 1, time.Hour), Events: allEvents,
		ReconnectionDelay: 50 * time.Millisecond, ReconnectionDelayMax: 100 * time.Millisecond,
	})
	first := connectAndUpgrade(t, c, true)
	expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"n":0}`))
	c.CloseEngine()
	c.WaitDisconnect()
	var missed []int64
	for i := range 30 {
		if i%3 == 0 {
			b.log.publish(2, decode.AppointmentCreated, `{"other":true}`)
		}
		missed = append(missed, b.log.publish(1, []decode.Kind{decode.AppointmentCreated, decode.AppointmentCheckin, decode.DoctorCreated}[i%3], `{"n":`+strconv.Itoa(i+1)+`}`))
	}
	again := c.WaitConnect()
	if !again.Recovered || again.ID != first.ID {
		t.Fatalf("reconnect = %+v", again)
	}
	expectEvents(t, c, missed...)
	expectEvents(t, c, b.log.publish(1, decode.AppointmentCreated, `{"n":31}`))
}
