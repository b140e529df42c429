// Package simulate writes to a clinic database as the clinic app would, so that the
// demo has something to show: new appointments (one per selected procedure, several
// in one transaction, each with its appointment_procedures link); today's patients
// moving through the statuses 'Agendado' -> 'Check-in' -> 'Em atendimento' ->
// 'Finalizado'; now and then a booking rescheduled (another time, sometimes another
// day) or cancelled (a soft delete: "deletedAt" set); a new doctor with the procedures
// they perform, linked in the same transaction; and a doctor's details changed, their
// "isBusy" flipped, or the doctor soft-deleted. Plain SQL through pgx, never through
// the notifier: the notifier sees these rows exactly as it sees the app's, through
// its triggers.
//
// # Lifecycle
//
// Run looks up the statuses by name, gives each account a procedure catalogue and a
// doctor if it has none, then makes one change (one transaction) at a time at
// Config.Rate changes per second on average, with exponential gaps between them (a
// Poisson process, capped so the demo never stalls), until its context ends; it then
// returns nil. A change with nothing to act on (nobody checked in to serve, no doctor
// of its own to update) makes the next simpler one instead, ending at a booking or a
// new doctor. A failed change is logged and the next one waits longer (capped
// backoff), so a database that goes away and comes back costs only a pause.
//
// # Concurrency
//
// Run is one goroutine and must be called once; it uses the pool it was given and
// holds at most one of its connections. ChangeFunc is called from that goroutine.
//
// # Invariants
//
// Every statement names one account, and a change of one account reads and writes
// that account's rows only: its doctors, patients and procedures for a booking, its
// procedures for a doctor's links. Nothing is ever hard-deleted. It inserts patients,
// contacts, appointments, doctors and their links, and procedures only into an
// account that has none. It updates only appointments of today (Config.NowFunc's
// date) that nobody deleted: the status of one booking a step along the path above,
// or the date, times or "deletedAt" of an 'Agendado' one; and only doctors it hired
// itself in this run, never deleting one of the last two of an account. The
// 'Em atendimento' and 'Finalizado' steps are skipped when the database has no such
// status.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Status names the clinic app uses, as in the seeds and the reference seed data; the
// notifier's triggers key on the same names.
const (
	StatusScheduled = "Agendado"
	StatusCheckin   = "Check-in"
	StatusServing   = "Em atendimento"
	StatusFinished  = "Finalizado"
)

// MaxRate bounds Config.Rate.
const MaxRate = 1000

// maxBackoff caps the wait after failed changes.
const maxBackoff = 5 * time.Second

// Kind is what one change did.
type Kind uint8

// Kinds of changes.
const (
	Appointments Kind = iota + 1 // 1-3 appointments of one patient in one transaction
	Checkin                      // a patient's appointments of today moved to Check-in
	Doctor                       // a doctor and their doctor_procedures in one transaction
	Serve                        // a checked-in patient's appointments moved to Em atendimento
	Finish                       // a patient's appointments in Em atendimento moved to Finalizado
	Reschedule                   // a booking of today moved to another time, or another day
	Cancel                       // a booking of today soft-deleted ("deletedAt" set)
	DoctorUpdate                 // a doctor's phone or email changed
	DoctorBusy                   // a doctor's "isBusy" flipped
	DoctorDelete                 // a doctor soft-deleted ("deletedAt" set)
	numKinds
)

var kindNames = [numKinds]string{
	Appointments: "appointments",
	Checkin:      "checkin",
	Doctor:       "doctor",
	Serve:        "serve",
	Finish:       "finish",
	Reschedule:   "reschedule",
	Cancel:       "cancel",
	DoctorUpdate: "doctor_update",
	DoctorBusy:   "doctor_busy",
	DoctorDelete: "doctor_delete",
}

