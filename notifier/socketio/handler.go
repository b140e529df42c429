package socketio

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/inflight"
	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/internal/reqid"
	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// Events the server emits besides the account's own, and the reasons
// EventDisconnect carries. Dashboards may listen to them with socket.on.
const (
	// EventResync tells the client that it missed events: its lists are stale and
	// must be reloaded. It comes first, right after the ack, when a CONNECT carries
	// a pid but does not recover (a pid of another key or account, a malformed pid
	// or offset, an offset the log no longer holds), and in the stream, in order,
	// when the log lost events the socket was still due. Payload: {}.
	EventResync = contract.EventResync

	// EventDisconnect is emitted right before the server ends a socket, with
	// {"reason":"<reason>"}, so that the app can tell why.
	EventDisconnect = contract.EventDisconnect

	// ReasonTokenExpired: the socket's token expired. DISCONNECT follows: the client
	// does not reconnect by itself ("io server disconnect"); it needs a fresh token.
	ReasonTokenExpired = contract.ReasonTokenExpired

	// ReasonSlowConsumer: the client fell too far behind. DISCONNECT follows.
	ReasonSlowConsumer = contract.ReasonSlowConsumer

	// ReasonShutdown: this server is going away. The transport is closed without a
	// DISCONNECT, so the client reconnects (to another instance) and recovers.
	ReasonShutdown = contract.ReasonShutdown
)

// Path is where the handler is mounted: the client's default path option.
const Path = "/socket.io/"

// Defaults of Config.
const (
	DefaultPingInterval     = 25 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	DefaultMaxPayload       = 1_000_000
	DefaultConnectTimeout   = 10 * time.Second
	DefaultUpgradeTimeout   = 10 * time.Second
	DefaultWriteWait        = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxClientPackets is the default of Config.MaxClientPackets.
	DefaultMaxClientPackets = 10
)

// Fixed limits.
const (
	maxConnectAttempts = 4               // CONNECT packets per Engine.IO session
	closeGrace         = 2 * time.Second // for the last packets of a closing session
	closeWait          = time.Second     // for the peer's answer to a close frame
	maxReadAhead       = 8               // frames a WebSocket reader may queue for the loop
	preflightMaxAge    = "600"
	// maxUnauthenticatedPayload bounds what a session without a connected socket may
	// send in one packet or POST: a CONNECT with the largest token auth accepts and
	// a recovery pid and offset fits.
	maxUnauthenticatedPayload = auth.DefaultMaxTokenBytes + 8<<10
)

// Reasons a handshake or a CONNECT is refused, as the refusal metric labels them.
const (
	refusedLimit           = "limit"                 // http.max_connections
	refusedUnauthenticated = "unauthenticated_limit" // Config.MaxUnauthenticated
	refusedAddress         = "address_limit"         // Config.MaxUnauthenticatedPerAddress
	refusedShutdown        = "shutdown"
	refusedOrigin          = "origin"
	refusedAuth            = "auth"
	refusedAccountLimit    = "account_limit"
	refusedUnavailable     = "unavailable" // signing keys could not be fetched
)

// Handshake refusals' messages.
const (
	msgTooManyConnections = "too many connections"
	msgTooManySessions    = "too many unauthenticated sessions"
	msgTooManyFromAddress = "too many unauthenticated sessions from this address"
)

// closeReasons are the reasons a session or a socket ends, each counted by the close
// metric (spaces as underscores).
var closeReasons = []string{
	"client close", "transport close", "transport error", "ping timeout", "connect timeout",
	"parse error", "binary packet", "duplicate connect", "too many connects", "overlapping poll",
	"overlapping post", "poll closed prematurely", "subscribe failed", contract.ReasonServerError,
	reasonClientFlood, reasonTooBig, ReasonShutdown, ReasonTokenExpired, ReasonSlowConsumer,
}

