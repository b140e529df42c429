// Package enrich turns Changes into Events: each changed row with its doctor, patient,
// status and procedures, as the seed contract shapes them.
//
// # Concurrency
//
// An Enricher is safe for concurrent use; the notifier calls it from one goroutine,
// once per burst.
//
// # Invariants
//
// A burst costs one round trip of at most two queries (appointments, doctors), each
// `= ANY($1)` over the burst's row ids, whatever its size. Events keep the order and
// the ids of their Changes. Enrichment reads after COMMIT, so a row's links written in
// the same transaction are there. A row that is gone (deleted before enrichment) still
// yields its event, with what the log knows and Partial set.
package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/sql"
)

// Event is an enriched Change, ready to encode once and fan out.
type Event struct {
	ID        int64
	Kind      decode.Kind
	AccountID int64
	Data      []byte // compact JSON object, the seed contract's payload
	Partial   bool   // the row was not found; Data holds only id and accountId
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
// was enriched (the database could not be reached); the caller retries the burst.
func (e *Enricher) Enrich(ctx context.Context, changes []decode.Change) ([]Event, error) {
	var appts, docs []int64
	for _, c := range changes {
		if c.Kind.Table() == decode.Doctors {
			docs = append(docs, c.RowID)
		} else {
			appts = append(appts, c.RowID)
		}
	}
	var b pgx.Batch
	if len(appts) > 0 {
		b.Queue(sql.Appointments, appts)
	}
	if len(docs) > 0 {
		b.Queue(sql.Doctors, docs)
	}
	if b.Len() == 0 {
		return nil, nil
	}
	res := e.db.SendBatch(ctx, &b)
	var apptData, docData map[int64][]byte
	var err error
	if len(appts) > 0 {
		if apptData, err = readRows(res, len(appts)); err != nil {
			_ = res.Close()
			return nil, fmt.Errorf("enrich %d appointments: %w", len(appts), err)
		}
	}
	if len(docs) > 0 {
		if docData, err = readRows(res, len(docs)); err != nil {
			_ = res.Close()
			return nil, fmt.Errorf("enrich %d doctors: %w", len(docs), err)
		}
	}
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}

	events := make([]Event, len(changes))
	for i, c := range changes {
		data := apptData
		if c.Kind.Table() == decode.Doctors {
			data = docData
		}
		ev := Event{ID: c.ID, Kind: c.Kind, AccountID: c.AccountID, Data: data[c.RowID]}
		if ev.Data == nil {
			ev.Partial = true
			ev.Data = partial(c)
			e.logger.WarnContext(ctx, "row not found for event", "event_id", c.ID, "event", c.Kind.String(), "row_id", c.RowID, "account_id", c.AccountID)
		}
		events[i] = ev
	}
	return events, nil
}

// readRows reads one query's (id, json) rows, compacting PostgreSQL's spaced JSON.
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
