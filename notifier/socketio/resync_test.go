package socketio_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// resyncFrame is EventResync as the server sends it.
const resyncFrame = `42["notifier.resync",{}]`

// logBuffer collects a handler's log output for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// setupLogged is setup with the handler's log also kept in the returned buffer.
func setupLogged(t *testing.T, mutate ...func(*socketio.Config, *hub.Config)) (*testBundle, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(tlog{t}, logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return setup(t, append([]func(*socketio.Config, *hub.Config){func(c *socketio.Config, _ *hub.Config) { c.Logger = logger }}, mutate...)...), logs
}

// ack is a CONNECT acknowledgement's payload.
type ack struct{ SID, PID string }

func parseAck(t testing.TB, packet string) ack {
	t.Helper()
	var a ack
	if !strings.HasPrefix(packet, "40{") || json.Unmarshal([]byte(packet[2:]), &a) != nil || a.SID == "" || a.PID == "" {
		t.Fatalf("CONNECT answered %q", packet)
	}
	return a
}

// connectWith sends CONNECT with the given auth fields besides the token and returns
// the ack.
func (w *wsSession) connectWith(tok string, fields map[string]any) ack {
	w.t.Helper()
	auth := map[string]any{"token": tok}
	for k, v := range fields {
		auth[k] = v
	}
	b, err := json.Marshal(auth)
	if err != nil {
		w.t.Fatal(err)
	}
	w.send("40" + string(b))
	return parseAck(w.t, w.read())
}

// A CONNECT that carries a pid but cannot recover gets a new pid (recovered ===
// false) and notifier.resync before any event, whatever the reason; the reason is
// logged, the pid never is. A CONNECT without a pid gets no resync; a good pid
// recovers without one.
func TestRefusedRecoveryResyncs(t *testing.T) {
	t.Parallel()
	// pids the clients under test saw earlier, minted by servers keyed like the ones
	// below (testSecret) or not.
	src := setup(t)
	sw := src.openWS(t)
	pid1 := parseAck(t, sw.connect(token(t, 1, time.Hour))).PID
	pid2 := parseAck(t, src.openWS(t).connect(token(t, 2, time.Hour))).PID
	other := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.RecoverySecret = []byte("another-recovery-secret-0123456789")
	})
	otherKey := parseAck(t, other.openWS(t).connect(token(t, 1, time.Hour))).PID
	nonce, rest, _ := strings.Cut(pid1, ".")
	_, mac, _ := strings.Cut(rest, ".")

	const unverified = "pid not minted with this key for this account"
	for _, tc := range []struct {
		name      string
		fields    map[string]any
		reason    string // logged with the resync; "" for none
		recovered bool
		pruned    bool // retention removed an event before the CONNECT
	}{
		{name: "other key", fields: map[string]any{"pid": otherKey}, reason: unverified},
		{name: "other key with offset", fields: map[string]any{"pid": otherKey, "offset": "0"}, reason: unverified},
		{name: "other account", fields: map[string]any{"pid": pid2, "offset": "0"}, reason: unverified},
		{name: "forged position", fields: map[string]any{"pid": nonce + ".1." + mac}, reason: unverified},
		{name: "malformed pid", fields: map[string]any{"pid": "yqTjVuT967ckYGSSAAAB", "offset": "0"}, reason: "malformed pid"},
		{name: "empty pid", fields: map[string]any{"pid": ""}, reason: "malformed pid"},
		{name: "pid not a string", fields: map[string]any{"pid": 12345}, reason: "pid is not a string"},
		{name: "pid an object", fields: map[string]any{"pid": map[string]any{"pid": pid1}}, reason: "pid is not a string"},
		{name: "malformed offset", fields: map[string]any{"pid": pid1, "offset": "Q80xAxB"}, reason: "malformed offset"},
		{name: "offset with a leading zero", fields: map[string]any{"pid": pid1, "offset": "00"}, reason: "malformed offset"},
		{name: "offset not a string", fields: map[string]any{"pid": pid1, "offset": 0}, reason: "malformed offset"},
		{name: "offset null", fields: map[string]any{"pid": pid1, "offset": nil}, reason: "malformed offset"},
		{name: "offset pruned", fields: map[string]any{"pid": pid1, "offset": "0"}, reason: "offset outside the log", pruned: true},
		{name: "offset ahead of the log", fields: map[string]any{"pid": pid1, "offset": "99"}, reason: "offset outside the log"},
		{name: "no pid"},
		{name: "pid null", fields: map[string]any{"pid": nil, "offset": "0"}},
		{name: "recovered", fields: map[string]any{"pid": pid1, "offset": "0"}, recovered: true},
		{name: "recovered without offset", fields: map[string]any{"pid": pid1}, recovered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, logs := setupLogged(t)
			if tc.pruned {
				b.log.publish(1, decode.AppointmentCreated, `{"id":0}`)
				b.log.prune()
			}
			w := b.openWS(t)
			a := w.connectWith(token(t, 1, time.Hour), tc.fields)
			if sent, _ := tc.fields["pid"].(string); (a.PID == sent) != tc.recovered {
				t.Fatalf("ack pid %q for pid %q, want recovered=%v", a.PID, sent, tc.recovered)
			}
			// An event right away: a resync is due before it, any other packet after.
			id := b.log.publish(1, decode.AppointmentCreated, `{"id":1}`)
			if tc.reason != "" {
				if got := w.read(); got != resyncFrame {
					t.Fatalf("after the ack got %q, want %q", got, resyncFrame)
				}
				// Logged before the resync was sent.
				if l := logs.String(); !strings.Contains(l, `msg="socket recovery refused"`) || !strings.Contains(l, `reason="`+tc.reason+`"`) {
					t.Errorf("refusal not logged with reason %q:\n%s", tc.reason, l)
				}
			}
			if got, want := w.read(), eventFrame("appointments.created", `{"id":1}`, id); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			for _, pid := range []string{pid1, pid2, otherKey, a.PID} {
				if strings.Contains(logs.String(), pid) {
					t.Errorf("pid %q is logged:\n%s", pid, logs)
				}
			}
		})
	}
}

