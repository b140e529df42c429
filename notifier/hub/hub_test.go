package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
)

// testLog is an in-memory event log standing in for notifier.events in the hub's own
// tests: the hub only sees it through ReplayFunc and BoundsFunc. (The notifier's
// integration tests run the same paths against PostgreSQL.)
type testLog struct {
	mu      sync.Mutex
	msgs    []*Message // in id order
	head    int64      // the highest id drawn
	pruned  int64
	replays int
	// onReplay, if set, runs at the start of every replay, without mu.
	onReplay func()
}

func (l *testLog) add(account int64, kind decode.Kind) *Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.head++
	id := l.head
	m := NewMessage(enrich.Event{ID: id, Kind: kind, AccountID: account, Data: []byte(fmt.Sprintf(`{"id":%d}`, id))})
	l.msgs = append(l.msgs, m)
	return m
}

// rebase voids every id up to seen and draws new ones above it, as eventlog.Rebase
// does after the log went back.
func (l *testLog) rebase(seen int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruned, l.head = seen, max(l.head, seen)
}

// prune raises the retention watermark, as eventlog.Prune does.
func (l *testLog) prune(through int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruned = through
}

// get returns the message with id, nil if none.
func (l *testLog) get(id int64) *Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.msgs), func(i int) bool { return l.msgs[i].ID >= id })
	if i == len(l.msgs) || l.msgs[i].ID != id {
		return nil
	}
	return l.msgs[i]
}

// replay is the ReplayFunc. Like eventlog.ReadAccount, it reports ErrPruned when the
// watermark is above after once the page is read, returning the page all the same.
func (l *testLog) replay(_ context.Context, account, after, through int64, limit int) ([]*Message, int64, error) {
	if l.onReplay != nil {
		l.onReplay()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.replays++
	var out []*Message
	read := 0
	next := through
	for _, m := range l.msgs {
		if m.ID <= after || m.ID > through || m.AccountID != account {
			continue
		}
		if read == limit {
			next = out[len(out)-1].ID
			break
		}
		read++
		// Replayed messages are new encodings of the same events, as after a restart.
		out = append(out, NewMessage(enrich.Event{ID: m.ID, Kind: m.Kind, AccountID: m.AccountID, Data: m.Data}))
	}
	if l.pruned > after {
		return out, next, fmt.Errorf("test log: account %d after %d: pruned through %d: %w", account, after, l.pruned, ErrPruned)
	}
	return out, next, nil
}

func (l *testLog) bounds(context.Context) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pruned, l.head, nil
}

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
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestHub(t *testing.T, l *testLog, buffer int, mutate ...func(*Config)) *Hub {
	t.Helper()
	cfg := Config{ReplayBuffer: buffer, ReplayPage: 3, BatchSize: 5, ReplayFunc: l.replay, BoundsFunc: l.bounds}
	for _, m := range mutate {
		m(&cfg)
	}
	h := New(cfg, l.head)
	t.Cleanup(h.Close)
	return h
}

