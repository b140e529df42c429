package notifier_test

import (
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// TestSIOResyncWhenRecoveryRefused: the contract with the real socket.io-client when
// recovery cannot work. A client received an event; the notifier restarts with
// another socketio.recovery_secret (as a rotation, or instances keyed apart, or RS256
// without a secret would have it), and an event commits while it is down. The
// client reconnects by itself: its pid is refused, so socket.recovered is false and
// notifier.resync comes before any event, which tells a dashboard that never looks
// at socket.recovered that it missed something; then live events flow again.
func TestSIOResyncWhenRecoveryRefused(t *testing.T) {
	t.Parallel()
	withSecret := func(secret string) func(*configT) {
		return func(c *configT) { c.SocketIO.RecoverySecret = secret }
	}
	b := setup(t, func(o *setupOpts) { o.mutate = withSecret("recovery-secret-before-0123456789abcdef") })
	c := b.sio(t, 1, func(o *sioclient.Options) {
		o.Transports = []string{"websocket"}
		o.Events = append(append([]string(nil), seedEvents...), socketio.EventResync, socketio.EventDisconnect)
		o.ReconnectionDelay = 100 * time.Millisecond
		o.ReconnectionDelayMax = 200 * time.Millisecond
	})
	first := c.WaitConnect()
	seen := b.insertAppointment(t, 1)
	if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(seen) || e.Offset == "" {
		t.Fatalf("got %s, want appointment %d with an offset", e, seen)
	}

	b.stop(t)
	missed := b.insertAppointment(t, 1)
	b.start(t, withSecret("recovery-secret-after-0123456789abcdef"))

	// The client saw the shutdown, then (reconnection attempts may fail while the
	// notifier is down) connects again.
	var again sioclient.Connect
	for connected := false; !connected; {
		switch v := c.Next().(type) {
		case sioclient.Event:
			if v.Name != socketio.EventDisconnect {
				t.Fatalf("before the reconnect got %s", v)
			}
		case sioclient.Disconnect:
		case sioclient.ConnectError:
			if !v.Active {
				t.Fatalf("connect_error %+v: the client gave up", v)
			}
		case sioclient.Connect:
			again, connected = v, true
		default:
			t.Fatalf("waiting for the reconnect, got %T %+v", v, v)
		}
	}
	if again.Recovered || again.ID == first.ID {
		t.Fatalf("reconnect = %+v (first %+v), want a new, unrecovered socket", again, first)
	}
	// An event right away: the resync is due before it.
	live := b.insertAppointment(t, 1)
	if e := c.WaitEvent(); e.Name != socketio.EventResync {
		t.Fatalf("first event after the reconnect = %s, want %s (appointment %d was missed)", e, socketio.EventResync, missed)
	}
	if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(live) {
		t.Fatalf("got %s, want appointment %d", e, live)
	}
}
