package notifier_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The seed's rows per account (sql/seed.sql). Appointments refer only to these
// doctors, patients and procedures, which nothing changes: their parts of an
// appointment's payload are read at enrichment, so a change to them would make an
// older event's payload differ from a later snapshot for reasons of their own.
var (
	snapAccounts = []int64{1, 2}
	snapDoctors  = map[int64][]int64{1: {1, 2}, 2: {3}}
	snapPatients = map[int64][]int64{1: {1, 2, 3}, 2: {4, 5}}
	snapProcs    = map[int64][]int64{1: {1, 2, 3}, 2: {4, 5}}
)

// Statuses of the seed.
const (
	stScheduled = 1
	stCheckin   = 2
	stServing   = 3
	stFinished  = 4
	stCancelled = 5
)

// snapAppt is what a writer knows of one of its appointments.
type snapAppt struct {
	account int64
	deleted bool // soft
	linked  bool // has an appointment_procedures row: never hard-deleted (see snapWriter.op)
}

type snapDoc struct {
	account int64
	deleted bool
}

// snapModel is a writer's rows; each writer touches only rows it inserted, so
// writers never wait for each other's row locks (nor deadlock).
type snapModel struct {
	appts map[int64]snapAppt
	docs  map[int64]snapDoc
}

func (m snapModel) clone() snapModel {
	return snapModel{appts: maps.Clone(m.appts), docs: maps.Clone(m.docs)}
}

// snapWriter runs random transactions of the clinic app.
type snapWriter struct {
	idx   int
	pool  *pgxpool.Pool
	rng   *rand.Rand
	today time.Time // 00:00 UTC
	touch bool      // also updates that change only updatedAt (unless NOTIFIER_TEST_SNAPSHOT_TOUCH=0)
	m     snapModel
	tx    pgx.Tx
	sp    int
	stats *snapWriteStats
}

// snapWriteStats counts what writers did.
type snapWriteStats struct {
	committed, rolledBack, spRolledBack, ops atomic.Int64
}

func (w *snapWriter) run(ctx context.Context, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		if err := w.randomTx(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("writer %d: %w", w.idx, err)
		}
	}
}

func (w *snapWriter) randomTx(ctx context.Context) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	w.tx = tx
	saved := w.m.clone()
	for range 1 + w.rng.IntN(5) {
		if err := w.op(ctx, 0); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			w.m = saved
			return err
		}
	}
	if w.rng.IntN(100) < 12 {
		w.m = saved
		w.stats.rolledBack.Add(1)
		return tx.Rollback(ctx)
	}
	if err := tx.Commit(ctx); err != nil {
		w.m = saved
		return err
	}
	w.stats.committed.Add(1)
	return nil
}

// pick returns one of the writer's appointments (soft-deleted ones too), if any.
func (w *snapWriter) pick() (int64, snapAppt, bool) {
	if len(w.m.appts) == 0 {
		return 0, snapAppt{}, false
	}
	ids := slices.Sorted(maps.Keys(w.m.appts)) // sorted: the seed replays the same choices
	id := ids[w.rng.IntN(len(ids))]
	return id, w.m.appts[id], true
}

func (w *snapWriter) pickDoc() (int64, snapDoc, bool) {
	if len(w.m.docs) == 0 {
		return 0, snapDoc{}, false
	}
	ids := slices.Sorted(maps.Keys(w.m.docs))
	id := ids[w.rng.IntN(len(ids))]
	return id, w.m.docs[id], true
}

func (w *snapWriter) word() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	for i := range b {
		b[i] = letters[w.rng.IntN(len(letters))]
	}
	return string(b)
}

// date returns an appointment time: today (often at its edges) or another day
// (often just outside today).
func (w *snapWriter) date() string {
	var t time.Time
	switch p := w.rng.IntN(100); {
	case p < 8:
		t = w.today // 00:00:00.000: the first instant of today
	case p < 16:
		t = w.today.Add(24*time.Hour - time.Millisecond) // the last
	case p < 60:
		t = w.today.Add(time.Duration(w.rng.IntN(24*60)) * time.Minute)
	case p < 70:
		t = w.today.Add(24 * time.Hour) // tomorrow's first instant
	case p < 80:
		t = w.today.Add(-time.Millisecond) // yesterday's last
	default:
		t = w.today.Add(time.Duration(w.rng.IntN(7)-3) * 24 * time.Hour).Add(time.Duration(w.rng.IntN(24*60)) * time.Minute)
	}
	return t.Format("2006-01-02 15:04:05.000")
}

