package listen

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/notifier/eventlog"
)

func TestMain(m *testing.M) { pgtest.Main(m, clinicdb.PrepareURL) }

const (
	// appName is the listener's application_name, so a test can terminate its backend.
	appName = "listen-test"
	// insertSQL writes one appointment, which the triggers log and notify at COMMIT.
	insertSQL = `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (now(), '09:00', '09:15', 1, 1, 1, 1) RETURNING id`
	// hangGuard bounds every wait, so a listener that never delivers fails the test
	// instead of hanging it; no assertion depends on how long anything takes.
	hangGuard = 30 * time.Second
)

// fixture is one test's database and a listener on it, from the log's head.
type fixture struct {
	db    *pgx.Conn // the test goroutine's own connection
	l     *Listener
	out   chan eventlog.Entry
	ready chan struct{} // one value per ReadyFunc(true)
	logs  *logs
	ctx   context.Context // the listener's
	stop  context.CancelFunc
}

// newFixture creates a database and a listener configured by cfg (its ConnConfig,
// Logger and ReadyFunc are the fixture's). Tests may replace the listener's seams
// before start.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	cs := pgtest.Database(t)
	db, err := pgx.Connect(t.Context(), cs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	bounds, err := eventlog.ReadBounds(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(cs)
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["application_name"] = appName

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{
		db:    db,
		out:   make(chan eventlog.Entry, 64),
		ready: make(chan struct{}, 16),
		logs:  &logs{},
		ctx:   ctx,
		stop:  cancel,
	}
	cfg.ConnConfig = cc
	cfg.Logger = slog.New(recorder{logs: f.logs, next: slog.NewTextHandler(t.Output(), nil)})
	cfg.ReadyFunc = func(ready bool) {
		if ready {
			select {
			case f.ready <- struct{}{}:
			case <-ctx.Done():
			}
		}
	}
	f.l = New(cfg, bounds.Head, f.out)
	return f
}

// start runs the listener until the test ends and waits until it is ready.
func (f *fixture) start(t testing.TB) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.l.Run(f.ctx) }()
	// Cleanups run last in, first out: the listener stops before its database goes.
	t.Cleanup(func() {
		f.stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	f.waitReady(t)
}

// waitReady waits for the next ReadyFunc(true).
func (f *fixture) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-f.ready:
	case <-time.After(hangGuard):
		t.Fatalf("listener not ready after %v", hangGuard)
	}
}

// next returns the next entry the listener emits.
func (f *fixture) next(t testing.TB) eventlog.Entry {
	t.Helper()
	select {
	case e := <-f.out:
		return e
	case <-time.After(hangGuard):
		t.Fatalf("no entry after %v", hangGuard)
		return eventlog.Entry{}
	}
}

// insert commits one appointment and returns its row id.
func (f *fixture) insert(t testing.TB) int64 {
	t.Helper()
	var id int64
	if err := f.db.QueryRow(t.Context(), insertSQL).Scan(&id); err != nil {
		t.Fatalf("insert appointment: %v", err)
	}
	return id
}

// exec runs one statement on the test's connection.
func (f *fixture) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := f.db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// terminate ends the listener's backend, as a failover or a DBA would.
func (f *fixture) terminate(t testing.TB) {
	t.Helper()
	var n int
	err := f.db.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND datname = current_database()`, appName).Scan(&n)
	if err != nil {
		t.Fatalf("terminate listener: %v", err)
	}
	if n != 1 {
		t.Fatalf("terminated %d listener backends, want 1", n)
	}
}

// logs keeps the records logged at Warn and above.
type logs struct {
	mu      sync.Mutex
	records []slog.Record
}

// matching returns the kept records with message msg.
func (l *logs) matching(msg string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(l.records), func(rec slog.Record) bool { return rec.Message != msg })
}

// recorder is a slog.Handler that keeps records in logs and passes them on to next.
type recorder struct {
	logs *logs
	next slog.Handler
}

func (r recorder) Enabled(ctx context.Context, level slog.Level) bool {
	return r.next.Enabled(ctx, level)
}

func (r recorder) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		r.logs.mu.Lock()
		r.logs.records = append(r.logs.records, rec.Clone())
		r.logs.mu.Unlock()
	}
	return r.next.Handle(ctx, rec)
}

// WithAttrs passes attrs on; the kept records do not carry them.
func (r recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return recorder{logs: r.logs, next: r.next.WithAttrs(attrs)}
}

func (r recorder) WithGroup(name string) slog.Handler {
	return recorder{logs: r.logs, next: r.next.WithGroup(name)}
}

// attr returns the value of rec's attribute key, the zero Value when it has none.
func attr(rec slog.Record, key string) slog.Value {
	var v slog.Value
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}
