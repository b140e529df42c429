package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/notifier/decode"
)

// Errors that end a subscription; Subscription.Err returns them.
var (
	ErrSlowConsumer = errors.New(contract.ReasonSlowConsumer)
	ErrShutdown     = errors.New(contract.ReasonShutdown)
	ErrClosed       = errors.New("subscription closed")
)

// Errors about the log behind a subscription.
var (
	// ErrResync is returned by Poll when the subscription's cursor had to skip events
	// the log no longer holds (pruned during a replay, or the log was reset): the
	// subscription stays live; tell the client to reload its lists (notifier.resync)
	// and poll again.
	ErrResync = errors.New("resync needed")
	// ErrPruned is wrapped by a ReplayFunc's error when the log no longer holds part
	// of the range it was asked for.
	ErrPruned = errors.New("replay range pruned")
)

// Errors Subscribe refuses a subscription with when a limit is reached.
var (
	ErrConnectionLimit        = errors.New("too many connections")
	ErrAccountConnectionLimit = errors.New("too many connections for this account")
)

// ReplayFunc returns, in id order, messages of account with after < id <= through,
// reading at most limit log entries, and the position to continue from: next >= through
// when the range is exhausted. The notifier implements it by reading the log and
// enriching.
type ReplayFunc func(ctx context.Context, account, after, through int64, limit int) (msgs []*Message, next int64, err error)

// BoundsFunc returns what the log can replay: ids above prunedThrough up to head.
type BoundsFunc func(ctx context.Context) (prunedThrough, head int64, err error)

// Config configures a Hub.
type Config struct {
	ReplayBuffer int           // messages a room keeps in memory; default 1024
	ReplayPage   int           // log entries per ReplayFunc call; default 500
	BatchSize    int           // most messages one Poll returns; default 256
	MaxLag       time.Duration // how long a message may wait for a subscriber, from its publishing or the subscriber's (re)start if later; default 30s
	// MaxSubscribers and MaxSubscribersPerAccount cap live subscriptions; 0 is no cap.
	MaxSubscribers           int
	MaxSubscribersPerAccount int
	Metrics                  *metrics.Registry
	ReplayFunc               ReplayFunc
	BoundsFunc               BoundsFunc
	Logger                   *slog.Logger
	NowFunc                  func() time.Time // default time.Now
}

// Hub holds one room per account with subscribers.
type Hub struct {
	cfg    Config
	logger *slog.Logger

	mu     sync.RWMutex
	rooms  map[int64]*room
	closed bool
	head   atomic.Int64  // id of the last message published (or the start position, or the last Reset's head)
	resets atomic.Uint64 // Reset calls so far; written with mu held exclusively

	subs atomic.Int64

	published                    *metrics.Indexed
	slowKicks, logReads, resyncs *metrics.Counter
}

// New returns a Hub whose first published message follows start.
func New(cfg Config, start int64) *Hub {
	if cfg.ReplayBuffer <= 0 {
		cfg.ReplayBuffer = 1024
	}
	if cfg.ReplayPage <= 0 {
		cfg.ReplayPage = 500
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 30 * time.Second
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, logger: logger.With("component", "hub"), rooms: make(map[int64]*room)}
	h.head.Store(start)
	m := cfg.Metrics
	h.published = m.Indexed("notifier_events_published_total", "Events published to rooms, by event name.", "event")
	h.slowKicks = m.Counter("notifier_hub_slow_consumers_total", "Subscriptions ended because their oldest due event waited longer than hub.max_lag.")
	h.logReads = m.Counter("notifier_hub_log_replays_total", "Event log reads for subscribers behind their room's buffer (resumes, bursts).")
	h.resyncs = m.Counter("notifier_hub_resyncs_total", "Live subscriptions moved past events the log no longer holds (pruned under a replay, or the log was reset).")
	m.GaugeFunc("notifier_hub_subscribers", "Live subscriptions, all transports.", func() float64 { return float64(h.subs.Load()) })
	m.GaugeFunc("notifier_hub_head", "Id of the last event published.", func() float64 { return float64(h.head.Load()) })
	return h
}

// Head returns the id of the last message published.
func (h *Hub) Head() int64 { return h.head.Load() }

// Subscribers returns the number of live subscriptions.
func (h *Hub) Subscribers() int64 { return h.subs.Load() }