// Reasons a client's own traffic closes its session.
const (
	reasonClientFlood = contract.ReasonClientFlood // over Config.MaxClientPackets
	reasonTooBig      = "message too big"          // a WebSocket message over the payload limit
)

// Config configures the handler.
type Config struct {
	Events         decode.Set    // the allowlist: only these events are ever sent
	PingInterval   time.Duration // the server pings every interval; default 25s
	PingTimeout    time.Duration // a session that does not pong within it is closed; default 20s
	MaxPayload     int           // bytes per packet and per polling POST; default 1e6
	ConnectTimeout time.Duration // a session without a connected socket lives this long; default 10s
	UpgradeTimeout time.Duration // from WebSocket probe to upgrade; default 10s
	WriteWait      time.Duration // deadline of each WebSocket write; default 10s
	// HandshakeTimeout bounds the WebSocket upgrade handshake (http.handshake_timeout);
	// default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	AllowedOrigins   []string // browser origins allowed, for CORS and WebSocket; empty allows any

	// MaxUnauthenticated and MaxUnauthenticatedPerAddress cap the sessions without a
	// connected socket (opened and not yet, or no longer, CONNECTed), in all and per
	// client address (an IPv6 address counts by its /64); past them a handshake gets
	// 503 and 429. 0 is no cap. Such sessions send at most maxUnauthenticatedPayload
	// bytes a packet or POST, and live ConnectTimeout.
	MaxUnauthenticated           int
	MaxUnauthenticatedPerAddress int
	// MaxClientPackets is how many packets a client may send a second, and in a
	// burst, before its session is closed; the pong that answers the server's ping
	// is free, and so is a relayed emit within the relay budget (RelayRate), WebSocket
	// probes count, WebSocket pings count apart at the same rate. Default 10.
	MaxClientPackets int
	// OverLimit reports that a request came on a connection over http.max_connections
	// (connlimit.Limiter.OverLimit): a handshake or an upgrade on it gets 503. Nil: never.
	OverLimit func(*http.Request) bool

	// RecoverySecret keys the HMAC of recovery pids and socket ids. Every instance
	// that should accept another's reconnecting clients needs the same secret. When
	// empty, a random one is drawn: recovery then works within this process only.
	RecoverySecret []byte

	// Relay (seed 003): a connected client's emit of an event in RelayEvents, whose
	// first argument is a JSON object, is handed to RelayFunc, which appends it to the
	// event log for the other clients of the token's account, in order with the
	// database's events. Empty RelayEvents or nil RelayFunc: client events are
	// ignored. RelayMaxBytes bounds the JSON of an emit's arguments (default
	// DefaultRelayMaxBytes); each socket may relay RelayRate emits a second (default
	// DefaultRelayRate) and RelayBurst at once (default twice RelayRate), which count
	// against those instead of MaxClientPackets; RelayTimeout bounds one RelayFunc call
	// (default DefaultRelayTimeout). What is refused gets EventError.
	RelayEvents   []string
	RelayMaxBytes int
	RelayRate     int
	RelayBurst    int
	RelayTimeout  time.Duration
	RelayFunc     RelayFunc

	Logger  *slog.Logger
	Metrics *metrics.Registry
	NowFunc func() time.Time // default time.Now; used for token checks and expiry
}

// Handler serves Engine.IO v4 / Socket.IO v5 at Path.
type Handler struct {
	cfg      Config
	hub      *hub.Hub
	verifier *auth.Verifier
	logger   *slog.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool
	rec      recovery
	prefixes [decode.MaxKinds + 1]atomic.Pointer[[]byte] // `42["<name>",` of each kind, made when first sent
	open     struct{ polling, websocket []byte }

	relay map[string]bool // Config.RelayEvents, when RelayFunc is set

	mu       sync.Mutex // guards the fields below and session.unauthenticated; a leaf lock, see doc.go
	sessions map[string]*session
	closed   bool
	unauth   int            // sessions without a connected socket
	byAddr   map[string]int // the same, by client address

	// Arrival order (arrival.go). seq stamps connections and requests; unread holds,
	// by client address, the connections ConnContext stamped whose first request has
	// not reached its session.
	seq         atomic.Uint64
	arrivalWait time.Duration
	arrMu       sync.Mutex // guards unread, byConn and swept; a leaf lock, see doc.go
	unread      map[string][]*connArrival
	byConn      map[net.Conn]*connArrival // every open connection ConnContext stamped, until ConnState settles it
	swept       time.Time
	onHold      func(*session) // tests: a loop holds a request back

	wg inflight.Group // session loops and WebSocket readers (loops wait for their feeders)
	m  handlerMetrics
}

