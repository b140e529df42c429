package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/inflight"
	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/internal/ratelimit"
	"github.com/pgnotifier/notifier/internal/reqid"
	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// Close codes and reasons the server ends a connection with: the contract's.
const (
	CloseTokenExpired = contract.CloseTokenExpired
	CloseSlowConsumer = contract.CloseSlowConsumer
	CloseServerError  = contract.CloseServerError

	ReasonTokenExpired = contract.ReasonTokenExpired
	ReasonSlowConsumer = contract.ReasonSlowConsumer
	ReasonShutdown     = contract.ReasonShutdown
	ReasonServerError  = contract.ReasonServerError
	ReasonClientFlood  = contract.ReasonClientFlood
)

// ResyncFrame tells a client to reload its lists: it resumed from a position the log
// no longer holds, or events due to it were pruned or reset away while it was served.
// Events from the new position follow on the same connection.
var ResyncFrame = []byte(`{"event":"` + contract.EventResync + `"}`)

// Config configures the handler.
type Config struct {
	Events         decode.Set      // the allowlist: only these are ever sent
	Catalog        *decode.Catalog // names ?events; nil: the built-in events
	PingInterval   time.Duration   // default 25s
	PongWait       time.Duration   // drop a peer silent this long; default 2.4 PingInterval (60s)
	WriteWait      time.Duration   // deadline for each write; default 10s
	ReadLimit      int64           // largest client message; default 4096
	AllowedOrigins []string        // browser origins allowed; empty allows any
	// MaxClientMessages is how many messages per second (and in a burst) a client
	// may send before it is closed with 1008; default 10.
	MaxClientMessages int
	HandshakeTimeout  time.Duration // default 10s
	// OverLimit reports that a request came on a connection over http.max_connections
	// (connlimit.Limiter.OverLimit): its handshake is refused with 503. Nil: never.
	OverLimit func(*http.Request) bool
	Logger    *slog.Logger
	Metrics   *metrics.Registry
	NowFunc   func() time.Time // default time.Now
}

// Handler serves /ws.
type Handler struct {
	cfg      Config
	hub      *hub.Hub
	verifier *auth.Verifier
	logger   *slog.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool

	conns inflight.Group
	m     handlerMetrics
}

type handlerMetrics struct {
	open      *metrics.Gauge
	refused   map[string]*metrics.Counter
	closed    map[int]*metrics.Counter
	delivered *metrics.Indexed
}

// transport labels this handler's metrics.
const transport = "ws"

func newHandlerMetrics(r *metrics.Registry) handlerMetrics {
	m := handlerMetrics{
		open:      r.Connections(transport),
		refused:   map[string]*metrics.Counter{},
		closed:    map[int]*metrics.Counter{},
		delivered: r.Delivered(transport),
	}
	for _, reason := range []string{"auth", "bad_request", "origin", "limit", "account_limit", "shutdown", "unavailable", "upgrade"} {
		m.refused[reason] = r.Refused(transport, reason)
	}
	for code, reason := range map[int]string{
		CloseTokenExpired:            "token_expired",
		CloseSlowConsumer:            "slow_consumer",
		CloseServerError:             "server_error",
		contract.CloseShutdown:       "shutdown",
		contract.CloseClientFlood:    "client_flood",
		websocket.CloseMessageTooBig: "message_too_big",
	} {
		m.closed[code] = r.Closed(transport, reason)
	}
	return m
}

// New returns the /ws handler.
func New(cfg Config, h *hub.Hub, v *auth.Verifier) *Handler {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 25 * time.Second
	}
	if cfg.PongWait <= cfg.PingInterval {
		cfg.PongWait = cfg.PingInterval * 12 / 5
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = 4096
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.MaxClientMessages <= 0 {
		cfg.MaxClientMessages = 10
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hd := &Handler{cfg: cfg, hub: h, verifier: v, logger: logger.With("component", "ws"), m: newHandlerMetrics(cfg.Metrics)}
	if len(cfg.AllowedOrigins) > 0 {
		hd.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			hd.origins[strings.ToLower(o)] = true
		}
	}
	hd.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   512,
		WriteBufferSize:  4096,
		// Buffers are lent only while writing: an idle connection holds none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     hd.checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, reason.Error())
		},
	}
	return hd
}

// Wait blocks until every connection the handler served has ended.
func (hd *Handler) Wait() { hd.conns.Wait() }

func (hd *Handler) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if hd.origins == nil || origin == "" {
		return true
	}
	return hd.origins[strings.ToLower(origin)] || hd.origins["*"]
}

