package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/sql"
	"github.com/pgnotifier/notifier/triggers"
)

func TestMain(m *testing.M) {
	// No prepare: each test database starts empty and creates what it needs.
	pgtest.Main(m, nil)
}

// waitTimeout bounds every wait on the database; generous because CI machines are shared.
const waitTimeout = 20 * time.Second

// migrationLockKey is migrate's advisory lock ("notifmig" in ASCII), held by
// TestUpConcurrent to line two Up calls up behind it.
const migrationLockKey = 7957695015049423207

// clinicTables are the reference schema's tables, in an order that respects their
// foreign keys when dropping.
var clinicTables = []string{
	"appointment_procedures", "appointments", "doctor_procedures", "doctors",
	"procedures", "patients", "contacts", "statuses",
}

// querier is what pgx.Conn and pgx.Tx share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t testing.TB, q querier, sql string, args ...any) {
	t.Helper()
	if _, err := q.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func scan[T any](t testing.TB, q querier, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := q.QueryRow(t.Context(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func load(t testing.TB) []migrate.Migration {
	t.Helper()
	ms, err := migrate.Load(triggers.FS)
	if err != nil {
		t.Fatalf("Load(triggers.FS): %v", err)
	}
	return ms
}

// testBundle is one empty test database and a superuser connection to it.
type testBundle struct {
	url  string
	conn *pgx.Conn
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	url := pgtest.Database(t)
	return &testBundle{url: url, conn: connect(t, url)}
}

// clinic creates the reference clinic schema and its seed data.
func (b *testBundle) clinic(t *testing.T) *testBundle {
	t.Helper()
	exec(t, b.conn, sql.Schema)
	exec(t, b.conn, sql.Seed)
	return b
}

// up applies the embedded migrations and checks that it applied them all.
func (b *testBundle) up(t *testing.T) *testBundle {
	t.Helper()
	ms := load(t)
	applied, err := migrate.Up(t.Context(), b.conn, ms)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("Up applied %d migrations, want %d", len(applied), len(ms))
	}
	return b
}

func schemaExists(t *testing.T, q querier, name string) bool {
	t.Helper()
	return scan[bool](t, q, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name)
}

// allTriggers are the triggers Up installs.
var allTriggers = []string{"notifier_appointments_capture", "notifier_doctors_capture", "notifier_events_truncated",
	"notifier_flush", "notifier_lookup_copy", "notifier_lookup_truncate"}

// notifierTriggers lists the notifier_* triggers on any table.
func notifierTriggers(t *testing.T, q querier) []string {
	t.Helper()
	return scan[[]string](t, q, `SELECT coalesce(array_agg(tgname::text ORDER BY tgname), '{}')
FROM pg_trigger WHERE tgname LIKE 'notifier%'`)
}

// catalog lists the objects in every non-system schema (tables, indexes, sequences,
// views, functions, types, constraints, triggers and the schemas themselves) as
// "kind schema.name".
func catalog(t *testing.T, q querier) []string {
	t.Helper()
	objects := scan[[]string](t, q, `SELECT coalesce(array_agg(kind || ' ' || nsp || '.' || name), '{}') FROM (
    SELECT 'schema' AS kind, nspname::text AS nsp, '' AS name FROM pg_namespace
    UNION ALL
    SELECT 'relation/' || c.relkind::text, n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    UNION ALL
    SELECT 'function', n.nspname::text, p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    UNION ALL
    SELECT 'type', n.nspname::text, ty.typname::text FROM pg_type ty JOIN pg_namespace n ON n.oid = ty.typnamespace
    UNION ALL
    SELECT 'constraint/' || co.contype::text, n.nspname::text, co.conname::text || ' on ' || co.conrelid::regclass::text
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
    UNION ALL
    SELECT 'trigger', n.nspname::text, tg.tgname::text || ' on ' || c.relname
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
) o
WHERE nsp NOT IN ('pg_catalog', 'information_schema') AND nsp NOT LIKE 'pg\_toast%' AND nsp NOT LIKE 'pg\_temp%'`)
	slices.Sort(objects)
	return objects
}

// appData is the clinic's rows, one JSON array per table, and its sequences' positions.
func appData(t *testing.T, q querier) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range clinicTables {
		out[table] = scan[string](t, q, fmt.Sprintf(
			`SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM %s t`, pgx.Identifier{table}.Sanitize()))
	}
	out["sequences"] = scan[string](t, q, `SELECT coalesce(json_agg(s ORDER BY s.sequencename)::text, '[]')
FROM (SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public') s`)
	return out
}

// event is a row of notifier.events.
type event struct {
	ID      int64
	Event   string
	Row     int64
	Account int64
}

func events(t *testing.T, q querier) []event {
	t.Helper()
	rows, err := q.Query(t.Context(), "SELECT id, event, row_id, account_id FROM notifier.events ORDER BY id")
	if err != nil {
		t.Fatalf("read notifier.events: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
	if err != nil {
		t.Fatalf("read notifier.events: %v", err)
	}
	return out
}

// checkEvents compares events ignoring ids, and checks that the ids increase.
func checkEvents(t *testing.T, got []event, want ...event) {
	t.Helper()
	var prev int64
	for i, e := range got {
		if e.ID <= prev {
			t.Errorf("event %d has id %d after %d: ids do not increase", i, e.ID, prev)
		}
		prev = e.ID
		got[i].ID = 0
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("events (ids ignored):\n got %+v\nwant %+v", got, want)
	}
}

const insertAppointment = `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23 10:00', '10:00', '10:15', 1, 1, $1, $2) RETURNING id`

// appointment inserts an appointment with the status and account (nil for NULL).
func appointment(t *testing.T, q querier, status int, account any) int64 {
	t.Helper()
	return scan[int64](t, q, insertAppointment, status, account)
}

func doctor(t *testing.T, q querier, account any) int64 {
	t.Helper()
	return scan[int64](t, q, `INSERT INTO doctors (name, crm, "accountId") VALUES ('Dr. Test', '99999', $1) RETURNING id`, account)
}

func statusID(t *testing.T, q querier, name string) int {
	t.Helper()
	return scan[int](t, q, "SELECT id FROM statuses WHERE name = $1", name)
}

// role creates a role that may not log in, with a random name (roles are shared by
// every database of the server), and drops it and what it owns after the test.
func role(t *testing.T, b *testBundle, attrs string) string {
	t.Helper()
	name := "notifier_role_" + randomHex(6)
	exec(t, b.conn, "CREATE ROLE "+name+" NOSUPERUSER NOLOGIN "+attrs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, b.url)
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP OWNED BY "+name+"; DROP ROLE "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

func randomHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

func TestLoadEmbedded(t *testing.T) {
	t.Parallel()
	ms := load(t)
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "event_log" {
		t.Fatalf("Load(triggers.FS) = %+v, want 0001_event_log first", ms)
	}
	for i, m := range ms {
		if i > 0 && m.Version <= ms[i-1].Version {
			t.Errorf("migration %d after %d: not in version order", m.Version, ms[i-1].Version)
		}
		if strings.TrimSpace(m.Up) == "" || strings.TrimSpace(m.Down) == "" {
			t.Errorf("migration %04d_%s has an empty up or down", m.Version, m.Name)
		}
	}
	if !strings.Contains(ms[0].Up, "CREATE CONSTRAINT TRIGGER notifier_appointments_created") {
		t.Errorf("0001 up does not create the appointments trigger")
	}
	if !strings.Contains(ms[0].Down, "DROP TRIGGER IF EXISTS notifier_appointments_created") {
		t.Errorf("0001 down does not drop the appointments trigger")
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		want    []migrate.Migration
		wantErr string
	}{{
		name: "pairs sorted, others ignored",
		fsys: fstest.MapFS{
			"0002_b.up.sql":        file("up b"),
			"0002_b.down.sql":      file("down b"),
			"0001_a.up.sql":        file("up a"),
			"0001_a.down.sql":      file("down a"),
			"10_c.up.sql":          file("up c"),
			"10_c.down.sql":        file("down c"),
			"README.md":            file("# migrations"),
			"embed.go":             file("package triggers"),
			"0003_x.up.sql.orig":   file("stale"),
			"0004_Upper.up.sql":    file("not lowercase"),
			"0005_x.UP.sql":        file("not lowercase"),
			"0006-x.up.sql":        file("dash"),
			"x_0007.up.sql":        file("no number"),
			"0008_x.sql":           file("no direction"),
			"old/0009_x.up.sql":    file("in a folder"),
			"old/0009_x.down.sql":  file("in a folder"),
			"0010_no_down.up.sql~": file("backup"),
		},
		want: []migrate.Migration{
			{Version: 1, Name: "a", Up: "up a", Down: "down a"},
			{Version: 2, Name: "b", Up: "up b", Down: "down b"},
			{Version: 10, Name: "c", Up: "up c", Down: "down c"},
		},
	}, {
		name: "empty",
		fsys: fstest.MapFS{"README.md": file("nothing yet")},
		want: []migrate.Migration{},
	}, {
		name:    "missing down",
		fsys:    fstest.MapFS{"0001_a.up.sql": file("up a"), "0001_a.down.sql": file("down a"), "0002_b.up.sql": file("up b")},
		wantErr: "0002_b",
	}, {
		name:    "missing up",
		fsys:    fstest.MapFS{"0001_a.down.sql": file("down a")},
		wantErr: "0001_a",
	}, {
		name:    "two names for one version",
		fsys:    fstest.MapFS{"0001_a.up.sql": file("up a"), "0001_b.down.sql": file("down b")},
		wantErr: "two names",
	}, {
		name: "two up files for one version",
		fsys: fstest.MapFS{
			"0001_a.up.sql": file("up a"), "1_a.up.sql": file("another up a"), "0001_a.down.sql": file("down a"),
		},
		wantErr: "0001_a.up.sql",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := migrate.Load(tc.fsys)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Load = %+v, want an error naming %s", got, tc.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not name %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Load:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUpWithoutClinicSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := catalog(t, b.conn)
	applied, err := migrate.Up(t.Context(), b.conn, load(t))
	if !errors.Is(err, migrate.ErrSchemaIncomplete) {
		t.Fatalf("Up = %v, %v; want ErrSchemaIncomplete", applied, err)
	}
	t.Logf("error: %v", err)
	for _, table := range clinicTables {
		if !strings.Contains(err.Error(), "table "+table) {
			t.Errorf("error does not name missing table %s", table)
		}
	}
	if schemaExists(t, b.conn, "notifier") {
		t.Error("schema notifier exists after a failed Up")
	}
	if after := catalog(t, b.conn); !slices.Equal(after, before) {
		t.Errorf("catalog changed by a failed Up:\nbefore %q\nafter  %q", before, after)
	}
}

func TestUpIncompleteSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, alter, want string
	}{
		{"appointments without statusId", `ALTER TABLE appointments DROP COLUMN "statusId"`, `column appointments."statusId"`},
		{"doctors without accountId", `ALTER TABLE doctors DROP COLUMN "accountId"`, `column doctors."accountId"`},
		{"statuses.name renamed", `ALTER TABLE statuses RENAME COLUMN name TO label`, `column statuses."name"`},
		{"no appointment_procedures", `DROP TABLE appointment_procedures`, `table appointment_procedures`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			exec(t, b.conn, sql.Schema)
			exec(t, b.conn, tc.alter)
			_, err := migrate.Up(t.Context(), b.conn, load(t))
			if !errors.Is(err, migrate.ErrSchemaIncomplete) {
				t.Fatalf("Up: %v, want ErrSchemaIncomplete", err)
			}
			t.Logf("error: %v", err)
			_, missing, _ := strings.Cut(err.Error(), "missing ")
			if missing != tc.want {
				t.Errorf("error %q: missing %q, want exactly %q", err, missing, tc.want)
			}
			if schemaExists(t, b.conn, "notifier") {
				t.Error("schema notifier exists after a failed Up")
			}
			if trg := notifierTriggers(t, b.conn); len(trg) != 0 {
				t.Errorf("triggers %v exist after a failed Up", trg)
			}
		})
	}
}

// TestUpLargerApp: apps may have more columns and tables than the reference schema.
func TestUpLargerApp(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	exec(t, b.conn, `ALTER TABLE appointments ADD COLUMN "roomId" int, ADD COLUMN tags text[];
ALTER TABLE doctors ADD COLUMN bio text NOT NULL DEFAULT '';
CREATE TABLE invoices (id serial PRIMARY KEY, "appointmentId" int REFERENCES appointments (id))`)
	b.up(t)
	id := scan[int64](t, b.conn, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId", "roomId", tags)
VALUES (now(), '09:00', '09:15', 1, 1, 1, 1, 7, '{a}') RETURNING id`)
	checkEvents(t, events(t, b.conn), event{Event: "appointments.created", Row: id, Account: 1})
}

func TestUpIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	ctx := t.Context()
	ms := load(t)

	list, err := migrate.List(ctx, b.conn, ms)
	if err != nil {
		t.Fatalf("List before Up: %v", err)
	}
	for _, s := range list {
		if s.Applied || !s.AppliedAt.IsZero() {
			t.Errorf("before Up, %04d_%s: applied %v at %v, want pending", s.Version, s.Name, s.Applied, s.AppliedAt)
		}
	}
	if schemaExists(t, b.conn, "notifier") {
		t.Fatal("List created schema notifier")
	}

	beforeUp := scan[time.Time](t, b.conn, "SELECT now()")
	applied, err := migrate.Up(ctx, b.conn, ms)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if !slices.Equal(applied, ms) {
		t.Errorf("first Up applied %+v, want every migration", applied)
	}
	afterUp := scan[time.Time](t, b.conn, "SELECT now()")
	installed := catalog(t, b.conn)

	applied, err = migrate.Up(ctx, b.conn, ms)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(applied) != 0 {
		t.Errorf("second Up applied %+v, want nothing", applied)
	}
	if after := catalog(t, b.conn); !slices.Equal(after, installed) {
		t.Errorf("second Up changed the catalog:\nbefore %q\nafter  %q", installed, after)
	}
	if n := scan[int](t, b.conn, "SELECT count(*) FROM notifier.schema_migrations"); n != len(ms) {
		t.Errorf("notifier.schema_migrations has %d rows, want %d", n, len(ms))
	}

	list, err = migrate.List(ctx, b.conn, ms)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for i, s := range list {
		if s.Migration != ms[i] {
			t.Errorf("List[%d] = %04d_%s, want %04d_%s", i, s.Version, s.Name, ms[i].Version, ms[i].Name)
		}
		if !s.Applied || s.AppliedAt.Before(beforeUp) || s.AppliedAt.After(afterUp) {
			t.Errorf("%04d_%s: applied %v at %v, want applied between %v and %v", s.Version, s.Name, s.Applied, s.AppliedAt, beforeUp, afterUp)
		}
	}
}

// TestUpAtomic: a failing migration leaves nothing of the run behind, whether it is
// the second of a fresh install or the only pending one.
func TestUpAtomic(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	ctx := t.Context()
	broken := append(load(t), migrate.Migration{
		Version: 9999, Name: "broken",
		Up:   "CREATE TABLE notifier.half_done (id int); SELECT 1/0",
		Down: "DROP TABLE notifier.half_done",
	})
	before := catalog(t, b.conn)
	if _, err := migrate.Up(ctx, b.conn, broken); err == nil || !strings.Contains(err.Error(), "9999_broken") {
		t.Fatalf("Up with a broken migration: %v, want an error naming 9999_broken", err)
	}
	if after := catalog(t, b.conn); !slices.Equal(after, before) {
		t.Errorf("catalog changed by a failed Up:\nbefore %q\nafter  %q", before, after)
	}

	b.up(t)
	installed := catalog(t, b.conn)
	if _, err := migrate.Up(ctx, b.conn, broken); err == nil {
		t.Fatal("Up with a broken pending migration succeeded")
	}
	if after := catalog(t, b.conn); !slices.Equal(after, installed) {
		t.Errorf("catalog changed by a failed Up:\nbefore %q\nafter  %q", installed, after)
	}
	list, err := migrate.List(ctx, b.conn, broken)
	if err != nil {
		t.Fatal(err)
	}
	if last := list[len(list)-1]; last.Applied {
		t.Error("the broken migration is recorded as applied")
	}
}

// TestUpConcurrent lines up two Up calls on two connections behind the migration
// lock: one applies, the other then finds nothing pending.
func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	ctx := t.Context()
	ms := load(t)

	holder, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.WithoutCancel(ctx))
	exec(t, holder, "SELECT pg_advisory_xact_lock($1)", int64(migrationLockKey))

	type result struct {
		applied []migrate.Migration
		err     error
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	for range 2 {
		conn := connect(t, b.url)
		wg.Go(func() {
			applied, err := migrate.Up(ctx, conn, ms)
			results <- result{applied, err}
		})
	}
	// Runs before the connections close, and after the deferred Rollback released
	// the lock (and t.Context ended) should the test stop early.
	t.Cleanup(wg.Wait)

	// Both wait for the lock: they run at once as soon as it is released.
	waitCtx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	watcher := connect(t, b.url)
	for {
		n := scan[int](t, watcher, `SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if n == 2 {
			break
		}
		select {
		case <-waitCtx.Done():
			t.Fatalf("%d Up calls waiting for the migration lock after %s, want 2", n, waitTimeout)
		case r := <-results:
			t.Fatalf("Up returned while the lock was held: %+v", r)
		case <-time.After(10 * time.Millisecond): // poll pg_locks: Postgres has no signal for "a session waits"
		}
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	var counts []int
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("concurrent Up: %v", r.err)
			}
			counts = append(counts, len(r.applied))
		case <-waitCtx.Done():
			t.Fatal("concurrent Up did not return")
		}
	}
	slices.Sort(counts)
	if want := []int{0, len(ms)}; !slices.Equal(counts, want) {
		t.Errorf("migrations applied by the two Up calls = %v, want %v", counts, want)
	}
	if n := scan[int](t, b.conn, "SELECT count(*) FROM notifier.schema_migrations"); n != len(ms) {
		t.Errorf("notifier.schema_migrations has %d rows, want %d", n, len(ms))
	}
	if trg := notifierTriggers(t, b.conn); len(trg) != len(allTriggers) {
		t.Errorf("triggers %v, want %v", trg, allTriggers)
	}
}

func TestObjects(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	before := catalog(t, b.conn)
	b.up(t)

	// Everything Up added lives in schema notifier, but the triggers on the clinic's
	// tables (and the pg_constraint rows PostgreSQL keeps for constraint triggers).
	added := slices.DeleteFunc(catalog(t, b.conn), func(o string) bool { return slices.Contains(before, o) })
	wantOutside := []string{
		"constraint/t public.notifier_appointments_capture on appointments",
		"constraint/t public.notifier_doctors_capture on doctors",
		"trigger public.notifier_appointments_capture on appointments",
		"trigger public.notifier_doctors_capture on doctors",
		"trigger public.notifier_lookup_copy on statuses",
		"trigger public.notifier_lookup_truncate on statuses",
	}
	var outside []string
	for _, o := range added {
		if _, name, _ := strings.Cut(o, " "); !strings.HasPrefix(name, "notifier.") {
			outside = append(outside, o)
		}
	}
	if !slices.Equal(outside, wantOutside) {
		t.Errorf("objects Up added outside schema notifier:\n got %q\nwant %q", outside, wantOutside)
	}
	for _, want := range []string{"relation/r notifier.events", "relation/r notifier.log_state", "relation/r notifier.schema_migrations", "relation/S notifier.events_id_seq",
		"relation/r notifier.pending", "relation/r notifier.commit_lock", "relation/r notifier.lookups",
		"relation/r notifier.rules", "relation/r notifier.rule_events", "type notifier.derived"} {
		if !slices.Contains(added, want) {
			t.Errorf("Up did not add %s", want)
		}
	}

	type trigger struct {
		Name, Table              string
		Deferrable, InitDeferred bool
		Enabled                  string
		Def                      string
	}
	rows, err := b.conn.Query(t.Context(), `SELECT tgname, tgrelid::regclass::text, tgdeferrable, tginitdeferred, tgenabled::text, pg_get_triggerdef(oid)
FROM pg_trigger WHERE tgname LIKE 'notifier%' ORDER BY tgname`)
	if err != nil {
		t.Fatal(err)
	}
	trgs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trigger])
	if err != nil {
		t.Fatal(err)
	}
	wantDef := map[string]string{
		"notifier_appointments_capture": "AFTER INSERT OR DELETE OR UPDATE ON public.appointments",
		"notifier_doctors_capture":      "AFTER INSERT OR DELETE OR UPDATE ON public.doctors",
		"notifier_flush":                "AFTER INSERT ON notifier.pending",
		"notifier_lookup_copy":          "AFTER INSERT OR DELETE OR UPDATE ON public.statuses FOR EACH ROW EXECUTE FUNCTION notifier.copy_lookup('statuses', 'id', 'name')",
		"notifier_lookup_truncate":      "AFTER TRUNCATE ON public.statuses FOR EACH STATEMENT EXECUTE FUNCTION notifier.copy_lookup('statuses', 'id', 'name')",
		"notifier_events_truncated":     "AFTER TRUNCATE ON notifier.events FOR EACH STATEMENT",
	}
	// The triggers that see the app's changes fire at COMMIT; the lookup's copy of statuses and
	// the truncation guard fire with their statement.
	deferred := map[string]bool{"notifier_appointments_capture": true, "notifier_doctors_capture": true, "notifier_flush": true}
	if len(trgs) != len(wantDef) {
		t.Errorf("notifier triggers = %+v, want %d", trgs, len(wantDef))
	}
	for _, tg := range trgs {
		t.Logf("%s", tg.Def)
		if !strings.Contains(tg.Def, wantDef[tg.Name]) {
			t.Errorf("trigger %s: %s, want %s", tg.Name, tg.Def, wantDef[tg.Name])
		}
		if tg.Enabled != "O" {
			t.Errorf("trigger %s: enabled %q", tg.Name, tg.Enabled)
		}
		if deferred[tg.Name] && (!tg.Deferrable || !tg.InitDeferred) {
			t.Errorf("trigger %s: deferrable %v, initially deferred %v, enabled %q; want a deferred, enabled constraint trigger",
				tg.Name, tg.Deferrable, tg.InitDeferred, tg.Enabled)
		}
	}

	type function struct {
		Name        string
		SecDef      bool
		Config      []string
		ReturnsTrig bool
	}
	rows, err = b.conn.Query(t.Context(), `SELECT p.proname::text, p.prosecdef, coalesce(p.proconfig, '{}'), p.prorettype = 'trigger'::regtype
FROM pg_proc p WHERE p.pronamespace = 'notifier'::regnamespace ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[function])
	if err != nil {
		t.Fatal(err)
	}
	secdef := map[string]bool{}
	for _, f := range fns {
		if !f.SecDef {
			continue
		}
		secdef[f.Name] = true
		// A SECURITY DEFINER function must pin its search_path, or a caller's
		// objects could shadow the ones it means.
		if !slices.Contains(f.Config, "search_path=pg_catalog, pg_temp") {
			t.Errorf("SECURITY DEFINER function notifier.%s has config %q, want search_path pinned", f.Name, f.Config)
		}
	}
	for _, f := range fns {
		if f.ReturnsTrig && !f.SecDef {
			t.Errorf("trigger function notifier.%s is not SECURITY DEFINER", f.Name)
		}
	}
	for _, name := range []string{"capture()", "flush()", "copy_lookup()", "rebase(bigint)", "truncated()",
		"relay(bigint, text, text, text, jsonb)"} {
		if !secdef[name[:strings.Index(name, "(")]] {
			t.Errorf("notifier.%s is missing or not SECURITY DEFINER (functions: %+v)", name, fns)
		}
		// Only the owner (and roles the DBA grants) may call them.
		var publicExec bool
		if err := b.conn.QueryRow(t.Context(), `SELECT has_function_privilege('public', $1, 'EXECUTE')`, "notifier."+name).Scan(&publicExec); err != nil {
			t.Fatal(err)
		}
		if publicExec {
			t.Errorf("PUBLIC may execute notifier.%s", name)
		}
	}
	// Nor the rules machinery: the event functions run inside flush, the checks only
	// in a migration.
	for _, name := range []string{"derive()", "derive_appointments()", "derive_doctors()", "lookup(text, bigint)",
		"check_rule(text)", "check_columns(text, regclass, text, text[], text[])", "create_function(text, regclass, text)"} {
		if scan[bool](t, b.conn, `SELECT has_function_privilege('public', $1, 'EXECUTE')`, "notifier."+name) {
			t.Errorf("PUBLIC may execute notifier.%s", name)
		}
	}
}

func TestDown(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	ctx := t.Context()
	ms := load(t)
	before := catalog(t, b.conn)
	b.up(t)

	checkin := statusID(t, b.conn, "Check-in")
	a1 := appointment(t, b.conn, 1, 1)
	a2 := appointment(t, b.conn, 1, 2)
	appointment(t, b.conn, 1, nil)
	exec(t, b.conn, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, checkin, a1)
	exec(t, b.conn, `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 1)`, a1)
	d := doctor(t, b.conn, 1)
	exec(t, b.conn, `INSERT INTO doctor_procedures ("doctorId", "procedureId") VALUES ($1, 2)`, d)
	old := events(t, b.conn)
	checkEvents(t, slices.Clone(old),
		event{Event: "appointments.created", Row: a1, Account: 1},
		event{Event: "appointments.created", Row: a2, Account: 2},
		event{Event: "appointments.updated", Row: a1, Account: 1},
		event{Event: "appointments.status.changed", Row: a1, Account: 1},
		event{Event: "appointments.checkin", Row: a1, Account: 1},
		event{Event: "doctors.created", Row: d, Account: 1})
	if len(old) != 6 {
		t.Fatalf("%d events before Down, want 6", len(old))
	}
	oldHead := old[len(old)-1].ID
	data := appData(t, b.conn)

	reverted, err := migrate.Down(ctx, b.conn, ms)
	if err != nil {
		t.Fatalf("Down: %v", err)
	}
	want := slices.Clone(ms)
	slices.Reverse(want)
	if !slices.Equal(reverted, want) {
		t.Errorf("Down reverted %+v, want every migration, newest first", reverted)
	}
	if schemaExists(t, b.conn, "notifier") {
		t.Error("schema notifier exists after Down")
	}
	if trg := notifierTriggers(t, b.conn); len(trg) != 0 {
		t.Errorf("triggers %v exist after Down", trg)
	}
	if after := catalog(t, b.conn); !slices.Equal(after, before) {
		t.Errorf("catalog after Down differs from before Up:\nbefore %q\nafter  %q", before, after)
	}
	if after := appData(t, b.conn); !mapsEqual(after, data) {
		t.Errorf("app data changed by Down:\nbefore %v\nafter  %v", data, after)
	}
	// The app keeps working without the triggers.
	appointment(t, b.conn, 1, 1)
	data = appData(t, b.conn)

	reverted, err = migrate.Down(ctx, b.conn, ms)
	if err != nil || len(reverted) != 0 {
		t.Errorf("second Down = %+v, %v; want a no-op", reverted, err)
	}
	list, err := migrate.List(ctx, b.conn, ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Applied {
			t.Errorf("%04d_%s applied after Down", s.Version, s.Name)
		}
	}
	if after := appData(t, b.conn); !mapsEqual(after, data) {
		t.Errorf("app data changed by a second Down")
	}

	// Down removed everything: Up installs again from scratch, and its ids never repeat
	// the old log's: everything up to the new log's first id is void, so a client of
	// the old log resumes with resync, never with another log's events.
	b.up(t)
	id := appointment(t, b.conn, 1, 1)
	got := events(t, b.conn)
	checkEvents(t, slices.Clone(got), event{Event: "appointments.created", Row: id, Account: 1})
	pruned := scan[int64](t, b.conn, "SELECT pruned_through FROM notifier.log_state")
	if len(got) == 1 && (got[0].ID <= oldHead || pruned < oldHead) {
		t.Errorf("after reinstall: first id %d, pruned_through %d; want both above the old log's last id %d", got[0].ID, pruned, oldHead)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestDownWithoutUp(t *testing.T) {
	t.Parallel()
	for name, clinic := range map[string]bool{"empty database": false, "clinic database": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if clinic {
				b.clinic(t)
			}
			before := catalog(t, b.conn)
			reverted, err := migrate.Down(t.Context(), b.conn, load(t))
			if err != nil || len(reverted) != 0 {
				t.Errorf("Down = %+v, %v; want a no-op", reverted, err)
			}
			if after := catalog(t, b.conn); !slices.Equal(after, before) {
				t.Errorf("catalog changed by Down without Up:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// TestNonSuperuser migrates as a role that only owns the clinic tables and may
// create schemas, as a DBA's migration role would.
func TestNonSuperuser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	ms := load(t)
	owner := role(t, b, "")
	db := scan[string](t, b.conn, "SELECT current_database()")
	exec(t, b.conn, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; GRANT CREATE ON SCHEMA public TO %s",
		pgx.Identifier{db}.Sanitize(), owner, owner))
	exec(t, b.conn, "SET ROLE "+owner)
	defer b.conn.Exec(context.WithoutCancel(ctx), "RESET ROLE")
	if scan[bool](t, b.conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") {
		t.Fatal("SET ROLE left the session a superuser")
	}
	b.clinic(t)

	applied, err := migrate.Up(ctx, b.conn, ms)
	if err != nil || len(applied) != len(ms) {
		t.Fatalf("Up as %s: %+v, %v", owner, applied, err)
	}
	if got := scan[[]string](t, b.conn, `SELECT array_agg(DISTINCT pg_get_userbyid(proowner)::text) FROM pg_proc WHERE pronamespace = 'notifier'::regnamespace`); !slices.Equal(got, []string{owner}) {
		t.Errorf("notifier functions owned by %v, want %s", got, owner)
	}
	id := appointment(t, b.conn, 1, 1)
	checkEvents(t, events(t, b.conn), event{Event: "appointments.created", Row: id, Account: 1})

	if reverted, err := migrate.Down(ctx, b.conn, ms); err != nil || len(reverted) != len(ms) {
		t.Fatalf("Down as %s: %+v, %v", owner, reverted, err)
	}
	if schemaExists(t, b.conn, "notifier") {
		t.Error("schema notifier exists after Down")
	}

	// A role that may not create schemas gets a permission error and changes nothing.
	exec(t, b.conn, "RESET ROLE")
	weak := role(t, b, "")
	exec(t, b.conn, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+weak)
	exec(t, b.conn, "SET ROLE "+weak)
	_, err = migrate.Up(ctx, b.conn, ms)
	if !errors.Is(err, migrate.ErrPrivileges) || !strings.Contains(err.Error(), "CREATE on the database") {
		t.Errorf("Up as a role without CREATE: %v, want ErrPrivileges naming CREATE on the database", err)
	}
	exec(t, b.conn, "RESET ROLE")
	if schemaExists(t, b.conn, "notifier") {
		t.Error("schema notifier exists after a failed Up")
	}
}

// TestLeastPrivilegeMigrator: a migrator distinct from the app, with CREATE on the
// database and TRIGGER on the clinic tables but owning none of them, is refused before
// anything changes, with every missing privilege named (0002 drops 0001's triggers,
// which only a table's owner may). Made a member of the owning role, it migrates, and
// the app's role (no privilege on notifier.*) then writes, checks in and commits
// without any permission error: the installed functions read none of its tables.
// Down by a role that owns nothing is refused the same way.
func TestLeastPrivilegeMigrator(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	ctx := t.Context()
	ms := load(t)
	app := role(t, b, "")
	migrator := role(t, b, "")
	db := scan[string](t, b.conn, "SELECT current_database()")
	exec(t, b.conn, fmt.Sprintf(`DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER TABLE public.%%I OWNER TO %[1]s', r.tablename);
  END LOOP;
