package notifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier"
)

// The seed's (003) message events.
var messageEvents = []string{"message_created", "message_updated", "message_deleted"}

// relayListens is what the tests' clients listen to: the relayed events, a database
// event to tell them apart from, and the relay's errors.
var relayListens = append(slices.Clone(messageEvents), "appointments.created", "notifier.error")

// relayConfig is what a test relays.
type relayConfig struct {
	Events   []string
	MaxBytes int // 0: the default
	Rate     int // 0: the default
}

func (r relayConfig) apply(c *configT) {
	c.SocketIO.Relay = r.Events
	if r.MaxBytes > 0 {
		c.SocketIO.RelayMaxBytes = r.MaxBytes
	}
	if r.Rate > 0 {
		c.SocketIO.RelayRate = r.Rate
	}
}

// relaySetup runs a notifier that relays r on a database of its own.
func relaySetup(t *testing.T, r relayConfig) *testBundle {
	t.Helper()
	return setup(t, func(o *setupOpts) { o.mutate = r.apply })
}

func newRelayService(t *testing.T, dbURL string, r relayConfig) (*notifier.Service, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	cfg := testConfig(t, dbURL)
	r.apply(&cfg)
	svc, err := notifier.New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})), ln)
	if err != nil {
		t.Fatalf("notifier.New: %v", err)
	}
	return svc, ln
}

func (b *testBundle) relayClient(t *testing.T, account int64) *sioclient.Client {
	t.Helper()
	return b.relayClientDelay(t, account, 300*time.Millisecond)
}

func (b *testBundle) relayClientDelay(t *testing.T, account int64, reconnect time.Duration) *sioclient.Client {
	t.Helper()
	return b.sio(t, account, func(o *sioclient.Options) {
		o.Events = relayListens
		o.ReconnectionDelay = reconnect
		o.ReconnectionDelayMax = reconnect
	})
}

// message is a message as the seed's app posts it, then emits it.
func message(id, account int64, content string) map[string]any {
	return map[string]any{"id": id, "messageThreadId": 7, "content": content, "accountId": account, "sender": map[string]any{"id": 3, "name": "Dr. Ana"}}
}

// waitNamed returns the next event, failing unless it is named name.
func waitNamed(t *testing.T, c *sioclient.Client, name string) map[string]any {
	t.Helper()
	e := c.WaitEvent()
	if e.Name != name {
		t.Fatalf("got %s, want %s", e, name)
	}
	return eventRow(t, e)
}

// waitAppointment fails unless the next event is appointment id's creation: what a
// client gets first after the relays it must not see.
func waitAppointment(t *testing.T, c *sioclient.Client, id int64) {
	t.Helper()
	if row := waitNamed(t, c, "appointments.created"); row["id"] != float64(id) {
		t.Fatalf("got appointment %v, want %d", row["id"], id)
	}
}

func ackOf(t *testing.T, c *sioclient.Client, seq int) map[string]any {
	t.Helper()
	a := c.WaitAck()
	if a.Seq != seq {
		t.Fatalf("ack %d, want %d", a.Seq, seq)
	}
	var args []map[string]any
	if err := json.Unmarshal(a.Data, &args); err != nil || len(args) != 1 {
		t.Fatalf("ack %s: %v", a.Data, err)
	}
	return args[0]
}

func (b *testBundle) relayedCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow(t.Context(), "SELECT count(*) FROM notifier.events WHERE origin IS NOT NULL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRelaySeed runs seed 003's client code: one client emits message_created,
// message_updated and message_deleted after its REST calls; another client of the
// account gets each, in order, stamped with who sent it; the sender and other
// accounts get none.
func TestRelaySeed(t *testing.T) {
	t.Parallel()
	b := relaySetup(t, relayConfig{Events: messageEvents})
	listener, sender, other := b.relayClient(t, 1), b.relayClient(t, 1), b.relayClient(t, 2)
	listener.WaitConnect()
	sender.WaitConnect()
	other.WaitConnect()

	sent := []struct {
		event string
		msg   map[string]any
	}{
		{"message_created", message(41, 1, "Paciente chegou")},
		{"message_updated", message(41, 1, "Paciente chegou, sala 2")},
		// A payload naming another account still goes to the sender's only.
		{"message_deleted", message(41, 2, "")},
	}
	for _, s := range sent {
		sender.Emit(s.event, s.msg) // socket.emit("message_created", message)
	}
	for _, s := range sent {
		got := waitNamed(t, listener, s.event)
		by, _ := got["relayedBy"].(map[string]any)
		if by["accountId"] != float64(1) || by["sub"] != "" {
			t.Errorf("%s relayedBy = %v, want the sender's account 1", s.event, got["relayedBy"])
		}
		delete(got, "relayedBy")
		want, _ := json.Marshal(s.msg)
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Errorf("%s = %s, want %s", s.event, have, want)
		}
	}
	if n := b.relayedCount(t); n != len(sent) {
		t.Fatalf("%d relayed events in the log, want %d", n, len(sent))
	}
	// The next thing the sender and the other account see is a database event: none
	// of the relays reached them.
	waitAppointment(t, sender, b.insertAppointment(t, 1))
	waitAppointment(t, other, b.insertAppointment(t, 2))
	if e := listener.WaitEvent(); e.Name != "appointments.created" {
		t.Fatalf("listener got %s", e)
	}
}