// ParseQuery reads ?since and ?events; cat names the events, allowed is the configured
// allowlist.
func ParseQuery(since, events string, cat *decode.Catalog, allowed decode.Set) (int64, decode.Set, error) {
	s := int64(-1)
	if since != "" {
		n, err := strconv.ParseInt(since, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("since must be a non-negative event id, got %q", truncate(since))
		}
		s = n
	}
	set := allowed
	if events != "" {
		names := strings.Split(events, ",")
		for i := range names {
			names[i] = strings.TrimSpace(names[i])
		}
		want, err := cat.ParseSet(names)
		if err != nil {
			return 0, 0, fmt.Errorf("events: unknown event in %q", truncate(events))
		}
		if want&^allowed != 0 {
			return 0, 0, fmt.Errorf("events: not allowed by this server: %q", truncate(events))
		}
		set = want
	}
	return s, set, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// ServeHTTP authenticates, subscribes and upgrades one connection, then serves it on
// goroutines of its own and returns. Every refusal happens before the upgrade, as an
// HTTP error with a JSON reason.
func (hd *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hd.cfg.OverLimit != nil && hd.cfg.OverLimit(r) {
		hd.refuse(w, http.StatusServiceUnavailable, "limit", hub.ErrConnectionLimit)
		return
	}
	token, err := auth.TokenFromRequest(r)
	if err != nil {
		hd.refuse(w, http.StatusUnauthorized, "auth", err)
		return
	}
	claims, err := hd.verifier.VerifyContext(r.Context(), token, hd.cfg.NowFunc())
	if errors.Is(err, auth.ErrKeysUnavailable) {
		hd.refuse(w, http.StatusServiceUnavailable, "unavailable", err) // ours to fix, not the client's
		return
	}
	if err != nil {
		hd.refuse(w, http.StatusUnauthorized, "auth", err)
		return
	}
	q := r.URL.Query()
	since, events, err := ParseQuery(q.Get("since"), q.Get("events"), hd.cfg.Catalog, hd.cfg.Events)
	if err != nil {
		hd.refuse(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	if !hd.checkOrigin(r) {
		hd.refuse(w, http.StatusForbidden, "origin", errOrigin)
		return
	}
	// Subscribing first lets a limit or a database error be an HTTP answer; messages
	// published meanwhile wait in the room for this cursor.
	sub, resync, err := hd.hub.Subscribe(r.Context(), claims.AccountID, events, since)
	if err != nil {
		switch {
		case errors.Is(err, hub.ErrConnectionLimit):
			hd.refuse(w, http.StatusServiceUnavailable, "limit", err)
		case errors.Is(err, hub.ErrAccountConnectionLimit):
			hd.refuse(w, http.StatusTooManyRequests, "account_limit", err)
		case errors.Is(err, hub.ErrShutdown):
			hd.refuse(w, http.StatusServiceUnavailable, "shutdown", err)
		default:
			hd.logger.ErrorContext(r.Context(), "subscribe", "request_id", reqid.From(r.Context()), "account_id", claims.AccountID, "since", since, "error", err)
			hd.refuse(w, http.StatusServiceUnavailable, "unavailable", errUnavailable)
		}
		return
	}
	conn, err := hd.upgrader.Upgrade(w, r, reqid.UpgradeHeader(r.Context()))
	if err != nil {
		sub.Close()
		hd.m.refused["upgrade"].Inc()
		return // the upgrader answered the client already
	}
	if !hd.conns.Add() { // shutting down: the hub will not serve it either
		sub.Close()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(contract.CloseShutdown, ReasonShutdown), time.Now().Add(hd.cfg.WriteWait))
		_ = conn.Close()
		return
	}
	hd.m.open.Add(1)
	c := &connection{hd: hd, ws: conn, claims: claims, logger: hd.logger.With("request_id", reqid.From(r.Context()), "account_id", claims.AccountID, "remote", r.RemoteAddr)}
	// The connection gets goroutines of its own and the handler returns: net/http's
	// goroutine, its grown stack and the request's buffers are not held for the
	// connection's life (about 10 KiB of an idle connection's memory).
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer hd.conns.Done()
		defer hd.m.open.Add(-1)
		defer sub.Close()
		c.serve(ctx, sub, resync)
	}()
}

var (
	errOrigin      = errors.New("origin not allowed")
	errUnavailable = errors.New("temporarily unavailable, retry")
)

// refuse answers a handshake with status and {"error":"<why>"} and counts it.
func (hd *Handler) refuse(w http.ResponseWriter, status int, reason string, why error) {
	hd.m.refused[reason].Inc()
	writeError(w, status, why.Error())
}

// writeError answers a refused handshake with {"error":"<why>"} and closes the
// connection, which gives its place back at once (connlimit.Limiter).
func writeError(w http.ResponseWriter, status int, why string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": why})
}

type connection struct {
	hd     *Handler
	ws     *websocket.Conn
	claims auth.Claims
	logger *slog.Logger
}

func (c *connection) serve(ctx context.Context, sub *hub.Subscription, resync bool) {
	defer c.ws.Close()
	cfg := c.hd.cfg

	// ctx is detached from the request: http.Server.Shutdown does not track hijacked
	// connections, the hub ends them (ErrShutdown) instead. The read pump cancels
	// ctx when the peer goes, which stops a log replay in progress.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readDone := make(chan struct{})
	go c.readPump(readDone, cancel)

	c.logger.Debug("connected", "cursor", sub.Cursor())
	if resync {
		if err := c.write(ResyncFrame); err != nil {
			return
		}
	}

	// The token's expiry and the pings are timer callbacks that poke tick, not timer
	// channels in the select below: the writer waits there after every delivery, and
	// each wait on a timer channel puts its timer into the runtime's timer heap and
	// takes it out again on waking.
	tick := make(chan struct{}, 1)
	var expired, pingDue atomic.Bool
	poke := func(flag *atomic.Bool) func() {
		return func() {
			flag.Store(true)
			select {
			case tick <- struct{}{}:
			default: // a poke is pending already
			}
		}
	}
	expiry := time.AfterFunc(c.claims.ExpiresAt.Sub(cfg.NowFunc()), poke(&expired))
	defer expiry.Stop()
	ping := time.AfterFunc(cfg.PingInterval, poke(&pingDue))
	defer ping.Stop()
	var batch []*hub.Message
	for {
		var err error
		batch, err = sub.Poll(ctx, batch[:0])
		for _, m := range batch {
			if err := c.write(m.Frame); err != nil {
				return
			}
			c.hd.m.delivered.Add(uint8(m.Kind), m.Name, 1)
		}
		clear(batch) // drop references so delivered messages can be freed
		if errors.Is(err, hub.ErrResync) {
			// The cursor skipped events the log no longer holds; the subscription
			// goes on from there.
			c.logger.Debug("resync", "cursor", sub.Cursor())
			if err := c.write(ResyncFrame); err != nil {
				return
			}
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, hub.ErrSlowConsumer):
				c.close(CloseSlowConsumer, ReasonSlowConsumer)
			case errors.Is(err, hub.ErrShutdown):
				c.close(contract.CloseShutdown, ReasonShutdown)
			case errors.Is(err, hub.ErrClosed), ctx.Err() != nil:
				return
			default:
				c.logger.Error("deliver", "error", err)
				c.close(CloseServerError, ReasonServerError)
			}
			c.awaitClose(readDone)
			return
		}
		if len(batch) > 0 {
			continue // more may be due at once
		}
		// Wake also fires when the subscription ends: the next Poll says why.
		select {
		case <-sub.Wake():
		case <-tick:
			if expired.Load() {
				c.close(CloseTokenExpired, ReasonTokenExpired)
				c.awaitClose(readDone)
				return
			}
			if pingDue.Swap(false) {
				if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteWait)); err != nil {
					return
				}
				ping.Reset(cfg.PingInterval)
			}
		case <-readDone:
			return
		}
	}
}

