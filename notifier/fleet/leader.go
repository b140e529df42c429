package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// StreamPath is where a leader serves its followers.
const StreamPath = "/v1/fleet/stream"

// ErrPruned is wrapped by a BacklogFunc's error when the log no longer holds the range:
// the follower then resets to the leader's head (its clients resync).
var ErrPruned = errors.New("the event log no longer holds the backlog")

// BacklogFunc returns, in id order, the messages of every account with
// after < id <= through, reading at most limit log entries, and the position to go on
// from: next >= through when the range is exhausted (hub.ReplayFunc, for all accounts).
type BacklogFunc func(ctx context.Context, after, through int64, limit int) (msgs []*hub.Message, next int64, err error)

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	Key          []byte        // the fleet key: followers' tokens are MACs with it
	Ring         int           // messages kept for followers that reconnect; default 4096
	Queue        int           // records a follower may be behind before it is dropped; default 1024
	PingInterval time.Duration // default 10s; a follower that sends nothing for 3 of them is dropped
	WriteWait    time.Duration // one record's write; default 10s
	Backlog      BacklogFunc   // for followers behind the ring
	Logger       *slog.Logger
	Metrics      *metrics.Registry
}

// Leader streams what this instance publishes to its followers while it leads. The
// pipeline calls Publish after the hub's Publish; each record is encoded once for
// every follower. It never waits for a follower: one more than Queue records behind
// is dropped and reconnects.
type Leader struct {
	cfg      LeaderConfig
	logger   *slog.Logger
	upgrader websocket.Upgrader

	mu        sync.Mutex
	leading   bool
	ready     bool
	head      int64          // id of the last message published, or the Start/Reset head
	floor     int64          // ring holds every message published with floor < id <= head
	ring      []*hub.Message // oldest first
	followers map[*follower]struct{}

	refused, dropped *metrics.Counter
	connected        *metrics.Gauge
}

type follower struct {
	queue chan []byte
	done  chan struct{} // closed when the leader drops it
	why   string        // set before done closes
}

// NewLeader returns a Leader that is not leading: it refuses followers until Start.
func NewLeader(cfg LeaderConfig) *Leader {
	if cfg.Ring <= 0 {
		cfg.Ring = 4096
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 10 * time.Second
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Leader{
		cfg:       cfg,
		logger:    logger.With("component", "fleet"),
		upgrader:  websocket.Upgrader{ReadBufferSize: 256, WriteBufferSize: 16 << 10},
		followers: make(map[*follower]struct{}),
	}
	m := cfg.Metrics
	l.refused = m.Counter("notifier_fleet_streams_refused_total", "Follower streams refused: a bad or missing fleet token, or this instance does not lead.")
	l.dropped = m.Counter("notifier_fleet_followers_dropped_total", "Followers dropped for falling more than the queue behind.")
	l.connected = m.Gauge("notifier_fleet_followers", "Followers streaming from this instance.")
	return l
}

// Start begins leading with the hub at head: followers are served from now on.
func (l *Leader) Start(head int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading, l.ready = true, false
	l.head, l.floor, l.ring = head, head, l.ring[:0]
}

// Stop ends leading: every follower is dropped (it finds the next leader) and new
// ones are refused.
func (l *Leader) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = false
	for f := range l.followers {
		l.drop(f, "leader stepped down")
	}
	clear(l.ring)
	l.ring = l.ring[:0]
}

// Publish streams msgs, in id order, to the followers.
func (l *Leader) Publish(msgs []*hub.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading || len(msgs) == 0 {
		return
	}
	fresh := msgs
	for len(fresh) > 0 && fresh[0].ID <= l.head {
		fresh = fresh[1:]
	}
	if len(fresh) == 0 {
		return
	}
	l.head = fresh[len(fresh)-1].ID
	l.keep(fresh)
	if len(l.followers) > 0 {
		l.send(appendEvents(nil, fresh))
	}
}

// keep adds msgs to the ring, dropping the oldest beyond its size.
func (l *Leader) keep(msgs []*hub.Message) {
	l.ring = append(l.ring, msgs...)
	if over := len(l.ring) - l.cfg.Ring; over > 0 {
		l.floor = l.ring[over-1].ID
		n := copy(l.ring, l.ring[over:])
		clear(l.ring[n:])
		l.ring = l.ring[:n]
	}
}

// Reset tells the followers that the log was rebased to head (hub.Reset).
func (l *Leader) Reset(head int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return
	}
	l.head, l.floor = head, head
	clear(l.ring)
	l.ring = l.ring[:0]
	l.send(appendReset(nil, head))
}

