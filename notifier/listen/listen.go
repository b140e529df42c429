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

	"github.com/pgnotifier/notifier/notifier/eventlog"
)

// Channel is the NOTIFY channel the triggers write to (notifier.append).
const Channel = "notifier"

// Config configures a Listener.
type Config struct {
	ConnConfig *pgx.ConnConfig // copied for every connection
	PageSize   int             // log rows read per catch-up query; default 1000
	IdleCheck  time.Duration   // read the log (and so ping) after this long without a notification; default 5s
	BackoffMin time.Duration   // first reconnect delay; default 100ms
	BackoffMax time.Duration   // reconnect delay cap; default 5s
	Logger     *slog.Logger
	// ReadyFunc, when set, is called with true once caught up after each connect, and
	// with false when the connection is lost.
	ReadyFunc func(ready bool)
}

// Listener streams the event log in order; see the package doc.
type Listener struct {
	cfg    Config
	logger *slog.Logger
	cursor int64
	out    chan<- eventlog.Entry
	page   []eventlog.Entry
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
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{cfg: cfg, logger: logger.With("component", "listen"), cursor: after, out: out}
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
		l.logger.WarnContext(ctx, "listener disconnected", "error", err, "cursor", l.cursor, "retry_in", wait)
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
	// LISTEN is in effect before this read, so anything that commits from here on is
	// either in this read or notified afterwards.
	if err := l.catchUp(ctx, conn); err != nil {
		return true, err
	}
	l.logger.InfoContext(ctx, "listener ready", "cursor", l.cursor)
	l.cfg.ReadyFunc(true)

	for {
		// However many notifications arrived, one log read covers them all.
		wanted := l.cursor
		for i, p := range pending {
			id, ok := payloadID(p)
			if !ok {
				l.logger.WarnContext(ctx, "foreign notification skipped", "channel", Channel, "payload_bytes", len(p))
			}
			wanted = max(wanted, id)
			pending[i] = ""
		}
		pending = pending[:0]
		if wanted > l.cursor {
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

// catchUp emits every committed entry after the cursor.
func (l *Listener) catchUp(ctx context.Context, conn *pgx.Conn) error {
	for {
		var err error
		l.page, err = eventlog.ReadAfter(ctx, conn, l.cursor, l.cfg.PageSize, l.page[:0])
		if err != nil {
			return err
		}
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
		l.cursor = e.ID
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