// TestRelayResume: relayed events are in the log, so a client that drops and recovers
// gets those it missed; the sender, recovering too, still never gets its own.
func TestRelayResume(t *testing.T) {
	t.Parallel()
	b := relaySetup(t, relayConfig{Events: messageEvents})
	// The listener stays away until the sender has reconnected and relayed.
	listener, sender := b.relayClientDelay(t, 1, 2*time.Second), b.relayClient(t, 1)
	listener.WaitConnect()
	sender.WaitConnect()

	if ack := ackOf(t, sender, sender.EmitAck("message_created", message(1, 1, "first"))); ack["ok"] != true {
		t.Fatalf("ack %v", ack)
	}
	if got := waitNamed(t, listener, "message_created"); got["content"] != "first" {
		t.Fatalf("got %v", got)
	}

	listener.CloseEngine()
	listener.WaitDisconnect()
	sender.CloseEngine()
	sender.WaitDisconnect()
	if cn := sender.WaitConnect(); !cn.Recovered {
		t.Fatalf("sender not recovered: %+v", cn)
	}
	var ids []float64
	for _, content := range []string{"second", "third"} {
		ack := ackOf(t, sender, sender.EmitAck("message_updated", message(1, 1, content)))
		if ack["ok"] != true {
			t.Fatalf("ack %v", ack)
		}
		ids = append(ids, ack["id"].(float64))
	}
	if cn := listener.WaitConnect(); !cn.Recovered {
		t.Fatalf("listener not recovered: %+v", cn)
	}
	for i, content := range []string{"second", "third"} {
		e := listener.WaitEvent()
		if e.Name != "message_updated" || eventRow(t, e)["content"] != content || e.Offset != itoa(int64(ids[i])) {
			t.Fatalf("got %s, want message_updated %q at %v", e, content, ids[i])
		}
	}
	// The sender reconnects once more, from before its relays: the replay skips them.
	sender.CloseEngine()
	sender.WaitDisconnect()
	if cn := sender.WaitConnect(); !cn.Recovered {
		t.Fatalf("sender not recovered: %+v", cn)
	}
	waitAppointment(t, sender, b.insertAppointment(t, 1))
}