func (k Kind) String() string {
	if k == 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// fallback is the change made instead of k when k finds nothing to act on: the step
// before it on a patient's way, or a booking or a hire. Zero for the kinds that
// always find something.
func (k Kind) fallback() Kind {
	switch k {
	case Finish:
		return Serve
	case Serve:
		return Checkin
	case Checkin, Reschedule, Cancel:
		return Appointments
	case DoctorDelete:
		return DoctorUpdate
	case DoctorUpdate, DoctorBusy:
		return Doctor
	}
	return 0
}

// Change is one committed transaction.
type Change struct {
	Kind      Kind
	AccountID int64
	IDs       []int64 // the appointments written, or the doctor; empty when nothing was found to act on
}

// Config configures a Simulator.
type Config struct {
	Rate     float64 // changes (transactions) per second on average; > 0 and <= MaxRate
	Accounts []int64 // the accounts written to, each change picks one; default 1 and 2
	Seed     uint64  // seeds the choices; 0 draws a random seed

	Logger     *slog.Logger
	NowFunc    func() time.Time // default time.Now; its local date is "today"
	ChangeFunc func(Change)     // called after each committed change; may be nil
}

// Simulator makes clinic changes; see the package documentation.
type Simulator struct {
	pool   *pgxpool.Pool
	cfg    Config
	logger *slog.Logger
	rng    *rand.Rand

	// Status ids, looked up by name in Run; serving and finished are 0 when the
	// database has no such status.
	scheduled, checkin, serving, finished int64

	// hired holds, per account, the doctors this run hired and has not deleted: the
	// only doctors it updates.
	hired map[int64][]int64
}

// New checks cfg and returns a Simulator writing through pool.
func New(pool *pgxpool.Pool, cfg Config) (*Simulator, error) {
	if !(cfg.Rate > 0 && cfg.Rate <= MaxRate) { // also false for NaN
		return nil, fmt.Errorf("simulate: rate %v: must be more than 0 and at most %d changes per second", cfg.Rate, MaxRate)
	}
	if len(cfg.Accounts) == 0 {
		cfg.Accounts = []int64{1, 2}
	}
	for _, a := range cfg.Accounts {
		if a <= 0 {
			return nil, fmt.Errorf("simulate: account id %d is not positive", a)
		}
	}
	cfg.Accounts = slices.Clone(cfg.Accounts)
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Simulator{
		pool:   pool,
		cfg:    cfg,
		logger: logger.With("component", "simulate"),
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		hired:  map[int64][]int64{},
	}, nil
}

// errNoStatus marks a status missing from table statuses.
var errNoStatus = errors.New("no such status")

// Run makes changes until ctx ends, then returns nil. It returns an error only when
// the database cannot be used at all: no statuses named StatusScheduled and
// StatusCheckin, or no clinic tables.
func (s *Simulator) Run(ctx context.Context) error {
	if err := s.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.logger.InfoContext(ctx, "simulator started", "rate", s.cfg.Rate, "accounts", s.cfg.Accounts)
	failures := 0
	for {
		wait := interval(s.rng, s.cfg.Rate)
		if failures > 0 {
			wait = max(wait, min(maxBackoff, time.Duration(1<<min(failures, 10))*50*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		account := pick(s.rng, s.cfg.Accounts)
		c, err := s.step(ctx, s.nextKind(), account)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			s.logger.WarnContext(ctx, "simulated change failed", "account_id", account, "failures", failures, "error", err)
			continue
		}
		failures = 0
		s.report(c)
	}
}

// interval draws the gap before the next change: exponential with mean 1/rate (so
// changes form a Poisson process), capped at four means.
func interval(rng *rand.Rand, rate float64) time.Duration {
	gap := math.Min(rng.ExpFloat64(), 4) / rate
	return time.Duration(gap * float64(time.Second))
}

// mix is how often each kind of change is drawn, per 100: mostly bookings and
// check-ins; patients served and finished a little less often than they check in,
// so the queue moves; a new doctor often enough that a dashboard sees one in its
// first minute at one change per second; the rest now and then.
var mix = []struct {
	kind   Kind
	weight int
}{
	{Appointments, 32},
	{Checkin, 22},
	{Serve, 12},
	{Finish, 10},
	{Doctor, 8},
	{Reschedule, 5},
	{DoctorBusy, 4},
	{Cancel, 3},
	{DoctorUpdate, 3},
	{DoctorDelete, 1},
}

// nextKind draws what the next change does, by mix.
func (s *Simulator) nextKind() Kind {
	r := s.rng.IntN(100)
	for _, m := range mix {
		if r < m.weight {
			return m.kind
		}
		r -= m.weight
	}
	return Appointments
}

func (s *Simulator) report(c Change) {
	s.logger.Debug("simulated change", "kind", c.Kind.String(), "account_id", c.AccountID, "ids", c.IDs)
	if s.cfg.ChangeFunc != nil {
		s.cfg.ChangeFunc(c)
	}
}

// setup looks up the statuses and gives every account what changes need: procedures
// and at least one doctor.
func (s *Simulator) setup(ctx context.Context) error {
	lookup := func(name string) (int64, error) {
		var id int64
		err := s.pool.QueryRow(ctx, `SELECT id FROM statuses WHERE name = $1 ORDER BY id LIMIT 1`, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("simulate: no status named %q in table statuses: %w", name, errNoStatus)
		}
		if err != nil {
			return 0, fmt.Errorf("simulate: look up status %q: %w", name, err)
		}
		return id, nil
	}
	var err error
	if s.scheduled, err = lookup(StatusScheduled); err != nil {
		return err
	}
	if s.checkin, err = lookup(StatusCheckin); err != nil {
		return err
	}
	// Optional: an app with other statuses still gets bookings and check-ins.
	if s.serving, err = lookup(StatusServing); err != nil && !errors.Is(err, errNoStatus) {
		return err
	}
	if s.finished, err = lookup(StatusFinished); err != nil && !errors.Is(err, errNoStatus) {
		return err
	}
	for _, account := range s.cfg.Accounts {
		if err := s.ensureProcedures(ctx, account); err != nil {
			return err
		}
		var doctors bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM doctors WHERE "accountId" = $1 AND "deletedAt" IS NULL)`, account).Scan(&doctors)
		if err != nil {
			return fmt.Errorf("simulate: account %d: count doctors: %w", account, err)
		}
		if !doctors {
			c, err := s.doctor(ctx, account)
			if err != nil {
				return err
			}
			s.report(c)
		}
	}
	return nil
}

// ensureProcedures gives an account without procedures the catalogue.
func (s *Simulator) ensureProcedures(ctx context.Context, account int64) error {
	names := make([]string, len(catalog))
	prices := make([]string, len(catalog))
	for i, p := range catalog {
		names[i], prices[i] = p.name, p.price
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO procedures (name, price, "accountId")
SELECT n, p::numeric, $3 FROM unnest($1::text[], $2::text[]) AS c(n, p)
WHERE NOT EXISTS (SELECT 1 FROM procedures WHERE "accountId" = $3)`, names, prices, account)
	if err != nil {
		return fmt.Errorf("simulate: account %d: add procedures: %w", account, err)
	}
	return nil
}

// step makes one change of kind for account or, when that finds nothing to act on,
// the change its fallback makes (a booking and a hire always find something).
func (s *Simulator) step(ctx context.Context, kind Kind, account int64) (Change, error) {
	for {
		c, err := s.change(ctx, kind, account)
		if err != nil || len(c.IDs) > 0 || kind.fallback() == 0 {
			return c, err
		}
		kind = kind.fallback()
	}
}

// change makes one change of kind; no IDs when there was nothing to act on.
func (s *Simulator) change(ctx context.Context, kind Kind, account int64) (Change, error) {
	switch kind {
	case Checkin:
		return s.advance(ctx, Checkin, account, s.scheduled, s.checkin)
	case Serve:
		if s.serving == 0 {
			return Change{Kind: Serve, AccountID: account}, nil
		}
		return s.advance(ctx, Serve, account, s.checkin, s.serving)
	case Finish:
		if s.serving == 0 || s.finished == 0 {
			return Change{Kind: Finish, AccountID: account}, nil
		}
		return s.advance(ctx, Finish, account, s.serving, s.finished)
	case Reschedule:
		return s.reschedule(ctx, account)
	case Cancel:
		return s.cancel(ctx, account)
	case Doctor:
		return s.doctor(ctx, account)
	case DoctorUpdate, DoctorBusy, DoctorDelete:
		return s.changeDoctor(ctx, kind, account)
	default:
		return s.appointments(ctx, account)
	}
}

// today is the local date of NowFunc, the day appointments are booked for.
func (s *Simulator) today() string { return s.cfg.NowFunc().Format(time.DateOnly) }

// appointments books one patient for one to three procedures with one doctor at one
// time: one appointment and one appointment_procedures row per procedure, in one
// transaction, as the clinic app's create does. A third of the patients are new.
func (s *Simulator) appointments(ctx context.Context, account int64) (Change, error) {
	c := Change{Kind: Appointments, AccountID: account}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var doctorID int64
		err := tx.QueryRow(ctx, `SELECT id FROM doctors WHERE "accountId" = $1 AND "deletedAt" IS NULL ORDER BY random() LIMIT 1`, account).Scan(&doctorID)
		if err != nil {
			return fmt.Errorf("pick a doctor: %w", err)
		}
		n := 1
		if r := s.rng.IntN(10); r >= 9 {
			n = 3
		} else if r >= 7 {
			n = 2
		}
		// The doctor's own procedures first, then the account's others.
		rows, err := tx.Query(ctx, `SELECT p.id FROM procedures p WHERE p."accountId" = $1
ORDER BY EXISTS (SELECT 1 FROM doctor_procedures dp WHERE dp."doctorId" = $2 AND dp."procedureId" = p.id) DESC, random()
LIMIT $3`, account, doctorID, n)
		if err != nil {
			return fmt.Errorf("pick procedures: %w", err)
		}
		procedures, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("pick procedures: %w", err)
		}
		if len(procedures) == 0 {
			return fmt.Errorf("account %d has no procedures", account)
		}
		patientID, err := s.patient(ctx, tx, account)
		if err != nil {
			return err
		}
		start := 7*60 + 15*s.rng.IntN(48) // 07:00 to 18:45
		length := 15
		if s.rng.IntN(5) < 2 {
			length = 30
		}
		var note any
		if s.rng.IntN(4) == 0 {
			note = pick(s.rng, notes)
		}
		for _, proc := range procedures {
			var id int64
			err := tx.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::date, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
				s.today(), clock(start), clock(start+length), note, doctorID, patientID, s.scheduled, account).Scan(&id)
			if err != nil {
				return fmt.Errorf("insert appointment: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, $2)`, id, proc); err != nil {
				return fmt.Errorf("link appointment %d to procedure %d: %w", id, proc, err)
			}
			c.IDs = append(c.IDs, id)
		}
		return nil
	})
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: book appointments: %w", account, err)
	}
	return c, nil
}