// SetReady tells the followers whether this instance is delivering: its listener is
// connected and caught up. A follower is ready only while its leader is.
func (l *Leader) SetReady(ready bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading || l.ready == ready {
		return
	}
	l.ready = ready
	l.send(appendState(nil, ready, l.head))
}

// send queues rec for every follower; l.mu is held.
func (l *Leader) send(rec []byte) {
	for f := range l.followers {
		select {
		case f.queue <- rec:
		default:
			l.dropped.Inc()
			l.drop(f, "follower too slow")
		}
	}
}

// drop ends f's stream; l.mu is held.
func (l *Leader) drop(f *follower, why string) {
	f.why = why
	close(f.done)
	delete(l.followers, f)
	l.connected.Add(-1)
}

// ServeHTTP serves one follower: GET StreamPath?after=N with the fleet token as its
// bearer token. It sends every message after N, then what is published, as binary
// WebSocket messages, one record each.
func (l *Leader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := checkToken(l.cfg.Key, tok, time.Now()); err != nil {
		l.refused.Inc()
		l.logger.WarnContext(r.Context(), "fleet stream refused", "remote", r.RemoteAddr, "error", err)
		http.Error(w, "fleet token refused", http.StatusUnauthorized)
		return
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil || after < 0 {
		http.Error(w, "after must be a log id", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	leading := l.leading
	l.mu.Unlock()
	if !leading {
		l.refused.Inc()
		http.Error(w, "this instance does not lead the fleet", http.StatusServiceUnavailable)
		return
	}
	conn, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	defer conn.Close()
	if err := l.stream(r.Context(), conn, after); err != nil {
		l.logger.InfoContext(r.Context(), "follower stream ended", "remote", r.RemoteAddr, "reason", err.Error())
	}
}

// stream registers a follower after after and writes its records until it is dropped
// or its connection fails.
func (l *Leader) stream(ctx context.Context, conn *websocket.Conn, after int64) error {
	f := &follower{queue: make(chan []byte, l.cfg.Queue), done: make(chan struct{})}
	l.mu.Lock()
	if !l.leading {
		l.mu.Unlock()
		return errors.New("leader stepped down")
	}
	head, ready, fromRing := l.head, l.ready, after >= l.floor
	var backlog []*hub.Message
	if fromRing {
		for _, m := range l.ring {
			if m.ID > after {
				backlog = append(backlog, m)
			}
		}
	}
	l.followers[f] = struct{}{}
	l.connected.Add(1)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if _, ok := l.followers[f]; ok {
			l.drop(f, "")
		}
		l.mu.Unlock()
	}()

	// Reads only to see pongs and the close; a follower sends nothing else.
	gone := make(chan error, 1)
	_ = conn.SetReadDeadline(time.Now().Add(3 * l.cfg.PingInterval))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(3 * l.cfg.PingInterval))
	})
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				gone <- err
				return
			}
		}
	}()

	write := func(rec []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(l.cfg.WriteWait))
		return conn.WriteMessage(websocket.BinaryMessage, rec)
	}
	if fromRing {
		if len(backlog) > 0 {
			if err := write(appendEvents(nil, backlog)); err != nil {
				return fmt.Errorf("write backlog: %w", err)
			}
		}
	} else if err := l.backlog(ctx, after, head, write); errors.Is(err, ErrPruned) {
		if err := write(appendReset(nil, head)); err != nil {
			return fmt.Errorf("write reset: %w", err)
		}
	} else if err != nil {
		return err
	}
	if err := write(appendState(nil, ready, head)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}

	ping := time.NewTicker(l.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case rec := <-f.queue:
			if err := write(rec); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.cfg.WriteWait)); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		case <-f.done:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, f.why), time.Now().Add(time.Second))
			return errors.New(f.why)
		case err := <-gone:
			return fmt.Errorf("read: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// backlog writes, from the log, every message with after < id <= through.
func (l *Leader) backlog(ctx context.Context, after, through int64, write func([]byte) error) error {
	const page = 500
	for after < through {
		msgs, next, err := l.cfg.Backlog(ctx, after, through, page)
		if err != nil {
			return fmt.Errorf("backlog after %d: %w", after, err)
		}
		if len(msgs) > 0 {
			if err := write(appendEvents(nil, msgs)); err != nil {
				return fmt.Errorf("write backlog: %w", err)
			}
		}
		if next <= after {
			return fmt.Errorf("backlog after %d did not advance", after)
		}
		after = next
	}
	return nil
}