func (w *snapWriter) startTime() string {
	return fmt.Sprintf("%02d:%02d", 7+w.rng.IntN(12), 15*w.rng.IntN(4))
}

func (w *snapWriter) account() int64 { return snapAccounts[w.rng.IntN(len(snapAccounts))] }

// orNull returns one of ids, or nil (NULL) one time in ten.
func (w *snapWriter) orNull(ids []int64) any {
	if w.rng.IntN(10) == 0 {
		return nil
	}
	return ids[w.rng.IntN(len(ids))]
}

const snapNow = `(now() AT TIME ZONE 'UTC')`

// op runs one random statement (or a savepoint of a few, or a pause) in w.tx.
// Every update changes a column besides updatedAt (notes, at least), so each makes an
// event, unless w.touch.
func (w *snapWriter) op(ctx context.Context, depth int) error {
	w.stats.ops.Add(1)
	tx := w.tx
	p := w.rng.IntN(100)
	if p >= 30 && p < 79 && len(w.m.appts) == 0 {
		p = 0
	}
	switch {
	case p < 30: // insert an appointment, sometimes checked in already, sometimes with a procedure
		acct := w.account()
		status := stScheduled
		if w.rng.IntN(100) < 15 {
			status = stCheckin
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::timestamp, $2, '23:59', $3, $4, $5, $6, $7) RETURNING id`,
			w.date(), w.startTime(), w.word(), w.orNull(snapDoctors[acct]), w.orNull(snapPatients[acct]), status, acct).Scan(&id); err != nil {
			return err
		}
		a := snapAppt{account: acct}
		if w.rng.IntN(4) == 0 {
			procs := snapProcs[acct]
			if _, err := tx.Exec(ctx, `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, $2)`, id, procs[w.rng.IntN(len(procs))]); err != nil {
				return err
			}
			a.linked = true
		}
		w.m.appts[id] = a
		return nil
	case p < 52: // check in, serve, finish, cancel, back to scheduled
		id, _, _ := w.pick()
		statuses := []int{stCheckin, stCheckin, stCheckin, stServing, stServing, stFinished, stCancelled, stScheduled}
		st := statuses[w.rng.IntN(len(statuses))]
		_, err := tx.Exec(ctx, `UPDATE appointments SET "statusId" = $1, notes = $2, "updatedAt" = `+snapNow+` WHERE id = $3`, st, w.word(), id)
		return err
	case p < 60: // reschedule: another time today, or out of today, or into it
		id, _, _ := w.pick()
		_, err := tx.Exec(ctx, `UPDATE appointments SET date = $1::timestamp, "startTime" = $2, notes = $3, "updatedAt" = `+snapNow+` WHERE id = $4`,
			w.date(), w.startTime(), w.word(), id)
		return err
	case p < 65: // notes only
		id, _, _ := w.pick()
		_, err := tx.Exec(ctx, `UPDATE appointments SET notes = $1, "updatedAt" = `+snapNow+` WHERE id = $2`, w.word(), id)
		return err
	case p < 70: // soft delete, or undo one
		id, a, _ := w.pick()
		var err error
		if a.deleted {
			_, err = tx.Exec(ctx, `UPDATE appointments SET "deletedAt" = NULL, notes = $1, "updatedAt" = `+snapNow+` WHERE id = $2`, w.word(), id)
		} else {
			_, err = tx.Exec(ctx, `UPDATE appointments SET "deletedAt" = `+snapNow+`, notes = $1, "updatedAt" = `+snapNow+` WHERE id = $2`, w.word(), id)
		}
		a.deleted = !a.deleted
		w.m.appts[id] = a
		return err
	case p < 74: // hard delete; a linked row is soft-deleted instead: deleting its link
		// would change what enrichment reads "now" for its earlier events
		id, a, _ := w.pick()
		if a.linked {
			a.deleted = true
			w.m.appts[id] = a
			_, err := tx.Exec(ctx, `UPDATE appointments SET "deletedAt" = `+snapNow+`, notes = $1, "updatedAt" = `+snapNow+` WHERE id = $2`, w.word(), id)
			return err
		}
		delete(w.m.appts, id)
		_, err := tx.Exec(ctx, `DELETE FROM appointments WHERE id = $1`, id)
		return err
	case p < 77: // move to the other account, with that account's doctor and patient
		id, a, _ := w.pick()
		to := int64(3) - a.account
		a.account = to
		w.m.appts[id] = a
		_, err := tx.Exec(ctx, `UPDATE appointments SET "accountId" = $1, "doctorId" = $2, "patientId" = $3, notes = $4, "updatedAt" = `+snapNow+` WHERE id = $5`,
			to, w.orNull(snapDoctors[to]), w.orNull(snapPatients[to]), w.word(), id)
		return err
	case p < 79: // Prisma's touch: only updatedAt changes (on unless NOTIFIER_TEST_SNAPSHOT_TOUCH=0)
		if !w.touch {
			return nil
		}
		id, _, _ := w.pick()
		_, err := tx.Exec(ctx, `UPDATE appointments SET "updatedAt" = `+snapNow+` WHERE id = $1`, id)
		return err
	case p < 84: // a doctor of the writer's own (no appointment refers to it)
		acct := w.account()
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO doctors (name, "accountId") VALUES ($1, $2) RETURNING id`, "Dr. "+w.word(), acct).Scan(&id); err != nil {
			return err
		}
		w.m.docs[id] = snapDoc{account: acct}
		return nil
	case p < 90: // rename, busy or free, soft delete or undo, hard delete
		id, d, ok := w.pickDoc()
		if !ok {
			return nil
		}
		var err error
		switch q := w.rng.IntN(10); {
		case q < 4:
			_, err = tx.Exec(ctx, `UPDATE doctors SET name = $1, "updatedAt" = `+snapNow+` WHERE id = $2`, "Dr. "+w.word(), id)
		case q < 6:
			_, err = tx.Exec(ctx, `UPDATE doctors SET "isBusy" = NOT "isBusy", "updatedAt" = `+snapNow+` WHERE id = $1`, id)
		case q < 9:
			if d.deleted {
				_, err = tx.Exec(ctx, `UPDATE doctors SET "deletedAt" = NULL, "updatedAt" = `+snapNow+` WHERE id = $1`, id)
			} else {
				_, err = tx.Exec(ctx, `UPDATE doctors SET "deletedAt" = `+snapNow+`, "updatedAt" = `+snapNow+` WHERE id = $1`, id)
			}
			d.deleted = !d.deleted
			w.m.docs[id] = d
		default:
			delete(w.m.docs, id)
			_, err = tx.Exec(ctx, `DELETE FROM doctors WHERE id = $1`, id)
		}
		return err
	case p < 95: // a savepoint of a few statements, mostly rolled back to
		if depth >= 2 {
			return nil
		}
		w.sp++
		name := fmt.Sprintf("sp%d", w.sp)
		if _, err := tx.Exec(ctx, "SAVEPOINT "+name); err != nil {
			return err
		}
		saved := w.m.clone()
		for range 1 + w.rng.IntN(3) {
			if err := w.op(ctx, depth+1); err != nil {
				return err
			}
		}
		if w.rng.IntN(100) < 60 {
			w.m = saved
			w.stats.spRolledBack.Add(1)
			_, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+name)
			return err
		}
		_, err := tx.Exec(ctx, "RELEASE SAVEPOINT "+name)
		return err
	default: // hold the transaction open a while (in the server, or in the client)
		d := time.Duration(w.rng.IntN(60)) * time.Millisecond
		if w.rng.IntN(15) == 0 {
			d = time.Duration(300+w.rng.IntN(700)) * time.Millisecond
		}
		if w.rng.IntN(2) == 0 {
			_, err := tx.Exec(ctx, `SELECT pg_sleep($1)`, d.Seconds())
			return err
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
		return nil
	}
}

