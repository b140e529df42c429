package eventlog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/notifier/eventlog"
)

func TestMain(m *testing.M) { pgtest.Main(m, clinicdb.PrepareURL) }

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// appointments inserts n appointments of account, one transaction each, and returns
// the log entries they made.
func appointments(t *testing.T, p *pgxpool.Pool, account int64, n int) []eventlog.Entry {
	t.Helper()
	b, err := eventlog.ReadBounds(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := p.Exec(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, $1)`, account); err != nil {
			t.Fatal(err)
		}
	}
	es, err := eventlog.ReadAfter(t.Context(), p, b.Head, 1000, nil)
	if err != nil || len(es) != n {
		t.Fatalf("read back %d entries, %v; want %d", len(es), err, n)
	}
	return es
}

// TestReadAccountPruned: a range pruned before (or while) it is read is reported as
// ErrPruned, never returned short as if complete; a range above the watermark is not.
func TestReadAccountPruned(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := t.Context()
	es := appointments(t, p, 1, 4)
	got, err := eventlog.ReadAccount(ctx, p, 1, es[0].ID-1, es[3].ID, 10, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("before pruning: %d entries, %v", len(got), err)
	}
	// Prune the first two, as retention would.
	if _, err := p.Exec(ctx, `WITH gone AS (DELETE FROM notifier.events WHERE id <= $1 RETURNING id)
UPDATE notifier.log_state SET pruned_through = (SELECT max(id) FROM gone)`, es[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := eventlog.ReadAccount(ctx, p, 1, es[0].ID-1, es[3].ID, 10, nil); !errors.Is(err, eventlog.ErrPruned) {
		t.Errorf("read from below the watermark: %v, want ErrPruned", err)
	}
	got, err = eventlog.ReadAccount(ctx, p, 1, es[1].ID, es[3].ID, 10, nil)
	if err != nil || len(got) != 2 || got[0].ID != es[2].ID {
		t.Errorf("read from the watermark: %+v, %v; want the last two", got, err)
	}
}

// TestHolds: an entry read from the log is held while it is there unchanged, or once
// retention pruned it; not when it is gone or replaced (the log went back).
func TestHolds(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := t.Context()
	es := appointments(t, p, 1, 3)
	for _, e := range es {
		if ok, err := eventlog.Holds(ctx, p, e); !ok || err != nil {
			t.Fatalf("Holds(%d) = %v, %v on an intact log", e.ID, ok, err)
		}
	}
	stamped := es[1]
	stamped.Committed = stamped.Committed.Add(time.Millisecond)
	if ok, err := eventlog.Holds(ctx, p, stamped); ok || err != nil {
		t.Errorf("Holds of an entry with another commit stamp = %v, %v; want false", ok, err)
	}
	if _, err := p.Exec(ctx, `DELETE FROM notifier.events WHERE id = $1`, es[2].ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := eventlog.Holds(ctx, p, es[2]); ok || err != nil {
		t.Errorf("Holds of a vanished entry = %v, %v; want false", ok, err)
	}
	if _, err := p.Exec(ctx, `WITH gone AS (DELETE FROM notifier.events WHERE id = $1 RETURNING id)
UPDATE notifier.log_state SET pruned_through = (SELECT id FROM gone)`, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := eventlog.Holds(ctx, p, es[0]); !ok || err != nil {
		t.Errorf("Holds of a pruned entry = %v, %v; want true", ok, err)
	}
}

// TestRebase: after Rebase(seen), ids at or below seen are void (below the watermark)
// and the next event's id is above seen.
func TestRebase(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := t.Context()
	es := appointments(t, p, 1, 1)
	seen := es[0].ID + 1000
	if err := eventlog.Rebase(ctx, p, seen); err != nil {
		t.Fatal(err)
	}
	b, err := eventlog.ReadBounds(ctx, p)
	if err != nil || b.PrunedThrough != seen {
		t.Fatalf("bounds after Rebase(%d) = %+v, %v", seen, b, err)
	}
	next := appointments(t, p, 1, 1)
	if next[0].ID <= seen {
		t.Errorf("next id %d, want above %d", next[0].ID, seen)
	}
}
