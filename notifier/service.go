package notifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/connlimit"
	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/internal/reqid"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/eventlog"
	"github.com/pgnotifier/notifier/notifier/fleet"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/pipeline"
	"github.com/pgnotifier/notifier/notifier/snapshot"
	"github.com/pgnotifier/notifier/notifier/socketio"
	"github.com/pgnotifier/notifier/notifier/web"
	"github.com/pgnotifier/notifier/notifier/ws"
)

// ErrNotMigrated is returned by Run when the database lacks the notifier schema.
var ErrNotMigrated = errors.New("the notifier schema is missing: run `notifier migrate up` first")

// ListenerApplicationName is the application_name of the LISTEN connection, as
// pg_stat_activity shows it.
const ListenerApplicationName = "notifier-listen"

// Service is a running notifier.
type Service struct {
	cfg      config.Config
	base     *slog.Logger // what the components get: each adds its "component"
	logger   *slog.Logger // the service's own lines: component=service
	verifier *auth.Verifier
	ln       net.Listener
	internal net.Listener // http.internal_addr: /metrics and the probes; nil when unset

	ready    atomic.Bool // the listener is connected and caught up
	draining atomic.Bool // shutting down: not ready for http.drain_delay, still serving
	started  chan struct{}
	once     sync.Once
	metrics  *metrics.Registry

	reconnects, foreign, rebases *metrics.Counter

	catalog *decode.Catalog
	allowed decode.Set // events: the allowlist, in catalog Kinds

	relay   relay           // socketio.relay*
	relayed map[string]bool // relay.Events

	// Set by Run.
	hub       *hub.Hub
	pool      *pgxpool.Pool
	pipeline  *pipeline.Pipeline
	snapshots *snapshot.Handler

	// In a fleet (fleet.advertise_url): the lease and what this instance streams to
	// followers while it leads; both nil otherwise. role is one of the role* constants.
	lease  *fleet.Lease
	leader *fleet.Leader
	role   atomic.Int32
}

// New checks cfg and prepares a Service. ln, when not nil, is used instead of
// listening on http.addr (tests pass 127.0.0.1:0).
func New(cfg config.Config, logger *slog.Logger, ln net.Listener) (*Service, error) {
	if err := cfg.RequireServe(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, err := newVerifier(cfg, logger)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, base: logger, logger: logger.With("component", "service"), verifier: v, ln: ln, started: make(chan struct{}), metrics: metrics.New(), catalog: decode.NewCatalog()}
	m := s.metrics
	m.GaugeFunc("notifier_listener_ready", "1 while the listener is connected and caught up.", func() float64 {
		if s.ready.Load() {
			return 1
		}
		return 0
	})
	s.reconnects = m.Counter("notifier_listener_disconnects_total", "Times the LISTEN connection was lost.")
	s.foreign = m.Counter("notifier_listener_foreign_notifications_total", "Notifications on the channel that were not the triggers' (sent by hand).")
	s.rebases = m.Counter("notifier_log_rebases_total", "Times the event log was found to have gone back and was rebased (every client resyncs).")
	m.GaugeFunc("notifier_fleet_role", "What this instance does: 0 standalone, 1 fleet leader, 2 follower, 3 fleet fallback (no leader reachable: reading the log alone).", func() float64 { return float64(s.role.Load()) })
	s.relay = relay{Events: cfg.SocketIO.Relay, MaxBytes: cfg.SocketIO.RelayMaxBytes, Rate: cfg.SocketIO.RelayRate}
	s.relayed = make(map[string]bool, len(s.relay.Events))
	for _, name := range s.relay.Events {
		s.relayed[name] = true
	}
	return s, nil
}

// relay is what socketio.relay* configure (seed 003): Socket.IO clients' emits of
// events go, through the event log, to the other clients of their account.
type relay struct {
	Events   []string // relayed event names; empty: relay is off
	MaxBytes int      // JSON bytes of an emit's arguments
	Rate     int      // relayed emits a second per connection, twice that in a burst
}