// patient returns an existing patient of account not yet booked today or, a third
// of the time (and always when there is none), registers a new one with a contact.
func (s *Simulator) patient(ctx context.Context, tx pgx.Tx, account int64) (int64, error) {
	var id int64
	if s.rng.IntN(3) > 0 {
		err := tx.QueryRow(ctx, `SELECT p.id FROM patients p WHERE p."accountId" = $1
AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a."patientId" = p.id AND a.date >= $2::date AND a.date < $2::date + 1)
ORDER BY random() LIMIT 1`, account, s.today()).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("pick a patient: %w", err)
		}
	}
	p := newPerson(s.rng)
	var contactID any
	if s.rng.IntN(8) > 0 {
		var cid int64
		if err := tx.QueryRow(ctx, `INSERT INTO contacts (phone, email) VALUES ($1, $2) RETURNING id`, phone(s.rng), email(p, s.rng)).Scan(&cid); err != nil {
			return 0, fmt.Errorf("insert contact: %w", err)
		}
		contactID = cid
	}
	err := tx.QueryRow(ctx, `INSERT INTO patients (name, "contactId", "accountId") VALUES ($1, $2, $3) RETURNING id`, p.name, contactID, account).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert patient: %w", err)
	}
	return id, nil
}

// advance takes the earliest appointment of today in status from and moves it, with
// the same patient's other appointments at that time in that status, to status to:
// the patient has arrived for all of them (Check-in), is seen (Em atendimento), or
// is done (Finalizado). No IDs when nobody of today is in status from.
func (s *Simulator) advance(ctx context.Context, kind Kind, account, from, to int64) (Change, error) {
	rows, err := s.pool.Query(ctx, `WITH first AS (
    SELECT "patientId", "startTime" FROM appointments
    WHERE "accountId" = $1 AND "statusId" = $2 AND "deletedAt" IS NULL
      AND date >= $3::date AND date < $3::date + 1
    ORDER BY "startTime", id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
UPDATE appointments a SET "statusId" = $4, "updatedAt" = now() AT TIME ZONE 'UTC'
FROM first
WHERE a."accountId" = $1 AND a."statusId" = $2 AND a."deletedAt" IS NULL
  AND a.date >= $3::date AND a.date < $3::date + 1
  AND a."patientId" IS NOT DISTINCT FROM first."patientId" AND a."startTime" = first."startTime"
RETURNING a.id`, account, from, s.today(), to)
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: %s: %w", account, kind, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: %s: %w", account, kind, err)
	}
	slices.Sort(ids)
	return Change{Kind: kind, AccountID: account, IDs: ids}, nil
}

