// Package pipeline turns log entries into hub messages: it decodes each entry against
// the catalog of installed events, keeps those the service sends, enriches a burst in
// one round trip (retrying a database that fails as a whole, in order), encodes each
// event once and hands the burst to a publish function (the hub, then a fleet's
// followers). It also answers what the hub and a fleet's followers ask of the log,
// replays and backlogs, from the same cache of recent messages, and turns a leader's
// streamed events into this instance's messages.
//
// Data flow: listen → pipeline (decode, enrich, encode) → hub.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgnotifier/notifier/internal/metrics"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/eventlog"
	"github.com/pgnotifier/notifier/notifier/fleet"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// MaxBurst bounds how many log entries one enrichment round trip covers.
const MaxBurst = 512

// replayAttempts bounds a replay's enrichment retries: about 3 s of backoff, plus the
// statements' own timeouts.
const replayAttempts = 6

// DB is what the pipeline needs of the database: log reads and batched enrichment
// (*pgxpool.Pool is one).
type DB interface {
	eventlog.Querier
	enrich.Batcher
}

// Config configures a Pipeline.
type Config struct {
	DB          DB
	Catalog     *decode.Catalog
	Relayed     map[string]bool // relayed event names (socketio.relay): never a rule's
	ReplayCache int             // recent messages kept for replays; 0 keeps none
	Logger      *slog.Logger
	Metrics     *metrics.Registry
}

// Pipeline decodes, enriches and encodes; see the package doc. Events must be set
// before Run, Replay, Backlog or Followed.
type Pipeline struct {
	cfg      Config
	logger   *slog.Logger
	enricher *enrich.Enricher
	recent   *recent
	events   decode.Set

	catalogMu   sync.Mutex // serialises LoadCatalog
	catalogRead time.Time  // when LoadCatalog last read the database

	// enrichFailing is set while Run retries a burst the database could not enrich;
	// behind holds the commit time (Unix ns) of the oldest entry Run holds
	// unpublished, 0 when it holds none.
	enrichFailing atomic.Bool
	behind        atomic.Int64

	partial                *metrics.Indexed
	skipped, enrichRetries *metrics.Counter
	lag, enrichSeconds     *metrics.Histogram
	enrichEvents           *metrics.Histogram
}