// newVerifier builds the token verifier the configuration pins.
func newVerifier(cfg config.Config, logger *slog.Logger) (*auth.Verifier, error) {
	ac := auth.Config{
		Algorithm:      cfg.Auth.Algorithm,
		AccountClaim:   cfg.Auth.AccountClaim,
		RequireLowS:    cfg.Auth.ES256LowS,
		Issuer:         cfg.Auth.Issuer,
		Audience:       cfg.Auth.Audience,
		Leeway:         auth.DefaultLeeway,
		JWKSURL:        cfg.Auth.JWKSURL,
		JWKSRefresh:    cfg.Auth.JWKSRefresh,
		JWKSMinRefresh: cfg.Auth.JWKSMinRefresh,
		Logger:         logger.With("component", "auth"),
	}
	if cfg.Auth.Algorithm == auth.AlgHS256 {
		ac.Secret = []byte(cfg.Auth.JWTSecret)
	}
	if cfg.Auth.PublicKeyFile != "" {
		pem, err := os.ReadFile(cfg.Auth.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: auth.public_key_file: %v", config.ErrInvalid, err)
		}
		ac.PublicKeyPEM = pem
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", config.ErrInvalid, err)
	}
	return v, nil
}

// Started is closed once the HTTP server listens and the listener has caught up for
// the first time.
func (s *Service) Started() <-chan struct{} { return s.started }

// Addr returns the HTTP address; valid once Started is closed.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// InternalAddr returns the address of http.internal_addr, nil when it is unset; valid
// once Started is closed.
func (s *Service) InternalAddr() net.Addr {
	if s.internal == nil {
		return nil
	}
	return s.internal.Addr()
}

// Ready reports whether the service is delivering: the listener is connected and caught
// up, enrichment is not failing, and no entry has waited longer than hub.max_lag.
func (s *Service) Ready() bool { return s.notReady() == "" }

// notReady says why the service is not delivering, or "" when it is.
func (s *Service) notReady() string {
	switch {
	case s.draining.Load():
		return "draining"
	case !s.ready.Load():
		return "listener not connected or catching up"
	case s.pipeline.EnrichFailing():
		return "enrichment failing, retrying"
	}
	if b := s.pipeline.Behind(); !b.IsZero() && time.Since(b) > s.cfg.Hub.MaxLag {
		return "delivery behind by more than hub.max_lag"
	}
	return ""
}

// Hub returns the hub; valid once Started is closed.
func (s *Service) Hub() *hub.Hub { return s.hub }

