package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// Close codes and reasons the server ends a connection with.
const (
	CloseTokenExpired = 4001
	CloseSlowConsumer = 4008
	CloseServerError  = 4011

	ReasonTokenExpired = "token expired"
	ReasonSlowConsumer = "slow consumer"
	ReasonShutdown     = "server shutting down"
	ReasonServerError  = "server error"
)

// ResyncFrame tells a client that resumed from a position the log no longer holds to
// reload its lists; live events follow.
var ResyncFrame = []byte(`{"event":"notifier.resync"}`)

// Config configures the handler.
type Config struct {
	Events         decode.Set    // the allowlist: only these are ever sent
	PingInterval   time.Duration // default 25s
	PongWait       time.Duration // drop a peer silent this long; default 2.4 PingInterval (60s)
	WriteWait      time.Duration // deadline for each write; default 10s
	ReadLimit      int64         // largest client message; default 4096
	AllowedOrigins []string      // browser origins allowed; empty allows any
	Logger         *slog.Logger
	NowFunc        func() time.Time // default time.Now
}

// Handler serves /ws.
type Handler struct {
	cfg      Config
	hub      *hub.Hub
	verifier *auth.Verifier
	logger   *slog.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool

	conns sync.WaitGroup
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
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hd := &Handler{cfg: cfg, hub: h, verifier: v, logger: logger.With("component", "ws")}
	if len(cfg.AllowedOrigins) > 0 {
		hd.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			hd.origins[strings.ToLower(o)] = true
		}
	}
	hd.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
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

// Request is what a valid handshake asks for.
type Request struct {
	Claims auth.Claims
	Since  int64      // -1 when absent
	Events decode.Set // the events the connection receives
}

// ParseQuery reads ?since and ?events; allowed is the configured allowlist.
func ParseQuery(since, events string, allowed decode.Set) (int64, decode.Set, error) {
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
		want, err := decode.ParseSet(names)
		if err != nil {
			return 0, 0, fmt.Errorf("events: %w", err)
		}
		if want&^allowed != 0 {
			return 0, 0, fmt.Errorf("events: not allowed by this server: %s", names)
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

// ServeHTTP authenticates, upgrades and serves one connection.
func (hd *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, err := auth.TokenFromRequest(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	claims, err := hd.verifier.Verify(token, hd.cfg.NowFunc())
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	q := r.URL.Query()
	since, events, err := ParseQuery(q.Get("since"), q.Get("events"), hd.cfg.Events)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	conn, err := hd.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client already
	}
	hd.conns.Add(1)
	defer hd.conns.Done()
	c := &connection{hd: hd, ws: conn, claims: claims, logger: hd.logger.With("account_id", claims.AccountID, "remote", r.RemoteAddr)}
	c.serve(r.Context(), Request{Claims: claims, Since: since, Events: events})
}

// writeError answers a refused handshake with {"error":"<why>"}.
func writeError(w http.ResponseWriter, status int, why string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": why})
}

type connection struct {
	hd     *Handler
	ws     *websocket.Conn
	claims auth.Claims
	logger *slog.Logger
}

func (c *connection) serve(ctx context.Context, req Request) {
	defer c.ws.Close()
	cfg := c.hd.cfg

	readDone := make(chan struct{})
	go c.readPump(readDone)
	// Detach from the request: http.Server.Shutdown does not track hijacked
	// connections, the hub ends them (ErrShutdown) instead.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-readDone:
			cancel()
		case <-ctx.Done():
		}
	}()

	sub, resync, err := c.hd.hub.Subscribe(ctx, req.Claims.AccountID, req.Events, req.Since)
	if err != nil {
		if errors.Is(err, hub.ErrShutdown) {
			c.close(websocket.CloseGoingAway, ReasonShutdown)
		} else {
			c.logger.Error("subscribe", "error", err)
			c.close(CloseServerError, ReasonServerError)
		}
		c.awaitClose(readDone)
		return
	}
	defer sub.Close()
	c.logger.Debug("connected", "room", c.hd.hub.Room(req.Claims.AccountID), "since", req.Since)
	if resync {
		if err := c.write(ResyncFrame); err != nil {
			return
		}
	}

	expiry := time.NewTimer(req.Claims.ExpiresAt.Sub(cfg.NowFunc()))
	defer expiry.Stop()
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	var batch []*hub.Message
	for {
		var err error
		batch, err = sub.Poll(ctx, batch[:0])
		for _, m := range batch {
			if err := c.write(m.Frame); err != nil {
				return
			}
		}
		clear(batch) // drop references so delivered messages can be freed
		if err != nil {
			switch {
			case errors.Is(err, hub.ErrSlowConsumer):
				c.close(CloseSlowConsumer, ReasonSlowConsumer)
			case errors.Is(err, hub.ErrShutdown):
				c.close(websocket.CloseGoingAway, ReasonShutdown)
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
		select {
		case <-sub.Wake():
		case <-sub.Done():
		case <-expiry.C:
			c.close(CloseTokenExpired, ReasonTokenExpired)
			c.awaitClose(readDone)
			return
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteWait)); err != nil {
				return
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

// close sends a close frame; the peer's answer ends the read pump.
func (c *connection) close(code int, reason string) {
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

// readPump reads and discards client messages so that control frames are processed;
// it ends when the connection does.
func (c *connection) readPump(done chan<- struct{}) {
	defer close(done)
	cfg := c.hd.cfg
	c.ws.SetReadLimit(cfg.ReadLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	})
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	}
}
