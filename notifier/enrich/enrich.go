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
// A burst costs one round trip of at most two queries (appointments, doctors), each
// `= ANY($1)` over the burst's event ids, whatever its size. Events keep the order and
// the ids of their Changes. The row's own columns are those the log recorded at its
// commit (notifier.events.row_data); joined rows are read now and only from the event's
// account. An error the database raises for some rows only (a data exception, a policy
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
	"github.com/pgnotifier/notifier/sql"
)

// Event is an enriched Change, ready to encode once and fan out.
type Event struct {
	ID        int64
	Kind      decode.Kind
	AccountID int64
	Data      []byte // compact JSON object, the seed contract's payload
	Partial   bool   // the row could not be enriched; Data holds only id and accountId
}

// Batcher sends a batch of queries in one round trip; *pgxpool.Pool, *pgx.Conn and pgx.Tx all are.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Enricher runs the enrichment queries.
type Enricher struct {
	db     Batcher
	logger *slog.Logger
}

// New returns an Enricher reading through db. db's sessions should use TimeZone UTC
// so timestamptz columns render in UTC (timestamp columns are taken as UTC already).
func New(db Batcher, logger *slog.Logger) *Enricher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Enricher{db: db, logger: logger.With("component", "enrich")}
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
	appts, docs, err := e.query(ctx, changes)
	if err != nil {
		if ctx.Err() != nil || !RowError(err) {
			return nil, err
		}
		e.logger.WarnContext(ctx, "burst enrichment failed, isolating events", "first_event_id", changes[0].ID, "events", len(changes), "error", err)
		return e.oneByOne(ctx, changes)
	}
	events := make([]Event, len(changes))
	for i, c := range changes {
		events[i] = e.event(ctx, c, appts, docs)
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
		appts, docs, err := e.query(ctx, changes[i:i+1])
		if err != nil {
			if ctx.Err() != nil || !RowError(err) {
				return nil, err
			}
			e.logger.ErrorContext(ctx, "enrichment failed for event, sending it partial", "event_id", c.ID, "event", c.Kind.String(), "row_id", c.RowID, "account_id", c.AccountID, "error", err)
			events[i] = Event{ID: c.ID, Kind: c.Kind, AccountID: c.AccountID, Data: partial(c), Partial: true}
			continue
		}
		events[i] = e.event(ctx, c, appts, docs)
	}
	return events, nil
}

// event builds c's Event from the payloads read; an event the log no longer holds with
// its row (pruned meanwhile, or written before the log recorded rows) is Partial.
func (e *Enricher) event(ctx context.Context, c decode.Change, appts, docs map[int64][]byte) Event {
	data := appts
	if c.Kind.Table() == decode.Doctors {
		data = docs
	}
	ev := Event{ID: c.ID, Kind: c.Kind, AccountID: c.AccountID, Data: data[c.ID]}
	if ev.Data == nil {
		ev.Partial = true
		ev.Data = partial(c)
		e.logger.WarnContext(ctx, "event's row not in the log", "event_id", c.ID, "event", c.Kind.String(), "row_id", c.RowID, "account_id", c.AccountID)
	}
	return ev
}

// query runs the enrichment queries for changes in one round trip and returns the
// payloads by event id.
func (e *Enricher) query(ctx context.Context, changes []decode.Change) (appts, docs map[int64][]byte, err error) {
	var apptIDs, docIDs []int64
	for _, c := range changes {
		if c.Kind.Table() == decode.Doctors {
			docIDs = append(docIDs, c.ID)
		} else {
			apptIDs = append(apptIDs, c.ID)
		}
	}
	var b pgx.Batch
	if len(apptIDs) > 0 {
		b.Queue(sql.Appointments, apptIDs)
	}
	if len(docIDs) > 0 {
		b.Queue(sql.Doctors, docIDs)
	}
	res := e.db.SendBatch(ctx, &b)
	defer res.Close()
	if len(apptIDs) > 0 {
		if appts, err = readRows(res, len(apptIDs)); err != nil {
			return nil, nil, fmt.Errorf("enrich %d appointments: %w", len(apptIDs), err)
		}
	}
	if len(docIDs) > 0 {
		if docs, err = readRows(res, len(docIDs)); err != nil {
			return nil, nil, fmt.Errorf("enrich %d doctors: %w", len(docIDs), err)
		}
	}
	if err := res.Close(); err != nil {
		return nil, nil, fmt.Errorf("enrich: %w", err)
	}
	return appts, docs, nil
}

// readRows reads one query's (event id, json) rows, compacting PostgreSQL's spaced JSON.
func readRows(res pgx.BatchResults, n int) (map[int64][]byte, error) {
	rows, err := res.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64][]byte, n)
	var raw []byte
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		var buf bytes.Buffer
		buf.Grow(len(raw))
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("row %d: compact json: %w", id, err)
		}
		out[id] = buf.Bytes()
	}
	return out, rows.Err()
}

// partial is the payload of an event whose row is gone: what the log knows.
func partial(c decode.Change) []byte {
	b := make([]byte, 0, 48)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, c.RowID, 10)
	b = append(b, `,"accountId":`...)
	b = strconv.AppendInt(b, c.AccountID, 10)
	return append(b, '}')
}