type handlerMetrics struct {
	sessions, unauthenticated, connected *metrics.Gauge
	refused                              map[string]*metrics.Counter
	closed                               map[string]*metrics.Counter
	delivered                            *metrics.Indexed
}

// transport labels this handler's metrics in the families /ws shares.
const metricsTransport = "socketio"

func newHandlerMetrics(r *metrics.Registry) handlerMetrics {
	m := handlerMetrics{
		sessions:        r.Gauge("notifier_socketio_sessions", "Open Engine.IO sessions."),
		unauthenticated: r.Gauge("notifier_socketio_sessions_unauthenticated", "Engine.IO sessions without a connected socket."),
		connected:       r.Connections(metricsTransport),
		refused:         map[string]*metrics.Counter{},
		closed:          map[string]*metrics.Counter{},
		delivered:       r.Delivered(metricsTransport),
	}
	for _, reason := range []string{refusedLimit, refusedUnauthenticated, refusedAddress, refusedShutdown, refusedOrigin, refusedAuth, refusedAccountLimit, refusedUnavailable} {
		m.refused[reason] = r.Refused(metricsTransport, reason)
	}
	for _, reason := range closeReasons {
		m.closed[reason] = r.Closed(metricsTransport, strings.ReplaceAll(reason, " ", "_"))
	}
	return m
}

// New returns the Socket.IO handler. h supplies the events and v checks tokens.
func New(cfg Config, h *hub.Hub, v *auth.Verifier) *Handler {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.UpgradeTimeout <= 0 {
		cfg.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = DefaultWriteWait
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxClientPackets <= 0 {
		cfg.MaxClientPackets = DefaultMaxClientPackets
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.RelayMaxBytes <= 0 {
		cfg.RelayMaxBytes = DefaultRelayMaxBytes
	}
	if cfg.RelayRate <= 0 {
		cfg.RelayRate = DefaultRelayRate
	}
	if cfg.RelayBurst <= 0 {
		cfg.RelayBurst = 2 * cfg.RelayRate
	}
	if cfg.RelayTimeout <= 0 {
		cfg.RelayTimeout = DefaultRelayTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key := append([]byte(nil), cfg.RecoverySecret...)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	hd := &Handler{
		cfg:      cfg,
		hub:      h,
		verifier: v,
		logger:   logger.With("component", "socketio"),
		rec:      recovery{key: key},
		sessions: make(map[string]*session),
		byAddr:   make(map[string]int),
		m:        newHandlerMetrics(cfg.Metrics),

		arrivalWait: arrivalWait,
		unread:      make(map[string][]*connArrival),
		byConn:      make(map[net.Conn]*connArrival),
	}
	if cfg.RelayFunc != nil && len(cfg.RelayEvents) > 0 {
		hd.relay = make(map[string]bool, len(cfg.RelayEvents))
		for _, name := range cfg.RelayEvents {
			hd.relay[name] = true
		}
	}
	if len(cfg.AllowedOrigins) > 0 {
		hd.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			hd.origins[strings.ToLower(o)] = true
		}
	}
	hd.open.polling = hd.openPacket([]string{"websocket"})
	hd.open.websocket = hd.openPacket([]string{})
	hd.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		// Buffers are lent only while writing: an idle connection holds none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     hd.allowed,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, codeBadRequest, reason.Error())
		},
	}
	return hd
}

