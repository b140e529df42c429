package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/hub"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// hangGuard bounds every wait; no assertion depends on how long anything takes.
const hangGuard = 30 * time.Second

func msg(id, account int64, data string) *hub.Message {
	return &hub.Message{ID: id, AccountID: account, Name: "appointments.created", Data: []byte(data)}
}

// follower runs Follow in the background and hands back its records.
type followerT struct {
	recs chan Record
	done chan struct{} // closed when Follow returned err
	err  error
	stop context.CancelFunc
}

func follow(t *testing.T, key []byte, url string, after int64) *followerT {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &followerT{recs: make(chan Record, 64), done: make(chan struct{}), stop: cancel}
	go func() {
		defer close(f.done)
		f.err = Follow(ctx, FollowConfig{Key: key}, url, after, func(r Record) error {
			select {
			case f.recs <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

func (f *followerT) next(t *testing.T) Record {
	t.Helper()
	select {
	case r := <-f.recs:
		return r
	case <-f.done:
		t.Fatalf("stream ended: %v", f.err)
	case <-time.After(hangGuard):
		t.Fatal("no record")
	}
	return Record{}
}

// ids returns the event ids of a record, or a description of what else it is.
func ids(r Record) string {
	switch {
	case r.Reset:
		return fmt.Sprintf("reset %d", r.Head)
	case r.State:
		return fmt.Sprintf("state %v %d", r.Ready, r.Head)
	}
	var b strings.Builder
	for i, e := range r.Events {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, e.ID)
	}
	return b.String()
}

func serve(t *testing.T, l *Leader) string {
	t.Helper()
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStream: a follower gets what it missed from the ring, the leader's state, then
// the live stream, readiness changes and a rebase, in order, with the payload bytes.
func TestStream(t *testing.T) {
	t.Parallel()
	l := NewLeader(LeaderConfig{Key: testKey, Metrics: metrics.New()})
	url := serve(t, l)
	l.Start(100)
	l.Publish([]*hub.Message{msg(101, 1, `{"a":1}`), msg(102, 2, `{"b":2}`)})
	l.Publish([]*hub.Message{msg(102, 2, `{"dup":1}`), msg(103, 1, `{"c":3}`)}) // 102 again: dropped

	f := follow(t, testKey, url, 101)
	if r := f.next(t); ids(r) != "102 103" || string(r.Events[1].Data) != `{"c":3}` || r.Events[0].AccountID != 2 {
		t.Fatalf("backlog %s %+v, want 102 103 from the ring", ids(r), r.Events)
	}
	if r := f.next(t); ids(r) != "state false 103" {
		t.Fatalf("after the backlog: %s, want the leader's state", ids(r))
	}
	l.SetReady(true)
	l.SetReady(true) // no change: nothing sent
	relayed := msg(104, 1, `{"m":"hi"}`)
	relayed.Origin, relayed.Partial = "sock-1", true
	l.Publish([]*hub.Message{relayed})
	l.Reset(500)
	l.Publish([]*hub.Message{msg(501, 1, `{}`)})
	want := []string{"state true 103", "104", "reset 500", "501"}
	for _, w := range want {
		r := f.next(t)
		if ids(r) != w {
			t.Fatalf("got %s, want %s", ids(r), w)
		}
		if w == "104" && (r.Events[0].Origin != "sock-1" || !r.Events[0].Partial || r.Events[0].Name != "appointments.created") {
			t.Fatalf("relayed event %+v: origin, partial or name lost", r.Events[0])
		}
	}

	// A follower ahead of the leader (it followed a leader that got further) gets
	// nothing twice.
	g := follow(t, testKey, url, 600)
	if r := g.next(t); ids(r) != "state true 501" {
		t.Fatalf("ahead: %s, want only the state", ids(r))
	}

	if err := Probe(t.Context(), FollowConfig{Key: testKey}, url); err != nil {
		t.Fatalf("probe of a leader: %v", err)
	}

	// Stepping down ends every stream and refuses new ones.
	l.Stop()
	select {
	case <-f.done:
		if err := f.err; err == nil || !strings.Contains(err.Error(), "stepped down") {
			t.Fatalf("stream after Stop: %v, want the leader's reason", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Stop did not end the stream")
	}
	if err := Probe(t.Context(), FollowConfig{Key: testKey}, url); !errors.Is(err, ErrRefused) {
		t.Fatalf("probe of an instance that stepped down: %v, want refused", err)
	}
	h := follow(t, testKey, url, 0)
	<-h.done
	if err := h.err; !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("follow a leader that stepped down: %v, want 503", err)
	}
}

// TestStreamBacklog: a follower behind the ring gets the rest from the log, then the
// ring's part of it once; one behind what the log holds is reset to the head.
func TestStreamBacklog(t *testing.T) {
	t.Parallel()
	logged := []*hub.Message{msg(11, 1, `{}`), msg(12, 2, `{}`), msg(14, 1, `{}`)}
	var pruned bool
	l := NewLeader(LeaderConfig{Key: testKey, Ring: 2, Metrics: metrics.New(),
		Backlog: func(_ context.Context, after, through int64, limit int) ([]*hub.Message, int64, error) {
			if pruned {
				return nil, 0, fmt.Errorf("read: %w", ErrPruned)
			}
			var out []*hub.Message
			for _, m := range logged {
				if m.ID > after && m.ID <= through && len(out) < 1 { // a page of one: paging is exercised
					out = append(out, m)
				}
			}
			if len(out) == 0 {
				return nil, through, nil
			}
			return out, out[0].ID, nil
		}})
	url := serve(t, l)
	l.Start(10)
	l.Publish(logged) // the ring keeps 12 and 14
	f := follow(t, testKey, url, 10)
	for _, w := range []string{"11", "12", "14", "state false 14"} {
		if r := f.next(t); ids(r) != w {
			t.Fatalf("got %s, want %s", ids(r), w)
		}
	}
	pruned = true
	g := follow(t, testKey, url, 10)
	for _, w := range []string{"reset 14", "state false 14"} {
		if r := g.next(t); ids(r) != w {
			t.Fatalf("pruned backlog: got %s, want %s", ids(r), w)
		}
	}
}

// TestStreamRefused: no stream without a token made with the fleet key, for a bad
// position, or from an instance that does not lead.
func TestStreamRefused(t *testing.T) {
	t.Parallel()
	l := NewLeader(LeaderConfig{Key: testKey, Metrics: metrics.New()})
	url := serve(t, l)
	l.Start(1)
	for _, c := range []struct {
		name string
		key  []byte
	}{{"another key", []byte("another key, 32 bytes long......")}, {"no key", nil}} {
		f := follow(t, c.key, url, 0)
		<-f.done
		if err := f.err; !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s: %v, want 401", c.name, err)
		}
	}
	for _, h := range []http.Header{{}, {"Authorization": {"Bearer v1.1.00"}}, {"Authorization": {"Basic x"}}} {
		req, _ := http.NewRequest("GET", url+StreamPath+"?after=0", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("headers %v: %d, want 401", h, resp.StatusCode)
		}
	}
	for _, after := range []string{"", "-1", "x"} {
		req, _ := http.NewRequest("GET", url+StreamPath+"?after="+after, nil)
		req.Header.Set("Authorization", "Bearer "+token(testKey, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("after=%q: %d, want 400", after, resp.StatusCode)
		}
	}
	if n := l.refused.Value(); n != 5 {
		t.Errorf("refused counter %d, want 5", n)
	}
	if err := Follow(t.Context(), FollowConfig{Key: testKey}, "ftp://x", 0, nil); err == nil {
		t.Error("a leader URL that is not http: no error")
	}
}

// TestSlowFollowerDropped: the leader never waits for a follower; one too far behind
// is dropped and its stream ends.
func TestSlowFollowerDropped(t *testing.T) {
	t.Parallel()
	l := NewLeader(LeaderConfig{Key: testKey, Queue: 2, Metrics: metrics.New()})
	url := serve(t, l)
	l.Start(0)
	block := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Follow(t.Context(), FollowConfig{Key: testKey}, url, 0, func(r Record) error {
			<-block // never reads on: the socket's buffers fill, then the queue
			return nil
		})
	}()
	defer close(block)
	deadline := time.Now().Add(hangGuard)
	for l.connected.Value() == 0 { // registered: its queue exists
		if time.Now().After(deadline) {
			t.Fatal("the follower never registered")
		}
		time.Sleep(10 * time.Millisecond) // a registration has no other signal outside the package's lock
	}
	big := bytes.Repeat([]byte("x"), 256<<10)
	for id := int64(1); l.dropped.Value() == 0; id++ {
		if time.Now().After(deadline) {
			t.Fatal("a follower that reads nothing was never dropped")
		}
		l.Publish([]*hub.Message{{ID: id, AccountID: 1, Name: "e", Data: big}})
	}
	select {
	case <-done:
		t.Fatal("Follow returned while its handler was blocked")
	default:
	}
	if n := l.connected.Value(); n != 0 {
		t.Fatalf("%d followers after the drop, want 0", n)
	}
}

// TestToken: a token is the fleet key's MAC over its time, good for a minute.
func TestToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok := token(testKey, now)
	if err := checkToken(testKey, tok, now.Add(59*time.Second)); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	for name, c := range map[string]struct {
		tok string
		at  time.Time
	}{
		"stale":      {tok, now.Add(61 * time.Second)},
		"future":     {tok, now.Add(-61 * time.Second)},
		"other key":  {token([]byte("k"), now), now},
		"tampered":   {strings.Replace(tok, "v1.1800000000", "v1.1800000060", 1), now.Add(time.Minute)},
		"no version": {strings.TrimPrefix(tok, "v1."), now},
		"empty":      {"", now},
		"not hex":    {"v1.1800000000.zz", now},
	} {
		if err := checkToken(testKey, c.tok, c.at); !errors.Is(err, errToken) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
}