// New returns a Pipeline that sends every event until SetEvents says otherwise.
func New(cfg Config) *Pipeline {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	p := &Pipeline{
		cfg:      cfg,
		logger:   logger.With("component", "pipeline"),
		enricher: enrich.New(cfg.DB, cfg.Catalog, logger),
		recent:   newRecent(cfg.ReplayCache),
		events:   decode.AllKinds,
	}
	m.GaugeFunc("notifier_enrich_failing", "1 while the pipeline retries a burst the database could not enrich.", func() float64 {
		if p.enrichFailing.Load() {
			return 1
		}
		return 0
	})
	p.partial = m.Indexed("notifier_events_partial_total", "Events sent partial (the database refused that row's enrichment, or the log no longer held it), by event name.", "event")
	p.skipped = m.Counter("notifier_log_entries_skipped_total", "Log entries that could not be decoded.")
	p.enrichRetries = m.Counter("notifier_enrich_retries_total", "Burst enrichments retried because the database failed as a whole (unreachable, timeout, overloaded).")
	p.lag = m.Histogram("notifier_event_lag_seconds", "From an event's commit (its log row's created_at, the database's clock) to its publication to connections (this host's clock).", metrics.LatencyBuckets())
	p.enrichSeconds = m.Histogram("notifier_enrich_duration_seconds", "Enrichment round trips that succeeded, live bursts and replays.", metrics.LatencyBuckets())
	p.enrichEvents = m.Histogram("notifier_enrich_batch_events", "Events per enrichment round trip that succeeded, live bursts and replays.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, MaxBurst})
	return p
}

// SetEvents sets the events sent (the events allowlist, in catalog Kinds).
func (p *Pipeline) SetEvents(events decode.Set) { p.events = events }

// EnrichFailing reports whether Run is retrying a burst the database could not enrich.
func (p *Pipeline) EnrichFailing() bool { return p.enrichFailing.Load() }

// Behind returns the commit time of the oldest entry Run holds unpublished, or the
// zero time when it holds none.
func (p *Pipeline) Behind() time.Time {
	if b := p.behind.Load(); b != 0 {
		return time.Unix(0, b)
	}
	return time.Time{}
}

// Forget drops every cached message, when the log's ids may have been reused.
func (p *Pipeline) Forget() { p.recent.clear() }

// Run decodes, enriches and publishes entries from in, a burst at a time, until ctx
// ends or enrichment fails for good (only ctx ends its retries).
func (p *Pipeline) Run(ctx context.Context, in <-chan eventlog.Entry, publish func([]*hub.Message)) error {
	changes := make([]decode.Change, 0, MaxBurst)
	committed := make([]time.Time, 0, MaxBurst) // committed[i] is changes[i]'s commit time
	take := func(e eventlog.Entry) {
		c := p.appendChange(ctx, changes, e)
		if len(c) > len(changes) {
			committed = append(committed, e.Committed)
		}
		changes = c
	}
	for {
		select {
		case e := <-in:
			p.behind.Store(e.Committed.UnixNano())
			take(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	drain:
		for len(changes) < MaxBurst {
			select {
			case e := <-in:
				take(e)
			default:
				break drain
			}
		}
		if len(changes) > 0 {
			msgs, err := p.messages(ctx, changes, true)
			if err != nil {
				return err
			}
			p.recent.add(msgs)
			publish(msgs)
			now := time.Now()
			for _, c := range committed {
				p.lag.Observe(now.Sub(c).Seconds())
			}
			changes, committed = changes[:0], committed[:0]
		}
		p.behind.Store(0)
	}
}

// LoadCatalog reads the installed events into the catalog, at most once a second.
func (p *Pipeline) LoadCatalog(ctx context.Context) error {
	p.catalogMu.Lock()
	defer p.catalogMu.Unlock()
	if time.Since(p.catalogRead) < time.Second {
		return nil
	}
	installed, err := eventlog.ReadInstalled(ctx, p.cfg.DB)
	if err != nil {
		return err
	}
	p.catalogRead = time.Now()
	for _, e := range installed {
		if p.cfg.Relayed[e.Name] { // installed since the service checked; the next start refuses it
			p.logger.ErrorContext(ctx, "installed event is relayed (socketio.relay): its database events are served as relayed ones", "event", e.Name, "rule", e.Rule)
			continue
		}
		if _, err := p.cfg.Catalog.Add(e.Name, e.Rule); err != nil {
			p.logger.ErrorContext(ctx, "installed event not served", "event", e.Name, "rule", e.Rule, "error", err)
		}
	}
	return nil
}

// appendChange decodes e and keeps it if its event is sent. An event the catalog
// does not know yet (a rule installed since it was read) reloads it.
func (p *Pipeline) appendChange(ctx context.Context, changes []decode.Change, e eventlog.Entry) []decode.Change {
	c, err := p.cfg.Catalog.Payload(e.Payload)
	if errors.Is(err, decode.ErrUnknownEvent) {
		if lerr := p.LoadCatalog(ctx); lerr != nil {
			p.logger.WarnContext(ctx, "reading the installed events failed", "error", lerr)
		}
		c, err = p.cfg.Catalog.Payload(e.Payload)
	}
	if err != nil {
		p.skipped.Inc()
		p.logger.WarnContext(ctx, "undecodable log entry skipped", "event_id", e.ID, "error", err)
		return changes
	}
	if !p.events.Has(c.Kind) {
		return changes
	}
	return append(changes, c)
}

// messages enriches and encodes changes. With retry, a failing database is retried
// with backoff until ctx ends, in order: a burst is never skipped, never sent partial
// for a failure that is not its rows' own, and EnrichFailing says so meanwhile.
func (p *Pipeline) messages(ctx context.Context, changes []decode.Change, retry bool) ([]*hub.Message, error) {
	delay := 100 * time.Millisecond
	for {
		start := time.Now()
		events, err := p.enricher.Enrich(ctx, changes)
		if err == nil {
			p.enrichSeconds.Observe(time.Since(start).Seconds())
			p.enrichEvents.Observe(float64(len(changes)))
			if retry {
				p.enrichFailing.Store(false)
			}
			msgs := make([]*hub.Message, len(events))
			for i, ev := range events {
				msgs[i] = hub.NewMessage(ev)
				if ev.Partial {
					p.partial.Add(uint8(ev.Kind), msgs[i].Name, 1)
				}
			}
			return msgs, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		p.enrichFailing.Store(true)
		p.enrichRetries.Inc()
		p.logger.ErrorContext(ctx, "enrichment failed, retrying", "error", err, "first_event_id", changes[0].ID, "events", len(changes), "retry_in_s", delay.Seconds())
		if !wait(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// wait waits d or until ctx ends; false if ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Replay implements hub.ReplayFunc from the log. Events still in the recent cache are
// not enriched again.
func (p *Pipeline) Replay(ctx context.Context, account, after, through int64, limit int) ([]*hub.Message, int64, error) {
	entries, err := eventlog.ReadAccount(ctx, p.cfg.DB, account, after, through, limit, nil)
	if errors.Is(err, eventlog.ErrPruned) {
		return nil, 0, fmt.Errorf("%w: %w", hub.ErrPruned, err)
	}
	if err != nil {
		return nil, 0, err
	}
	next := through
	if len(entries) == limit {
		next = entries[len(entries)-1].ID
	}
	// A cached message is taken before its entry is decoded: a burst that reaches
	// many slow connections of an account at once costs one decoding per event.
	msgs := make([]*hub.Message, 0, len(entries))
	var missing []decode.Change
	for _, e := range entries {
		if m := p.recent.get(e.ID, account); m != nil {
			msgs = append(msgs, m)
			continue
		}
		n := len(missing)
		if missing = p.appendChange(ctx, missing, e); len(missing) > n {
			msgs = append(msgs, nil) // filled in by fill, in order
		}
	}
	msgs, err = p.fill(ctx, msgs, missing)
	return msgs, next, err
}

// Backlog implements fleet.BacklogFunc from the log, for followers behind the
// leader's ring. Events still in the recent cache are not enriched again.
func (p *Pipeline) Backlog(ctx context.Context, after, through int64, limit int) ([]*hub.Message, int64, error) {
	b, err := eventlog.ReadBounds(ctx, p.cfg.DB)
	if err != nil {
		return nil, 0, err
	}
	if after < b.PrunedThrough {
		return nil, 0, fmt.Errorf("%w: %d is at or below %d", fleet.ErrPruned, after, b.PrunedThrough)
	}
	entries, err := eventlog.ReadAfter(ctx, p.cfg.DB, after, limit, nil)
	if err != nil {
		return nil, 0, err
	}
	next := through
	if len(entries) == limit && entries[len(entries)-1].ID < through {
		next = entries[len(entries)-1].ID
	}
	var changes []decode.Change
	for _, e := range entries {
		if e.ID > through {
			break
		}
		changes = p.appendChange(ctx, changes, e)
	}
	msgs := make([]*hub.Message, len(changes))
	var missing []decode.Change
	for i, c := range changes {
		if msgs[i] = p.recent.get(c.ID, c.AccountID); msgs[i] == nil {
			missing = append(missing, c)
		}
	}
	msgs, err = p.fill(ctx, msgs, missing)
	return msgs, next, err
}

// fill enriches missing (and caches the result) into msgs' nil slots, in order.
func (p *Pipeline) fill(ctx context.Context, msgs []*hub.Message, missing []decode.Change) ([]*hub.Message, error) {
	if len(missing) == 0 {
		return msgs, nil
	}
	enriched, err := p.replayMessages(ctx, missing)
	if err != nil {
		return nil, err
	}
	p.recent.add(enriched)
	for i, j := 0, 0; i < len(msgs); i++ {
		if msgs[i] == nil {
			msgs[i] = enriched[j]
			j++
		}
	}
	return msgs, nil
}

// replayMessages enriches a replay's events, retrying a database that failed as a
// whole (a statement timeout behind a lock, a connection lost) with backoff while the
// client waits: a replay that gave up at once would close the client's connection
// (4011) for a failure that passes in a moment.
func (p *Pipeline) replayMessages(ctx context.Context, changes []decode.Change) ([]*hub.Message, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		msgs, err := p.messages(ctx, changes, false)
		if err == nil || ctx.Err() != nil || attempt == replayAttempts {
			return msgs, err
		}
		p.logger.WarnContext(ctx, "replay enrichment failed, retrying", "error", err, "first_event_id", changes[0].ID, "events", len(changes), "attempt", attempt, "retry_in_s", delay.Seconds())
		if !wait(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// Followed turns a leader's streamed events into this instance's messages: the same
// payload bytes, this catalog's kinds, this instance's events; they are cached for
// replays.
func (p *Pipeline) Followed(ctx context.Context, events []fleet.Event) []*hub.Message {
	msgs := make([]*hub.Message, 0, len(events))
	for _, e := range events {
		k, ok := p.cfg.Catalog.Kind(e.Name)
		if !ok {
			if err := p.LoadCatalog(ctx); err != nil {
				p.logger.WarnContext(ctx, "reading the installed events failed", "error", err)
			}
			k, ok = p.cfg.Catalog.Kind(e.Name)
		}
		if !ok {
			p.skipped.Inc()
			p.logger.WarnContext(ctx, "streamed event of an unknown name skipped", "event_id", e.ID, "event", e.Name)
			continue
		}
		if !p.events.Has(k) {
			continue
		}
		if e.Partial {
			p.partial.Add(uint8(k), e.Name, 1)
		}
		msgs = append(msgs, hub.NewMessage(enrich.Event{ID: e.ID, Kind: k, Name: e.Name, AccountID: e.AccountID, Data: e.Data, Partial: e.Partial, Origin: e.Origin}))
	}
	p.recent.add(msgs)
	return msgs
}