// drain polls until want messages arrived, failing on a gap, a duplicate or an error.
func drain(t *testing.T, s *Subscription, want []int64) {
	t.Helper()
	var got []int64
	var batch []*Message
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		var err error
		batch, err = s.Poll(context.Background(), batch[:0])
		if err != nil {
			t.Fatalf("Poll: %v (got %v, want %v)", err, got, want)
		}
		for _, m := range batch {
			got = append(got, m.ID)
		}
		if len(batch) == 0 {
			select {
			case <-s.Wake():
			case <-s.Done():
			case <-deadline:
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func publish(h *Hub, l *testLog, account int64, kind decode.Kind) int64 {
	m := l.add(account, kind)
	h.Publish([]*Message{m})
	return m.ID
}

func TestLiveSubscriberGetsOnlyNewMessagesOfItsAccount(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 8)
	publish(h, l, 1, decode.AppointmentCreated) // before subscribing: not delivered
	s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	if err != nil || resync {
		t.Fatalf("Subscribe = %v, %v", resync, err)
	}
	var want []int64
	for i := range 12 {
		id := publish(h, l, int64(1+i%2), decode.AppointmentCreated)
		if i%2 == 0 {
			want = append(want, id)
		}
	}
	drain(t, s, want)
	if batch, err := s.Poll(t.Context(), nil); len(batch) != 0 || err != nil {
		t.Fatalf("extra messages %v, %v", batch, err)
	}
}

func TestKindsFilter(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 4)
	s, _, _ := h.Subscribe(t.Context(), 1, decode.Set(0).With(decode.DoctorCreated), -1)
	var want []int64
	for i := range 20 { // most are filtered out: Poll must skip past them
		kind := decode.AppointmentCreated
		if i%7 == 6 {
			kind = decode.DoctorCreated
		}
		if id := publish(h, l, 1, kind); kind == decode.DoctorCreated {
			want = append(want, id)
		}
	}
	drain(t, s, want)
}

// TestResumeFromRingAndLog: since inside the ring is served from memory; since behind
// it from the log, then the ring, seamlessly.
func TestResumeFromRingAndLog(t *testing.T) {
	t.Parallel()
	for _, buffer := range []int{1, 3, 100} {
		t.Run(fmt.Sprint("buffer=", buffer), func(t *testing.T) {
			t.Parallel()
			l := &testLog{}
			h := newTestHub(t, l, buffer)
			keep, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1) // keeps the room
			var ids []int64
			for i := range 30 {
				id := publish(h, l, int64(1+i%3), decode.AppointmentCreated)
				if i%3 == 0 {
					ids = append(ids, id)
				}
			}
			drain(t, keep, ids)
			for _, from := range []int{0, 4, 9} {
				since := int64(0)
				if from > 0 {
					since = ids[from-1]
				}
				s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, since)
				if err != nil || resync {
					t.Fatalf("Subscribe since %d = %v, %v", since, resync, err)
				}
				next := publish(h, l, 1, decode.AppointmentCreated)
				want := append(append([]int64{}, ids[from:]...), next)
				drain(t, s, want)
				ids = append(ids, next)
				drain(t, keep, []int64{next})
				s.Close()
			}
		})
	}
}

// TestBurstLargerThanRing: a subscriber that falls behind the ring (a catch-up burst)
// is served from the log and loses nothing.
func TestBurstLargerThanRing(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 4)
	s, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	var burst []*Message
	var want []int64
	for range 50 {
		m := l.add(1, decode.AppointmentCreated)
		burst = append(burst, m)
		want = append(want, m.ID)
	}
	h.Publish(burst)
	drain(t, s, want)
	if l.replays == 0 {
		t.Fatal("the log was never read, yet the ring holds 4 of 50")
	}
}

func TestResync(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 4)
	for range 5 {
		publish(h, l, 1, decode.AppointmentCreated)
	}
	l.pruned = 3
	for _, since := range []int64{0, 2, 1000} {
		s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, since)
		if err != nil || !resync {
			t.Fatalf("since %d: resync %v, %v", since, resync, err)
		}
		id := publish(h, l, 1, decode.AppointmentCreated)
		drain(t, s, []int64{id}) // live only
		s.Close()
	}
	s, resync, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, 3)
	if resync {
		t.Fatal("since = pruned_through must not resync")
	}
	s.Close()
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	c := &clock{now: time.Unix(1e9, 0)}
	h := newTestHub(t, l, 4, func(cfg *Config) { cfg.MaxLag = time.Minute; cfg.NowFunc = c.Now })
	slow, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	fast, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	id := publish(h, l, 1, decode.AppointmentCreated)
	drain(t, fast, []int64{id})
	c.advance(2 * time.Minute)
	if _, err := slow.Poll(t.Context(), nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Poll = %v, want ErrSlowConsumer", err)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscription not ended")
	}
	if h.Subscribers() != 1 {
		t.Fatalf("subscribers = %d, want 1", h.Subscribers())
	}
	// The fast one is unaffected.
	id = publish(h, l, 1, decode.AppointmentCreated)
	drain(t, fast, []int64{id})

	// Behind the ring for too long: slow as well.
	lagging, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	for range 10 {
		publish(h, l, 1, decode.AppointmentCreated)
	}
	c.advance(2 * time.Minute)
	if _, err := lagging.Poll(t.Context(), nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Poll behind the ring = %v, want ErrSlowConsumer", err)
	}
}

