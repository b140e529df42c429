package listen

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/eventlog"
)

// Channel is the NOTIFY channel the triggers write to (notifier.append).
const Channel = "notifier"

// foreignLogEvery is the least time between two warnings about foreign notifications:
// any role that can connect can NOTIFY, so a line for each would let it flood the log.
const foreignLogEvery = 10 * time.Second

// Messages of log lines that tests match.
const (
	foreignMsg  = "foreign notification skipped"
	divergedMsg = "event log went back: the last entry emitted is gone"
)

// Config configures a Listener.
type Config struct {
	ConnConfig *pgx.ConnConfig // copied for every connection
	PageSize   int             // log rows read per catch-up query; default 1000
	IdleCheck  time.Duration   // read the log (and so ping) after this long without a notification; default 5s
	BackoffMin time.Duration   // first reconnect delay; default 100ms
	BackoffMax time.Duration   // reconnect delay cap; default 5s
	Logger     *slog.Logger
	Metrics    *metrics.Registry // notifier_log_read_duration_seconds
	// ReadyFunc, when set, is called with true once caught up after each connect, and
	// with false when the connection is lost.
	ReadyFunc func(ready bool)
	// OnDiverged, when set, is called on a reconnect that finds the log no longer holds
	// the last entry emitted (eventlog.Holds): the log went back (committed transactions
	// lost to a crash with asynchronous commit, a failover to an asynchronous standby, a
	// restore), and ids at or below cursor may now name other events. It must rebase the
	// log so that new ids are drawn above cursor and every id at or below it resyncs
	// (eventlog.Rebase), and reset the service's hub. It runs on the listener's goroutine
	// before the catch-up read. An error ends the session: the listener reconnects with
	// backoff and checks again. Once it returns nil, the listener goes on from cursor,
	// and the next check is against the next entry it emits. When nil, a divergence is
	// only logged, and reused ids at or below cursor are never emitted.
	OnDiverged func(ctx context.Context, cursor int64) error
	// OnForeign, when set, is called once for each notification on Channel whose payload
	// is not the triggers' (sent by hand: any role that can connect can NOTIFY), e.g. to
	// count it in a metric. Their warning is logged at most once per 10s.
	OnForeign func()
}

// Listener streams the event log in order; see the package doc.
type Listener struct {
	cfg    Config
	logger *slog.Logger
	cursor int64
	// last is the last entry emitted since New or since the last divergence was
	// handled; its ID is 0 before. Each reconnect checks that the log still holds it.
	last eventlog.Entry
	out  chan<- eventlog.Entry
	page []eventlog.Entry

	readSeconds *metrics.Histogram // catch-up reads of the log

	foreignLogged     time.Time // when the last foreign-notification warning was logged
	foreignSuppressed int64     // foreign notifications skipped since then without a line

	// eventlog.ReadAfter and time.Now, replaced by tests.
	readAfter func(ctx context.Context, q eventlog.Querier, after int64, limit int, dst []eventlog.Entry) ([]eventlog.Entry, error)
	now       func() time.Time
}

// New returns a Listener that will emit entries with id > after on out.
func New(cfg Config, after int64, out chan<- eventlog.Entry) *Listener {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = 5 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = 5 * time.Second
	}
	if cfg.ReadyFunc == nil {
		cfg.ReadyFunc = func(bool) {}
	}
	if cfg.OnForeign == nil {
		cfg.OnForeign = func() {}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{
		cfg:         cfg,
		logger:      logger.With("component", "listen"),
		cursor:      after,
		out:         out,
		readSeconds: cfg.Metrics.Histogram("notifier_log_read_duration_seconds", "Catch-up reads of the event log by the LISTEN connection (a page each).", metrics.LatencyBuckets()),
		readAfter:   eventlog.ReadAfter,
		now:         time.Now,
	}
}

// Run listens until ctx ends, reconnecting on failure; it returns ctx's error.
func (l *Listener) Run(ctx context.Context) error {
	delay := l.cfg.BackoffMin
	for {
		connected, err := l.session(ctx)
		l.cfg.ReadyFunc(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			delay = l.cfg.BackoffMin
		}
		// Full jitter over [delay/2, delay) keeps many notifiers from reconnecting in step.
		wait := delay/2 + rand.N(delay/2+1)
		l.logger.WarnContext(ctx, "listener disconnected", "error", err, "cursor", l.cursor, "retry_in_s", wait.Seconds())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, l.cfg.BackoffMax)
	}
}