// booking is one patient's 'Agendado' appointments of today at one time, locked.
type booking struct {
	patient    *int64
	start, end string
}

// pickBooking locks a random booking of today still 'Agendado'; ok is false when
// there is none.
func (s *Simulator) pickBooking(ctx context.Context, tx pgx.Tx, account int64) (b booking, ok bool, err error) {
	err = tx.QueryRow(ctx, `SELECT "patientId", "startTime", "endTime" FROM appointments
WHERE "accountId" = $1 AND "statusId" = $2 AND "deletedAt" IS NULL
  AND date >= $3::date AND date < $3::date + 1
ORDER BY random()
LIMIT 1
FOR UPDATE SKIP LOCKED`, account, s.scheduled, s.today()).Scan(&b.patient, &b.start, &b.end)
	if errors.Is(err, pgx.ErrNoRows) {
		return booking{}, false, nil
	}
	if err != nil {
		return booking{}, false, fmt.Errorf("pick a booking: %w", err)
	}
	return b, true, nil
}

// bookingWhere selects the appointments of the booking $2 (patient), $3 (start) in
// account $1, 'Agendado' ($4) on the day $5, not deleted.
const bookingWhere = `"accountId" = $1 AND "patientId" IS NOT DISTINCT FROM $2 AND "startTime" = $3
  AND "statusId" = $4 AND "deletedAt" IS NULL AND date >= $5::date AND date < $5::date + 1`