// TestRelayLimits: what is too large, not an object, over the rate or not relayed
// gets an error or nothing, never a log entry, and the socket goes on.
func TestRelayLimits(t *testing.T) {
	t.Parallel()
	b := relaySetup(t, relayConfig{Events: messageEvents, MaxBytes: 256, Rate: 1}) // a burst of 2
	sender, listener := b.relayClient(t, 1), b.relayClient(t, 1)
	sender.WaitConnect()
	listener.WaitConnect()

	refused := func(seq int, code string) {
		t.Helper()
		e := waitNamed(t, sender, "notifier.error")
		if e["code"] != code || e["event"] != "message_created" || e["message"] == "" {
			t.Fatalf("notifier.error %v, want code %s", e, code)
		}
		if ack := ackOf(t, sender, seq); ack["ok"] != false || ack["code"] != code {
			t.Fatalf("ack %v, want ok false, code %s", ack, code)
		}
	}
	refused(sender.EmitAck("message_created", message(1, 1, strings.Repeat("x", 300))), "relay_too_large")
	refused(sender.EmitAck("message_created", "not an object"), "relay_not_object")
	sender.EmitAck("message_read", message(1, 1, "not relayed")) // ignored: no ack, no error
	// Two within the burst and a third, sent back to back so that no token refills
	// between them however slow the machine: the third is refused before the first
	// two are acked (they wait for their log commit), so the acks come in any order.
	ok1 := sender.EmitAck("message_created", message(2, 1, "ok"))
	ok2 := sender.EmitAck("message_created", message(2, 1, "ok"))
	soon := sender.EmitAck("message_created", message(3, 1, "too soon"))
	// Three acks and the refusal's notifier.error, in whatever order they come.
	acks := map[int]map[string]any{}
	var refusal map[string]any
	for len(acks) < 3 || refusal == nil {
		switch x := sender.Next().(type) {
		case sioclient.Ack:
			var args []map[string]any
			if err := json.Unmarshal(x.Data, &args); err != nil || len(args) != 1 {
				t.Fatalf("ack %s: %v", x.Data, err)
			}
			acks[x.Seq] = args[0]
		case sioclient.Event:
			if x.Name != "notifier.error" || refusal != nil {
				t.Fatalf("got %s, want one notifier.error", x)
			}
			refusal = eventRow(t, x)
		default:
			t.Fatalf("got %v, want acks and a notifier.error", x)
		}
	}
	if acks[ok1]["ok"] != true || acks[ok2]["ok"] != true {
		t.Fatalf("acks %v: want %d and %d ok", acks, ok1, ok2)
	}
	if a := acks[soon]; a["ok"] != false || a["code"] != "relay_rate_limited" {
		t.Fatalf("ack %v, want ok false, code relay_rate_limited", a)
	}
	if refusal["code"] != "relay_rate_limited" || refusal["event"] != "message_created" || refusal["message"] == "" {
		t.Fatalf("notifier.error %v, want code relay_rate_limited", refusal)
	}
	if n := b.relayedCount(t); n != 2 {
		t.Fatalf("%d relayed events in the log, want 2", n)
	}
	for range 2 {
		if got := waitNamed(t, listener, "message_created"); got["content"] != "ok" {
			t.Fatalf("got %v", got)
		}
	}
	id := b.insertAppointment(t, 1)
	waitAppointment(t, listener, id)
	waitAppointment(t, sender, id)
}

// TestRelayRuleEventRefused: a name is relayed or the database's, never both.
func TestRelayRuleEventRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"appointments.created", "notifier.resync", "disconnect"} {
		svc, _ := newRelayService(t, pgtestDatabase(t), relayConfig{Events: []string{"message_created", name}})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		err := svc.Run(ctx)
		cancel()
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("relay of %s: Run = %v, want a configuration error naming it", name, err)
		}
	}
	// The database refuses it too, whoever calls it.
	b := relaySetup(t, relayConfig{Events: messageEvents})
	_, err := b.db.Exec(t.Context(), `SELECT notifier.relay(1, '', 'x', 'appointments.created', '{}')`)
	if err == nil || !strings.Contains(err.Error(), "never both") {
		t.Errorf("notifier.relay of a rule's event: %v", err)
	}
	for _, args := range []string{`0, '', 'x', 'message_created', '{}'`, `1, '', 'x', 'message_created', '[1]'`, `1, '', 'x', 'bad"name', '{}'`} {
		if _, err := b.db.Exec(t.Context(), `SELECT notifier.relay(`+args+`)`); err == nil {
			t.Errorf("notifier.relay(%s) accepted", args)
		}
	}
}

// TestRelayOrder: relays and database events interleaved from one client reach a
// listener in log order.
func TestRelayOrder(t *testing.T) {
	t.Parallel()
	b := relaySetup(t, relayConfig{Events: messageEvents, Rate: 100})
	listener := b.relayClient(t, 1)
	sender := b.sio(t, 1, func(o *sioclient.Options) { o.Events = []string{"notifier.error"} })
	listener.WaitConnect()
	sender.WaitConnect()

	var start int64
	if err := b.db.QueryRow(t.Context(), "SELECT coalesce(max(id), 0) FROM notifier.events").Scan(&start); err != nil {
		t.Fatal(err)
	}
	const rounds = 10
	for i := range rounds {
		sender.Emit("message_created", message(int64(i), 1, "m"))
		b.insertAppointment(t, 1)
	}
	seq := sender.EmitAck("message_deleted", message(99, 1, "last"))
	last := ackOf(t, sender, seq)["id"].(float64)

	var got []string
	for len(got) < 2*rounds+1 {
		e := listener.WaitEvent()
		got = append(got, e.Offset+" "+e.Name)
	}
	rows, err := b.db.Query(t.Context(), "SELECT id::text || ' ' || event FROM notifier.events WHERE account_id = 1 AND id > $1 AND id <= $2 ORDER BY id", start, int64(last))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		want = append(want, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listener got\n%s\nthe log holds\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
