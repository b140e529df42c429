package notifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/eventlog"
	"github.com/pgnotifier/notifier/notifier/fleet"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/listen"
	"github.com/pgnotifier/notifier/notifier/pipeline"
)

// Roles an instance plays, as /readyz and notifier_fleet_role report them.
const (
	roleAlone    int32 = iota // no fleet (fleet.advertise_url unset): reads the log itself
	roleLeader                // holds the fleet lease: reads the log, streams to followers
	roleFollower              // streams from the leader
	roleFallback              // in a fleet, no leader reachable: reads the log itself meanwhile
)

var roleNames = [...]string{"standalone", "leader", "follower", "fallback"}

// errLeaseLost ends a leader's term when another instance holds the lease.
var errLeaseLost = errors.New("fleet lease lost")

// source feeds the hub until ctx ends: from the log (listener, then pipeline), or, in
// a fleet, from the instance that leads it (package fleet).
func (s *Service) source(ctx context.Context) error {
	if s.lease == nil {
		return s.readLog(ctx)
	}
	for ctx.Err() == nil {
		s.fleetTurn(ctx)
	}
	return ctx.Err()
}

// fleetTurn leads, follows or falls back for as long as that lasts.
func (s *Service) fleetTurn(ctx context.Context) {
	held, holder, err := s.lease.Acquire(ctx)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		// The database is unreachable (the listener will say so) or migration 0006 is
		// missing: read the log alone, asking again meanwhile.
		s.logger.WarnContext(ctx, "fleet lease unavailable: reading the log alone meanwhile", "error", err)
		s.fallback(ctx)
	case held:
		s.lead(ctx)
	case holder.Live && holder.URL != "":
		if s.follow(ctx, holder) {
			return // the stream was healthy: ask the lease again at once
		}
		// The leader cannot be reached: the clients here must not wait for its lease
		// to lapse.
		s.logger.WarnContext(ctx, "fleet leader unreachable: reading the log alone meanwhile", "leader", holder.URL, "term", holder.Term)
		s.fallback(ctx)
	default:
		// The lease lapsed and another instance took it first: ask again shortly.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// fallback reads the log alone, without interruption, until the lease is this
// instance's or its holder answers a probe of the stream (every half lease), then
// returns so that fleetTurn leads or follows.
func (s *Service) fallback(ctx context.Context) {
	s.role.Store(roleFallback)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.readLog(rctx) }()
	defer func() { cancel(); <-done }()
	t := time.NewTicker(s.lease.TTL() / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			done <- err // for the deferred wait
			s.logger.ErrorContext(ctx, "reading the log failed", "error", err)
			return
		case <-t.C:
		}
		held, holder, err := s.lease.Acquire(ctx)
		switch {
		case err != nil: // the database is down: the listener retries meanwhile
		case held:
			return
		case holder.Live && holder.URL != "":
			if fleet.Probe(ctx, fleet.FollowConfig{Key: s.fleetKey()}, holder.URL) == nil {
				return
			}
		}
	}
}

// lead holds the fleet lease, renewing it every third of its TTL, and reads the log
// until ctx ends or the lease is lost; then it stops streaming and, on ctx's end,
// releases the lease so that a follower takes over at once.
func (s *Service) lead(ctx context.Context) {
	s.logger.InfoContext(ctx, "leading the fleet", "url", s.cfg.Fleet.AdvertiseURL, "head", s.hub.Head())
	s.role.Store(roleLeader)
	s.leader.Start(s.hub.Head())
	defer func() {
		s.leader.Stop()
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := s.lease.Release(rctx); err != nil {
				s.logger.Warn("fleet lease not released: followers take over when it lapses", "error", err)
			}
			cancel()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLog(gctx) })
	g.Go(func() error {
		t := time.NewTicker(s.lease.TTL() / 3)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-t.C:
			}
			held, holder, err := s.lease.Acquire(gctx)
			switch {
			case err != nil:
				// Without the database there is nothing to lead; keep the stream so that
				// followers resume the moment the listener does.
				s.logger.WarnContext(gctx, "fleet lease not renewed", "error", err)
			case !held:
				s.logger.WarnContext(gctx, "fleet lease lost: following", "leader", holder.URL, "term", holder.Term)
				return errLeaseLost
			}
		}
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errLeaseLost) && ctx.Err() == nil {
		s.logger.ErrorContext(ctx, "leading failed", "error", err)
	}
}