// Run serves until ctx ends (then shuts down cleanly and returns nil) or a part fails.
func (s *Service) Run(ctx context.Context) error {
	pool, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	s.pool = pool
	s.pipeline = pipeline.New(pipeline.Config{DB: pool, Catalog: s.catalog, Relayed: s.relayed, ReplayCache: s.cfg.Hub.ReplayCache, Logger: s.base, Metrics: s.metrics})

	bounds, err := eventlog.ReadBounds(ctx, pool)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000" || pgErr.Code == "42883") {
			return ErrNotMigrated
		}
		return err
	}
	if err := s.pipeline.LoadCatalog(ctx); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return ErrNotMigrated
		}
		return err
	}
	relayed, err := s.addRelayed(ctx, pool)
	if err != nil {
		return err
	}
	s.allowed = decode.AllKinds
	if len(s.cfg.Events) > 0 {
		if s.allowed, err = s.catalog.ParseSet(s.cfg.Events); err != nil {
			return fmt.Errorf("%w: events: %v (`notifier migrate status` lists the installed events)", config.ErrInvalid, err)
		}
		s.allowed |= relayed
	}
	s.pipeline.SetEvents(s.allowed)
	queued := s.cfg.Snapshot.MaxQueued
	if queued == 0 {
		queued = -1 // none may wait
	}
	s.snapshots = snapshot.New(snapshot.Config{
		MaxConcurrent: s.cfg.Snapshot.MaxConcurrent,
		MaxQueued:     queued,
		MaxItems:      s.cfg.Snapshot.MaxItems,
		CursorTTL:     s.cfg.Snapshot.CursorTTL,
		Logger:        s.base,
		Metrics:       s.metrics,
	}, pool, s.verifier)
	if err := s.snapshots.Load(ctx); err != nil {
		return err
	}
	s.hub = hub.New(hub.Config{
		MaxLag:                   s.cfg.Hub.MaxLag,
		MaxSubscribers:           s.cfg.HTTP.MaxConnections,
		MaxSubscribersPerAccount: s.cfg.HTTP.MaxConnectionsPerAccount,
		Metrics:                  s.metrics,
		ReplayBuffer:             s.cfg.Hub.ReplayBuffer,
		ReplayFunc:               s.pipeline.Replay,
		BoundsFunc:               s.bounds,
		Logger:                   s.base,
	}, bounds.Head)

	if s.cfg.Fleet.AdvertiseURL != "" {
		s.lease = fleet.NewLease(pool, s.cfg.Fleet.AdvertiseURL, s.cfg.Fleet.Lease)
		s.leader = fleet.NewLeader(fleet.LeaderConfig{Key: s.fleetKey(), Backlog: s.pipeline.Backlog, Logger: s.base, Metrics: s.metrics})
	}

	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", s.cfg.HTTP.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.HTTP.Addr, err)
		}
	}
	var internalSrv *http.Server
	if addr := s.cfg.HTTP.InternalAddr; addr != "" {
		if s.internal, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen on http.internal_addr %s: %w", addr, err)
		}
		internalSrv = &http.Server{
			Handler:           s.internalRoutes(),
			ReadHeaderTimeout: s.cfg.HTTP.HandshakeTimeout,
			ReadTimeout:       s.cfg.HTTP.ReadTimeout,
			IdleTimeout:       s.cfg.HTTP.IdleTimeout,
			MaxHeaderBytes:    s.cfg.HTTP.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.base.With("component", "http").Handler(), slog.LevelWarn),
		}
	}
	conns := connlimit.New(s.cfg.HTTP.MaxConnections, s.metrics)
	wsHandler := ws.New(ws.Config{
		Events:            s.allowed,
		Catalog:           s.catalog,
		PingInterval:      s.cfg.WS.PingInterval,
		PongWait:          s.cfg.WS.PongWait,
		WriteWait:         s.cfg.WS.WriteWait,
		ReadLimit:         s.cfg.WS.ReadLimit,
		AllowedOrigins:    s.cfg.HTTP.AllowedOrigins,
		MaxClientMessages: s.cfg.WS.MaxClientMessages,
		HandshakeTimeout:  s.cfg.HTTP.HandshakeTimeout,
		OverLimit:         conns.OverLimit,
		Logger:            s.base,
		Metrics:           s.metrics,
	}, s.hub, s.verifier)
	sioHandler := socketio.New(socketio.Config{
		Events:                       s.allowed,
		PingInterval:                 s.cfg.SocketIO.PingInterval,
		PingTimeout:                  s.cfg.SocketIO.PingTimeout,
		MaxPayload:                   s.cfg.SocketIO.MaxPayload,
		ConnectTimeout:               s.cfg.SocketIO.ConnectTimeout,
		WriteWait:                    s.cfg.WS.WriteWait,
		HandshakeTimeout:             s.cfg.HTTP.HandshakeTimeout,
		AllowedOrigins:               s.cfg.HTTP.AllowedOrigins,
		MaxUnauthenticated:           s.cfg.SocketIO.MaxUnauthenticated,
		MaxUnauthenticatedPerAddress: s.cfg.SocketIO.MaxUnauthenticatedPerAddress,
		MaxClientPackets:             s.cfg.SocketIO.MaxClientPackets,
		OverLimit:                    conns.OverLimit,
		RecoverySecret:               s.recoverySecret(),
		RelayEvents:                  s.relay.Events,
		RelayMaxBytes:                s.relay.MaxBytes,
		RelayRate:                    s.relay.Rate,
		RelayFunc:                    s.relayFunc(),
		Logger:                       s.base,
		Metrics:                      s.metrics,
	}, s.hub, s.verifier)
	// Every connection counts against http.max_connections until it closes, hijacked
	// WebSockets included. ReadTimeout bounds reading every request, body included;
	// it does not end a polling GET that waits for packets (net/http clears the
	// deadline once the request is read), nor a WebSocket: gorilla's upgrade clears
	// it and the readers own their deadlines. Idle keep-alive connections close.
	// Socket.IO stamps each connection as it is accepted, so that a session applies
	// requests that came on different connections in the order they arrived.
	srv := &http.Server{
		Handler: conns.Handler(sioHandler.Arrivals(reqid.Handler(s.routes(wsHandler, sioHandler)))),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return sioHandler.ConnContext(conns.ConnContext(ctx, c), c)
		},
		ConnState: func(c net.Conn, state http.ConnState) {
			conns.ConnState(c, state)
			sioHandler.ConnState(c, state)
		},
		ReadHeaderTimeout: s.cfg.HTTP.HandshakeTimeout,
		ReadTimeout:       s.cfg.HTTP.ReadTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    s.cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.base.With("component", "http").Handler(), slog.LevelWarn),
	}

	if err := s.verifier.Refresh(ctx); err != nil {
		s.logger.WarnContext(ctx, "jwks prefetch failed; tokens will fetch keys when needed", "error", err)
	}
	s.logger.InfoContext(ctx, "notifier starting", "addr", s.ln.Addr().String(), "log_head", bounds.Head, "events", s.cfg.Events)
	// The parts run until ctx ends and, after it, for http.drain_delay more: /readyz
	// answers 503 "draining" meanwhile, so a load balancer moves new clients away while
	// this instance still serves the ones it has. Then everything stops.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		if d := s.cfg.HTTP.DrainDelay; d > 0 {
			s.draining.Store(true)
			s.logger.Info("draining: not ready, still serving", "drain_delay_s", d.Seconds())
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-runCtx.Done():
				t.Stop()
			}
		}
		stop()
	}()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return s.source(gctx) })
	g.Go(func() error { return s.prune(gctx) })
	g.Go(func() error {
		serve := func() error { return srv.Serve(s.ln) }
		if s.cfg.HTTP.TLSCert != "" {
			serve = func() error { return srv.ServeTLS(s.ln, s.cfg.HTTP.TLSCert, s.cfg.HTTP.TLSKey) }
		}
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	if internalSrv != nil {
		g.Go(func() error {
			if err := internalSrv.Serve(s.internal); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http.internal_addr: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown(srv, wsHandler, sioHandler)
		if internalSrv != nil { // last: it answers scrapes and probes while the rest drains
			if err := internalSrv.Close(); err != nil {
				s.logger.Warn("internal http close", "error", err)
			}
		}
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	s.logger.Info("notifier stopped", "error", err)
	return err
}

func (s *Service) connect(ctx context.Context) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(s.cfg.Database.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: database.url: %v", config.ErrInvalid, redact(err))
	}
	pc.MaxConns = s.cfg.Database.MaxConns
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// A stuck enrichment or replay query must not hold the pipeline: it fails, the
	// burst is retried (enrich) or the resume is (hub).
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(s.cfg.Database.StatementTimeout.Milliseconds(), 10)
	// pg_catalog first, whatever the URL or the role's settings put first: a function or
	// operator another role defines elsewhere on the path never shadows a built-in one
	// of the same signature. (The queries qualify the functions they call, for the
	// better-matching overloads a path order cannot stop.)
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('search_path', 'pg_catalog, ' OPERATOR(pg_catalog.||) pg_catalog.current_setting('search_path'), false)`)
		return err
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "notifier"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// redact keeps a parse error from echoing the URL (and its password).
func redact(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "cannot parse the connection string"
	}
	return err.Error()
}

func (s *Service) setReady(ready bool) {
	if !ready && s.ready.Load() {
		s.reconnects.Inc()
	}
	s.ready.Store(ready)
	if s.leader != nil {
		s.leader.SetReady(ready)
	}
	if ready {
		s.once.Do(func() { close(s.started) })
	}
}

func (s *Service) routes(wsHandler, sioHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", wsHandler)
	mux.Handle(socketio.Path, sioHandler)
	dashboard := web.Handler()
	mux.Handle("GET /{$}", dashboard)
	mux.Handle("GET "+web.AssetPrefix, dashboard)
	mux.Handle("GET "+snapshot.Prefix, s.snapshots)
	mux.Handle("GET "+snapshot.Prefix+"/", s.snapshots)
	if s.internal == nil {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	if s.leader != nil {
		mux.Handle("GET "+fleet.StreamPath, s.leader)
	}
	s.probes(mux)
	return mux
}

// internalRoutes is what http.internal_addr serves: /metrics, and the probes.
func (s *Service) internalRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	s.probes(mux)
	return mux
}

// probes adds /healthz and /readyz to mux.
func (s *Service) probes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if why := s.notReady(); why != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"status":"not ready","reason":%q}`+"\n", why)
			return
		}
		_, _ = fmt.Fprintf(w, `{"status":"ready","head":%d,"subscribers":%d,"role":%q}`+"\n", s.hub.Head(), s.hub.Subscribers(), roleNames[s.role.Load()])
	})
}

