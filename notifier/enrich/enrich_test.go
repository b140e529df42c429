package enrich_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
)

func TestMain(m *testing.M) { pgtest.Main(m, clinicdb.PrepareURL) }

// countingTracer counts the statements a pool sends.
type countingTracer struct{ queries atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *countingTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *countingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.queries.Add(1)
}
func (c *countingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func pool(t *testing.T) (*pgxpool.Pool, *countingTracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &countingTracer{}
	cfg.ConnConfig.Tracer = tr
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	p, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, tr
}

// TestBurstCostsOneRoundTrip: 300 appointments and 50 doctors in one burst cost one
// round trip of three statements (the plan setting, then one per rule), and every
// event keeps its order and id.
func TestBurstCostsOneRoundTrip(t *testing.T) {
	t.Parallel()
	p, tr := pool(t)
	if _, err := p.Exec(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
SELECT '2025-01-23', '09:00', '09:15', 1, 1, 1, 1 FROM generate_series(1, 300)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(t.Context(), `INSERT INTO doctors (name, "accountId") SELECT 'Dr. ' || g, 2 FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	var changes []decode.Change
	rows, err := p.Query(t.Context(), `SELECT id, event, row_id, account_id FROM notifier.events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c decode.Change
		var ev string
		if err := rows.Scan(&c.ID, &ev, &c.RowID, &c.AccountID); err != nil {
			t.Fatal(err)
		}
		c.Kind, _ = decode.NewCatalog().Kind(ev)
		changes = append(changes, c)
	}
	if rows.Err() != nil || len(changes) != 353 { // 3 seeded doctors + 300 + 50
		t.Fatalf("changes: %d, %v", len(changes), rows.Err())
	}
	before := tr.queries.Load()
	events, err := enrich.New(p, nil, nil).Enrich(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.queries.Load() - before; n != 3 {
		t.Errorf("burst of %d events cost %d statements, want 3", len(changes), n)
	}
	for i, ev := range events {
		c := changes[i]
		if ev.ID != c.ID || ev.Kind != c.Kind || ev.AccountID != c.AccountID || ev.Partial {
			t.Fatalf("event %d = %+v for change %+v", i, ev, c)
		}
		var data struct{ ID int64 }
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.ID != c.RowID {
			t.Fatalf("event %d data %s, want row %d", i, ev.Data, c.RowID)
		}
		if strings.Contains(string(ev.Data), " : ") {
			t.Fatalf("data not compact: %.80s", ev.Data)
		}
	}
}

// TestMissingRowIsPartial: a row deleted after its commit still yields its event whole,
// with the row as the log recorded it; an event the log does not hold (pruned) is
// flagged partial, without failing the rest of the burst.
func TestMissingRowIsPartial(t *testing.T) {
	t.Parallel()
	p, _ := pool(t)
	var doctor, doctorEvent int64
	if err := p.QueryRow(t.Context(), `INSERT INTO doctors (name, "accountId") VALUES ('Dr. Gone', 1) RETURNING id`).Scan(&doctor); err != nil {
		t.Fatal(err)
	}
	if err := p.QueryRow(t.Context(), `SELECT id FROM notifier.events WHERE event = 'doctors.created' AND row_id = $1`, doctor).Scan(&doctorEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(t.Context(), `DELETE FROM doctors WHERE id = $1`, doctor); err != nil {
		t.Fatal(err)
	}
	changes := []decode.Change{
		{ID: doctorEvent, Kind: decode.DoctorCreated, RowID: doctor, AccountID: 1},
		{ID: 11, Kind: decode.AppointmentCreated, RowID: 999999, AccountID: 1},
		{ID: 12, Kind: decode.DoctorCreated, RowID: 888888, AccountID: 2},
	}
	events, err := enrich.New(p, nil, nil).Enrich(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if events[0].Partial || !strings.Contains(string(events[0].Data), `"Dr. Gone"`) {
		t.Errorf("event 0 = %+v %s", events[0], events[0].Data)
	}
	if !events[1].Partial || string(events[1].Data) != `{"id":999999,"accountId":1,"partial":true}` {
		t.Errorf("event 1 = %+v %s", events[1], events[1].Data)
	}
	if !events[2].Partial {
		t.Errorf("event 2 = %+v %s", events[2], events[2].Data)
	}
}

// logChanges returns the log's events named event as Changes, in id order.
func logChanges(t testing.TB, p *pgxpool.Pool, event string) []decode.Change {
	t.Helper()
	rows, err := p.Query(t.Context(), `SELECT id, row_id, account_id FROM notifier.events WHERE event = $1 ORDER BY id`, event)
	if err != nil {
		t.Fatal(err)
	}
	kind, _ := decode.NewCatalog().Kind(event)
	changes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (decode.Change, error) {
		c := decode.Change{Kind: kind}
		return c, r.Scan(&c.ID, &c.RowID, &c.AccountID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

// TestNeverAnotherAccount: an appointment that moves to another account, with a doctor
// and patient of that account, is still enriched for its event as it committed: the
// first account's doctor and patient, never the second's. A row that pointed at
// another account's doctor and patient at commit gets neither.
func TestNeverAnotherAccount(t *testing.T) {
	t.Parallel()
	p, _ := pool(t)
	ctx := t.Context()
	var appt int64
	// Seed: doctors 1-2 and patients 1-3 belong to account 1, doctor 3 and patients 4-5 to account 2.
	if err := p.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', 'as committed', 1, 1, 1, 1) RETURNING id`).Scan(&appt); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', 'crossed', 3, 4, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `UPDATE appointments SET "accountId" = 2, "doctorId" = 3, "patientId" = 4, notes = 'moved' WHERE id = $1`, appt); err != nil {
		t.Fatal(err)
	}
	changes := logChanges(t, p, "appointments.created")
	events, err := enrich.New(p, nil, nil).Enrich(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	// The move makes the row appear in account 2 (a third created event, of account 2's
	// own row and joins) and leave account 1.
	if len(events) != 3 {
		t.Fatalf("%d events, want 3", len(events))
	}
	var moved, crossed, arrived struct {
		AccountID int64
		Notes     string
		Doctor    *struct{ ID, AccountID int64 }
		Patient   *struct {
			ID, AccountID int64
			Contact       *struct{ Email string }
		}
	}
	if err := json.Unmarshal(events[0].Data, &moved); err != nil {
		t.Fatal(err)
	}
	if moved.AccountID != 1 || moved.Notes != "as committed" || moved.Doctor == nil || moved.Doctor.AccountID != 1 || moved.Patient == nil || moved.Patient.AccountID != 1 {
		t.Errorf("moved row's event = %s, want the row as committed in account 1 with account 1's doctor and patient", events[0].Data)
	}
	if err := json.Unmarshal(events[1].Data, &crossed); err != nil {
		t.Fatal(err)
	}
	if crossed.Doctor != nil || crossed.Patient != nil || strings.Contains(string(events[1].Data), "@") {
		t.Errorf("row pointing at account 2's doctor and patient = %s, want neither", events[1].Data)
	}
	if err := json.Unmarshal(events[2].Data, &arrived); err != nil {
		t.Fatal(err)
	}
	if events[2].AccountID != 2 || arrived.AccountID != 2 || arrived.Notes != "moved" || arrived.Doctor == nil || arrived.Doctor.AccountID != 2 || arrived.Patient == nil || arrived.Patient.AccountID != 2 {
		t.Errorf("moved row's arrival = %s, want the row in account 2 with account 2's doctor and patient", events[2].Data)
	}
	gone := logChanges(t, p, "appointments.deleted")
	if len(gone) != 1 || gone[0].AccountID != 1 {
		t.Fatalf("deleted events %+v, want one, in account 1", gone)
	}
	left, err := enrich.New(p, nil, nil).Enrich(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(left[0].Data, &moved); err != nil {
		t.Fatal(err)
	}
	if moved.AccountID != 1 || moved.Notes != "as committed" || moved.Doctor == nil || moved.Doctor.AccountID != 1 {
		t.Errorf("account 1's deleted event = %s, want the row as it was in account 1, never account 2's", left[0].Data)
	}
}

// TestTransientErrorsAreNotPartial: a statement timeout behind a lock (DDL, VACUUM
// FULL) fails the burst for the caller to retry; it never makes partial events, and
// once the lock is gone the same burst enriches whole.
func TestTransientErrorsAreNotPartial(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "200"
	p, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()
	if _, err := p.Exec(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-23', '09:00', '09:15', 1, 1, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	changes := logChanges(t, p, "appointments.created")
	locker, err := pgx.Connect(ctx, cfg.ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0; LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	events, err := enrich.New(p, nil, nil).Enrich(ctx, changes)
	if err == nil {
		t.Fatalf("Enrich behind a lock succeeded: %+v", events)
	}
	if enrich.RowError(err) {
		t.Fatalf("a statement timeout counted as a row's own error: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	events, err = enrich.New(p, nil, nil).Enrich(ctx, changes)
	if err != nil || len(events) != 1 || events[0].Partial {
		t.Fatalf("after the lock: %+v, %v", events, err)
	}
}

// TestRowError classifies SQLSTATEs: a row's own data or a function it reaches may be
// isolated; the database's state never.
func TestRowError(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"22012": true, "23505": true, "P0001": true, "38001": true, "54000": true,
		"57014": false, "53300": false, "57P03": false, "08006": false, "40P01": false,
		"42P01": false, "42501": false, "XX000": false,
	} {
		if got := enrich.RowError(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("RowError(%s) = %v, want %v", code, got, want)
		}
	}
	if enrich.RowError(context.DeadlineExceeded) {
		t.Error("a context error counted as a row's own error")
	}
}

// TestDatabaseErrorFailsTheBurst: when the database cannot answer, Enrich returns an
// error (the notifier retries the burst) rather than partial events.
func TestDatabaseErrorFailsTheBurst(t *testing.T) {
	t.Parallel()
	p, _ := pool(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := enrich.New(p, nil, nil).Enrich(ctx, []decode.Change{{ID: 1, Kind: decode.DoctorCreated, RowID: 1, AccountID: 1}}); err == nil {
		t.Fatal("Enrich with a dead context succeeded")
	}
	if ev, err := enrich.New(p, nil, nil).Enrich(t.Context(), nil); ev != nil || err != nil {
		t.Fatalf("empty burst = %v, %v", ev, err)
	}
}

// BenchmarkEnrich is one burst of 100 appointments: the database round trip included.
func BenchmarkEnrich(b *testing.B) {
	cfg, err := pgxpool.ParseConfig(pgtest.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	p, err := pgxpool.NewWithConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Exec(b.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
SELECT '2025-01-23', '09:00', '09:15', 1, 1, 1, 1 FROM generate_series(1, 100)`); err != nil {
		b.Fatal(err)
	}
	changes := logChanges(b, p, "appointments.created")
	e := enrich.New(p, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Enrich(b.Context(), changes); err != nil {
			b.Fatal(err)
		}
	}
}
