// Package eventlog reads and prunes notifier.events, the durable log the triggers write
// at COMMIT. Ids are drawn under a transaction lock released only after the commit is
// visible (triggers/0001_event_log.up.sql), so they are in commit order and
// "id > cursor" never skips a row that commits later: every id below a visible id is
// either visible already or belongs to a transaction that rolled back.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query; *pgx.Conn, *pgxpool.Pool and pgx.Tx all are.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Entry is one log row as the NOTIFY payload carries it (SQL notifier.payload).
type Entry struct {
	ID      int64
	Payload []byte
	// Committed is the row's created_at, stamped at COMMIT: with ID, it fingerprints
	// the entry, so a reader can tell whether the log still holds what it read.
	Committed time.Time
}

// ErrPruned is wrapped by ReadAccount when the log no longer holds part of the range
// it was asked for: retention pruned it, or the log was rebased.
var ErrPruned = errors.New("the event log no longer holds the range")

// Bounds is what the log can replay: ids above PrunedThrough up to Head.
type Bounds struct {
	PrunedThrough int64 // ids at or below may have been pruned
	Head          int64 // highest committed id, 0 when the log is empty
}

const (
	readAfterSQL = `SELECT id, notifier.payload(id, event, row_id, account_id), created_at
FROM notifier.events WHERE id > $1 ORDER BY id LIMIT $2`
	readAccountSQL = `SELECT id, notifier.payload(id, event, row_id, account_id), created_at
FROM notifier.events WHERE account_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4`
	prunedSQL = `SELECT pruned_through FROM notifier.log_state`
	entrySQL  = `SELECT created_at FROM notifier.events WHERE id = $1`
	rebaseSQL = `SELECT notifier.rebase($1)`
	boundsSQL = `SELECT (SELECT pruned_through FROM notifier.log_state),
       greatest((SELECT max(id) FROM notifier.events), (SELECT pruned_through FROM notifier.log_state))`
	pruneSQL = `WITH gone AS (
    DELETE FROM notifier.events WHERE id IN (
        SELECT id FROM notifier.events WHERE created_at < $1 ORDER BY id LIMIT $2)
    RETURNING id)
UPDATE notifier.log_state SET pruned_through = greatest(pruned_through, (SELECT max(id) FROM gone))
WHERE EXISTS (SELECT 1 FROM gone)
RETURNING (SELECT count(*) FROM gone)`
)

// ReadAfter appends to dst up to limit entries with id > after, in id order.
func ReadAfter(ctx context.Context, q Querier, after int64, limit int, dst []Entry) ([]Entry, error) {
	rows, err := q.Query(ctx, readAfterSQL, after, limit)
	if err != nil {
		return dst, fmt.Errorf("read log after %d: %w", after, err)
	}
	return collect(rows, dst, "read log after", after)
}

// ReadAccount appends to dst up to limit entries of one account with after < id <= through,
// in id order. It returns an error wrapping ErrPruned when entries above after may have
// been pruned before the read: what it returns would then be incomplete.
func ReadAccount(ctx context.Context, q Querier, account, after, through int64, limit int, dst []Entry) ([]Entry, error) {
	rows, err := q.Query(ctx, readAccountSQL, account, after, through, limit)
	if err != nil {
		return dst, fmt.Errorf("read log of account %d after %d: %w", account, after, err)
	}
	if dst, err = collect(rows, dst, "read log of account after", after); err != nil {
		return dst, err
	}
	// Pruning deletes rows and raises pruned_through in one statement. Read after the
	// page, a watermark still at or below after proves no row the page needed was gone
	// when it was read; a higher one may be a false alarm (a prune that committed just
	// after the read), never a missed loss.
	var pruned int64
	if err := q.QueryRow(ctx, prunedSQL).Scan(&pruned); err != nil {
		return dst, fmt.Errorf("read log of account %d after %d: watermark: %w", account, after, err)
	}
	if pruned > after {
		return dst, fmt.Errorf("read log of account %d after %d: pruned through %d: %w", account, after, pruned, ErrPruned)
	}
	return dst, nil
}

// Holds reports whether the log still holds e as it was read: the same id with the same
// commit stamp, or an id retention has pruned since. false means the log went back
// (committed transactions lost to a crash with asynchronous commit, a failover to an
// asynchronous standby, a restore): ids at or below e.ID may now name other events.
func Holds(ctx context.Context, q Querier, e Entry) (bool, error) {
	var committed time.Time
	err := q.QueryRow(ctx, entrySQL, e.ID).Scan(&committed)
	if errors.Is(err, pgx.ErrNoRows) {
		var pruned int64
		if err := q.QueryRow(ctx, prunedSQL).Scan(&pruned); err != nil {
			return false, fmt.Errorf("check log entry %d: watermark: %w", e.ID, err)
		}
		return pruned >= e.ID, nil
	}
	if err != nil {
		return false, fmt.Errorf("check log entry %d: %w", e.ID, err)
	}
	return committed.Equal(e.Committed), nil
}

// Rebase declares every id at or below seen void, after the log was found to have gone
// back: pruned_through rises to seen (clients resuming from there get resync) and new
// ids are drawn above it, so no id a client has seen is ever reused (notifier.rebase).
func Rebase(ctx context.Context, q Querier, seen int64) error {
	rows, err := q.Query(ctx, rebaseSQL, seen)
	if err != nil {
		return fmt.Errorf("rebase log past %d: %w", seen, err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rebase log past %d: %w", seen, err)
	}
	return nil
}

func collect(rows pgx.Rows, dst []Entry, op string, after int64) ([]Entry, error) {
	defer rows.Close()
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.ID, &e.Payload, &e.Committed); err != nil {
			return dst, fmt.Errorf("%s %d: scan: %w", op, after, err)
		}
		dst = append(dst, e)
	}
	if err := rows.Err(); err != nil {
		return dst, fmt.Errorf("%s %d: %w", op, after, err)
	}
	return dst, nil
}

// ReadBounds returns the replayable range of the log.
func ReadBounds(ctx context.Context, q Querier) (Bounds, error) {
	var b Bounds
	if err := q.QueryRow(ctx, boundsSQL).Scan(&b.PrunedThrough, &b.Head); err != nil {
		return Bounds{}, fmt.Errorf("read log bounds: %w", err)
	}
	return b, nil
}

// Prune deletes up to batch entries older than before and raises pruned_through past
// them; it returns how many it deleted.
func Prune(ctx context.Context, q Querier, before time.Time, batch int) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, pruneSQL, before, batch).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune log before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

// InstalledEvent is an event an installed rule emits (notifier.rule_events).
type InstalledEvent struct {
	Name, Rule string
}

// ReadInstalled lists the events the installed rules emit, by rule and in the order
// each rule emits them.
func ReadInstalled(ctx context.Context, q Querier) ([]InstalledEvent, error) {
	rows, err := q.Query(ctx, "SELECT name, rule FROM notifier.rule_events ORDER BY rule, ord")
	if err != nil {
		return nil, fmt.Errorf("read installed events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InstalledEvent, error) {
		var e InstalledEvent
		err := r.Scan(&e.Name, &e.Rule)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read installed events: %w", err)
	}
	return out, nil
}