// shutdown stops accepting, ends every subscription (connections close with 1001) and
// waits for them, all within http.shutdown_timeout.
func (s *Service) shutdown(srv *http.Server, wsHandler *ws.Handler, sioHandler *socketio.Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	s.setReady(false)
	if err := srv.Shutdown(ctx); err != nil {
		s.logger.Warn("http shutdown", "error", err)
	}
	s.hub.Close()
	sioHandler.Close()
	done := make(chan struct{})
	go func() {
		wsHandler.Wait()
		sioHandler.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.logger.Warn("connections still open at shutdown deadline", "timeout", s.cfg.HTTP.ShutdownTimeout)
	}
}

// recoverySecret keys Socket.IO recovery ids: socketio.recovery_secret, else a key
// derived from the HS256 secret (shared by every instance already; derived, so that a
// recovery id's MAC is never one made with the token key), else a random key and a
// warning.
func (s *Service) recoverySecret() []byte {
	switch {
	case s.cfg.SocketIO.RecoverySecret != "":
		return []byte(s.cfg.SocketIO.RecoverySecret)
	case s.cfg.Auth.Algorithm == auth.AlgHS256:
		mac := hmac.New(sha256.New, []byte(s.cfg.Auth.JWTSecret))
		mac.Write([]byte("notifier socket.io recovery key v1"))
		return mac.Sum(nil)
	}
	s.logger.Warn("socketio.recovery_secret not set: Socket.IO recovery works only within this process")
	return nil
}