// follow publishes what the leader streams until the stream ends. It reports whether
// the stream got as far as the leader's state, i.e. whether the leader was reachable.
func (s *Service) follow(ctx context.Context, holder fleet.Holder) (healthy bool) {
	cfg := fleet.FollowConfig{Key: s.fleetKey()}
	err := fleet.Follow(ctx, cfg, holder.URL, s.hub.Head(), func(rec fleet.Record) error {
		switch {
		case rec.Reset:
			s.pipeline.Forget()
			s.hub.Reset(rec.Head)
			s.logger.ErrorContext(ctx, "the leader rebased the event log: every client resyncs", "head", rec.Head)
		case rec.State:
			if !healthy {
				s.role.Store(roleFollower)
				s.logger.InfoContext(ctx, "following the fleet leader", "leader", holder.URL, "term", holder.Term, "head", s.hub.Head())
			}
			healthy = true
			s.setReady(rec.Ready)
		default:
			s.hub.Publish(s.pipeline.Followed(ctx, rec.Events))
		}
		return nil
	})
	if healthy {
		s.setReady(false)
	}
	if ctx.Err() == nil {
		s.logger.InfoContext(ctx, "fleet stream ended", "leader", holder.URL, "error", err)
	}
	return healthy
}

// readLog listens, decodes, enriches and publishes from the hub's head on, until ctx
// ends or the pipeline fails.
func (s *Service) readLog(ctx context.Context) error {
	if s.lease == nil {
		s.role.Store(roleAlone)
	}
	entries := make(chan eventlog.Entry, pipeline.MaxBurst*2)
	connCfg := s.pool.Config().ConnConfig.Copy()
	connCfg.RuntimeParams["application_name"] = ListenerApplicationName
	l := listen.New(listen.Config{
		ConnConfig: connCfg,
		PageSize:   s.cfg.Listen.PageSize,
		IdleCheck:  s.cfg.Listen.IdleCheck,
		BackoffMin: s.cfg.Listen.ReconnectMin,
		BackoffMax: s.cfg.Listen.ReconnectMax,
		Logger:     s.base,
		Metrics:    s.metrics,
		// A listener stopped on purpose (a fleet's source changes) leaves readiness to
		// the next source: a load balancer sees no flap.
		ReadyFunc: func(ready bool) {
			if ready || ctx.Err() == nil {
				s.setReady(ready)
			}
		},
		OnDiverged: s.diverged,
		OnForeign:  s.foreign.Inc,
	}, s.hub.Head(), entries)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.Run(gctx) })
	g.Go(func() error { return s.pipeline.Run(gctx, entries, s.publish) })
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// publish fans a burst out to this instance's clients, then to a fleet's followers.
func (s *Service) publish(msgs []*hub.Message) {
	s.hub.Publish(msgs)
	if s.leader != nil {
		s.leader.Publish(msgs)
	}
}

// fleetKey authenticates followers to their leader: fleet.secret, else a key derived
// from the HS256 secret (config refuses a fleet with neither).
func (s *Service) fleetKey() []byte {
	if s.cfg.Fleet.Secret != "" || s.cfg.Auth.Algorithm != auth.AlgHS256 {
		return []byte(s.cfg.Fleet.Secret)
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.Auth.JWTSecret))
	mac.Write([]byte("notifier fleet key v1"))
	return mac.Sum(nil)
}
