package notifier_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tests that events describe what committed: net effects, facts as of the commit, no
// interference with the app's own commits, and a log whose ids never repeat.

// waitLockWait blocks until the backend pid waits on a lock: PostgreSQL has no signal
// for that, pg_stat_activity is the contract.
func waitLockWait(t *testing.T, b *testBundle, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var waiting bool
		if err := b.db.QueryRow(t.Context(), `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d never waited on a lock", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeferredForeignKeyNoDeadlock: the app's own deferred foreign-key check waits for
// a row lock held by another writer while committing; that writer's commit (which has
// events of its own) must not wait for the first one: both commit, no "deadlock
// detected", and both events arrive in commit order. With the commit-order lock taken
// by the first notifier trigger at COMMIT, before the app's deferred checks ran, this
// deadlocked.
func TestDeferredForeignKeyNoDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `CREATE TABLE rooms (id int PRIMARY KEY); INSERT INTO rooms VALUES (1)`)
	b.exec(t, `ALTER TABLE appointments ADD COLUMN "roomId" int REFERENCES rooms (id) DEFERRABLE INITIALLY DEFERRED`)
	c := b.dial(t, 1, nil)
	ctx := t.Context()

	first, err := b.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	second, err := b.db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()

	// The second writer locks the room and writes an event of its own.
	tx2, err := second.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(context.WithoutCancel(ctx))
	if _, err := tx2.Exec(ctx, `SELECT 1 FROM rooms WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	var doctor int64
	if err := tx2.QueryRow(ctx, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. Second', 1) RETURNING id`).Scan(&doctor); err != nil {
		t.Fatal(err)
	}

	// The first writes a doctor (an event, queued first), then an appointment in that
	// room, and commits: its deferred key check waits for the second writer's lock.
	tx1, err := first.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(context.WithoutCancel(ctx))
	if _, err := tx1.Exec(ctx, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. First', 1)`); err != nil {
		t.Fatal(err)
	}
	var appt int64
	if err := tx1.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId", "roomId") VALUES (now(), '09:00', '09:15', 1, 1, 1) RETURNING id`).Scan(&appt); err != nil {
		t.Fatal(err)
	}
	commit1 := make(chan error, 1)
	go func() { commit1 <- tx1.Commit(ctx) }()
	waitLockWait(t, b, first.Conn().PgConn().PID())

	if err := tx2.Commit(ctx); err != nil {
		t.Fatalf("second writer's commit: %v", err)
	}
	if err := <-commit1; err != nil {
		t.Fatalf("first writer's commit: %v", err)
	}
	got := c.nextN(t, 3)
	if got[0].Event != "doctors.created" || got[0].rowID(t) != doctor {
		t.Errorf("first event %s, want the second writer's doctor (it committed first)", got[0].raw)
	}
	if got[1].Event != "doctors.created" || got[2].Event != "appointments.created" || got[2].rowID(t) != appt {
		t.Errorf("then %s and %s, want the first writer's doctor and appointment", got[1].raw, got[2].raw)
	}
}