// openPacket returns the Engine.IO open packet without its sid, which each session
// splices in.
func (hd *Handler) openPacket(upgrades []string) []byte {
	b, _ := json.Marshal(struct {
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}{upgrades, hd.cfg.PingInterval.Milliseconds(), hd.cfg.PingTimeout.Milliseconds(), hd.cfg.MaxPayload})
	return b[1:] // drop '{': the session writes `0{"sid":"…",` before it
}

// Wait blocks until every session the handler served has ended.
func (hd *Handler) Wait() { hd.wg.Wait() }

// Close refuses new sessions and ends every open one as at shutdown: a connected
// socket gets EventDisconnect with ReasonShutdown, then its transport is closed, so
// the client reconnects elsewhere and recovers. hub.Close does the same for
// connected sockets; Close also ends sessions that have none. Wait then returns
// once they are gone.
func (hd *Handler) Close() {
	hd.mu.Lock()
	hd.closed = true
	all := make([]*session, 0, len(hd.sessions))
	for _, s := range hd.sessions {
		all = append(all, s)
	}
	hd.mu.Unlock()
	for _, s := range all {
		s.kill(ReasonShutdown)
	}
}

// Engine.IO error codes of the JSON error bodies.
const (
	codeUnknownTransport = 0
	codeUnknownSID       = 1
	codeBadMethod        = 2
	codeBadRequest       = 3
	codeForbidden        = 4
	codeUnsupported      = 5
)

var errorMessages = map[int]string{
	codeUnknownTransport: "Transport unknown",
	codeUnknownSID:       "Session ID unknown",
	codeBadMethod:        "Bad handshake method",
	codeBadRequest:       "Bad request",
	codeUnsupported:      "Unsupported protocol version",
}

// refuse answers a refused request with status and the JSON error body, counts it,
// and closes the connection, which gives its place back at once (connlimit.Limiter).
func (hd *Handler) refuse(w http.ResponseWriter, status int, reason, message string) {
	hd.m.refused[reason].Inc()
	w.Header().Set("Connection", "close")
	writeError(w, status, codeForbidden, message)
}

// writeError answers with the Engine.IO JSON error body {"code":N,"message":"…"},
// never stored nor sniffed, like the polling answers.
func writeError(w http.ResponseWriter, status, code int, message string) {
	if message == "" {
		message = errorMessages[code]
	}
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// allowed reports whether r's Origin may use the server; requests without one (not
// from a browser) always may.
func (hd *Handler) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if hd.origins == nil || origin == "" {
		return true
	}
	return hd.origins[strings.ToLower(origin)] || hd.origins["*"]
}

// cors sets the headers that let a browser page of an allowed origin read polling
// responses. Credentials are never allowed: the dashboards use withCredentials:false.
func cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
}

// ServeHTTP routes an Engine.IO request: a handshake (no sid), a polling GET or
// POST, or a WebSocket (a handshake or an upgrade). A request for a session registers
// with it first, before any check or body read, with its arrival's stamp
// (arrival.go), so that the session applies it in arrival order.
func (hd *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	first := hd.claim(r)
	q := r.URL.Query()
	sid := q.Get("sid")
	var s *session
	var stamp uint64
	if sid != "" {
		if s = hd.lookup(sid); s != nil {
			stamp = s.expect(first)
			defer s.forget(stamp)
		}
	}
	hd.settle(first) // after expect: a loop sees r as unread or as expected, never neither
	if !hd.allowed(r) {
		hd.refuse(w, http.StatusForbidden, refusedOrigin, "origin not allowed")
		return
	}
	cors(w, r)
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", preflightMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if q.Get("EIO") != "4" {
		writeError(w, http.StatusBadRequest, codeUnsupported, "")
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		writeError(w, http.StatusBadRequest, codeUnknownTransport, "")
		return
	}
	if sid == "" {
		hd.handshake(w, r, transport)
		return
	}
	if s == nil {
		writeError(w, http.StatusBadRequest, codeUnknownSID, "")
		return
	}
	switch {
	case transport == "websocket":
		hd.upgrade(w, r, s, stamp)
	case s.wsOnly || s.upgraded.Load():
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
	case r.Method == http.MethodGet:
		s.poll(w, r, stamp)
	case r.Method == http.MethodPost:
		s.post(w, r, stamp)
	default:
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
	}
}

