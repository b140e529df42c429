package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/pgtest"
)

// withoutMainEnv makes TestMain skip pgtest.Main, for TestWithoutMain's child.
const withoutMainEnv = "PGTEST_TEST_WITHOUT_MAIN"

// Counts of prepare calls: on Main's template, and on Cluster's databases.
var templatePrepares, clusterPrepares atomic.Int32

func TestMain(m *testing.M) {
	if os.Getenv(withoutMainEnv) == "1" {
		os.Exit(m.Run())
	}
	pgtest.Main(m, prepare)
}

// prepare creates and seeds a table, and counts where it ran.
func prepare(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("current database: %w", err)
	}
	switch {
	case strings.HasPrefix(db, "notifier_tmpl_"):
		templatePrepares.Add(1)
	case db == "notifier":
		clusterPrepares.Add(1)
	default:
		return fmt.Errorf("prepare ran on unexpected database %q", db)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE seeded (id int PRIMARY KEY); INSERT INTO seeded VALUES (1), (2)")
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

func connect(t testing.TB, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connString)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func scan[T any](t testing.TB, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestDatabaseIsolated(t *testing.T) {
	t.Parallel()
	a := connect(t, pgtest.Database(t))
	b := connect(t, pgtest.Database(t))

	nameA := scan[string](t, a, "SELECT current_database()")
	nameB := scan[string](t, b, "SELECT current_database()")
	if nameA == nameB || !strings.HasPrefix(nameA, "notifier_t_") || !strings.HasPrefix(nameB, "notifier_t_") {
		t.Fatalf("databases %q and %q: want two distinct notifier_t_ names", nameA, nameB)
	}
	for _, conn := range []*pgx.Conn{a, b} {
		if n := scan[int](t, conn, "SELECT count(*) FROM seeded"); n != 2 {
			t.Errorf("seeded rows = %d, want 2 (cloned from the template)", n)
		}
	}
	if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_a (id int); DELETE FROM seeded"); err != nil {
		t.Fatal(err)
	}
	if exists := scan[bool](t, b, "SELECT to_regclass('only_in_a') IS NOT NULL"); exists {
		t.Error("table created in one test database is visible in another")
	}
	if n := scan[int](t, b, "SELECT count(*) FROM seeded"); n != 2 {
		t.Errorf("seeded rows in b after deleting in a = %d, want 2", n)
	}
}

func TestDatabaseParallel(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, pgtest.Database(t))
			name := scan[string](t, conn, "SELECT current_database()")
			mu.Lock()
			defer mu.Unlock()
			if seen[name] {
				t.Errorf("database %s handed out twice", name)
			}
			seen[name] = true
		})
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("use", func(t *testing.T) {
		// Left connected on purpose: the drop must force it off.
		conn, err := pgx.Connect(t.Context(), pgtest.Database(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		name = scan[string](t, conn, "SELECT current_database()")
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
	})
	admin := connect(t, pgtest.Database(t))
	if n := scan[int](t, admin, "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestPrepareRunsOnce(t *testing.T) {
	t.Parallel()
	for range 3 {
		pgtest.Database(t)
	}
	if n := templatePrepares.Load(); n != 1 {
		t.Errorf("prepare ran %d times on a template, want once", n)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	before := clusterPrepares.Load()
	c, cs := pgtest.Cluster(t)
	if n := clusterPrepares.Load() - before; n < 1 {
		t.Fatalf("prepare did not run on the cluster's database")
	}
	conn := connect(t, cs)
	if n := scan[int](t, conn, "SELECT count(*) FROM seeded"); n != 2 {
		t.Errorf("seeded rows = %d, want 2", n)
	}
	if err := c.Stop(ctx, "immediate"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("ping through a crashed server succeeded")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	conn = connect(t, cs)
	if n := scan[int](t, conn, "SELECT count(*) FROM seeded"); n != 2 {
		t.Errorf("seeded rows after restart = %d, want 2", n)
	}
}

// TestWithoutMain runs TestWithoutMainChild in a child process whose
// TestMain does not call pgtest.Main, and expects a clear failure.
func TestWithoutMain(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestWithoutMainChild$", "-test.v")
	cmd.Env = append(os.Environ(), withoutMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err == nil {
		t.Fatal("child passed; want pgtest.Database to fail it")
	}
	if !strings.Contains(string(out), "must call pgtest.Main") {
		t.Errorf("child output does not say TestMain must call pgtest.Main")
	}
}

func TestWithoutMainChild(t *testing.T) {
	if os.Getenv(withoutMainEnv) != "1" {
		t.Skip("run by TestWithoutMain")
	}
	pgtest.Database(t)
	t.Error("pgtest.Database returned without pgtest.Main")
}