// TestImmediateConstraintsWarn: an app that makes the notifier's triggers immediate
// (SET CONSTRAINTS ALL IMMEDIATE) still gets its events, in order, and a warning that
// says what it costs; an ordinary commit gets none.
func TestImmediateConstraintsWarn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	ctx := t.Context()
	var mu sync.Mutex
	var notices []string
	cfg, err := pgx.ParseConfig(b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Severity+": "+n.Message)
		mu.Unlock()
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	insert := `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, 1) RETURNING id`
	var plain int64
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return tx.QueryRow(ctx, insert).Scan(&plain) }); err != nil {
		t.Fatal(err)
	}
	if f := c.next(t); f.rowID(t) != plain {
		t.Fatalf("got %s, want appointment %d", f.raw, plain)
	}
	mu.Lock()
	if len(notices) != 0 {
		t.Errorf("an ordinary commit got notices %q", notices)
	}
	mu.Unlock()
	var immediate int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET CONSTRAINTS ALL IMMEDIATE`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, insert).Scan(&immediate)
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := c.next(t); f.rowID(t) != immediate {
		t.Fatalf("got %s, want appointment %d", f.raw, immediate)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notices) != 1 || !strings.HasPrefix(notices[0], "WARNING: notifier: events written before COMMIT") {
		t.Errorf("notices %q, want one warning about immediate constraints", notices)
	}
}

// TestNetEffect: a transaction's events are those of its net effect on each row: an
// appointment inserted and deleted emits nothing; a check-in undone before COMMIT emits
// nothing; several status changes ending on Check-in emit one check-in carrying it;
// an appointment inserted and changed in one transaction is created as it committed.
func TestNetEffect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	ctx := t.Context()
	tx := func(sql ...string) {
		t.Helper()
		err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
			for _, q := range sql {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	existing := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != existing {
		t.Fatalf("got %s", f.raw)
	}
	id := itoa(existing)
	checkin := `(SELECT id FROM statuses WHERE name = 'Check-in')`
	tx(`INSERT INTO appointments (id, date, "startTime", "endTime", "statusId", "accountId") VALUES (900001, now(), '09:00', '09:15', 1, 1)`,
		`DELETE FROM appointments WHERE id = 900001`)
	tx(`UPDATE appointments SET "statusId" = `+checkin+` WHERE id = `+id,
		`UPDATE appointments SET "statusId" = 1 WHERE id = `+id)
	tx(`UPDATE appointments SET "statusId" = 3 WHERE id = `+id,
		`UPDATE appointments SET "statusId" = `+checkin+` WHERE id = `+id,
		`UPDATE appointments SET notes = 'checked in' WHERE id = `+id)
	tx(`INSERT INTO appointments (id, date, "startTime", "endTime", "statusId", "accountId") VALUES (900002, now(), '09:00', '09:15', 1, 2)`,
		`UPDATE appointments SET "accountId" = 1, notes = 'final' WHERE id = 900002`)
	// The check-in of existing (its net effect: Agendado to Check-in, notes changed) is
	// one update, one status change and one check-in, as committed; 900002's net effect
	// is one creation in account 1.
	got := c.nextN(t, 4)
	for i, want := range []string{"appointments.updated", "appointments.status.changed", "appointments.checkin"} {
		data := got[i].object(t)
		if got[i].Event != want || got[i].rowID(t) != existing || data["notes"] != "checked in" ||
			data["status"].(map[string]any)["name"] != "Check-in" {
			t.Errorf("event %d %s, want %s of %d as committed", i, got[i].raw, want, existing)
		}
	}
	if prev, _ := got[1].object(t)["previousStatus"].(map[string]any); prev == nil || prev["name"] != "Agendado" {
		t.Errorf("status change %s: previousStatus want Agendado (the state before the transaction)", got[1].raw)
	}
	if got[3].Event != "appointments.created" || got[3].rowID(t) != 900002 || got[3].object(t)["notes"] != "final" {
		t.Errorf("fourth event %s, want appointment 900002 created as committed (account 1, notes final)", got[3].raw)
	}
	// Nothing else came: the next event is the next commit.
	next := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != next || f.Event != "appointments.created" {
		t.Errorf("then %s, want appointment %d", f.raw, next)
	}
}

// TestReplayAsCommitted: a client resuming after later changes (the appointment
// soft-deleted, its status changed, its notes edited) gets each event with the facts
// of its commit, byte for byte what live clients got.
func TestReplayAsCommitted(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.Hub.ReplayCache = 0 } // replays enrich again
	})
	live := b.dial(t, 1, nil)
	since := b.svc.Hub().Head()
	var appt int64
	if err := b.db.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', 'booked', 1, 1, 1, 1) RETURNING id`).Scan(&appt); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `UPDATE appointments SET "statusId" = (SELECT id FROM statuses WHERE name = 'Check-in'), notes = 'arrived' WHERE id = $1`, appt)
	want := live.nextN(t, 2)
	b.exec(t, `UPDATE appointments SET "statusId" = 4, notes = 'gone', "deletedAt" = now() WHERE id = $1`, appt)
	b.exec(t, `UPDATE appointments SET "accountId" = 2 WHERE id = $1`, appt)

	for i, f := range want {
		data := f.object(t)
		wantNotes := []string{"booked", "arrived"}[i]
		if data["notes"] != wantNotes || data["deletedAt"] != nil || data["accountId"] != 1.0 {
			t.Errorf("live %s: %s", f.Event, f.raw)
		}
	}
	if got := want[1].object(t)["status"].(map[string]any)["name"]; got != "Check-in" {
		t.Errorf("live check-in's status %v", got)
	}
	r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(since, 10)}})
	for i, f := range r.nextN(t, 2) {
		if string(f.raw) != string(want[i].raw) {
			t.Errorf("replayed %s\n got %s\nwant %s", f.Event, f.raw, want[i].raw)
		}
	}
	// The account the row moved to sees none of it.
	other := b.dial(t, 2, url.Values{"since": {strconv.FormatInt(since, 10)}})
	mine := b.insertAppointment(t, 2)
	if f := other.next(t); f.rowID(t) != mine {
		t.Errorf("account 2 got %s, want only its own appointment %d", f.raw, mine)
	}
}