// handshake opens a session over polling or WebSocket.
func (hd *Handler) handshake(w http.ResponseWriter, r *http.Request, transport string) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusBadRequest, codeBadMethod, "")
		return
	}
	if transport == "websocket" && !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		return
	}
	if hd.cfg.OverLimit != nil && hd.cfg.OverLimit(r) {
		hd.refuse(w, http.StatusServiceUnavailable, refusedLimit, msgTooManyConnections)
		return
	}
	// The Authorization header (or ?access_token) of the handshake stands in for a
	// CONNECT without auth.token; it is checked at CONNECT, like the packet's.
	header, _ := auth.TokenFromRequest(r)
	s, err := hd.newSession(r, header, transport == "websocket")
	switch {
	case errors.Is(err, errClosed):
		hd.refuse(w, http.StatusServiceUnavailable, refusedShutdown, ReasonShutdown)
		return
	case errors.Is(err, errTooManySessions):
		hd.refuse(w, http.StatusServiceUnavailable, refusedUnauthenticated, msgTooManySessions)
		return
	case errors.Is(err, errTooManyFromAddress):
		hd.refuse(w, http.StatusTooManyRequests, refusedAddress, msgTooManyFromAddress)
		return
	}
	if transport == "polling" {
		s.getting.Store(true)
		g := newPollRequest()
		if !hd.start(s, g, nil) {
			writeError(w, http.StatusServiceUnavailable, codeForbidden, ReasonShutdown)
			return
		}
		s.awaitPoll(w, r, g)
		return
	}
	conn, err := hd.upgrader.Upgrade(w, r, reqid.UpgradeHeader(r.Context()))
	if err != nil {
		hd.remove(s) // the upgrader answered; the session never started
		return
	}
	c := newWSConn(conn)
	if !hd.wg.Add() { // shutting down
		hd.remove(s)
		_ = conn.Close()
		return
	}
	defer hd.wg.Done()
	if !hd.start(s, nil, c) {
		_ = conn.Close()
		return
	}
	s.readWS(c)
}

// upgrade takes a WebSocket for an existing session, registered with stamp; the
// session decides whether it becomes its transport. Its connection is tracked
// (trackConn) so that the loop can wait for its reader to catch up before it
// applies a request.
func (hd *Handler) upgrade(w http.ResponseWriter, r *http.Request, s *session, stamp uint64) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		return
	}
	if hd.cfg.OverLimit != nil && hd.cfg.OverLimit(r) {
		// The client goes on polling.
		hd.refuse(w, http.StatusServiceUnavailable, refusedLimit, msgTooManyConnections)
		return
	}
	tw := &trackingWriter{ResponseWriter: w, ready: s.ready}
	conn, err := hd.upgrader.Upgrade(tw, r, reqid.UpgradeHeader(r.Context()))
	if err != nil {
		return
	}
	c := newWSConn(conn)
	c.tracked = tw.tracked
	if !hd.wg.Add() { // shutting down
		_ = conn.Close()
		return
	}
	defer hd.wg.Done()
	if !s.enqueue(input{probe: c}, stamp) { // the loop takes c's frames once it has taken this
		_ = conn.Close()
		return
	}
	s.readWS(c)
}

// Why newSession refuses a session.
var (
	errClosed             = errors.New(ReasonShutdown)
	errTooManySessions    = errors.New(msgTooManySessions)
	errTooManyFromAddress = errors.New(msgTooManyFromAddress)
)

