package enrich_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
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

// TestBurstCostsTwoQueries: 300 appointments and 50 doctors in one burst cost one
// round trip of two statements, and every event keeps its order and id.
func TestBurstCostsTwoQueries(t *testing.T) {
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
		c.Kind, _ = decode.ParseKind(ev)
		changes = append(changes, c)
	}
	if rows.Err() != nil || len(changes) != 353 { // 3 seeded doctors + 300 + 50
		t.Fatalf("changes: %d, %v", len(changes), rows.Err())
	}
	before := tr.queries.Load()
	events, err := enrich.New(p, nil).Enrich(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if n := tr.queries.Load() - before; n != 2 {
		t.Errorf("burst of %d events cost %d statements, want 2", len(changes), n)
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

// TestMissingRowIsPartial: a row deleted before enrichment still yields its event,
// flagged, without failing the rest of the burst.
func TestMissingRowIsPartial(t *testing.T) {
	t.Parallel()
	p, _ := pool(t)
	changes := []decode.Change{
		{ID: 10, Kind: decode.DoctorCreated, RowID: 1, AccountID: 1},
		{ID: 11, Kind: decode.AppointmentCreated, RowID: 999999, AccountID: 1},
		{ID: 12, Kind: decode.DoctorCreated, RowID: 888888, AccountID: 2},
	}
	events, err := enrich.New(p, nil).Enrich(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if events[0].Partial || !strings.Contains(string(events[0].Data), `"Dr. Victor"`) {
		t.Errorf("event 0 = %+v", events[0])
	}
	if !events[1].Partial || string(events[1].Data) != `{"id":999999,"accountId":1}` {
		t.Errorf("event 1 = %+v %s", events[1], events[1].Data)
	}
	if !events[2].Partial || string(events[2].Data) != `{"id":888888,"accountId":2}` {
		t.Errorf("event 2 = %+v %s", events[2], events[2].Data)
	}
}

// TestDatabaseErrorFailsTheBurst: when the database cannot answer, Enrich returns an
// error (the notifier retries the burst) rather than partial events.
func TestDatabaseErrorFailsTheBurst(t *testing.T) {
	t.Parallel()
	p, _ := pool(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := enrich.New(p, nil).Enrich(ctx, []decode.Change{{ID: 1, Kind: decode.DoctorCreated, RowID: 1, AccountID: 1}}); err == nil {
		t.Fatal("Enrich with a dead context succeeded")
	}
	if ev, err := enrich.New(p, nil).Enrich(t.Context(), nil); ev != nil || err != nil {
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
	changes := make([]decode.Change, 100)
	for i := range changes {
		changes[i] = decode.Change{ID: int64(i + 1), Kind: decode.AppointmentCreated, RowID: int64(i + 1), AccountID: 1}
	}
	e := enrich.New(p, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Enrich(b.Context(), changes); err != nil {
			b.Fatal(err)
		}
	}
}