// Publish fans msgs, in id order, out to their rooms. It never waits for a subscriber.
// Messages at or below the head are dropped: they were published already, or belong to
// a log a Reset voided.
func (h *Hub) Publish(msgs []*Message) {
	if len(msgs) == 0 {
		return
	}
	now := h.cfg.NowFunc()
	h.mu.RLock()
	defer h.mu.RUnlock()
	head := h.head.Load()
	var last *room
	for _, m := range msgs {
		if m.ID <= head {
			continue
		}
		head = m.ID
		h.published.Add(uint8(m.Kind), m.Name, 1)
		m.published = now
		r := h.rooms[m.AccountID]
		if r != nil {
			r.append(m)
			if last != nil && last != r {
				last.wakeAll()
			}
			last = r
		}
		h.head.Store(m.ID)
	}
	if last != nil {
		last.wakeAll()
	}
}

// Subscribe joins account's room for the kinds in kinds. With since < 0 the subscriber
// gets what is published from now on; with since >= 0, every message after since,
// replayed from the log as needed. resync is true when the log no longer reaches back
// to since, or since is ahead of it, or the log was reset meanwhile: the client must
// reload its lists, and gets live messages only.
func (h *Hub) Subscribe(ctx context.Context, account int64, kinds decode.Set, since int64) (sub *Subscription, resync bool, err error) {
	resets := h.resets.Load()
	if since >= 0 {
		pruned, head, err := h.cfg.BoundsFunc(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("subscribe account %d since %d: %w", account, since, err)
		}
		resync = since < pruned || since > head
	}
	sub = &Subscription{
		hub:     h,
		account: account,
		kinds:   kinds,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, ErrShutdown
	}
	if max := h.cfg.MaxSubscribers; max > 0 && h.subs.Load() >= int64(max) {
		return nil, false, ErrConnectionLimit
	}
	r := h.rooms[account]
	if max := h.cfg.MaxSubscribersPerAccount; max > 0 && r != nil && len(r.subs) >= max {
		return nil, false, ErrAccountConnectionLimit
	}
	if r == nil {
		// Publish cannot run while h.mu is held exclusively, so the head is exact: the
		// room will hold every message of the account after it.
		r = &room{max: h.cfg.ReplayBuffer}
		r.empty(h.head.Load(), h.resets.Load())
		h.rooms[account] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A Reset since the bounds were read: since names a position in the voided log.
	resync = resync || (since >= 0 && h.resets.Load() != resets)
	if since < 0 || resync {
		sub.cursor = h.head.Load()
	} else {
		sub.cursor = since
	}
	sub.joined = h.cfg.NowFunc()
	sub.reset = r.reset
	r.add(sub)
	return sub, resync, nil
}

// Reset tells the hub that the event log was reset: its ids went back and new ones are
// drawn above head. Every room is emptied (its messages are void), the head becomes
// head, and every live subscription's next Poll returns ErrResync once, its cursor
// moved to head; subscriptions made from now on start from head. Call it after the
// log is rebased and before Publish is given any message of the rebased log; messages
// published afterwards at or below head are dropped as stale.
func (h *Hub) Reset(head int64) {
	h.mu.Lock() // excludes Publish and Subscribe
	defer h.mu.Unlock()
	resets := h.resets.Add(1)
	h.head.Store(head)
	for _, r := range h.rooms {
		r.mu.Lock()
		r.empty(head, resets)
		r.mu.Unlock()
		r.wakeAll() // so that waiting writers learn of it now
	}
	h.logger.Warn("event log reset: every subscription resyncs", "head", head, "rooms", len(h.rooms))
}

// Close ends every subscription with ErrShutdown and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for acc, r := range h.rooms {
		r.mu.Lock()
		for len(r.subs) > 0 {
			r.remove(r.subs[len(r.subs)-1], ErrShutdown)
		}
		r.mu.Unlock()
		delete(h.rooms, acc)
	}
}

// room is one account's subscribers and its recent messages.
type room struct {
	mu         sync.RWMutex
	subs       []*Subscription
	ring       []*Message // the last max messages in id order, oldest at start
	start      int
	max        int
	floor      int64     // every message of the account with id > floor is in ring
	floorTime  time.Time // when the message at floor was published; zero if it was not evicted
	reset      uint64    // the hub's Reset count when the ring was last emptied
	resetFloor int64     // the floor then: where a subscription that missed that Reset continues
}

// empty drops the ring's messages: the room holds every message of its account after
// floor from now on. reset is the hub's Reset count. r.mu must be held unless r is new.
func (r *room) empty(floor int64, reset uint64) {
	r.ring = make([]*Message, 0, min(r.max, 64))
	r.start = 0
	r.floor, r.floorTime = floor, time.Time{}
	r.reset, r.resetFloor = reset, floor
}