// newSession registers a session, which counts as unauthenticated until its socket
// connects; it refuses one once the handler is closed or past the caps of
// unauthenticated sessions.
func (hd *Handler) newSession(r *http.Request, header string, wsOnly bool) (*session, error) {
	s := newSession(hd, header, wsOnly, r.RemoteAddr, reqid.From(r.Context()))
	hd.mu.Lock()
	defer hd.mu.Unlock()
	switch {
	case hd.closed:
		return nil, errClosed
	case hd.cfg.MaxUnauthenticated > 0 && hd.unauth >= hd.cfg.MaxUnauthenticated:
		return nil, errTooManySessions
	case hd.cfg.MaxUnauthenticatedPerAddress > 0 && hd.byAddr[s.addr] >= hd.cfg.MaxUnauthenticatedPerAddress:
		return nil, errTooManyFromAddress
	}
	for hd.sessions[s.id] != nil { // 120 random bits: never, but cheap to rule out
		s.id = newEngineID()
	}
	hd.sessions[s.id] = s
	hd.m.sessions.Add(1)
	hd.countUnauthenticatedLocked(s, true)
	return s, nil
}

// addressKey is what the per-address cap counts a remote address by: its IP, or
// for IPv6 its /64, which one host usually holds whole.
func addressKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// countUnauthenticatedLocked moves s into (in) or out of the count of sessions
// without a connected socket; hd.mu is held.
// The connections gauge, sessions with a connected socket, follows.
func (hd *Handler) countUnauthenticatedLocked(s *session, in bool) {
	if s.unauthenticated != in {
		s.unauthenticated = in
		if in {
			hd.unauth++
			hd.byAddr[s.addr]++
		} else {
			hd.unauth--
			if hd.byAddr[s.addr]--; hd.byAddr[s.addr] == 0 {
				delete(hd.byAddr, s.addr)
			}
		}
	}
	hd.m.unauthenticated.Set(int64(hd.unauth))
	hd.m.connected.Set(int64(len(hd.sessions) - hd.unauth))
}

// setAuthenticated counts s as having a connected socket, or no longer.
func (hd *Handler) setAuthenticated(s *session, authenticated bool) {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.countUnauthenticatedLocked(s, !authenticated)
}

// start runs s's loop with its first transport; false, having removed s, when the
// handler is shutting down.
func (hd *Handler) start(s *session, g *pollRequest, c *wsConn) bool {
	if !hd.wg.Add() {
		hd.remove(s)
		return false
	}
	go func() {
		defer hd.wg.Done()
		s.run(g, c)
	}()
	return true
}

func (hd *Handler) lookup(sid string) *session {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	return hd.sessions[sid]
}

// remove unregisters s, once.
func (hd *Handler) remove(s *session) {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.sessions[s.id] == s {
		delete(hd.sessions, s.id)
		hd.m.sessions.Add(-1)
		hd.countUnauthenticatedLocked(s, false)
	}
}

// errorCode is the machine-readable code of a refused CONNECT, from the auth error.
func errorCode(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return "missing_token"
	case errors.Is(err, auth.ErrTokenExpired):
		return "token_expired"
	case errors.Is(err, auth.ErrTokenNotYetValid):
		return "token_not_yet_valid"
	case errors.Is(err, auth.ErrKeysUnavailable):
		return "keys_unavailable" // ours to fix: the client may retry later
	case errors.Is(err, auth.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, hub.ErrConnectionLimit):
		return "connection_limit"
	case errors.Is(err, hub.ErrAccountConnectionLimit):
		return "account_connection_limit"
	default:
		return "invalid_token"
	}
}

// prefix returns `42["<name>",` for m's event, made once per Kind.
func (hd *Handler) prefix(m *hub.Message) []byte {
	slot := &hd.prefixes[m.Kind]
	if p := slot.Load(); p != nil {
		return *p
	}
	name := m.Name
	if name == "" {
		name = m.Kind.String()
	}
	p := eventPrefix(name)
	slot.Store(&p)
	return p
}