END $$;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %[1]s;
GRANT CREATE ON DATABASE %[2]s TO %[3]s;
GRANT TRIGGER ON appointments, doctors, statuses TO %[3]s;
GRANT SELECT ON statuses TO %[3]s`, app, pgx.Identifier{db}.Sanitize(), migrator))
	before := catalog(t, b.conn)

	exec(t, b.conn, "SET ROLE "+migrator)
	_, err := migrate.Up(ctx, b.conn, ms)
	exec(t, b.conn, "RESET ROLE")
	if !errors.Is(err, migrate.ErrPrivileges) {
		t.Fatalf("Up without ownership: %v, want ErrPrivileges", err)
	}
	for _, want := range []string{"ownership of appointments", "ownership of doctors", "ownership of statuses"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %s", err, want)
		}
	}
	if after := catalog(t, b.conn); !slices.Equal(after, before) {
		t.Errorf("a refused Up changed the catalog")
	}

	exec(t, b.conn, fmt.Sprintf("GRANT %s TO %s", app, migrator))
	exec(t, b.conn, "SET ROLE "+migrator)
	applied, err := migrate.Up(ctx, b.conn, ms)
	exec(t, b.conn, "RESET ROLE")
	if err != nil || len(applied) != len(ms) {
		t.Fatalf("Up as a member of the owning role: %+v, %v", applied, err)
	}

	exec(t, b.conn, "SET ROLE "+app)
	id := appointment(t, b.conn, 1, 1)
	exec(t, b.conn, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, statusID(t, b.conn, "Check-in"), id)
	exec(t, b.conn, "RESET ROLE")
	checkEvents(t, events(t, b.conn),
		event{Event: "appointments.created", Row: id, Account: 1},
		event{Event: "appointments.updated", Row: id, Account: 1},
		event{Event: "appointments.status.changed", Row: id, Account: 1},
		event{Event: "appointments.checkin", Row: id, Account: 1})

	outsider := role(t, b, "")
	exec(t, b.conn, "SET ROLE "+outsider)
	_, err = migrate.Down(ctx, b.conn, ms)
	exec(t, b.conn, "RESET ROLE")
	if !errors.Is(err, migrate.ErrPrivileges) || !strings.Contains(err.Error(), "ownership of schema notifier") {
		t.Errorf("Down by a role that owns nothing: %v, want ErrPrivileges naming the schema", err)
	}
	if !schemaExists(t, b.conn, "notifier") {
		t.Error("a refused Down removed schema notifier")
	}
	// The roles are dropped after the test; their objects depend on one another.
	if _, err := migrate.Down(ctx, b.conn, ms); err != nil {
		t.Fatal(err)
	}
}

// TestTriggerDeferred: the log row is written at COMMIT, not at INSERT.
func TestTriggerDeferred(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()
	other := connect(t, b.url)

	tx, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	id := appointment(t, tx, 1, 1)
	d := doctor(t, tx, 1)
	if n := scan[int](t, tx, "SELECT count(*) FROM notifier.events"); n != 0 {
		t.Errorf("%d events inside the writing transaction before COMMIT, want 0", n)
	}
	if n := scan[int](t, other, "SELECT count(*) FROM notifier.events"); n != 0 {
		t.Errorf("%d events seen by another session before COMMIT, want 0", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, events(t, other),
		event{Event: "appointments.created", Row: id, Account: 1},
		event{Event: "doctors.created", Row: d, Account: 1})
}

func TestTriggerRollback(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()

	tx, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appointment(t, tx, 1, 1)
	doctor(t, tx, 1)
	exec(t, tx, `UPDATE appointments SET "statusId" = $1`, statusID(t, tx, "Check-in"))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// A transaction that fails at COMMIT (a deferred constraint) writes nothing either.
	exec(t, b.conn, `ALTER TABLE appointments ADD CONSTRAINT one_per_slot UNIQUE ("doctorId", date) DEFERRABLE INITIALLY DEFERRED`)
	tx, err = b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appointment(t, tx, 1, 1)
	appointment(t, tx, 1, 1)
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("COMMIT of two appointments in one slot succeeded")
	}
	checkEvents(t, events(t, b.conn))
}

// TestTriggerCommitOrder: ids follow commit order, not insert order, in the log and
// in NOTIFY.
func TestTriggerCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()
	listener := connect(t, b.url)
	exec(t, listener, "LISTEN notifier")

	c1, c2 := connect(t, b.url), connect(t, b.url)
	tx1, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(context.WithoutCancel(ctx))
	first := appointment(t, tx1, 1, 1)
	tx2, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(context.WithoutCancel(ctx))
	second := appointment(t, tx2, 1, 2)
	if first >= second {
		t.Fatalf("row ids %d, %d: want the first insert to take the smaller id", first, second)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	got := events(t, b.conn)
	checkEvents(t, slices.Clone(got),
		event{Event: "appointments.created", Row: second, Account: 2},
		event{Event: "appointments.created", Row: first, Account: 1})
	for _, e := range got {
		n := waitNotification(t, listener)
		if want := payload(e); n.Payload != want {
			t.Errorf("notification %q, want %q (commit order)", n.Payload, want)
		}
	}
}

// TestTriggerOpenTransaction: a transaction that inserted and stays open blocks
// neither another writer nor its event.
func TestTriggerOpenTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()
	listener := connect(t, b.url)
	exec(t, listener, "LISTEN notifier")

	open, err := connect(t, b.url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(context.WithoutCancel(ctx))
	held := appointment(t, open, 1, 1)
	doctor(t, open, 1)

	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	var id int64
	if err := b.conn.QueryRow(wctx, insertAppointment, 1, 1).Scan(&id); err != nil {
		t.Fatalf("insert beside an open transaction: %v", err)
	}
	n := waitNotification(t, listener)
	want := event{Event: "appointments.created", Row: id, Account: 1}
	got := events(t, b.conn)
	checkEvents(t, slices.Clone(got), want)
	if len(got) == 1 && n.Payload != payload(got[0]) {
		t.Errorf("notification %q, want %q", n.Payload, payload(got[0]))
	}

	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got = events(t, b.conn)
	if len(got) != 3 || got[1].Row != held {
		t.Errorf("events after the long transaction committed: %+v, want it after the short one", got)
	}
}

// TestTriggerOneEventPerRow: several rows in one transaction yield one event each, in
// insert order.
func TestTriggerOneEventPerRow(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()
	tx, err := b.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var want []event
	for i := range 3 {
		id := appointment(t, tx, 1, 1)
		want = append(want, event{Event: "appointments.created", Row: id, Account: 1})
		if i == 1 {
			d := doctor(t, tx, 2)
			want = append(want, event{Event: "doctors.created", Row: d, Account: 2})
		}
	}
	// A multi-row INSERT queues its rows' events in row order.
	ids := scan[[]int64](t, tx, `WITH ins AS (
    INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
    SELECT '2025-01-23 10:00', '10:0' || g, '10:1' || g, 1, 1, 1, 1 FROM generate_series(1, 2) g
    RETURNING id)
