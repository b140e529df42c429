// Package enrich turns Changes into Events: each changed row with its doctor, patient,
// status and procedures, as the seed contract shapes them.
//
// # Concurrency
//
// An Enricher is safe for concurrent use; the notifier calls it from one goroutine,
// once per burst, and from replays.
//
// # Invariants
//
// A burst costs one round trip of one query per rule whose events it holds (the
// rule's enrichment function, notifier.enrich_<rule>, installed by its migration), each
// over the burst's event ids, whatever its size, after a setting that keeps their plans
// cached (genericPlans). Events keep the order and the ids of
// their Changes. The row's own columns are those the log recorded at its commit
// (notifier.events.row_data); the clinic's functions read joined rows now and only from
// the event's account. An event whose rule is gone (removed by a migration since it
// committed) is Partial. An error the database raises for some rows only (a data exception, a policy
// that raises) makes those events Partial, the rest of the burst unaffected; any other
// failure (connection lost, statement timeout, too many connections, a server starting
// up, a missing table) is returned, for the caller to retry: a transient failure never
// makes a partial event.
package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnotifier/notifier/notifier/decode"
)

// Event is an enriched Change, ready to encode once and fan out.
type Event struct {
	ID        int64
	Kind      decode.Kind
	Name      string // the event's wire name (Kind's in the Catalog)
	AccountID int64
	Data      []byte // compact JSON object, the seed contract's payload
	Partial   bool   // the row could not be enriched; Data holds only id, accountId and "partial":true
	Origin    string // a relayed event's sender (notifier.events.origin), never delivered it back; "" for the database's
}

// Batcher sends a batch of queries in one round trip; *pgxpool.Pool, *pgx.Conn and pgx.Tx all are.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Enricher runs the enrichment queries.
type Enricher struct {
	db      Batcher
	catalog *decode.Catalog
	logger  *slog.Logger
}

// New returns an Enricher reading through db, naming events and their rules by
// catalog (nil: the built-in events only). db's sessions should use TimeZone UTC so
// timestamptz columns render in UTC (timestamp columns are taken as UTC already).
func New(db Batcher, catalog *decode.Catalog, logger *slog.Logger) *Enricher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if catalog == nil {
		catalog = decode.NewCatalog()
	}
	return &Enricher{db: db, catalog: catalog, logger: logger.With("component", "enrich")}
}

// Enrich returns one Event per Change, in order. An error means nothing of the burst
// was enriched and the caller must retry it, with backoff.
// When the database refuses the burst for a reason that can be a row's own (RowError),
// the burst is enriched one change at a time and the changes that still fail that way
// become Partial events, each logged once with its event id.
func (e *Enricher) Enrich(ctx context.Context, changes []decode.Change) ([]Event, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	payloads, origins, err := e.query(ctx, changes)
	if err != nil {
		if ctx.Err() != nil || !RowError(err) {
			return nil, err
		}
		e.logger.WarnContext(ctx, "burst enrichment failed, isolating events", "first_event_id", changes[0].ID, "events", len(changes), "error", err)
		return e.oneByOne(ctx, changes)
	}
	events := make([]Event, len(changes))
	for i, c := range changes {
		events[i] = e.event(ctx, c, payloads, origins)
	}
	return events, nil
}

// RowError reports whether err is one PostgreSQL raises about the data of particular
// rows, which enriching the rows one at a time can isolate: a data exception (22), an
// integrity violation (23), an error raised by a function (P0, 38, 39, 2F) or a row
// too large to build (54). Everything else (connection, resources, cancellation and
// timeouts, server state, missing objects or privileges) is about the database as a
// whole: retry, never partial.
func RowError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "P0", "38", "39", "2F", "54":
		return true
	}
	return false
}

func (e *Enricher) oneByOne(ctx context.Context, changes []decode.Change) ([]Event, error) {
	events := make([]Event, len(changes))
	for i, c := range changes {
		payloads, origins, err := e.query(ctx, changes[i:i+1])
		if err != nil {
			if ctx.Err() != nil || !RowError(err) {
				return nil, err
			}
			e.logger.ErrorContext(ctx, "enrichment failed for event, sending it partial", "event_id", c.ID, "event", e.catalog.Name(c.Kind), "row_id", c.RowID, "account_id", c.AccountID, "error", err)
			events[i] = e.partial(c)
			continue
		}
		events[i] = e.event(ctx, c, payloads, origins)
	}
	return events, nil
}

// event builds c's Event from the payloads read; an event the log no longer holds with
// its row (pruned meanwhile, or written before the log recorded rows) is Partial.
// origins holds the senders of relayed events.
func (e *Enricher) event(ctx context.Context, c decode.Change, payloads map[int64][]byte, origins map[int64]string) Event {
	data := payloads[c.ID]
	if data == nil {
		e.logger.WarnContext(ctx, "event not enriched (its row is not in the log, or its rule is gone)", "event_id", c.ID, "event", e.catalog.Name(c.Kind), "row_id", c.RowID, "account_id", c.AccountID)
		return e.partial(c)
	}
	return Event{ID: c.ID, Kind: c.Kind, Name: e.catalog.Name(c.Kind), AccountID: c.AccountID, Data: data, Origin: origins[c.ID]}
}

