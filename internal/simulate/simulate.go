// Package simulate writes to a clinic database as the clinic app would, so that the
// demo has something to show: new appointments (one per selected procedure, several
// in one transaction, each with its appointment_procedures link), check-ins (an
// 'Agendado' appointment of today moves to 'Check-in') and, now and then, a new doctor
// with the procedures they perform, linked in the same transaction. Plain SQL through
// pgx, never through the notifier: the notifier sees these rows exactly as it sees the
// app's, through its triggers.
//
// # Lifecycle
//
// Run looks up the statuses by name, gives each account a procedure catalogue and a
// doctor if it has none, then makes one change (one transaction) at a time at
// Config.Rate changes per second on average, with exponential gaps between them (a
// Poisson process, capped so the demo never stalls), until its context ends; it then
// returns nil. A failed change is logged and the next one waits longer (capped
// backoff), so a database that goes away and comes back costs only a pause.
//
// # Concurrency
//
// Run is one goroutine and must be called once; it uses the pool it was given and
// holds at most one of its connections. ChangeFunc is called from that goroutine.
//
// # Invariants
//
// It never deletes or rewrites anything it did not write: it inserts patients,
// contacts, appointments, doctors and their links, inserts procedures only into an
// account that has none, and updates only statusId/updatedAt of an 'Agendado'
// appointment of today.
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

// Status names the clinic app uses, as in the seeds; the notifier's check-in trigger
// keys on StatusCheckin too.
const (
	StatusScheduled = "Agendado"
	StatusCheckin   = "Check-in"
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
)

func (k Kind) String() string {
	switch k {
	case Appointments:
		return "appointments"
	case Checkin:
		return "checkin"
	case Doctor:
		return "doctor"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Change is one committed transaction.
type Change struct {
	Kind      Kind
	AccountID int64
	IDs       []int64 // the appointments inserted or checked in, or the doctor inserted
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

	// Status ids, looked up by name in Run.
	scheduled, checkin int64
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
	}, nil
}

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

// nextKind draws what the next change does: mostly bookings and check-ins, now and
// then a new doctor (often enough that a dashboard sees one in its first minute at
// one change per second).
func (s *Simulator) nextKind() Kind {
	switch r := s.rng.IntN(100); {
	case r < 8:
		return Doctor
	case r < 46:
		return Checkin
	default:
		return Appointments
	}
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
			return 0, fmt.Errorf("simulate: no status named %q in table statuses", name)
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

// step makes one change of kind for account. A check-in with nobody scheduled today
// books appointments instead.
func (s *Simulator) step(ctx context.Context, kind Kind, account int64) (Change, error) {
	switch kind {
	case Checkin:
		c, err := s.checkIn(ctx, account)
		if err != nil || len(c.IDs) > 0 {
			return c, err
		}
		return s.appointments(ctx, account)
	case Doctor:
		return s.doctor(ctx, account)
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

// checkIn takes the earliest 'Agendado' appointment of today and moves it, with the
// same patient's other appointments at that time, to 'Check-in': the patient has
// arrived for all of them. No IDs when nobody is scheduled.
func (s *Simulator) checkIn(ctx context.Context, account int64) (Change, error) {
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
RETURNING a.id`, account, s.scheduled, s.today(), s.checkin)
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: check in: %w", account, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return Change{}, fmt.Errorf("simulate: account %d: check in: %w", account, err)
	}
	slices.Sort(ids)
	return Change{Kind: Checkin, AccountID: account, IDs: ids}, nil
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