// session runs one connection's life; connected reports whether it got as far as
// LISTEN, so that backoff restarts from its minimum after a healthy session.
func (l *Listener) session(ctx context.Context) (connected bool, err error) {
	var pending []string
	cc := l.cfg.ConnConfig.Copy()
	cc.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		if n.Channel == Channel {
			pending = append(pending, n.Payload)
		}
	}
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cc)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the session is over either way
	}()

	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen %q: %w", Channel, err)
	}
	if l.last.ID != 0 {
		if err := l.checkLog(ctx, conn); err != nil {
			return true, err
		}
	}
	// LISTEN is in effect before this read, so anything that commits from here on is
	// either in this read or notified afterwards.
	if err := l.catchUp(ctx, conn); err != nil {
		return true, err
	}
	l.logger.InfoContext(ctx, "listener ready", "cursor", l.cursor)
	l.cfg.ReadyFunc(true)

	for {
		// However many notifications arrived, one log read covers them all. Those pgconn
		// consumed during a read are in pending but will not end WaitForNotification:
		// read again until no notification announces an id above the cursor.
		for {
			wanted := l.drain(ctx, pending)
			pending = pending[:0]
			if wanted <= l.cursor {
				break
			}
			if err := l.catchUp(ctx, conn); err != nil {
				return true, err
			}
		}

		waitCtx, cancel := context.WithTimeout(ctx, l.cfg.IdleCheck)
		err := conn.PgConn().WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return true, ctx.Err()
		case pgconn.Timeout(err):
			// Idle: read the log. This pings the server and covers a lost notification.
			if err := l.catchUp(ctx, conn); err != nil {
				return true, err
			}
		default:
			return true, fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// drain returns the highest id that pending announces, or the cursor if none is
// higher, and clears pending's payloads; a payload that is not ours is reported.
func (l *Listener) drain(ctx context.Context, pending []string) int64 {
	wanted := l.cursor
	for i, p := range pending {
		if id, ok := payloadID(p); ok {
			wanted = max(wanted, id)
		} else {
			l.foreign(ctx, len(p))
		}
		pending[i] = ""
	}
	return wanted
}

// foreign reports a notification whose payload is not ours: OnForeign each time, a
// warning at most once per foreignLogEvery.
func (l *Listener) foreign(ctx context.Context, payloadBytes int) {
	l.cfg.OnForeign()
	now := l.now()
	if !l.foreignLogged.IsZero() && now.Sub(l.foreignLogged) < foreignLogEvery {
		l.foreignSuppressed++
		return
	}
	l.logger.WarnContext(ctx, foreignMsg, "channel", Channel,
		"payload_bytes", payloadBytes, "suppressed", l.foreignSuppressed)
	l.foreignLogged, l.foreignSuppressed = now, 0
}

// checkLog verifies that the log still holds the last entry emitted. When it does
// not, it logs the divergence and hands it to OnDiverged; once that succeeds (or when
// there is none), the divergence is settled and the next check waits for a new entry.
func (l *Listener) checkLog(ctx context.Context, conn *pgx.Conn) error {
	held, err := eventlog.Holds(ctx, conn, l.last)
	if err != nil {
		return err
	}
	if held {
		return nil
	}
	// What the log holds instead: its bounds, and the commit stamp now at the last id.
	bounds, err := eventlog.ReadBounds(ctx, conn)
	if err != nil {
		return err
	}
	found, err := eventlog.ReadAfter(ctx, conn, l.last.ID-1, 1, nil)
	if err != nil {
		return err
	}
	attrs := []any{"cursor", l.cursor, "last_committed", l.last.Committed,
		"log_head", bounds.Head, "pruned_through", bounds.PrunedThrough}
	if len(found) == 1 && found[0].ID == l.last.ID {
		attrs = append(attrs, "found", found[0].Committed) // another event took the id
	} else {
		attrs = append(attrs, "found", "nothing")
	}
	l.logger.ErrorContext(ctx, divergedMsg, attrs...)
	if l.cfg.OnDiverged != nil {
		if err := l.cfg.OnDiverged(ctx, l.cursor); err != nil {
			return fmt.Errorf("event log diverged at cursor %d: %w", l.cursor, err)
		}
	}
	l.last = eventlog.Entry{}
	return nil
}

// catchUp emits every committed entry after the cursor.
func (l *Listener) catchUp(ctx context.Context, conn *pgx.Conn) error {
	for {
		start := time.Now()
		var err error
		l.page, err = l.readAfter(ctx, conn, l.cursor, l.cfg.PageSize, l.page[:0])
		if err != nil {
			return err
		}
		l.readSeconds.Observe(time.Since(start).Seconds())
		for _, e := range l.page {
			if err := l.emit(ctx, e); err != nil {
				return err
			}
		}
		if len(l.page) < l.cfg.PageSize {
			return nil
		}
	}
}

func (l *Listener) emit(ctx context.Context, e eventlog.Entry) error {
	select {
	case l.out <- e:
		l.cursor, l.last = e.ID, e
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// payloadID reads the id that notifier.payload() always writes first: {"id":123,...
// Anything else is not ours.
func payloadID(p string) (int64, bool) {
	const prefix = `{"id":`
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ',')
	if end <= 0 || rest[0] == '0' {
		return 0, false
	}
	for _, c := range []byte(rest[:end]) {
		if c < '0' || c > '9' { // ParseInt would take a sign too
			return 0, false
		}
	}
	id, err := strconv.ParseInt(rest[:end], 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}