// addRelayed gives the relayed events (socketio.relay) Kinds of no rule, and returns
// them. It refuses a name an installed rule emits, one the server or the Socket.IO
// client reserves, and a database without notifier.relay (migration 0005).
func (s *Service) addRelayed(ctx context.Context, q eventlog.Querier) (decode.Set, error) {
	if len(s.relay.Events) == 0 {
		return 0, nil
	}
	installed, err := eventlog.ReadInstalled(ctx, q)
	if err != nil {
		return 0, err
	}
	for _, e := range installed {
		if s.relayed[e.Name] {
			return 0, fmt.Errorf("%w: socketio.relay: %q is an event of rule %q installed in the database: an event is relayed or the database's, never both (remove it from socketio.relay or from the rules)", config.ErrInvalid, e.Name, e.Rule)
		}
	}
	var ok bool
	if err := q.QueryRow(ctx, "SELECT pg_catalog.to_regprocedure('notifier.relay(bigint, text, text, text, jsonb)') IS NOT NULL").Scan(&ok); err != nil {
		return 0, fmt.Errorf("check notifier.relay: %w", err)
	}
	if !ok {
		return 0, fmt.Errorf("socketio.relay needs migration 0005_relay: %w", ErrNotMigrated)
	}
	var set decode.Set
	for _, name := range s.relay.Events {
		if err := socketio.CheckRelayName(name); err != nil {
			return 0, fmt.Errorf("%w: socketio.relay: %v", config.ErrInvalid, err)
		}
		k, err := s.catalog.Add(name, "")
		if err != nil {
			return 0, fmt.Errorf("%w: socketio.relay: %v", config.ErrInvalid, err)
		}
		set = set.With(k)
	}
	return set, nil
}

// relayFunc is socketio.RelayFunc over notifier.relay, or nil when relay is off. Each
// call is a transaction of its own, so the commit lock it takes is held only for it.
func (s *Service) relayFunc() socketio.RelayFunc {
	if len(s.relay.Events) == 0 {
		return nil
	}
	return func(ctx context.Context, account int64, subject, origin, event string, data []byte) (int64, error) {
		var id int64
		err := s.pool.QueryRow(ctx, "SELECT notifier.relay($1, $2, $3, $4, $5::jsonb)", account, subject, origin, event, json.RawMessage(data)).Scan(&id)
		if err != nil {
			return 0, fmt.Errorf("notifier.relay: %w", err)
		}
		return id, nil
	}
}

// diverged handles a log that went back (listen.Config.OnDiverged): ids up to cursor
// may name other events now. The log voids them and draws new ids above; every client
// resyncs, and no cached message can be served under a reused id.
func (s *Service) diverged(ctx context.Context, cursor int64) error {
	if err := eventlog.Rebase(ctx, s.pool, cursor); err != nil {
		return err
	}
	s.rebases.Inc()
	s.pipeline.Forget()
	s.hub.Reset(cursor)
	if s.leader != nil {
		s.leader.Reset(cursor)
	}
	s.logger.ErrorContext(ctx, "event log rebased after it went back: every client resyncs", "cursor", cursor)
	return nil
}

// bounds implements hub.BoundsFunc.
func (s *Service) bounds(ctx context.Context) (int64, int64, error) {
	b, err := eventlog.ReadBounds(ctx, s.pool)
	return b.PrunedThrough, b.Head, err
}

// prune deletes log entries older than log.retention, every log.prune_interval.
func (s *Service) prune(ctx context.Context) error {
	const batch = 10000
	t := time.NewTicker(s.cfg.Log.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		before := time.Now().Add(-s.cfg.Log.Retention)
		for {
			n, err := eventlog.Prune(ctx, s.pool, before, batch)
			if err != nil {
				if ctx.Err() == nil {
					s.logger.WarnContext(ctx, "prune event log", "error", err)
				}
				break
			}
			if n > 0 {
				s.logger.InfoContext(ctx, "pruned event log", "deleted", n, "before", before)
			}
			if n < batch {
				break
			}
		}
	}
}