// append adds m to the ring, evicting the oldest when full.
func (r *room) append(m *Message) {
	r.mu.Lock()
	if len(r.ring) < r.max {
		r.ring = append(r.ring, m)
	} else {
		old := r.ring[r.start]
		r.floor, r.floorTime = old.ID, old.published
		r.ring[r.start] = m
		r.start = (r.start + 1) % r.max
	}
	r.mu.Unlock()
}

func (r *room) wakeAll() {
	r.mu.RLock()
	for _, s := range r.subs {
		select {
		case s.wake <- struct{}{}:
		default: // already due a look
		}
	}
	r.mu.RUnlock()
}

// at returns the i-th oldest message of the ring. r.mu must be held.
func (r *room) at(i int) *Message { return r.ring[(r.start+i)%len(r.ring)] }

// after appends to dst the messages with id > cursor that s wants, at most n of them,
// and returns the id of the last message it looked at (cursor if none) and when the
// first of them was published. r.mu must be held.
func (r *room) after(s *Subscription, cursor int64, n int, dst []*Message) ([]*Message, int64, time.Time) {
	i := sort.Search(len(r.ring), func(i int) bool { return r.at(i).ID > cursor })
	last := cursor
	var first time.Time
	for ; i < len(r.ring) && len(dst) < n; i++ {
		m := r.at(i)
		if first.IsZero() {
			first = m.published
		}
		last = m.ID
		if s.wants(m) {
			dst = append(dst, m)
		}
	}
	return dst, last, first
}

func (r *room) add(s *Subscription) {
	s.room = r
	s.index = len(r.subs)
	r.subs = append(r.subs, s)
	s.hub.subs.Add(1)
}

// remove takes s out of the room and ends it with err. r.mu must be held.
func (r *room) remove(s *Subscription, err error) {
	if s.index < 0 {
		return
	}
	last := len(r.subs) - 1
	r.subs[s.index] = r.subs[last]
	r.subs[s.index].index = s.index
	r.subs[last] = nil
	r.subs = r.subs[:last]
	s.index = -1
	s.err = err
	close(s.done)
	select {
	case s.wake <- struct{}{}: // so that a writer waiting on Wake alone learns of it
	default:
	}
	s.hub.subs.Add(-1)
}

// Subscription is one connection's cursor in its account's room.
type Subscription struct {
	hub     *Hub
	room    *room
	account int64
	kinds   decode.Set
	wake    chan struct{}
	done    chan struct{}

	// Owned by the Poll caller.
	origin string    // messages with this Origin are not delivered; "" delivers all
	cursor int64     // id of the last message handed out or skipped
	joined time.Time // when it joined or last resynced: its lag is counted from then at the earliest
	reset  uint64    // room.reset when it last looked: a Reset it has not seen if they differ

	// Guarded by room.mu.
	index int // in room.subs; -1 once removed
	err   error
}

// Wake receives when new messages may be due, and when the subscription ends: call
// Poll, which returns Err once it has ended.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

// Done is closed when the subscription ends; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended: ErrSlowConsumer, ErrShutdown or ErrClosed.
// Only valid after Done is closed.
func (s *Subscription) Err() error { return s.err }

// SetOrigin makes the subscription skip the messages whose Origin is origin (those
// its own connection sent, see Message.Origin), live and replayed; "" skips none. Call
// it before the first Poll, from the goroutine that polls.
func (s *Subscription) SetOrigin(origin string) { s.origin = origin }

// wants reports whether m is for s: of its kinds, and not its own.
func (s *Subscription) wants(m *Message) bool {
	return s.kinds.Has(m.Kind) && (s.origin == "" || m.Origin != s.origin)
}

// Cursor returns the id of the last message Poll handed out or skipped.
func (s *Subscription) Cursor() int64 { return s.cursor }

// Due reports whether Poll has something to return or to report now: a message
// after the cursor, a replay, a resync or the end. When it is false, the next message
// published for the subscription, or its end, sends on Wake. Like Poll, it must not be
// called concurrently with Poll.
func (s *Subscription) Due() bool {
	select {
	case <-s.done:
		return true
	default:
	}
	r := s.room
	r.mu.RLock()
	defer r.mu.RUnlock()
	return s.reset != r.reset || s.cursor < r.floor || (len(r.ring) > 0 && r.at(len(r.ring)-1).ID > s.cursor)
}