func (e *Enricher) partial(c decode.Change) Event {
	return Event{ID: c.ID, Kind: c.Kind, Name: e.catalog.Name(c.Kind), AccountID: c.AccountID, Data: partial(c), Partial: true}
}

// loggedRow is the payload of an event no rule emits (a relayed one), what the log
// holds, and its sender.
const loggedRow = "SELECT e.id, e.row_data::text, coalesce(e.origin, '') FROM notifier.events e WHERE e.id = ANY($1) AND e.row_data IS NOT NULL"

// genericPlans makes the batch that follows (one implicit transaction) run the
// enrichment functions' queries on their cached generic plans. PostgreSQL's default
// (plan_cache_mode auto) keeps planning them afresh for each call, because it weighs
// the planning of a ten-table join at far less than it costs: for a one-event burst of
// the clinic's appointments, 0.45 ms of the database's 0.7 ms went to planning (pgbench,
// PostgreSQL 15). Every rule's query looks its burst's rows up by event id, which one
// plan suits whatever the ids.
const genericPlans = "SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)"

// query runs the enrichment function of each rule changes come from, in one round
// trip, and returns the payloads by event id, and the senders of relayed events.
func (e *Enricher) query(ctx context.Context, changes []decode.Change) (map[int64][]byte, map[int64]string, error) {
	var rules []string
	ids := map[string][]int64{}
	for _, c := range changes {
		r := e.catalog.Rule(c.Kind)
		if _, ok := ids[r]; !ok {
			rules = append(rules, r)
		}
		ids[r] = append(ids[r], c.ID)
	}
	out := make(map[int64][]byte, len(changes))
	var origins map[int64]string
	var b pgx.Batch
	b.Queue(genericPlans)
	for _, r := range rules {
		q := loggedRow
		if r != "" {
			q = "SELECT id, payload::text FROM notifier." + pgx.Identifier{"enrich_" + r}.Sanitize() + "($1)"
		}
		b.Queue(q, ids[r])
	}
	res := e.db.SendBatch(ctx, &b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, nil, fmt.Errorf("enrich: set plan_cache_mode: %w", err)
	}
	for _, r := range rules {
		var dst map[int64]string // only loggedRow reads the sender
		if r == "" {
			origins = make(map[int64]string, len(ids[r]))
			dst = origins
		}
		if err := readRows(res, out, dst); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42883" { // undefined_function: the rule is gone
				e.logger.WarnContext(ctx, "rule has no enrichment function (removed since its events committed)", "rule", r, "events", len(ids[r]))
				continue
			}
			return nil, nil, fmt.Errorf("enrich %d events of rule %s: %w", len(ids[r]), r, err)
		}
	}
	if err := res.Close(); err != nil {
		return nil, nil, fmt.Errorf("enrich: %w", err)
	}
	return out, origins, nil
}

// readRows reads one query's (event id, json) rows into out, compacting PostgreSQL's
// spaced JSON; with origins, the rows are loggedRow's, whose third column it reads.
func readRows(res pgx.BatchResults, out map[int64][]byte, origins map[int64]string) error {
	rows, err := res.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	var raw []byte
	for rows.Next() {
		var id int64
		var err error
		if origins != nil {
			var origin string
			err = rows.Scan(&id, &raw, &origin)
			origins[id] = origin
		} else {
			err = rows.Scan(&id, &raw)
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		data, err := compact(raw)
		if err != nil {
			return fmt.Errorf("row %d: compact json: %w", id, err)
		}
		out[id] = data
	}
	return rows.Err()
}

// compact returns a copy of src, a JSON text as PostgreSQL renders a json or jsonb
// value, without the spaces between its tokens. It drops the bytes json.Compact would
// drop, skipping only strings, and is several times faster: json.Compact validates
// each byte with a state machine, which the database has done already. A text whose
// strings or brackets do not close (which the database never renders) goes to
// json.Compact, for its error.
func compact(src []byte) ([]byte, error) {
	dst := make([]byte, 0, len(src))
	depth, start := 0, 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			for i++; i < len(src) && src[i] != '"'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
			if i >= len(src) {
				depth = -1 // unterminated string
			}
		}
	}
	if depth != 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, src); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return append(dst, src[start:]...), nil
}

// partial is the payload of an event whose row could not be enriched: what the log
// knows, and "partial":true inside it, so a Socket.IO client (whose event carries only
// the payload) can tell it from a whole one.
func partial(c decode.Change) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, c.RowID, 10)
	b = append(b, `,"accountId":`...)
	b = strconv.AppendInt(b, c.AccountID, 10)
	return append(b, `,"partial":true}`...)
}