// reschedule moves a random booking of today to another time of the same length
// and, three times in ten, to one of the next six days, as a receptionist does when
// the patient calls. No IDs when nobody is booked today.
func (s *Simulator) reschedule(ctx context.Context, account int64) (Change, error) {
	c := Change{Kind: Reschedule, AccountID: account}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b, ok, err := s.pickBooking(ctx, tx, account)
		if err != nil || !ok {
			return err
		}
		length := 15
		if from, to := minutes(b.start), minutes(b.end); from >= 0 && to > from {
			length = to - from
		}
		start := 7*60 + 15*s.rng.IntN(48) // 07:00 to 18:45
		if clock(start) == b.start {
			start += 15
		}
		day := s.cfg.NowFunc()
		if s.rng.IntN(10) < 3 {
			day = day.AddDate(0, 0, 1+s.rng.IntN(6))
		}
		rows, err := tx.Query(ctx, `UPDATE appointments SET date = $6::date, "startTime" = $7, "endTime" = $8, "updatedAt" = now() AT TIME ZONE 'UTC'
WHERE `+bookingWhere+` RETURNING id`,
			account, b.patient, b.start, s.scheduled, s.today(), day.Format(time.DateOnly), clock(start), clock(start+length))
		if err != nil {
			return fmt.Errorf("move booking: %w", err)
		}
		c.IDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: reschedule: %w", account, err)
	}
	slices.Sort(c.IDs)
	return c, nil
}