// prefill inserts n appointments per account in one transaction, most of them today
// and about half checked in, so that lists span several pages from the start; they
// become the writer's rows.
func (w *snapWriter) prefill(ctx context.Context, n int) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, acct := range snapAccounts {
		var dates, starts, notes []string
		var statuses []int64
		var doctors, patients []*int64
		for range n {
			d := w.today.Add(time.Duration(w.rng.IntN(24*60)) * time.Minute).Format("2006-01-02 15:04:05.000")
			if w.rng.IntN(5) == 0 {
				d = w.date()
			}
			st := int64(stScheduled)
			if w.rng.IntN(100) < 55 {
				st = stCheckin
			}
			dates, starts, notes, statuses = append(dates, d), append(starts, w.startTime()), append(notes, w.word()), append(statuses, st)
			doc, _ := w.orNull(snapDoctors[acct]).(int64)
			pat, _ := w.orNull(snapPatients[acct]).(int64)
			doctors, patients = append(doctors, nilIfZero(doc)), append(patients, nilIfZero(pat))
		}
		rows, err := tx.Query(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
SELECT d::timestamp, s, '23:59', n, doc, pat, st, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[]) AS u(d, s, n, doc, pat, st)
RETURNING id`, dates, starts, notes, doctors, patients, statuses, acct)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			w.m.appts[id] = snapAppt{account: acct}
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func nilIfZero(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}