// Poll appends to dst the messages due, in id order, at most Config.BatchSize, and
// advances the cursor past them; an empty result means wait for Wake. It reads the
// event log (blocking on the database) when the cursor is behind the room's ring.
//
// It returns ErrSlowConsumer, having ended the subscription, when the oldest message
// due has waited longer than MaxLag: since it was published or, if later, since the
// subscription joined or last resynced, so a client is too slow only for falling
// behind while served, never for having been away. It returns ErrResync, the
// subscription staying live, when the cursor had to skip events the log no longer
// holds: the ReplayFunc reported ErrPruned (the cursor moves to the room's floor,
// after which the ring holds everything), or the hub was Reset (the cursor moves to
// the Reset's head). Poll must not be called concurrently with itself.
func (s *Subscription) Poll(ctx context.Context, dst []*Message) ([]*Message, error) {
	h, r := s.hub, s.room
	for {
		select {
		case <-s.done:
			return dst, s.err
		default:
		}
		r.mu.RLock()
		if s.reset != r.reset {
			s.reset = r.reset
			to := r.resetFloor
			r.mu.RUnlock()
			return dst, s.resync(to)
		}
		floor, floorTime := r.floor, r.floorTime
		if s.cursor >= floor {
			var last int64
			var first time.Time
			dst, last, first = r.after(s, s.cursor, h.cfg.BatchSize, dst)
			r.mu.RUnlock()
			if last == s.cursor {
				return dst, nil
			}
			if lag := s.lag(first); lag > h.cfg.MaxLag {
				return dst[:0], s.slow(lag)
			}
			s.cursor = last
			if len(dst) > 0 {
				return dst, nil
			}
			continue // everything looked at was filtered out; look again
		}
		r.mu.RUnlock()
		// Behind the ring: read the log up to its floor. The oldest message due was
		// published no later than the one at the floor; if none was evicted yet (zero
		// floorTime), the messages due predate the room and are not timed.
		if !floorTime.IsZero() {
			if lag := s.lag(floorTime); lag > h.cfg.MaxLag {
				return dst[:0], s.slow(lag)
			}
		}
		h.logReads.Inc()
		msgs, next, err := h.cfg.ReplayFunc(ctx, s.account, s.cursor, floor, h.cfg.ReplayPage)
		if errors.Is(err, ErrPruned) {
			// What msgs holds may be incomplete: skip to the ring, which holds
			// everything after its floor (or to a Reset's head, if one came meanwhile).
			r.mu.RLock()
			to := r.floor
			if s.reset != r.reset {
				s.reset, to = r.reset, r.resetFloor
			}
			r.mu.RUnlock()
			h.logger.Warn("replay range pruned: subscription resyncs", "account_id", s.account, "cursor", s.cursor, "to", to, "error", err)
			return dst, s.resync(to)
		}
		if err != nil {
			return dst, fmt.Errorf("replay account %d after %d: %w", s.account, s.cursor, err)
		}
		if next <= s.cursor {
			return dst, fmt.Errorf("replay account %d after %d: no progress (next %d)", s.account, s.cursor, next)
		}
		for _, m := range msgs {
			if s.wants(m) {
				dst = append(dst, m)
			}
		}
		s.cursor = min(next, floor)
		if len(dst) > 0 {
			return dst, nil
		}
	}
}

// lag returns how long a message published at published has been due to s.
func (s *Subscription) lag(published time.Time) time.Duration {
	if published.Before(s.joined) {
		published = s.joined
	}
	return s.hub.cfg.NowFunc().Sub(published)
}

// resync moves the cursor to to, past events the log no longer holds, restarts the
// lag clock and returns ErrResync.
func (s *Subscription) resync(to int64) error {
	s.cursor, s.joined = to, s.hub.cfg.NowFunc()
	s.hub.resyncs.Inc()
	return ErrResync
}

// slow ends the subscription as too slow.
func (s *Subscription) slow(lag time.Duration) error {
	s.hub.logger.Warn("slow consumer disconnected", "account_id", s.account, "cursor", s.cursor, "lag", lag.Round(time.Millisecond))
	s.hub.slowKicks.Inc()
	s.end(ErrSlowConsumer)
	return ErrSlowConsumer
}

// Close leaves the room; safe to call more than once and after the hub ended it.
func (s *Subscription) Close() { s.end(ErrClosed) }

func (s *Subscription) end(err error) {
	h, r := s.hub, s.room
	h.mu.Lock()
	defer h.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.index < 0 {
		return
	}
	r.remove(s, err)
	if len(r.subs) == 0 && h.rooms[s.account] == r {
		delete(h.rooms, s.account)
	}
}