// cancel soft-deletes a random booking of today: the app sets "deletedAt" and keeps
// the rows. No IDs when nobody is booked today.
func (s *Simulator) cancel(ctx context.Context, account int64) (Change, error) {
	c := Change{Kind: Cancel, AccountID: account}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b, ok, err := s.pickBooking(ctx, tx, account)
		if err != nil || !ok {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE appointments SET "deletedAt" = now() AT TIME ZONE 'UTC', "updatedAt" = now() AT TIME ZONE 'UTC'
WHERE `+bookingWhere+` RETURNING id`, account, b.patient, b.start, s.scheduled, s.today())
		if err != nil {
			return fmt.Errorf("delete booking: %w", err)
		}
		c.IDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: cancel: %w", account, err)
	}
	slices.Sort(c.IDs)
	return c, nil
}

// changeDoctor updates one of the doctors this run hired for account: a new phone or
// email (DoctorUpdate), "isBusy" flipped (DoctorBusy), or "deletedAt" set
// (DoctorDelete, only while the account has more than two doctors). No IDs when it
// hired none, or may delete none.
func (s *Simulator) changeDoctor(ctx context.Context, kind Kind, account int64) (Change, error) {
	c := Change{Kind: kind, AccountID: account}
	if kind == DoctorDelete {
		var spare bool
		err := s.pool.QueryRow(ctx, `SELECT count(*) > 2 FROM doctors WHERE "accountId" = $1 AND "deletedAt" IS NULL`, account).Scan(&spare)
		if err != nil {
			return Change{}, fmt.Errorf("simulate: account %d: count doctors: %w", account, err)
		}
		if !spare {
			return c, nil
		}
	}
	for len(s.hired[account]) > 0 {
		i := s.rng.IntN(len(s.hired[account]))
		id := s.hired[account][i]
		args := []any{id, account}
		var set string
		switch kind {
		case DoctorUpdate:
			if s.rng.IntN(2) == 0 {
				set, args = "phone = $3", append(args, phone(s.rng))
			} else {
				set, args = "email = $3", append(args, email(newPerson(s.rng), s.rng))
			}
		case DoctorBusy:
			set = `"isBusy" = NOT "isBusy"`
		default:
			set = `"deletedAt" = now() AT TIME ZONE 'UTC'`
		}
		tag, err := s.pool.Exec(ctx, `UPDATE doctors SET `+set+`, "updatedAt" = now() AT TIME ZONE 'UTC'
WHERE id = $1 AND "accountId" = $2 AND "deletedAt" IS NULL`, args...)
		if err != nil {
			return Change{}, fmt.Errorf("simulate: account %d: %s %d: %w", account, kind, id, err)
		}
		if tag.RowsAffected() == 0 || kind == DoctorDelete {
			// Deleted now, or deleted or moved by someone else: no longer ours.
			s.hired[account] = slices.Delete(s.hired[account], i, i+1)
		}
		if tag.RowsAffected() > 0 {
			c.IDs = []int64{id}
			return c, nil
		}
	}
	return c, nil
}

// doctor hires a doctor for account and links one to three of its procedures, in one
// transaction, as the clinic app's create does.
func (s *Simulator) doctor(ctx context.Context, account int64) (Change, error) {
	c := Change{Kind: Doctor, AccountID: account}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		p := newPerson(s.rng)
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO doctors (name, crm, email, phone, "accountId") VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			doctorName(p), fmt.Sprint(10000+s.rng.IntN(190000)), email(p, s.rng), phone(s.rng), account).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert doctor: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO doctor_procedures ("doctorId", "procedureId")
SELECT $1, id FROM (SELECT id FROM procedures WHERE "accountId" = $2 ORDER BY random() LIMIT $3) p ORDER BY id`,
			id, account, 1+s.rng.IntN(3))
		if err != nil {
			return fmt.Errorf("link doctor %d to procedures: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("account %d has no procedures", account)
		}
		c.IDs = []int64{id}
		return nil
	})
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: add doctor: %w", account, err)
	}
	s.hired[account] = append(s.hired[account], c.IDs[0])
	return c, nil
}

// inTx runs fn in a transaction and commits it.
func (s *Simulator) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// clock formats minutes after midnight as "HH:MM".
func clock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// minutes parses "HH:MM" as minutes after midnight; -1 when it is not a time.
func minutes(hhmm string) int {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		return -1
	}
	return t.Hour()*60 + t.Minute()
}
