package ws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/ws"
)

const secret = "ws-test-secret-0123456789abcdef012345"

// memLog is an in-memory event log of account 1 behind a hub: ReplayFunc and
// BoundsFunc. The replay after prunedFrom fails with hub.ErrPruned, as retention
// pruning the range in the middle of a paged replay would make it.
type memLog struct {
	mu         sync.Mutex
	msgs       []*hub.Message // ids 1..n
	prunedFrom int64          // replays after this id fail; 0: none do
}

func (l *memLog) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		id := int64(len(l.msgs) + 1)
		l.msgs = append(l.msgs, message(id))
	}
}

func message(id int64) *hub.Message {
	return hub.NewMessage(enrich.Event{ID: id, Kind: decode.AppointmentCreated, AccountID: 1, Data: []byte(fmt.Sprintf(`{"id":%d}`, id))})
}

func (l *memLog) replay(_ context.Context, _, after, through int64, limit int) ([]*hub.Message, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prunedFrom != 0 && after >= l.prunedFrom {
		return nil, 0, fmt.Errorf("read log after %d: %w", after, hub.ErrPruned)
	}
	end := min(after+int64(limit), through)
	var out []*hub.Message
	for _, m := range l.msgs[after:end] {
		out = append(out, hub.NewMessage(enrich.Event{ID: m.ID, Kind: m.Kind, AccountID: m.AccountID, Data: m.Data}))
	}
	return out, end, nil
}

func (l *memLog) bounds(context.Context) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 0, int64(len(l.msgs)), nil
}

// serve runs a /ws handler over a hub that starts at the log's head.
func serve(t *testing.T, l *memLog) (*hub.Hub, string) {
	t.Helper()
	h := hub.New(hub.Config{ReplayPage: 2, ReplayFunc: l.replay, BoundsFunc: l.bounds}, int64(len(l.msgs)))
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(secret), AccountClaim: auth.DefaultAccountClaim})
	if err != nil {
		t.Fatal(err)
	}
	hd := ws.New(ws.Config{Events: decode.AllKinds}, h, v)
	srv := httptest.NewServer(hd)
	t.Cleanup(func() { h.Close(); hd.Wait(); srv.Close() })
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dial connects as account 1; frames receives what the server sends.
func dial(t *testing.T, base string, query url.Values) <-chan string {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), auth.DefaultAccountClaim, 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), base+"?"+query.Encode(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	frames := make(chan string, 100)
	go func() {
		defer close(frames)
		for {
			_, p, err := conn.ReadMessage()
			if err != nil {
				frames <- "closed: " + err.Error()
				return
			}
			frames <- string(p)
		}
	}()
	return frames
}

// expect fails unless the next frames are want.
func expect(t *testing.T, frames <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-frames:
			if got != w {
				t.Fatalf("frame %s, want %s", got, w)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no frame in time, want %s", w)
		}
	}
}

func frame(id int64) string { return string(message(id).Frame) }

// TestResyncMidReplay: the log is pruned under a paged replay: the client gets what
// was read, notifier.resync, then live events on the same connection.
func TestResyncMidReplay(t *testing.T) {
	t.Parallel()
	l := &memLog{prunedFrom: 2}
	l.add(6)
	h, base := serve(t, l)
	frames := dial(t, base, url.Values{"since": {"0"}})
	expect(t, frames, frame(1), frame(2), string(ws.ResyncFrame)) // 3..6 pruned
	l.add(1)
	h.Publish([]*hub.Message{message(7)})
	expect(t, frames, frame(7))
}

// TestResyncAfterReset: a Reset of the hub reaches a live connection as
// notifier.resync; events of the new log follow on the same connection.
func TestResyncAfterReset(t *testing.T) {
	t.Parallel()
	l := &memLog{}
	h, base := serve(t, l)
	frames := dial(t, base, nil)
	h.Publish([]*hub.Message{message(1)})
	expect(t, frames, frame(1))
	h.Reset(100)
	expect(t, frames, string(ws.ResyncFrame))
	h.Publish([]*hub.Message{message(101)})
	expect(t, frames, frame(101))
}