SELECT array_agg(id ORDER BY id) FROM ins`)
	for _, id := range ids {
		want = append(want, event{Event: "appointments.created", Row: id, Account: 1})
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, events(t, b.conn), want...)
}

func waitNotification(t *testing.T, conn *pgx.Conn) *pgconn.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("wait for notification: %v", err)
	}
	if n.Channel != "notifier" {
		t.Errorf("notification on channel %q, want notifier", n.Channel)
	}
	return n
}

func payload(e event) string {
	return fmt.Sprintf(`{"id":%d,"event":%q,"row":%d,"account":%d}`, e.ID, e.Event, e.Row, e.Account)
}

// wireEvent is the NOTIFY payload's JSON.
type wireEvent struct {
	ID      int64  `json:"id"`
	Event   string `json:"event"`
	Row     int64  `json:"row"`
	Account int64  `json:"account"`
}

func TestNotifyPayload(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	listener := connect(t, b.url)
	exec(t, listener, "LISTEN notifier")

	id := appointment(t, b.conn, 1, 1)
	exec(t, b.conn, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, statusID(t, b.conn, "Check-in"), id)
	d := doctor(t, b.conn, 2)

	got := events(t, b.conn)
	checkEvents(t, slices.Clone(got),
		event{Event: "appointments.created", Row: id, Account: 1},
		event{Event: "appointments.updated", Row: id, Account: 1},
		event{Event: "appointments.status.changed", Row: id, Account: 1},
		event{Event: "appointments.checkin", Row: id, Account: 1},
		event{Event: "doctors.created", Row: d, Account: 2})
	if len(got) != 5 {
		t.FailNow()
	}
	// One wake-up per transaction, naming its last event: the listener reads the rest
	// from the log.
	for _, e := range []event{got[0], got[3], got[4]} {
		n := waitNotification(t, listener)
		if want := payload(e); n.Payload != want {
			t.Errorf("payload %q, want %q", n.Payload, want)
		}
		if fromSQL := scan[string](t, b.conn, "SELECT notifier.payload($1, $2, $3, $4)", e.ID, e.Event, e.Row, e.Account); n.Payload != fromSQL {
			t.Errorf("payload %q, notifier.payload() gives %q", n.Payload, fromSQL)
		}
		var decoded wireEvent
		if err := json.Unmarshal([]byte(n.Payload), &decoded); err != nil || decoded != wireEvent(e) {
			t.Errorf("payload %q decodes to %+v, %v", n.Payload, decoded, err)
		}
	}
	exec(t, b.conn, "SELECT pg_notify('notifier', 'end')") // nothing else was sent before it
	if n := waitNotification(t, listener); n.Payload != "end" {
		t.Errorf("notification %q after the last transaction's, want none", n.Payload)
	}
	// Large ids stay numbers; the payload stays far below NOTIFY's 8000 bytes.
	big := scan[string](t, b.conn, "SELECT notifier.payload(9223372036854775807, 'appointments.checkin', 9223372036854775807, 9223372036854775807)")
	if want := `{"id":9223372036854775807,"event":"appointments.checkin","row":9223372036854775807,"account":9223372036854775807}`; big != want || len(big) > 200 {
		t.Errorf("payload with the largest ids = %q, want %q", big, want)
	}
}

func TestCheckin(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	checkin := statusID(t, b.conn, "Check-in")
	agendado := statusID(t, b.conn, "Agendado")
	other := statusID(t, b.conn, "Em atendimento")

	for _, tc := range []struct {
		name    string
		from    int
		updates []string // $1 is the appointment's id
		want    int      // appointments.checkin events
	}{
		{"to Check-in", agendado, []string{fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, checkin)}, 1},
		{"to another status", agendado, []string{fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, other)}, 0},
		{"statusId not changed", agendado, []string{`UPDATE appointments SET notes = 'late', "updatedAt" = now() WHERE id = $1`}, 0},
		{"statusId set to itself", checkin, []string{`UPDATE appointments SET "statusId" = "statusId" WHERE id = $1`}, 0},
		{"inserted as Check-in", checkin, nil, 0},
		{"from Check-in away", checkin, []string{fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, other)}, 0},
		{"twice", agendado, []string{
			fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, checkin),
			fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, agendado),
			fmt.Sprintf(`UPDATE appointments SET "statusId" = %d WHERE id = $1`, checkin),
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := appointment(t, b.conn, tc.from, 3)
			for _, u := range tc.updates {
				exec(t, b.conn, u, id)
			}
			n := scan[int](t, b.conn, "SELECT count(*) FROM notifier.events WHERE row_id = $1 AND event = 'appointments.checkin'", id)
			if n != tc.want {
				t.Errorf("%d appointments.checkin events, want %d", n, tc.want)
			}
			if n := scan[int](t, b.conn, "SELECT count(*) FROM notifier.events WHERE row_id = $1 AND event = 'appointments.created' AND account_id = 3", id); n != 1 {
				t.Errorf("%d appointments.created events, want 1", n)
			}
		})
	}
}

func TestNullAccount(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	id := appointment(t, b.conn, 1, nil)
	exec(t, b.conn, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, statusID(t, b.conn, "Check-in"), id)
	doctor(t, b.conn, nil)
	checkEvents(t, events(t, b.conn))
}

// TestAppRole: the app's own role, with no privilege on schema notifier, writes as
// before and its changes are logged.
func TestAppRole(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).up(t)
	ctx := t.Context()
	app := role(t, b, "")
	exec(t, b.conn, fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %[1]s;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %[1]s`, app))

	conn := connect(t, b.url)
	exec(t, conn, "SET ROLE "+app)
	for _, q := range []string{
		"SELECT count(*) FROM notifier.events",
		"SELECT notifier.rebase(1)",
		"INSERT INTO notifier.events (id, event, row_id, account_id) VALUES (-1, 'doctors.created', 1, 1)",
		"INSERT INTO notifier.pending (seq, rule, row_id, opens_flush) VALUES (1, 'doctors', 1, true)",
		"SELECT notifier.lookup('statuses', 1)",
		"SELECT * FROM notifier.derive()",
		"BEGIN; LOCK TABLE notifier.commit_lock; COMMIT",
	} {
		_, err := conn.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as the app: %v, want insufficient_privilege", q, err)
		}
		_, _ = conn.Exec(ctx, "ROLLBACK") // after the LOCK's aborted transaction block
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	id := appointment(t, tx, 1, 1)
	d := doctor(t, tx, 1)
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit as the app role: %v", err)
	}
	exec(t, conn, `UPDATE appointments SET "statusId" = 2 WHERE id = $1`, id)
	checkEvents(t, events(t, b.conn),
		event{Event: "appointments.created", Row: id, Account: 1},
		event{Event: "doctors.created", Row: d, Account: 1},
		event{Event: "appointments.updated", Row: id, Account: 1},
		event{Event: "appointments.status.changed", Row: id, Account: 1},
		event{Event: "appointments.checkin", Row: id, Account: 1})
}

