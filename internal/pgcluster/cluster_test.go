package pgcluster_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgnotifier/notifier/internal/pgcluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends a cluster's records to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startCluster starts a cluster that is closed when the test ends, and logs
// how long the start took.
func startCluster(t *testing.T, opts pgcluster.Options) *pgcluster.Cluster {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	began := time.Now()
	c, err := pgcluster.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("cluster started in %v on port %d", time.Since(began), c.Port())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connString)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestFindBin(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		p, err := pgcluster.FindBin(name)
		if err != nil {
			t.Fatalf("FindBin(%q): %v", name, err)
		}
		if !filepath.IsAbs(p) || filepath.Base(p) != name {
			t.Errorf("FindBin(%q) = %q, want an absolute path to %s", name, p, name)
		}
		t.Logf("%s: %s", name, p)
	}

	_, err := pgcluster.FindBin("pgcluster_no_such_program")
	if !errors.Is(err, pgcluster.ErrNotInstalled) {
		t.Fatalf("FindBin(missing) error = %v, want ErrNotInstalled", err)
	}
	for _, hint := range []string{"apt-get install postgresql", "brew install postgresql"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("FindBin(missing) error %q does not mention %q", err, hint)
		}
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := startCluster(t, pgcluster.Options{Settings: map[string]string{"work_mem": "8MB"}})
	cs := c.ConnString("postgres")

	conn := connect(t, cs)
	for setting, want := range map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "300",
		"listen_addresses":   "127.0.0.1",
		"server_encoding":    "UTF8",
		"lc_collate":         "C",
		"work_mem":           "8MB",
	} {
		if got := queryString(t, conn, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	_ = conn.Close(ctx)

	checkDown := func() {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(cctx, cs); err == nil {
			_ = conn.Close(ctx)
			t.Fatal("connected to a stopped server")
		}
	}
	checkRows := func() {
		t.Helper()
		conn := connect(t, cs)
		if got := queryString(t, conn, "SELECT count(*)::text FROM kept"); got != "1" {
			t.Errorf("rows in kept = %s, want 1", got)
		}
		_ = conn.Close(ctx)
	}

	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatalf("stop fast: %v", err)
	}
	checkDown()
	if err := c.Stop(ctx, "fast"); err == nil {
		t.Error("stopping a stopped server succeeded")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("restart after fast stop: %v", err)
	}
	checkRows()

	// A client connected through a crash sees its connection fail.
	held := connect(t, cs)
	if err := c.Stop(ctx, "immediate"); err != nil {
		t.Fatalf("stop immediate: %v", err)
	}
	if _, err := held.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("query on a connection to a crashed server succeeded")
	}
	checkDown()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("restart after immediate stop: %v", err)
	}
	checkRows()

	// Restart of a running server restarts it.
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("restart while running: %v", err)
	}
	checkRows()

	if err := c.Stop(ctx, "bogus"); err == nil {
		t.Error("stop with an unknown mode succeeded")
	}

	dir := c.Dir()
	if _, err := os.Stat(filepath.Join(dir, "postgres.log")); err != nil {
		t.Errorf("server log: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory after close: stat error %v, want not exist", err)
	}
	checkDown()
	if err := c.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := c.Restart(ctx); err == nil {
		t.Error("restart after close succeeded")
	}
}

func TestCloseStopped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := startCluster(t, pgcluster.Options{})
	if err := c.Stop(ctx, "immediate"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close a stopped cluster: %v", err)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory after close: stat error %v, want not exist", err)
	}
}

func TestConcurrentStart(t *testing.T) {
	t.Parallel()
	const n = 3
	clusters := make([]*pgcluster.Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			clusters[i], errs[i] = pgcluster.Start(t.Context(), pgcluster.Options{Logger: testLogger(t)})
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clusters {
			if c != nil {
				if err := c.Close(context.Background()); err != nil {
					t.Errorf("close: %v", err)
				}
			}
		}
	})
	ports := map[int]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		c := clusters[i]
		if ports[c.Port()] {
			t.Errorf("port %d used twice", c.Port())
		}
		ports[c.Port()] = true
		conn := connect(t, c.ConnString("postgres"))
		if got := queryString(t, conn, "SELECT 'ok'"); got != "ok" {
			t.Errorf("cluster %d: got %q", i, got)
		}
		_ = conn.Close(t.Context())
	}
}

// searchableTempDir returns an empty directory the server user can reach
// when the test runs as root (t.TempDir's parent is private to root).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	parent := searchableTempDir(t)

	port := l.Addr().(*net.TCPAddr).Port
	_, err = pgcluster.Start(t.Context(), pgcluster.Options{Dir: parent, Port: port, Logger: testLogger(t)})
	if err == nil {
		t.Fatal("start on a taken port succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("error %q does not say the address is in use", err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("failed start left %d entries in %s", len(entries), parent)
	}
}

func TestStartRejectsSettings(t *testing.T) {
	t.Parallel()
	for _, settings := range []map[string]string{
		{"port": "5432"},
		{"listen_addresses": "*"},
		{"work_mem = 1\nfsync": "on"},
		{"work_mem": "1MB'\nfsync = 'on"},
	} {
		_, err := pgcluster.Start(t.Context(), pgcluster.Options{Settings: settings})
		if err == nil {
			t.Errorf("Start with settings %q succeeded", settings)
		}
	}
}

func TestStartDirNotSearchable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the server as another user")
	}
	private := t.TempDir() // 0700, owned by root
	_, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: private})
	if err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Fatalf("Start under a private directory: error %v, want one saying it is not searchable", err)
	}
	entries, err := os.ReadDir(private)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("failed start left %d entries in %s", len(entries), private)
	}
}
