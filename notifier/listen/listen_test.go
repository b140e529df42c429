package listen

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/eventlog"
)

func TestPayloadID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"id":1,"event":"appointments.created","row":2,"account":3}`, 1, true},
		{`{"id":9223372036854775807,"event":"x"}`, 9223372036854775807, true},
		{`{"id":9223372036854775808,"event":"x"}`, 0, false},
		{`{"id":0,"event":"x"}`, 0, false},
		{`{"id":-1,"event":"x"}`, 0, false},
		{`{"id":,"event":"x"}`, 0, false},
		{`{"id":12}`, 0, false},
		{`{"id": 1,"event":"x"}`, 0, false},
		{`{"id":01,"event":"x"}`, 0, false},
		{`{"id":+1,"event":"x"}`, 0, false},
		{`{"event":"x","id":1}`, 0, false},
		{`hello`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := payloadID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("payloadID(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzPayloadID(f *testing.F) {
	f.Add(`{"id":1,"event":"appointments.created","row":2,"account":3}`)
	f.Add(`{"id":99999999999999999999,`)
	f.Add(`junk`)
	f.Fuzz(func(t *testing.T, p string) {
		id, ok := payloadID(p)
		if !ok {
			return
		}
		if id <= 0 {
			t.Fatalf("accepted id %d from %q", id, p)
		}
		// An accepted payload starts with exactly that id.
		prefix := `{"id":` + strconv.FormatInt(id, 10) + ","
		if len(p) < len(prefix) || p[:len(prefix)] != prefix {
			t.Fatalf("id %d is not the prefix of %q", id, p)
		}
	})
}

// TestNotifiedDuringRead: a row commits after a catch-up read began and its
// notification is consumed while that catch-up still runs, so no later notification
// will wake the listener. The entry must still come out at once, not at the next idle
// check (an hour away here: without the re-read, the test fails on its hang guard).
func TestNotifiedDuringRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{IdleCheck: time.Hour})
	arm := make(chan struct{}, 1)
	f.l.readAfter = func(ctx context.Context, q eventlog.Querier, after int64, limit int, dst []eventlog.Entry) ([]eventlog.Entry, error) {
		dst, err := eventlog.ReadAfter(ctx, q, after, limit, dst)
		select {
		case <-arm:
			// Commit a row this read did not see, on the listener's own connection:
			// PostgreSQL sends a session's own notification before the reply to its
			// COMMIT, so pgconn consumes it here, inside the catch-up.
			var row int64
			if qerr := q.QueryRow(ctx, insertSQL).Scan(&row); qerr != nil {
				return dst, errors.Join(err, qerr)
			}
		default:
		}
		return dst, err
	}
	f.start(t)
	arm <- struct{}{}
	f.insert(t) // wakes the listener: its read is the armed one
	first := f.next(t)
	second := f.next(t)
	if second.ID <= first.ID {
		t.Fatalf("entries %d then %d, want increasing ids", first.ID, second.ID)
	}
	if len(arm) != 0 {
		t.Fatal("the armed read never ran: the test proved nothing")
	}
}

// TestDiverged: the log goes back under the listener (its last entries lost, their
// ids drawn again by other events); the reconnect finds it and calls OnDiverged with
// the cursor until it succeeds, then goes on above the cursor.
func TestDiverged(t *testing.T) {
	t.Parallel()
	type call struct {
		cursor int64
		reply  chan error
	}
	calls := make(chan call)
	f := newFixture(t, Config{
		IdleCheck:  time.Hour,
		BackoffMin: time.Millisecond,
		BackoffMax: 10 * time.Millisecond,
		OnDiverged: func(ctx context.Context, cursor int64) error {
			c := call{cursor: cursor, reply: make(chan error)}
			select {
			case calls <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case err := <-c.reply:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	f.start(t)
	var emitted []eventlog.Entry
	for range 3 {
		f.insert(t)
		emitted = append(emitted, f.next(t))
	}
	cursor := emitted[2].ID

	// The last two entries are lost (as to a crash with asynchronous commit) and two
	// new events draw their ids again.
	f.exec(t, `DELETE FROM notifier.events WHERE id >= $1`, emitted[1].ID)
	f.exec(t, `SELECT setval('notifier.events_id_seq', $1, false)`, emitted[1].ID)
	f.insert(t)
	f.insert(t)
	var reused int
	if err := f.db.QueryRow(t.Context(), `SELECT count(*) FROM notifier.events WHERE id IN ($1, $2)`,
		emitted[1].ID, emitted[2].ID).Scan(&reused); err != nil || reused != 2 {
		t.Fatalf("%d of ids %d, %d reused (%v), want 2", reused, emitted[1].ID, emitted[2].ID, err)
	}
	f.terminate(t)

	wait := func() call {
		t.Helper()
		select {
		case c := <-calls:
			if c.cursor != cursor {
				t.Errorf("OnDiverged(%d), want the cursor %d", c.cursor, cursor)
			}
			return c
		case <-time.After(hangGuard):
			t.Fatalf("OnDiverged not called after %v", hangGuard)
			return call{}
		}
	}
	// A failing rebase ends the session; the next one checks again.
	wait().reply <- errors.New("rebase failed")
	c := wait()
	// What the service does: new ids above the cursor, every id up to it void.
	if err := eventlog.Rebase(t.Context(), f.db, cursor); err != nil {
		t.Fatal(err)
	}
	c.reply <- nil
	f.waitReady(t)

	f.insert(t)
	if e := f.next(t); e.ID <= cursor {
		t.Fatalf("entry %d after the divergence at %d: a reused id was emitted", e.ID, cursor)
	}
	lines := f.logs.matching(divergedMsg)
	if len(lines) != 2 {
		t.Fatalf("%d divergence lines, want 2 (one per check that found it)", len(lines))
	}
	for _, rec := range lines {
		if rec.Level != slog.LevelError || attr(rec, "cursor").Int64() != cursor || attr(rec, "found").Kind() != slog.KindTime {
			t.Errorf("divergence line %v %q: want Error with cursor %d and the reused id's commit stamp", rec.Level, rec.Message, cursor)
		}
	}
}

// TestReconnectHeld: a reconnect after which the log still holds the last entry, or
// retention pruned it, is no divergence.
func TestReconnectHeld(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		lose func(t *testing.T, f *fixture, last eventlog.Entry)
	}{
		{"nothing lost", func(*testing.T, *fixture, eventlog.Entry) {}},
		{"pruned by retention", func(t *testing.T, f *fixture, last eventlog.Entry) {
			if _, err := eventlog.Prune(t.Context(), f.db, time.Now().Add(24*time.Hour), 1_000_000); err != nil {
				t.Fatal(err)
			}
			b, err := eventlog.ReadBounds(t.Context(), f.db)
			if err != nil || b.PrunedThrough < last.ID {
				t.Fatalf("pruned through %d (%v), want at least %d", b.PrunedThrough, err, last.ID)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Config{
				IdleCheck:  time.Hour,
				BackoffMin: time.Millisecond,
				BackoffMax: 10 * time.Millisecond,
				OnDiverged: func(_ context.Context, cursor int64) error {
					t.Errorf("OnDiverged(%d) after a reconnect that lost nothing", cursor)
					return nil
				},
			})
			f.start(t)
			f.insert(t)
			f.insert(t)
			f.next(t)
			last := f.next(t)
			tt.lose(t, f, last)
			f.terminate(t)
			f.waitReady(t) // the check runs before ready
			f.insert(t)
			if e := f.next(t); e.ID <= last.ID {
				t.Fatalf("entry %d after %d", e.ID, last.ID)
			}
			if lines := f.logs.matching(divergedMsg); len(lines) != 0 {
				t.Fatalf("%d divergence lines, want none", len(lines))
			}
		})
	}
}

// TestForeignNotifications: junk on the channel costs no read; every one reaches
// OnForeign, but the warning is logged at most once per foreignLogEvery, with the
// count of those it skipped.
func TestForeignNotifications(t *testing.T) {
	t.Parallel()
	var foreign atomic.Int64
	f := newFixture(t, Config{
		IdleCheck: time.Hour, // the only read is the one the real row's notification asks for
		OnForeign: func() { foreign.Add(1) },
	})
	var clock atomic.Int64 // nanoseconds since an arbitrary start; moved only by the test
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.l.now = func() time.Time { return start.Add(time.Duration(clock.Load())) }
	f.start(t)

	// flood sends n distinct junk payloads (identical ones in one transaction would be
	// folded into one), then a real row; entries and notifications arrive in commit
	// order, so once its entry is out every junk notification was handled.
	flood := func(n int) {
		t.Helper()
		f.exec(t, `SELECT pg_notify('notifier', p) FROM (
    SELECT g || ' junk' AS p FROM generate_series(1, $1 - 3) g
    UNION ALL VALUES ('{"id":"x"}'), ('{"id":0,"event":"x"}'), ('')) AS junk`, n)
		f.insert(t)
		f.next(t)
	}
	const n = 5000
	flood(n)
	if got := foreign.Load(); got != n {
		t.Fatalf("OnForeign called %d times for %d junk notifications", got, n)
	}
	lines := f.logs.matching(foreignMsg)
	if len(lines) != 1 || attr(lines[0], "suppressed").Int64() != 0 {
		t.Fatalf("%d warnings for %d junk notifications within %v, want 1 with suppressed=0", len(lines), n, foreignLogEvery)
	}

	clock.Add(int64(foreignLogEvery))
	flood(n)
	if got := foreign.Load(); got != 2*n {
		t.Fatalf("OnForeign called %d times for %d junk notifications", got, 2*n)
	}
	lines = f.logs.matching(foreignMsg)
	if len(lines) != 2 || attr(lines[1], "suppressed").Int64() != n-1 {
		t.Fatalf("%d warnings (%v), want a second one %v later counting the %d skipped without a line", len(lines), lines, foreignLogEvery, n-1)
	}
}

// BenchmarkWakeUp measures one event's way through the listener: the commit of a
// row, its notification, the log read, the entry out.
func BenchmarkWakeUp(b *testing.B) {
	f := newFixture(b, Config{IdleCheck: time.Hour})
	f.start(b)
	var afterCommit time.Duration
	for b.Loop() {
		f.insert(b)
		committed := time.Now()
		f.next(b)
		afterCommit += time.Since(committed)
	}
	b.ReportMetric(float64(afterCommit.Nanoseconds())/float64(b.N), "ns-after-commit/op")
}