// A live socket's subscription that falls behind the ring into a range the log
// pruned meanwhile gets notifier.resync in order with its events, and goes on; the
// same when a recovery's replay finds its range pruned under it.
func TestResyncMidStream(t *testing.T) {
	t.Parallel()
	// Over polling, the feeder polls only when a GET waits, so the test decides when
	// the hub is read: after the log has moved.
	newBundle := func(t *testing.T) (*testBundle, *logBuffer) {
		return setupLogged(t, func(_ *socketio.Config, h *hub.Config) { h.ReplayBuffer = 2 })
	}
	// publish publishes n events of account 1; frames are the frames of some of them.
	publish := func(b *testBundle, n int) []int64 {
		var ids []int64
		for i := range n {
			ids = append(ids, b.log.publish(1, decode.AppointmentCreated, `{"n":`+strconv.Itoa(i)+`}`))
		}
		return ids
	}
	frames := func(ids []int64, from int) []string {
		var out []string
		for i := from; i < len(ids); i++ {
			out = append(out, eventFrame("appointments.created", `{"n":`+strconv.Itoa(i)+`}`, ids[i]))
		}
		return out
	}
	check := func(t *testing.T, p *pollingSession, logs *logBuffer, want []string) {
		t.Helper()
		got := p.packets(len(want))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(logs.String(), `msg="socket resync"`) {
			t.Errorf("resync not logged:\n%s", logs)
		}
		// The socket lives on.
		id := p.b.log.publish(1, decode.DoctorCreated, `{"live":true}`)
		if got := p.packets(1)[0]; got != eventFrame("doctors.created", `{"live":true}`, id) {
			t.Fatalf("after the resync got %q", got)
		}
		p.mustPost("41\x1e1")
		p.gone()
	}

	t.Run("live", func(t *testing.T) {
		t.Parallel()
		b, logs := newBundle(t)
		p := b.openPolling(t)
		p.connect(token(t, 1, time.Hour))
		// Five events with a ring of two: the socket's next Poll reads the log below
		// the ring, whose first three events retention removed meanwhile.
		ids := publish(b, 5)
		b.log.pruneThrough(ids[2])
		check(t, p, logs, append([]string{resyncFrame}, frames(ids, 3)...))
	})

	t.Run("recovery", func(t *testing.T) {
		t.Parallel()
		b, logs := newBundle(t)
		// Another socket of the account, never polled, keeps the room and its ring.
		hold := b.openPolling(t)
		hold.connect(token(t, 1, time.Hour))
		defer hold.mustPost("1")
		p := b.openPolling(t)
		first := parseAck(t, p.connect(token(t, 1, time.Hour)))
		p.mustPost("41\x1e1")
		p.gone()
		ids := publish(b, 5)
		// The pid holds the position before the first event: the replay starts there,
		// in a range the log held at CONNECT but no longer does at the first Poll.
		p = b.openPolling(t)
		p.mustPost(`40{"token":"` + token(t, 1, time.Hour) + `","pid":"` + first.PID + `"}`)
		if again := parseAck(t, p.packets(1)[0]); again != first {
			t.Fatalf("reconnect = %+v, want recovered %+v", again, first)
		}
		b.log.pruneThrough(ids[2])
		check(t, p, logs, append([]string{resyncFrame}, frames(ids, 3)...))
	})
}
