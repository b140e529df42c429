package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/decode"
)

// pollResync polls s once and fails unless Poll says resync, delivering nothing, with
// the cursor moved to want and the subscription still live.
func pollResync(t *testing.T, s *Subscription, want int64) {
	t.Helper()
	batch, err := s.Poll(t.Context(), nil)
	if !errors.Is(err, ErrResync) || len(batch) != 0 {
		t.Fatalf("Poll = %d messages, %v; want none, ErrResync", len(batch), err)
	}
	if s.Cursor() != want {
		t.Fatalf("cursor after resync = %d, want %d", s.Cursor(), want)
	}
	select {
	case <-s.Done():
		t.Fatalf("a resync ended the subscription: %v", s.Err())
	default:
	}
}

// pollNothing fails unless Poll finds nothing due and no error.
func pollNothing(t *testing.T, s *Subscription) {
	t.Helper()
	if batch, err := s.Poll(t.Context(), nil); len(batch) != 0 || err != nil {
		t.Fatalf("Poll = %d messages, %v; want none, nil", len(batch), err)
	}
}

// TestReplayPrunedMidway: retention prunes part of a long replay's range between two
// pages. The subscription resyncs once, without ending, and continues from the ring;
// the lag clock restarts there.
func TestReplayPrunedMidway(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	c := &clock{now: time.Unix(1e9, 0)}
	h := newTestHub(t, l, 4, func(cfg *Config) { cfg.MaxLag = time.Minute; cfg.NowFunc = c.Now })
	keep, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	var ids []int64
	for range 20 {
		ids = append(ids, publish(h, l, 1, decode.AppointmentCreated))
	}
	drain(t, keep, ids) // the ring holds 17..20; its floor is 16

	s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
	if err != nil || resync {
		t.Fatalf("Subscribe = %v, %v", resync, err)
	}
	drain(t, s, ids[:3]) // the first page of the log
	c.advance(50 * time.Second)
	l.prune(10)
	pollResync(t, s, 16)
	if h.Subscribers() != 2 {
		t.Fatalf("subscribers = %d, want 2", h.Subscribers())
	}
	// 17..20 were published 70s ago, more than MaxLag, but the subscription resynced
	// 20s ago: it is not behind.
	c.advance(20 * time.Second)
	drain(t, s, ids[16:])
	id := publish(h, l, 1, decode.AppointmentCreated)
	drain(t, s, []int64{id})
}

// TestReset: after Reset every live subscription, in the ring or behind it, is woken
// and resyncs once to the new head, and gets nothing of the voided log; later
// subscriptions start from the new head.
func TestReset(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	h := newTestHub(t, l, 4)
	inRing, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	other, _, _ := h.Subscribe(t.Context(), 2, decode.AllKinds, -1)
	for i := range 10 {
		publish(h, l, int64(1+i%2), decode.AppointmentCreated)
	}
	behind, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, 0) // below the floor
	drain(t, inRing, []int64{1, 3, 5, 7, 9})
	publish(h, l, 1, decode.AppointmentCreated) // due to inRing, never delivered
	subs := []*Subscription{inRing, other, behind}
	for _, s := range subs {
		select {
		case <-s.Wake():
		default:
		}
	}

	const head = 100
	l.rebase(head)
	h.Reset(head)
	if h.Head() != head {
		t.Fatalf("head = %d, want %d", h.Head(), head)
	}
	for i, s := range subs {
		select {
		case <-s.Wake():
		default:
			t.Fatalf("subscription %d not woken by Reset", i)
		}
		pollResync(t, s, head)
		pollNothing(t, s)
	}
	live, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
	if err != nil || resync || live.Cursor() != head {
		t.Fatalf("Subscribe after Reset: cursor %d, %v, %v; want %d", live.Cursor(), resync, err, head)
	}
	if old, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, 5); err != nil || !resync || old.Cursor() != head {
		t.Fatalf("Subscribe since 5 after Reset: cursor %d, %v, %v; want a resync to %d", old.Cursor(), resync, err, head)
	}

	// A message of the voided log still in flight is dropped.
	stale := l.get(11)
	h.Publish([]*Message{stale})
	if h.Head() != head {
		t.Fatalf("head after a stale message = %d, want %d", h.Head(), head)
	}
	a1 := publish(h, l, 1, decode.AppointmentCreated)
	a2 := publish(h, l, 2, decode.AppointmentCreated)
	for _, s := range []*Subscription{inRing, behind, live} {
		drain(t, s, []int64{a1})
	}
	drain(t, other, []int64{a2})
}