func (c *connection) write(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.hd.cfg.WriteWait))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// close sends a close frame and counts it; the peer's answer ends the read pump.
func (c *connection) close(code int, reason string) {
	c.hd.m.closed[code].Inc()
	msg := websocket.FormatCloseMessage(code, reason)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.hd.cfg.WriteWait))
}

// awaitClose gives the peer a moment to answer the close frame.
func (c *connection) awaitClose(readDone <-chan struct{}) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-readDone:
	case <-t.C:
	}
}

// errClientFlood ends the read pump of a client over its message budget.
var errClientFlood = errors.New(ReasonClientFlood)

// readPump reads and discards client messages, whole, so that control frames are
// processed and a fragmented message counts against the read limit as one; it ends
// when the connection does, closing done and cancelling the writer's context.
// Clients have nothing to say on /ws: a few messages are tolerated (some send
// keep-alives), and pings, which cost a pong, count as messages; a flood is closed
// with 1008. Pongs answer the server's own pings and only prove the peer alive.
func (c *connection) readPump(done chan<- struct{}, cancel context.CancelFunc) {
	defer close(done)
	defer cancel()
	cfg := c.hd.cfg
	c.ws.SetReadLimit(cfg.ReadLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	b := ratelimit.New(cfg.MaxClientMessages, time.Now())
	// A frame within the budget proves the peer alive: the deadline moves on.
	take := func() error {
		now := time.Now()
		if !b.Take(now) {
			return errClientFlood
		}
		return c.ws.SetReadDeadline(now.Add(cfg.PongWait))
	}
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	})
	c.ws.SetPingHandler(func(data string) error {
		if err := take(); err != nil {
			return err
		}
		// A failed pong means a failing connection, which the next read reports.
		_ = c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cfg.WriteWait))
		return nil
	})
	err := c.discardMessage(take)
	for err == nil {
		err = c.discardMessage(take)
	}
	switch {
	case errors.Is(err, errClientFlood):
		c.close(contract.CloseClientFlood, ReasonClientFlood)
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla sent the 1009 close frame itself.
		c.hd.m.closed[websocket.CloseMessageTooBig].Inc()
	}
}

// discardMessage reads the next client message to its end, within the budget.
func (c *connection) discardMessage(take func() error) error {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return err
	}
	if err := take(); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}
