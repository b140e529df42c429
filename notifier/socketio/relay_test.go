package socketio_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// relayLog is a RelayFunc over a memLog, as notifier.relay over the event log: the
// event goes to the log, stamped, with its origin. block, when set, holds each call
// until it is closed or the call's context ends.
type relayLog struct {
	log   *memLog
	kind  decode.Kind
	mu    sync.Mutex
	calls []string // data of each call, in order
	block chan struct{}
}

func (r *relayLog) relay(ctx context.Context, account int64, subject, origin, event string, data []byte) (int64, error) {
	r.mu.Lock()
	r.calls = append(r.calls, string(data))
	block := r.block
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	l := r.log
	l.mu.Lock()
	id := int64(len(l.msgs) + 1)
	ev := enrich.Event{ID: id, Kind: r.kind, Name: event, AccountID: account, Data: data, Origin: origin}
	l.msgs = append(l.msgs, hub.NewMessage(ev))
	hubs := slices.Clone(l.hubs)
	l.mu.Unlock()
	for _, h := range hubs {
		h.Publish([]*hub.Message{hub.NewMessage(ev)})
	}
	return id, nil
}

func (r *relayLog) callsSoFar() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func setupRelay(t *testing.T, mutate func(*socketio.Config)) (*testBundle, *relayLog) {
	t.Helper()
	cat := decode.NewCatalog()
	k, err := cat.Add("message_created", "")
	if err != nil {
		t.Fatal(err)
	}
	r := &relayLog{kind: k}
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.RelayEvents = []string{"message_created"}
		c.RelayFunc = r.relay
		if mutate != nil {
			mutate(c)
		}
	})
	r.log = b.log
	return b, r
}

func relayClient(t *testing.T, b *testBundle, account int64) *sioclient.Client {
	t.Helper()
	c := sioclient.Start(t, sioclient.Options{URL: b.base, Token: token(t, account, time.Hour), Transports: []string{"websocket"},
		Events: append(slices.Clone(allEvents), "message_created", socketio.EventError)})
	c.WaitConnect()
	return c
}

func relayAck(t *testing.T, c *sioclient.Client, seq int) map[string]any {
	t.Helper()
	a := c.WaitAck()
	var args []map[string]any
	if a.Seq != seq || json.Unmarshal(a.Data, &args) != nil || len(args) != 1 {
		t.Fatalf("ack %+v, want one object for %d", a, seq)
	}
	return args[0]
}

// TestRelayInOrder: emits are relayed one at a time, in order, to the other sockets
// of the account only, and acked with their ids.
func TestRelayInOrder(t *testing.T) {
	t.Parallel()
	b, r := setupRelay(t, func(c *socketio.Config) { c.RelayRate = 50 })
	sender, listener, other := relayClient(t, b, 1), relayClient(t, b, 1), relayClient(t, b, 2)
	var want []string
	for i := range 8 {
		msg := map[string]any{"n": i}
		sender.Emit("message_created", msg)
		d, _ := json.Marshal(msg)
		want = append(want, string(d))
	}
	last := sender.EmitAck("message_created", map[string]any{"n": 8})
	want = append(want, `{"n":8}`)
	if a := relayAck(t, sender, last); a["ok"] != true || a["id"] != float64(len(want)) {
		t.Fatalf("ack %v", a)
	}
	if got := r.callsSoFar(); !slices.Equal(got, want) {
		t.Fatalf("relayed %v, want %v", got, want)
	}
	for _, w := range want {
		if e := listener.WaitEvent(); e.Name != "message_created" || string(e.Data) != w {
			t.Fatalf("listener got %s, want %s", e, w)
		}
	}
	// Neither the sender nor another account got any.
	b.log.publish(1, decode.DoctorCreated, seedDoctor)
	b.log.publish(2, decode.DoctorCreated, seedDoctor)
	for _, c := range []*sioclient.Client{sender, other} {
		if e := c.WaitEvent(); e.Name != "doctors.created" {
			t.Fatalf("got %s, want doctors.created", e)
		}
	}
}

// TestRelayTimeout: a relay the log does not answer fails after RelayTimeout; the
// session is served meanwhile and goes on.
func TestRelayTimeout(t *testing.T) {
	t.Parallel()
	b, r := setupRelay(t, func(c *socketio.Config) { c.RelayTimeout = 300 * time.Millisecond })
	r.block = make(chan struct{})
	sender := relayClient(t, b, 1)
	seq := sender.EmitAck("message_created", map[string]any{"n": 1})
	for len(r.callsSoFar()) == 0 { // the call is under way
		time.Sleep(5 * time.Millisecond)
	}
	b.log.publish(1, decode.DoctorCreated, seedDoctor)
	if e := sender.WaitEvent(); e.Name != "doctors.created" {
		t.Fatalf("got %s while the relay hangs", e)
	}
	if e := sender.WaitEvent(); e.Name != socketio.EventError || eventRowOf(t, e)["code"] != socketio.RelayFailed {
		t.Fatalf("got %s, want %s %s", e, socketio.EventError, socketio.RelayFailed)
	}
	if a := relayAck(t, sender, seq); a["ok"] != false || a["code"] != socketio.RelayFailed {
		t.Fatalf("ack %v", a)
	}
	close(r.block)
	if a := relayAck(t, sender, sender.EmitAck("message_created", map[string]any{"n": 2})); a["ok"] != true {
		t.Fatalf("ack %v", a)
	}
}

// TestRelayDrain: what a client emits right before it leaves is still relayed.
func TestRelayDrain(t *testing.T) {
	t.Parallel()
	b, r := setupRelay(t, nil)
	listener := relayClient(t, b, 1)
	sender := relayClient(t, b, 1)
	sender.Emit("message_created", map[string]any{"n": 1})
	sender.Disconnect()
	if e := listener.WaitEvent(); e.Name != "message_created" || string(e.Data) != `{"n":1}` {
		t.Fatalf("got %s", e)
	}
	if got := r.callsSoFar(); len(got) != 1 {
		t.Fatalf("relayed %v", got)
	}
}

func eventRowOf(t *testing.T, e sioclient.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("%s: %v", e, err)
	}
	return m
}