// TestResetDuringSubscribe: a Reset between Subscribe reading the log's bounds and
// joining the room makes since a position in the voided log: resync, from the new head.
func TestResetDuringSubscribe(t *testing.T) {
	t.Parallel()
	l := &testLog{}
	var h *Hub
	const head = 100
	h = newTestHub(t, l, 4, func(cfg *Config) {
		cfg.BoundsFunc = func(ctx context.Context) (int64, int64, error) {
			pruned, top, err := l.bounds(ctx)
			l.rebase(head)
			h.Reset(head)
			return pruned, top, err // what was read before the reset
		}
	})
	for range 10 {
		publish(h, l, 1, decode.AppointmentCreated)
	}
	s, resync, err := h.Subscribe(t.Context(), 1, decode.AllKinds, 5)
	if err != nil || !resync || s.Cursor() != head {
		t.Fatalf("Subscribe = cursor %d, %v, %v; want a resync to %d", s.Cursor(), resync, err, head)
	}
	pollNothing(t, s)
}

// TestResetDuringReplay: a Reset while a Poll reads the log. Whether that read fails
// (the log was rebased first) or returns old events, the subscription resyncs exactly
// once, to the Reset's head.
func TestResetDuringReplay(t *testing.T) {
	t.Parallel()
	for _, rebased := range []bool{true, false} {
		t.Run(fmt.Sprint("rebased=", rebased), func(t *testing.T) {
			t.Parallel()
			l := &testLog{}
			h := newTestHub(t, l, 4)
			keep, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, -1)
			for range 10 {
				publish(h, l, 1, decode.AppointmentCreated)
			}
			s, _, _ := h.Subscribe(t.Context(), 1, decode.AllKinds, 0)
			entered, proceed := make(chan struct{}), make(chan struct{})
			var once sync.Once
			l.onReplay = func() { once.Do(func() { close(entered); <-proceed }) }
			type polled struct {
				n   int
				err error
			}
			done := make(chan polled)
			go func() {
				batch, err := s.Poll(context.Background(), nil)
				done <- polled{len(batch), err}
			}()
			<-entered
			const head = 100
			if rebased {
				l.rebase(head)
			}
			h.Reset(head)
			close(proceed)
			p := <-done
			switch {
			case rebased && !errors.Is(p.err, ErrResync):
				t.Fatalf("Poll over a rebased log = %d messages, %v; want ErrResync", p.n, p.err)
			case !rebased && (p.err != nil || p.n != 3):
				t.Fatalf("Poll = %d messages, %v; want the page read before the reset", p.n, p.err)
			case !rebased:
				pollResync(t, s, head)
			}
			if s.Cursor() != head {
				t.Fatalf("cursor = %d, want %d", s.Cursor(), head)
			}
			pollNothing(t, s)
			pollResync(t, keep, head)
		})
	}
}