// TestTruncatedLogResyncs: TRUNCATE notifier.events RESTART IDENTITY restarts the id
// sequence; the log voids every id drawn so far, so new events still arrive live and a
// client resuming from before gets resync, never events under reused ids.
func TestTruncatedLogResyncs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	b.insertAppointment(t, 1)
	old := c.next(t).ID
	b.exec(t, `TRUNCATE notifier.events RESTART IDENTITY`)
	id := b.insertAppointment(t, 1)
	f := c.next(t)
	if f.rowID(t) != id || f.ID <= old {
		t.Fatalf("after TRUNCATE got %s (id %d), want appointment %d above %d", f.raw, f.ID, id, old)
	}
	r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(old-1, 10)}})
	if f := r.next(t); f.Event != "notifier.resync" {
		t.Fatalf("resume from the truncated log: %s, want resync", f.raw)
	}
}

// TestTransientEnrichmentRetried: enrichment that times out behind a lock (DDL, VACUUM
// FULL) makes /readyz 503 and is retried in order; once the lock goes, the events
// arrive whole, never partial, and /readyz is 200 again.
func TestTransientEnrichmentRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.Database.StatementTimeout = 200 * time.Millisecond }
	})
	c := b.dial(t, 1, nil)
	ctx := t.Context()
	locker, err := b.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.WithoutCancel(ctx))
	if _, err := locker.Exec(ctx, `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ids := []int64{b.insertAppointment(t, 1), b.insertAppointment(t, 1)}
	waitReadyReason(t, b, "enrichment failing")
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range c.nextN(t, 2) {
		if f.Partial || f.rowID(t) != ids[i] || f.object(t)["patient"] == nil {
			t.Errorf("frame %d = %s, want appointment %d whole", i, f.raw, ids[i])
		}
	}
	waitReady(t, b, http.StatusOK)
}

// TestReplayRetriesTransient: a client resuming while the database cannot enrich for
// a moment (a statement timeout behind a lock) waits for the replay, retried, instead
// of being closed with 4011; it then gets its events whole.
func TestReplayRetriesTransient(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.Database.StatementTimeout = 200 * time.Millisecond
			c.Hub.ReplayCache = 0 // the replay enriches again
			c.Hub.ReplayBuffer = 1
		}
	})
	live := b.dial(t, 1, nil)
	b.insertAppointment(t, 1)
	first := live.next(t)
	ids := []int64{b.insertAppointment(t, 1), b.insertAppointment(t, 1), b.insertAppointment(t, 1)}
	live.nextN(t, 3)
	ctx := t.Context()
	locker, err := b.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.WithoutCancel(ctx))
	if _, err := locker.Exec(ctx, `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	c := b.dial(t, 1, url.Values{"since": {itoa(first.ID)}})
	// Two waits on the lock, one after the other: the replay's enrichment timed out
	// once and was tried again (without the retry the connection closes with 4011).
	var starts []time.Time
	deadline := time.Now().Add(waitTimeout)
	for len(starts) < 2 {
		var qs time.Time
		err := b.db.QueryRow(ctx, `SELECT query_start FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE '%enrich_appointments%' ORDER BY query_start LIMIT 1`).Scan(&qs)
		if err == nil && (len(starts) == 0 || qs.After(starts[0])) {
			starts = append(starts, qs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay's enrichment never waited on the lock twice (saw %d)", len(starts))
		}
		time.Sleep(10 * time.Millisecond) // pg_stat_activity has no signal to wait on
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range c.nextN(t, 3) {
		if f.Partial || f.rowID(t) != ids[i] || f.object(t)["patient"] == nil {
			t.Errorf("replayed frame %d = %s, want appointment %d whole", i, f.raw, ids[i])
		}
	}
}