// TestResumeAfterMaxLagAway: a client away longer than MaxLag resumes from the ring,
// kept by another subscriber of its account, and gets what it missed, on every retry:
// having been away is not being slow. Falling behind once served still is.
func TestResumeAfterMaxLagAway(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	c := &clock{now: time.Unix(1e9, 0)}
	h := newTestHub(t, l, 100, func(cfg *Config) { cfg.MaxLag = time.Minute; cfg.NowFunc = c.Now })
	keep, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	var ids []int64
	for range 3 {
		ids = append(ids, publish(h, l, 1, decode.AppointmentCreated))
	}
	drain(t, keep, ids)
	c.advance(2 * time.Minute) // the resuming client was away
	for range 2 {
		s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
		if err != nil || resync {
			t.Fatalf("Subscribe = %v, %v", resync, err)
		}
		drain(t, s, ids)
		s.Close()
	}
	if l.replays != 0 {
		t.Fatalf("%d log reads, want the ring only", l.replays)
	}

	s, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
	drain(t, s, ids)
	publish(h, l, 1, decode.AppointmentCreated)
	c.advance(2 * time.Minute) // served, and not reading
	if _, err := s.Poll(t.Context(), nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Poll after falling behind = %v, want ErrSlowConsumer", err)
	}
}

// TestResumeBelowFloorAfterMaxLagAway: the same when the ring holds more than MaxLag
// of history and the client resumes below its floor: the log, then the ring.
func TestResumeBelowFloorAfterMaxLagAway(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	c := &clock{now: time.Unix(1e9, 0)}
	h := newTestHub(t, l, 2, func(cfg *Config) { cfg.MaxLag = time.Minute; cfg.NowFunc = c.Now })
	keep, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	var ids []int64
	for range 2 {
		ids = append(ids, publish(h, l, 1, decode.AppointmentCreated))
	}
	drain(t, keep, ids)
	c.advance(2 * time.Minute)
	for range 2 {
		ids = append(ids, publish(h, l, 1, decode.AppointmentCreated))
	}
	drain(t, keep, ids[2:]) // the ring holds 3 and 4; 2, at its floor, is 2 minutes old
	for range 2 {
		s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
		if err != nil || resync {
			t.Fatalf("Subscribe = %v, %v", resync, err)
		}
		drain(t, s, ids)
		s.Close()
	}
	if l.replays == 0 {
		t.Fatal("the log was never read, yet the ring holds 2 of 4")
	}

	s, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
	c.advance(2 * time.Minute) // joined, and not reading
	if _, err := s.Poll(t.Context(), nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Poll behind the ring after falling behind = %v, want ErrSlowConsumer", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := New(Config{ReplayFunc: l.replay, BoundsFunc: l.bounds}, 0)
	var subs []*Subscription
	for a := range 3 {
		s, _, _ := h.Subscribe(t.Context(), int64(a+1), decode.AllKinds, -1)
		subs = append(subs, s)
	}
	subs[0].Close()
	h.Close()
	for i, s := range subs {
		<-s.Done()
		want := ErrShutdown
		if i == 0 {
			want = ErrClosed
		}
		if !errors.Is(s.Err(), want) {
			t.Errorf("sub %d: Err = %v, want %v", i, s.Err(), want)
		}
		s.Close() // after the hub ended it: no effect
	}
	if _, _, err := h.Subscribe(t.Context(), 1, decode.AllKinds, -1); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if h.Subscribers() != 0 {
		t.Fatalf("subscribers = %d", h.Subscribers())
	}
}

// TestConcurrentJoinsAndPublishes: subscribers join at random positions and leave
// while a publisher runs; each gets exactly its account's messages after its start.
func TestConcurrentJoinsAndPublishes(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 16)
	const total, accounts = 3000, 3
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 64)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				account := int64(1 + rng.IntN(accounts))
				head := h.Head()
				since := int64(-1)
				if head > 0 && rng.IntN(2) == 0 {
					since = rng.Int64N(head + 1)
				}
				if err := checkSubscriber(h, l, account, since, 50+rng.IntN(200)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i := range total {
		h.Publish([]*Message{l.add(int64(1+i%accounts), decode.AppointmentCreated)})
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// checkSubscriber subscribes and verifies the next n messages it gets (or until the
// publisher stops) against the log.
func checkSubscriber(h *Hub, l *testLog, account, since int64, n int) error {
	s, _, err := h.Subscribe(context.Background(), account, decode.AllKinds, since)
	if err != nil {
		return err
	}
	defer s.Close()
	prev := s.Cursor()
	var batch []*Message
	for got := 0; got < n; {
		batch, err = s.Poll(context.Background(), batch[:0])
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			select {
			case <-s.Wake():
				continue
			case <-time.After(50 * time.Millisecond): // the publisher may be done
				return nil
			}
		}
		for _, m := range batch {
			l.mu.Lock()
			// Every id between prev and m.ID must belong to another account.
			for id := prev + 1; id < m.ID; id++ {
				if l.msgs[id-1].AccountID == account {
					l.mu.Unlock()
					return fmt.Errorf("account %d since %d: skipped %d (got %d after %d)", account, since, id, m.ID, prev)
				}
			}
			l.mu.Unlock()
			if m.AccountID != account || m.ID <= prev {
				return fmt.Errorf("account %d since %d: got id %d of account %d after %d", account, since, m.ID, m.AccountID, prev)
			}
			prev = m.ID
			got++
		}
	}
	return nil
}

func TestNewMessageFrame(t *testing.T) {
	t.Parallel()
	m := NewMessage(enrich.Event{ID: 42, Kind: decode.AppointmentCheckin, AccountID: 7, Data: []byte(`{"id":1}`)})
	if got := string(m.Frame); got != `{"id":42,"event":"appointments.checkin","data":{"id":1}}` {
		t.Fatalf("frame = %s", got)
	}
	p := NewMessage(enrich.Event{ID: 43, Kind: decode.DoctorCreated, AccountID: 7, Data: []byte(`{"id":2,"accountId":7}`), Partial: true})
	if got := string(p.Frame); got != `{"id":43,"event":"doctors.created","partial":true,"data":{"id":2,"accountId":7}}` {
		t.Fatalf("partial frame = %s", got)
	}
	// Data is the payload inside the frame, not a copy of it, and cannot grow into it.
	for _, msg := range []*Message{m, p} {
		start := bytes.Index(msg.Frame, []byte(`"data":`)) + len(`"data":`)
		if string(msg.Data) != string(msg.Frame[start:len(msg.Frame)-1]) || &msg.Data[0] != &msg.Frame[start] || cap(msg.Data) != len(msg.Data) {
			t.Fatalf("message %d: Data %q is not the frame's payload bytes", msg.ID, msg.Data)
		}
	}
}

func TestSubscriberLimits(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 4, func(c *Config) { c.MaxSubscribers = 3; c.MaxSubscribersPerAccount = 2 })
	a1, _, err1 := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	_, _, err2 := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, _, err := h.Subscribe(t.Context(), 1, decode.AllKinds, -1); !errors.Is(err, ErrAccountConnectionLimit) {
		t.Fatalf("third of account 1: %v", err)
	}
	if _, _, err := h.Subscribe(t.Context(), 2, decode.AllKinds, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Subscribe(t.Context(), 3, decode.AllKinds, -1); !errors.Is(err, ErrConnectionLimit) {
		t.Fatalf("fourth overall: %v", err)
	}
	a1.Close()
	if _, _, err := h.Subscribe(t.Context(), 3, decode.AllKinds, -1); err != nil {
		t.Fatalf("after a close: %v", err)
	}
}

// TestDue: Due says whether Poll has something for the subscription now (a message, a
// replay, its end), and is false once Poll has taken everything; a message published
// then wakes Wake.
func TestDue(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 2)
	s, _, err := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Due() {
		t.Fatal("due before anything was published")
	}
	publish(h, l, 2, decode.AppointmentCreated) // another account's
	if s.Due() {
		t.Fatal("due for another account's message")
	}
	publish(h, l, 1, decode.AppointmentCreated)
	if !s.Due() {
		t.Fatal("not due after a message of its account")
	}
	<-s.Wake()
	if batch, err := s.Poll(t.Context(), nil); len(batch) != 1 || err != nil {
		t.Fatalf("Poll = %v, %v", batch, err)
	}
	if s.Due() {
		t.Fatal("due after Poll took everything")
	}
	for range 3 { // past the ring of 2: the cursor falls behind its floor
		publish(h, l, 1, decode.AppointmentCreated)
	}
	if !s.Due() {
		t.Fatal("not due with a replay to read")
	}
	select {
	case <-s.Wake():
	default:
		t.Fatal("a message published after Poll did not wake Wake")
	}
	s.Close()
	if !s.Due() {
		t.Fatal("not due once ended")
	}
}