// TestResetConcurrently: Reset runs while a publisher publishes, subscribers poll
// and others join and leave, under -race. Every subscription sees its account's
// messages in id order and, once resynced to the Reset's head, nothing of the voided
// log; those subscribed throughout see every message of the new log, and every one of
// the old log but those a resync skipped.
func TestResetConcurrently(t *testing.T) {
	t.Parallel()
	const accounts, perLog, head = 3, 1500, 1_000_000
	l := &testLog{}
	h := newTestHub(t, l, 16)
	var old, fresh []*Message // the log before and after the reset, all in it from the start
	for i := range perLog {
		old = append(old, l.add(int64(1+i%accounts), decode.AppointmentCreated))
	}
	l.head = head
	lastOf := map[int64]int64{}
	for i := range perLog {
		m := l.add(int64(1+i%accounts), decode.AppointmentCreated)
		fresh = append(fresh, m)
		lastOf[m.AccountID] = m.ID
	}

	half, resetDone, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
	errc := make(chan error, 64)
	var pollers, joiners sync.WaitGroup
	for i := range 2 * accounts {
		account := int64(1 + i%accounts)
		s, _, err := h.Subscribe(t.Context(), account, decode.AllKinds, -1)
		if err != nil {
			t.Fatal(err)
		}
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			defer s.Close()
			if err := followReset(l, s, head, lastOf[account], nil); err != nil {
				errc <- err
			}
		}()
	}
	for w := range 6 {
		joiners.Add(1)
		go func() {
			defer joiners.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				account := int64(1 + (w+n)%accounts)
				since := int64(-1)
				if n%2 == 0 {
					since = h.Head() / 2
				}
				var after bool // subscribed once the Reset was done: no resync due
				select {
				case <-resetDone:
					after = true
				default:
				}
				s, _, err := h.Subscribe(context.Background(), account, decode.AllKinds, since)
				if err != nil {
					errc <- err
					return
				}
				if after && s.Cursor() < head {
					errc <- fmt.Errorf("account %d since %d: cursor %d after the Reset", account, since, s.Cursor())
				}
				err = followReset(l, s, head, 0, stop)
				s.Close()
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	go func() {
		<-half
		l.rebase(head) // as the service does: the log first, then the hub
		h.Reset(head)
		close(resetDone)
	}()
	for i, m := range old {
		if i == perLog/2 {
			close(half)
		}
		h.Publish([]*Message{m}) // those after the Reset are stale: dropped
	}
	<-resetDone
	for _, m := range fresh {
		h.Publish([]*Message{m})
	}
	pollers.Wait()
	close(stop)
	joiners.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if want := fresh[len(fresh)-1].ID; h.Head() != want {
		t.Errorf("head = %d, want %d", h.Head(), want)
	}
}

// followReset polls s until it got until (if not 0) or until stop. It checks that
// messages come in id order, of s's account; that s resyncs to head at most once,
// and gets nothing at or below head after that nor above head before; and, with
// until set, that it skips nothing of its account but across a resync.
func followReset(l *testLog, s *Subscription, head, until int64, stop <-chan struct{}) error {
	prev := s.Cursor()
	resynced := prev >= head
	var batch []*Message
	for {
		var err error
		batch, err = s.Poll(context.Background(), batch[:0])
		switch {
		case errors.Is(err, ErrResync) && !resynced && s.Cursor() == head:
			resynced, prev = true, head
			continue
		case errors.Is(err, ErrResync) && !resynced && s.Cursor() >= prev && s.Cursor() < head:
			prev = s.Cursor() // a replay between the rebase and the Reset: pruned
			continue
		case err != nil:
			return fmt.Errorf("account %d: Poll after %d (resynced %v, cursor %d): %w", s.account, prev, resynced, s.Cursor(), err)
		}
		for _, m := range batch {
			if m.AccountID != s.account || m.ID <= prev || (resynced && m.ID <= head) || (!resynced && m.ID > head) {
				return fmt.Errorf("account %d: got %d of account %d after %d (resynced %v)", s.account, m.ID, m.AccountID, prev, resynced)
			}
			if until != 0 {
				for id := prev + 1; id < m.ID; id++ {
					if g := l.get(id); g != nil && g.AccountID == s.account {
						return fmt.Errorf("account %d: skipped %d (got %d after %d)", s.account, id, m.ID, prev)
					}
				}
			}
			prev = m.ID
			if m.ID == until {
				return nil
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.Wake():
		case <-s.Done():
		case <-stop:
			return nil
		}
	}
}