// TestOtherSchema: the clinic tables live in a schema other than public, found via
// search_path at migration time; the statuses lookup mirrors the table beside them.
func TestOtherSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	exec(t, b.conn, "CREATE SCHEMA clinic; SET search_path = clinic")
	b.clinic(t).up(t)
	if n := scan[int](t, b.conn, `SELECT count(*) FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
WHERE tg.tgname LIKE 'notifier%' AND c.relnamespace = 'clinic'::regnamespace`); n != 4 {
		t.Errorf("%d notifier triggers on clinic.*, want 4", n)
	}
	// A same-named statuses table elsewhere must not be consulted.
	exec(t, b.conn, `SET search_path = public; CREATE TABLE statuses (id int, name text); INSERT INTO statuses VALUES (3, 'Check-in')`)
	id := scan[int64](t, b.conn, `INSERT INTO clinic.appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (now(), '09:00', '09:15', 1, 1, 1, 1) RETURNING id`)
	exec(t, b.conn, `UPDATE clinic.appointments SET "statusId" = 3 WHERE id = $1`, id) // "Em atendimento" in clinic
	exec(t, b.conn, `UPDATE clinic.appointments SET "statusId" = 2 WHERE id = $1`, id) // "Check-in" in clinic
	checkEvents(t, events(t, b.conn),
		event{Event: "appointments.created", Row: id, Account: 1},
		event{Event: "appointments.updated", Row: id, Account: 1},
		event{Event: "appointments.status.changed", Row: id, Account: 1},
		event{Event: "appointments.serving", Row: id, Account: 1},
		event{Event: "appointments.updated", Row: id, Account: 1},
		event{Event: "appointments.status.changed", Row: id, Account: 1},
		event{Event: "appointments.checkin", Row: id, Account: 1})

	exec(t, b.conn, "SET search_path = clinic")
	if reverted, err := migrate.Down(t.Context(), b.conn, load(t)); err != nil || len(reverted) == 0 {
		t.Fatalf("Down: %+v, %v", reverted, err)
	}
	if n := len(notifierTriggers(t, b.conn)); n != 0 {
		t.Errorf("%d notifier triggers after Down", n)
	}
}
