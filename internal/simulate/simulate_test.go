package simulate

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, clinicdb.PrepareURL)
}

// waitTimeout bounds every wait on a signal; generous because CI machines are shared.
const waitTimeout = 30 * time.Second

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// setup returns a simulator on a database of its own (the reference schema, seed and
// triggers), with its statuses looked up, and a pool for the test's checks.
func setup(t *testing.T, cfg Config) (*Simulator, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if cfg.Rate == 0 {
		cfg.Rate = 1
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setup(t.Context()); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return s, pool
}

func query[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []T {
	t.Helper()
	rows, err := pool.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// loggedEvents returns the notifier's event log rows (event name, row id) of account
// and event, in id order: what the triggers recorded for the simulator's writes.
func loggedEvents(t *testing.T, pool *pgxpool.Pool, account int64, event string) []logged {
	t.Helper()
	return query[logged](t, pool, `SELECT event, row_id FROM notifier.events WHERE account_id = $1 AND event = $2 ORDER BY id`, account, event)
}

type logged struct {
	Event string
	Row   int64
}

// loggedRows returns the rows of account's logged events named event, sorted.
func loggedRows(t *testing.T, pool *pgxpool.Pool, account int64, event string) []int64 {
	t.Helper()
	var rows []int64
	for _, e := range loggedEvents(t, pool, account, event) {
		rows = append(rows, e.Row)
	}
	slices.Sort(rows)
	return rows
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default accounts", Config{Rate: 1}, true},
		{"fractional rate", Config{Rate: 0.25}, true},
		{"max rate", Config{Rate: MaxRate}, true},
		{"zero rate", Config{Rate: 0}, false},
		{"negative rate", Config{Rate: -1}, false},
		{"NaN rate", Config{Rate: math.NaN()}, false},
		{"infinite rate", Config{Rate: math.Inf(1)}, false},
		{"rate too high", Config{Rate: MaxRate + 1}, false},
		{"bad account", Config{Rate: 1, Accounts: []int64{1, 0}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(nil, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tc.ok)
			}
			if tc.ok && len(tc.cfg.Accounts) == 0 && !slices.Equal(s.cfg.Accounts, []int64{1, 2}) {
				t.Errorf("accounts = %v, want [1 2]", s.cfg.Accounts)
			}
		})
	}
}

// TestMix: every kind of change is drawn, once in the mix, with weights per 100,
// mostly bookings and check-ins; every kind has a name.
func TestMix(t *testing.T) {
	t.Parallel()
	total, common := 0, 0
	kinds := map[Kind]bool{}
	for _, m := range mix {
		if kinds[m.kind] || m.weight <= 0 {
			t.Errorf("mix entry %+v repeated or without weight", m)
		}
		kinds[m.kind] = true
		total += m.weight
		if m.kind == Appointments || m.kind == Checkin {
			common += m.weight
		}
	}
	if total != 100 || common <= 50 {
		t.Errorf("weights add up to %d (bookings and check-ins %d), want 100 and most", total, common)
	}
	for k := Appointments; k < numKinds; k++ {
		if !kinds[k] || strings.HasPrefix(k.String(), "Kind(") {
			t.Errorf("kind %d (%s) not in the mix or without a name", k, k)
		}
	}
}

// TestInterval: gaps average 1/rate (a Poisson process) and are capped at four means.
func TestInterval(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const rate, n = 20.0, 20000
	var sum time.Duration
	for range n {
		d := interval(rng, rate)
		if d < 0 || d > time.Duration(4/rate*float64(time.Second)) {
			t.Fatalf("interval %v outside [0, 4/rate]", d)
		}
		sum += d
	}
	mean := sum.Seconds() / n
	// The cap trims the mean by e^-4 (1.8%).
	if want := 1 / rate; math.Abs(mean-want) > 0.05*want {
		t.Errorf("mean interval %.4fs, want about %.4fs", mean, want)
	}
}

type appointmentRow struct {
	ID         int64
	Day        string
	Start, End string
	Doctor     int64
	Patient    int64
	Status     string
	Account    int64
	Links      int64
	Procedure  int64
	ProcAcct   int64
}

const appointmentQuery = `SELECT a.id, to_char(a.date, 'YYYY-MM-DD HH24:MI:SS'), a."startTime", a."endTime",
       a."doctorId", a."patientId", s.name, a."accountId",
       (SELECT count(*) FROM appointment_procedures ap WHERE ap."appointmentId" = a.id),
       coalesce((SELECT min(ap."procedureId") FROM appointment_procedures ap WHERE ap."appointmentId" = a.id), 0),
       coalesce((SELECT min(p."accountId") FROM appointment_procedures ap JOIN procedures p ON p.id = ap."procedureId" WHERE ap."appointmentId" = a.id), 0)
FROM appointments a JOIN statuses s ON s.id = a."statusId"
WHERE a.id = ANY($1) ORDER BY a.id`

// TestAppointments: each change books one patient with one doctor at one time, one
// appointment per procedure, each linked to one of the account's procedures, and the
// triggers log one appointments.created per row.
func TestAppointments(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	today := time.Now().Format(time.DateOnly) + " 00:00:00"
	var all []int64
	multi := 0
	for range 30 {
		c, err := s.step(ctx, Appointments, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != Appointments || c.AccountID != 1 || len(c.IDs) < 1 || len(c.IDs) > 3 {
			t.Fatalf("change %+v: want 1-3 appointments of account 1", c)
		}
		if len(c.IDs) > 1 {
			multi++
		}
		rows := query[appointmentRow](t, pool, appointmentQuery, c.IDs)
		if len(rows) != len(c.IDs) {
			t.Fatalf("found %d of appointments %v", len(rows), c.IDs)
		}
		procs := map[int64]bool{}
		for _, r := range rows {
			if r.Day != today || r.Status != StatusScheduled || r.Account != 1 || r.Links != 1 || r.ProcAcct != 1 {
				t.Errorf("appointment %+v: want today's, %s, account 1, one link to a procedure of account 1", r, StatusScheduled)
			}
			if r.Doctor != rows[0].Doctor || r.Patient != rows[0].Patient || r.Start != rows[0].Start || r.End != rows[0].End {
				t.Errorf("appointments of one booking differ: %+v vs %+v", r, rows[0])
			}
			if procs[r.Procedure] {
				t.Errorf("procedure %d booked twice in one change", r.Procedure)
			}
			procs[r.Procedure] = true
			if r.Start < "07:00" || r.Start > "18:45" || r.End <= r.Start {
				t.Errorf("times %s-%s", r.Start, r.End)
			}
		}
		all = append(all, c.IDs...)
	}
	if multi == 0 {
		t.Error("no change booked more than one procedure")
	}
	var want []logged
	for _, id := range all {
		want = append(want, logged{"appointments.created", id})
	}
	if got := loggedEvents(t, pool, 1, "appointments.created"); !slices.Equal(got, want) {
		t.Errorf("event log = %v\nwant %v", got, want)
	}
	// Patients, new ones included, belong to the account.
	if n := query[struct{ N int64 }](t, pool, `SELECT count(*) FROM appointments a JOIN patients p ON p.id = a."patientId" WHERE a.id = ANY($1) AND p."accountId" <> 1`, all)[0].N; n != 0 {
		t.Errorf("%d appointments with another account's patient", n)
	}
}

// TestCheckin: a check-in moves the earliest 'Agendado' appointment of today of the
// account (and its siblings of the same booking) to 'Check-in', never another day's
// or another account's; with nobody left, the change books appointments instead.
func TestCheckin(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	var booked []int64
	for range 5 {
		c, err := s.step(ctx, Appointments, 1)
		if err != nil {
			t.Fatal(err)
		}
		booked = append(booked, c.IDs...)
	}
	// Decoys, earlier than anything booked: yesterday's, and another account's.
	var yesterday, other int64
	err := pool.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (current_date - 1, '06:00', '06:15', 1, 1, $1, 1) RETURNING id`, s.scheduled).Scan(&yesterday)
	if err != nil {
		t.Fatal(err)
	}
	err = pool.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::date, '06:00', '06:15', 3, 4, $2, 2) RETURNING id`, s.today(), s.scheduled).Scan(&other)
	if err != nil {
		t.Fatal(err)
	}

	var checked []int64
	lastStart := ""
	for {
		c, err := s.step(ctx, Checkin, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind == Appointments {
			break // nobody left: booked instead
		}
		if c.Kind != Checkin || len(c.IDs) == 0 {
			t.Fatalf("change %+v", c)
		}
		rows := query[appointmentRow](t, pool, appointmentQuery, c.IDs)
		for _, r := range rows {
			if r.Status != StatusCheckin || r.Patient != rows[0].Patient || r.Start != rows[0].Start {
				t.Errorf("checked in %+v: want %s, one patient at one time", r, StatusCheckin)
			}
		}
		if rows[0].Start < lastStart {
			t.Errorf("checked in %s after %s: want the earliest first", rows[0].Start, lastStart)
		}
		lastStart = rows[0].Start
		checked = append(checked, c.IDs...)
		if len(checked) > len(booked) {
			t.Fatalf("checked in %v, more than the %d booked", checked, len(booked))
		}
	}
	slices.Sort(checked)
	if !slices.Equal(checked, booked) {
		t.Errorf("checked in %v, want every booked appointment %v", checked, booked)
	}
	for _, id := range []int64{yesterday, other} {
		if st := query[appointmentRow](t, pool, appointmentQuery, []int64{id})[0].Status; st != StatusScheduled {
			t.Errorf("decoy appointment %d is %q, want untouched", id, st)
		}
	}
	var checkins []int64
	for _, e := range loggedEvents(t, pool, 1, "appointments.checkin") {
		checkins = append(checkins, e.Row)
	}
	slices.Sort(checkins)
	if !slices.Equal(checkins, booked) {
		t.Errorf("logged check-ins %v, want %v", checkins, booked)
	}
}

// book makes n bookings for account and returns their appointments.
func book(t *testing.T, s *Simulator, account int64, n int) []int64 {
	t.Helper()
	var ids []int64
	for range n {
		c, err := s.step(t.Context(), Appointments, account)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.IDs...)
	}
	return ids
}

// decoys inserts appointments in status the simulator must never touch: yesterday's
// and in a week's of account 1, and today's of account 2 (before anything it booked).
func decoys(t *testing.T, s *Simulator, pool *pgxpool.Pool, status int64) []int64 {
	t.Helper()
	var ids []int64
	for _, q := range []string{
		`INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::date - 1, '06:00', '06:15', 1, 1, $2, 1) RETURNING id`,
		`INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::date + 7, '06:00', '06:15', 1, 1, $2, 1) RETURNING id`,
		`INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ($1::date, '06:00', '06:15', 3, 4, $2, 2) RETURNING id`,
	} {
		var id int64
		if err := pool.QueryRow(t.Context(), q, s.today(), status).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

type untouched struct {
	Day, Start, End, Status string
	Deleted                 bool
	Updated                 string
}

const untouchedQuery = `SELECT to_char(a.date, 'YYYY-MM-DD'), a."startTime", a."endTime", s.name, a."deletedAt" IS NOT NULL,
       to_char(a."updatedAt", 'YYYY-MM-DD HH24:MI:SS.MS')
FROM appointments a JOIN statuses s ON s.id = a."statusId" WHERE a.id = ANY($1) ORDER BY a.id`

// TestStatusPath: serving takes the earliest checked-in patient of today to 'Em
// atendimento', finishing the earliest of those to 'Finalizado', each a whole booking
// at a time; with nobody at a step, the step before it is made instead, down to a
// booking. Other days' and other accounts' patients are never moved.
func TestStatusPath(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	booked := book(t, s, 1, 4)
	slices.Sort(booked)
	var others []int64
	for _, st := range []int64{s.checkin, s.serving} {
		others = append(others, decoys(t, s, pool, st)...)
	}
	before := query[untouched](t, pool, untouchedQuery, others)

	status := func(ids []int64) map[string]int {
		n := map[string]int{}
		for _, r := range query[appointmentRow](t, pool, appointmentQuery, ids) {
			n[r.Status]++
		}
		return n
	}
	// Finish with nobody in Em atendimento or Check-in checks someone in.
	c, err := s.step(ctx, Finish, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Checkin || len(c.IDs) == 0 {
		t.Fatalf("finish with nobody checked in: change %+v, want a check-in", c)
	}
	// Serve then serves them, finish finishes them.
	for _, step := range []struct {
		kind Kind
		want string
	}{{Serve, StatusServing}, {Finish, StatusFinished}} {
		got, err := s.step(ctx, step.kind, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != step.kind || !slices.Equal(got.IDs, c.IDs) {
			t.Fatalf("%s: change %+v, want %v", step.kind, got, c.IDs)
		}
		if n := status(c.IDs); n[step.want] != len(c.IDs) {
			t.Fatalf("after %s: statuses %v, want all %s", step.kind, n, step.want)
		}
	}
	// Everyone, step by step, ends Finalizado; then serve books.
	for range 3 * len(booked) {
		for _, k := range []Kind{Checkin, Serve, Finish} {
			got, err := s.step(ctx, k, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind == Appointments {
				t.Fatalf("%s booked while %v were not all finished", k, status(booked))
			}
		}
		if status(booked)[StatusFinished] == len(booked) {
			break
		}
	}
	if n := status(booked); n[StatusFinished] != len(booked) {
		t.Fatalf("statuses %v, want all %s", n, StatusFinished)
	}
	if c, err := s.step(ctx, Serve, 1); err != nil || c.Kind != Appointments {
		t.Fatalf("serve with nobody left: change %+v, err %v; want a booking", c, err)
	}
	// The triggers log each step once per appointment.
	for _, event := range []string{"appointments.checkin", "appointments.serving", "appointments.finished"} {
		if got := loggedRows(t, pool, 1, event); !slices.Equal(got, booked) {
			t.Errorf("logged %s for %v, want %v", event, got, booked)
		}
	}
	if after := query[untouched](t, pool, untouchedQuery, others); !slices.Equal(after, before) {
		t.Errorf("decoys changed:\n%v\nwant\n%v", after, before)
	}
}

// TestOptionalStatuses: an app without 'Em atendimento' and 'Finalizado' still gets
// bookings and check-ins; serving and finishing fall back to them.
func TestOptionalStatuses(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), `UPDATE statuses SET name = name || ' (old)' WHERE name = ANY($1)`, []string{StatusServing, StatusFinished}); err != nil {
		t.Fatal(err)
	}
	s, err := New(pool, Config{Rate: 1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setup(t.Context()); err != nil {
		t.Fatalf("setup without the optional statuses: %v", err)
	}
	book(t, s, 1, 2)
	for _, want := range []Kind{Checkin, Checkin, Appointments} {
		c, err := s.step(t.Context(), Finish, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != want {
			t.Fatalf("finish without the status: change %+v, want %s", c, want)
		}
	}
}

// TestReschedule: a booking of today moves whole to another time of the same length,
// sometimes another day, with its patient, doctor and status; once nobody is booked
// today, rescheduling books instead. Others' appointments never move.
func TestReschedule(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	booked := book(t, s, 1, 6)
	others := decoys(t, s, pool, s.scheduled)
	before := query[untouched](t, pool, untouchedQuery, others)
	rows := map[int64]appointmentRow{}
	for _, r := range query[appointmentRow](t, pool, appointmentQuery, booked) {
		rows[r.ID] = r
	}
	today := s.today() + " 00:00:00"
	moved, days := 0, 0
	for range 40 {
		c, err := s.step(ctx, Reschedule, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind == Appointments {
			break
		}
		if c.Kind != Reschedule || len(c.IDs) == 0 {
			t.Fatalf("change %+v", c)
		}
		for _, r := range query[appointmentRow](t, pool, appointmentQuery, c.IDs) {
			was, ok := rows[r.ID]
			if !ok {
				t.Fatalf("rescheduled appointment %d, not one of ours %v", r.ID, booked)
			}
			if r.Day == was.Day && r.Start == was.Start {
				t.Errorf("appointment %d not moved: %+v", r.ID, r)
			}
			if minutes(r.End)-minutes(r.Start) != minutes(was.End)-minutes(was.Start) {
				t.Errorf("appointment %d: %s-%s, was %s-%s: want the same length", r.ID, r.Start, r.End, was.Start, was.End)
			}
			if r.Patient != was.Patient || r.Doctor != was.Doctor || r.Account != 1 || r.Status != StatusScheduled || r.Procedure != was.Procedure {
				t.Errorf("appointment %d changed more than its time: %+v, was %+v", r.ID, r, was)
			}
			if r.Day != today {
				days++
			}
			rows[r.ID] = r
			moved++
		}
	}
	if moved == 0 || days == 0 {
		t.Errorf("moved %d appointments, %d to another day: want both", moved, days)
	}
	if n := len(loggedEvents(t, pool, 1, "appointments.updated")); n != moved {
		t.Errorf("logged %d appointments.updated, want one per move (%d)", n, moved)
	}
	if after := query[untouched](t, pool, untouchedQuery, others); !slices.Equal(after, before) {
		t.Errorf("decoys changed:\n%v\nwant\n%v", after, before)
	}
}

// TestCancel: cancelling soft-deletes one whole booking of today ("deletedAt" set,
// the rows kept), never a deleted one twice and never others'; with nobody booked,
// it books instead.
func TestCancel(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	booked := book(t, s, 1, 4)
	slices.Sort(booked)
	others := decoys(t, s, pool, s.scheduled)
	before := query[untouched](t, pool, untouchedQuery, others)
	var cancelled []int64
	for {
		c, err := s.step(ctx, Cancel, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind == Appointments {
			break
		}
		if c.Kind != Cancel || len(c.IDs) == 0 {
			t.Fatalf("change %+v", c)
		}
		cancelled = append(cancelled, c.IDs...)
		if len(cancelled) > len(booked) {
			t.Fatalf("cancelled %v, more than the %d booked", cancelled, len(booked))
		}
	}
	slices.Sort(cancelled)
	if !slices.Equal(cancelled, booked) {
		t.Errorf("cancelled %v, want every booking %v", cancelled, booked)
	}
	for _, r := range query[untouched](t, pool, untouchedQuery, booked) {
		if !r.Deleted || r.Status != StatusScheduled {
			t.Errorf("cancelled appointment %+v: want deletedAt set, status kept", r)
		}
	}
	if got := loggedRows(t, pool, 1, "appointments.deleted"); !slices.Equal(got, booked) {
		t.Errorf("logged appointments.deleted for %v, want %v", got, booked)
	}
	if after := query[untouched](t, pool, untouchedQuery, others); !slices.Equal(after, before) {
		t.Errorf("decoys changed:\n%v\nwant\n%v", after, before)
	}
}

type doctorRow struct {
	ID      int64
	Phone   string
	Email   string
	Busy    bool
	Deleted bool
	Account int64
	Updated string
}

const doctorQuery = `SELECT id, coalesce(phone, ''), coalesce(email, ''), "isBusy", "deletedAt" IS NOT NULL, "accountId",
       to_char("updatedAt", 'YYYY-MM-DD HH24:MI:SS.MS')
FROM doctors WHERE "accountId" = $1 ORDER BY id`

// TestDoctorChanges: doctors are updated, flagged busy and deleted only when this
// run hired them, within their account, and never below two doctors per account;
// without one to change, the change hires one.
func TestDoctorChanges(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	ctx := t.Context()
	seeded := query[doctorRow](t, pool, doctorQuery, 2) // account 2 has one doctor
	others := query[doctorRow](t, pool, doctorQuery, 1)
	for _, k := range []Kind{DoctorUpdate, DoctorBusy, DoctorDelete} {
		if _, err := s.change(ctx, k, 2); err != nil {
			t.Fatal(err)
		}
	}
	if got := query[doctorRow](t, pool, doctorQuery, 2); !slices.Equal(got, seeded) {
		t.Fatalf("doctors changed without one hired:\n%v\nwant\n%v", got, seeded)
	}
	c, err := s.step(ctx, DoctorBusy, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Doctor || len(c.IDs) != 1 {
		t.Fatalf("busy without a doctor of its own: change %+v, want a hire", c)
	}
	hired := c.IDs[0]
	doctor := func(id int64) doctorRow {
		t.Helper()
		for _, d := range query[doctorRow](t, pool, doctorQuery, 2) {
			if d.ID == id {
				return d
			}
		}
		t.Fatalf("doctor %d not in account 2", id)
		return doctorRow{}
	}
	was := doctor(hired)
	for range 4 {
		c, err := s.step(ctx, DoctorUpdate, 2)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != DoctorUpdate || !slices.Equal(c.IDs, []int64{hired}) {
			t.Fatalf("update: change %+v, want doctor %d", c, hired)
		}
		d := doctor(hired)
		if (d.Phone == was.Phone) == (d.Email == was.Email) || d.Busy != was.Busy || d.Deleted {
			t.Errorf("update: %+v, was %+v: want a new phone or email, nothing else", d, was)
		}
		was = d
	}
	for _, busy := range []bool{true, false, true} {
		if c, err := s.step(ctx, DoctorBusy, 2); err != nil || c.Kind != DoctorBusy {
			t.Fatalf("busy: change %+v, err %v", c, err)
		}
		if d := doctor(hired); d.Busy != busy {
			t.Fatalf("isBusy = %v, want %v", d.Busy, busy)
		}
	}
	// Two doctors in account 2: none may go; the change updates instead.
	if c, err := s.step(ctx, DoctorDelete, 2); err != nil || c.Kind != DoctorUpdate {
		t.Fatalf("delete with two doctors: change %+v, err %v; want an update", c, err)
	}
	third, err := s.step(ctx, Doctor, 2)
	if err != nil {
		t.Fatal(err)
	}
	c, err = s.step(ctx, DoctorDelete, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != DoctorDelete || len(c.IDs) != 1 || (c.IDs[0] != hired && c.IDs[0] != third.IDs[0]) {
		t.Fatalf("delete: change %+v, want one of %d, %d", c, hired, third.IDs[0])
	}
	if d := doctor(c.IDs[0]); !d.Deleted {
		t.Errorf("deleted doctor %+v: want deletedAt set", d)
	}
	if got := query[doctorRow](t, pool, doctorQuery, 2)[0]; got != seeded[0] {
		t.Errorf("seeded doctor changed: %+v, was %+v", got, seeded[0])
	}
	if got := query[doctorRow](t, pool, doctorQuery, 1); !slices.Equal(got, others) {
		t.Errorf("account 1's doctors changed:\n%v\nwant\n%v", got, others)
	}
	// A doctor of ours deleted by someone else is forgotten, not revived.
	left := hired + third.IDs[0] - c.IDs[0]
	if _, err := pool.Exec(ctx, `UPDATE doctors SET "deletedAt" = now() WHERE id = $1`, left); err != nil {
		t.Fatal(err)
	}
	if c, err := s.step(ctx, DoctorBusy, 2); err != nil || c.Kind != Doctor {
		t.Fatalf("busy once ours are gone: change %+v, err %v; want a hire", c, err)
	}
	// Busy twice (true, false, true), deleted by it and then by the test.
	if got := loggedEvents(t, pool, 2, "doctors.busy"); !slices.Equal(got, []logged{{"doctors.busy", hired}, {"doctors.busy", hired}}) {
		t.Errorf("logged %v, want doctors.busy of %d twice", got, hired)
	}
	if got := loggedEvents(t, pool, 2, "doctors.deleted"); !slices.Equal(got, []logged{{"doctors.deleted", c.IDs[0]}, {"doctors.deleted", left}}) {
		t.Errorf("logged %v, want doctors.deleted of %d then %d", got, c.IDs[0], left)
	}
}

// TestDoctor: a new doctor comes with one to three of the account's procedures,
// linked in the same transaction, and one doctors.created.
func TestDoctor(t *testing.T) {
	t.Parallel()
	s, pool := setup(t, Config{})
	for range 10 {
		c, err := s.step(t.Context(), Doctor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != Doctor || c.AccountID != 2 || len(c.IDs) != 1 {
			t.Fatalf("change %+v", c)
		}
		type doc struct {
			Name, CRM, Email, Phone string
			Account, Links, Foreign int64
		}
		d := query[doc](t, pool, `SELECT d.name, d.crm, d.email, d.phone, d."accountId",
       (SELECT count(*) FROM doctor_procedures dp WHERE dp."doctorId" = d.id),
       (SELECT count(*) FROM doctor_procedures dp JOIN procedures p ON p.id = dp."procedureId" WHERE dp."doctorId" = d.id AND p."accountId" <> d."accountId")
FROM doctors d WHERE d.id = $1`, c.IDs[0])[0]
		if !strings.HasPrefix(d.Name, "Dr. ") && !strings.HasPrefix(d.Name, "Dra. ") {
			t.Errorf("doctor name %q", d.Name)
		}
		if d.Account != 2 || d.Links < 1 || d.Links > 3 || d.Foreign != 0 || d.CRM == "" || !strings.HasSuffix(d.Email, "@example.com") || !strings.HasPrefix(d.Phone, "(") {
			t.Errorf("doctor %+v: want account 2 with 1-3 of its procedures", d)
		}
		if got := loggedEvents(t, pool, 2, "doctors.created"); got[len(got)-1] != (logged{"doctors.created", c.IDs[0]}) {
			t.Errorf("last logged event %v, want doctors.created #%d", got[len(got)-1], c.IDs[0])
		}
	}
}

// TestSetupNewAccount: an account with nothing gets the procedure catalogue and a
// doctor, reported as a change.
func TestSetupNewAccount(t *testing.T) {
	t.Parallel()
	var changes []Change
	s, pool := setup(t, Config{Accounts: []int64{7}, ChangeFunc: func(c Change) { changes = append(changes, c) }})
	if len(changes) != 1 || changes[0].Kind != Doctor || changes[0].AccountID != 7 {
		t.Fatalf("changes at setup = %+v, want one new doctor of account 7", changes)
	}
	if n := query[struct{ N int }](t, pool, `SELECT count(*) FROM procedures WHERE "accountId" = 7`)[0].N; n != len(catalog) {
		t.Errorf("account 7 has %d procedures, want the catalogue's %d", n, len(catalog))
	}
	// A second setup adds nothing.
	if err := s.setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 {
		t.Errorf("second setup made changes: %+v", changes[1:])
	}
	if _, err := s.step(t.Context(), Appointments, 7); err != nil {
		t.Errorf("booking in the new account: %v", err)
	}
}

// TestRun: at a high rate every kind of change reaches both accounts, no row of one
// account ever points at another's, and Run returns nil soon after its context ends.
func TestRun(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	changes := make(chan Change, 16)
	s, err := New(pool, Config{Rate: 200, ChangeFunc: func(c Change) { changes <- c }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	seen := map[Kind]bool{}
	accounts := map[int64]bool{}
	deadline := time.After(waitTimeout)
	for len(seen) < len(mix) || len(accounts) < 2 {
		select {
		case c := <-changes:
			if len(c.IDs) == 0 {
				t.Errorf("change %+v names no row", c)
			}
			seen[c.Kind] = true
			accounts[c.AccountID] = true
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-deadline:
			t.Fatalf("after %v saw kinds %v and accounts %v", waitTimeout, seen, accounts)
		}
	}
	cancel()
	for {
		select {
		case <-changes: // the change in flight, if any
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			checkAccounts(t, pool)
			return
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// checkAccounts fails the test for any row that points at another account's row.
func checkAccounts(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for what, q := range map[string]string{
		"appointments with another account's doctor":  `SELECT count(*) FROM appointments a JOIN doctors d ON d.id = a."doctorId" WHERE d."accountId" <> a."accountId"`,
		"appointments with another account's patient": `SELECT count(*) FROM appointments a JOIN patients p ON p.id = a."patientId" WHERE p."accountId" <> a."accountId"`,
		"appointments with another account's procedure": `SELECT count(*) FROM appointment_procedures ap JOIN appointments a ON a.id = ap."appointmentId"
JOIN procedures p ON p.id = ap."procedureId" WHERE p."accountId" <> a."accountId"`,
		"doctors with another account's procedure": `SELECT count(*) FROM doctor_procedures dp JOIN doctors d ON d.id = dp."doctorId"
JOIN procedures p ON p.id = dp."procedureId" WHERE p."accountId" <> d."accountId"`,
	} {
		if n := query[struct{ N int64 }](t, pool, q)[0].N; n != 0 {
			t.Errorf("%d %s", n, what)
		}
	}
}

// TestRunWithoutStatus: a database without the 'Check-in' status is refused with a
// message that names it.
func TestRunWithoutStatus(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(t.Context(), `UPDATE statuses SET name = 'Chegou' WHERE name = $1`, StatusCheckin); err != nil {
		t.Fatal(err)
	}
	s, err := New(pool, Config{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), `"Check-in"`) {
		t.Fatalf("Run = %v, want an error naming the Check-in status", err)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		p := newPerson(rng)
		f := strings.Fields(p.name)
		if len(f) < 2 || len(f) > 3 || (len(f) == 3 && f[1] == f[2]) {
			t.Errorf("name %q", p.name)
		}
		e := email(p, rng)
		for _, r := range e {
			if r > 127 {
				t.Errorf("email %q is not ASCII", e)
				break
			}
		}
		if ph := phone(rng); len(ph) != len("(81) 98765-4321") {
			t.Errorf("phone %q", ph)
		}
	}
	if got := doctorName(person{name: "Maria Souza Lima", female: true}); got != "Dra. Maria Lima" {
		t.Errorf("doctorName = %q", got)
	}
	if got := fold("joão.araújo"); got != "joao.araujo" {
		t.Errorf("fold = %q", got)
	}
}
