// Package pgtest gives tests a PostgreSQL database of their own.
//
// A package's TestMain calls Main, which finds a server (the one named by
// NOTIFIER_TEST_DATABASE_URL, or a throwaway pgcluster started for this test
// binary), creates a template database and runs prepare (migrations, seed)
// in it once. Each test then calls Database, which clones the template with
// CREATE DATABASE ... TEMPLATE, so tests run in parallel on isolated
// databases; NOTIFY stays inside a database, so they cannot hear each other
// either. Tests that stop, kill or restart Postgres call Cluster for a server
// of their own, never the shared one.
//
// Every database pgtest creates is dropped: a test's database in its
// Cleanup, the template when Main returns. Main also fails a green run that
// leaves goroutines behind (goleak).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgnotifier/notifier/internal/pgcluster"
)

// EnvDatabaseURL names the environment variable that points the tests at an
// existing server instead of a throwaway cluster. Its user must be allowed to
// CREATE DATABASE; its database is used only to create and drop others.
const EnvDatabaseURL = "NOTIFIER_TEST_DATABASE_URL"

// Timeouts for the steps pgtest takes on the tests' behalf.
const (
	setupTimeout   = 3 * time.Minute // server start, template, prepare
	dbTimeout      = time.Minute     // one CREATE or DROP DATABASE, retries included
	idleTimeout    = 10 * time.Second
	cleanupTimeout = time.Minute
)

// sqlstateObjectInUse is CREATE DATABASE's complaint that another session is
// connected to the template.
const sqlstateObjectInUse = "55006"

// prepareFunc prepares a database (migrations, seed) given its connection
// string; the argument of Main.
type prepareFunc = func(ctx context.Context, connString string) error

// server is the test server Main set up for this test binary.
type server struct {
	admin    *url.URL // database used to create and drop the others
	template string
	prepare  prepareFunc // may be nil
	external bool        // from EnvDatabaseURL; no cluster of ours

	// createMu serialises CREATE DATABASE: two clones of one template at
	// once fail with "source database is being accessed by other users".
	createMu sync.Mutex
}

// current is the server Main set up, nil outside Main. It is package-level
// state, which the house style otherwise forbids, because testing.M gives
// TestMain no other way to hand anything to the tests it runs.
var current atomic.Pointer[server]

// Main runs a package's tests against a test PostgreSQL server and exits
// with their code: NOTIFIER_TEST_DATABASE_URL when set (a server where the
// URL's user may CREATE DATABASE), else an ephemeral cluster from pgcluster
// started for this test binary and closed after m.Run. prepare (may be nil)
// is run once against a fresh template database; Database then clones it.
// prepare must close every connection it opens before it returns: a
// template with sessions cannot be cloned. When the tests pass, Main fails the run if goroutines are left over.
func Main(m *testing.M, prepare func(ctx context.Context, connString string) error) {
	os.Exit(Run(m, prepare))
}

// Run is Main without the exit: it returns the exit code, so a TestMain can clean up
// what it made for the tests before it exits.
func Run(m *testing.M, prepare func(ctx context.Context, connString string) error) int {
	srv, teardown, err := setup(prepare)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	current.Store(srv)
	code := m.Run()
	current.Store(nil)
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// setup finds or starts the server and prepares the template. teardown drops
// the template and closes the cluster, if any.
func setup(prepare prepareFunc) (_ *server, teardown func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	srv := &server{
		template: fmt.Sprintf("notifier_tmpl_%d_%s", os.Getpid(), randomHex(4)),
		prepare:  prepare,
	}
	var cluster *pgcluster.Cluster
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		if srv.admin, err = parseURL(raw); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", EnvDatabaseURL, err)
		}
		srv.external = true
	} else {
		// Main has no test to log through: warnings (port retries) go to
		// stderr, the rest is dropped.
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("start test cluster (or set %s): %w", EnvDatabaseURL, err)
		}
		if srv.admin, err = parseURL(cluster.ConnString("postgres")); err != nil {
			return nil, nil, errors.Join(err, closeCluster(cluster))
		}
	}

	teardown = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		var errs []error
		if err := srv.drop(ctx, srv.template); err != nil {
			errs = append(errs, fmt.Errorf("drop template: %w", err))
		}
		if cluster != nil {
			errs = append(errs, closeCluster(cluster))
		}
		return errors.Join(errs...)
	}
	if err := srv.prepareTemplate(ctx); err != nil {
		return nil, nil, errors.Join(err, teardown())
	}
	return srv, teardown, nil
}

// closeCluster closes a test cluster within cleanupTimeout.
func closeCluster(c *pgcluster.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		return fmt.Errorf("close test cluster: %w", err)
	}
	return nil
}

// prepareTemplate creates the template, runs prepare in it, waits for
// prepare's sessions to end and then closes the template to connections, so
// no stray session (autovacuum, a test connecting by mistake) blocks cloning.
func (s *server) prepareTemplate(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tmpl := pgx.Identifier{s.template}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+tmpl); err != nil {
		return fmt.Errorf("create template %s: %w", s.template, err)
	}
	if s.prepare != nil {
		if err := s.prepare(ctx, s.connString(s.template)); err != nil {
			return fmt.Errorf("prepare template %s: %w", s.template, err)
		}
	}
	if err := waitIdle(ctx, conn, s.template); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+tmpl+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close template %s to connections: %w", s.template, err)
	}
	return nil
}

// waitIdle waits until no session is connected to database: a closed
// connection's backend takes a moment to exit, and CREATE DATABASE ...
// TEMPLATE refuses a template with sessions.
func waitIdle(ctx context.Context, conn *pgx.Conn, database string) error {
	ctx, cancel := context.WithTimeout(ctx, idleTimeout)
	defer cancel()
	for {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database).Scan(&n)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for sessions on %s to end: timed out after %v", database, idleTimeout)
			}
			return fmt.Errorf("count sessions on %s: %w", database, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("template %s still has %d sessions after %v: prepare must close every connection it opens", database, n, idleTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Database creates a new database for one test, cloned from the template
// (CREATE DATABASE x TEMPLATE tmpl), and drops it (WITH (FORCE)) in
// t.Cleanup. Returns its connection string. Safe for parallel tests. It
// fails the test when the package's TestMain does not call Main.
func Database(t testing.TB) string {
	t.Helper()
	srv := current.Load()
	if srv == nil {
		t.Fatal("pgtest.Database: no test server: the package's TestMain must call pgtest.Main(m, prepare)")
		return ""
	}
	name := "notifier_t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(t.Context(), dbTimeout)
	defer cancel()
	if err := srv.clone(ctx, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is done by now; the drop gets its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if err := srv.drop(ctx, name); err != nil {
			t.Errorf("pgtest: drop test database: %v", err)
		}
	})
	return srv.connString(name)
}

// clone creates database name from the template, retrying while another
// session holds the template.
func (s *server) clone(ctx context.Context, name string) error {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return fmt.Errorf("create database %s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{s.template}.Sanitize()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		_, err := conn.Exec(ctx, sql)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != sqlstateObjectInUse {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create database %s: template %s stayed in use: %w", name, s.template, err)
		case <-time.After(wait):
		}
	}
}

// drop drops database name, disconnecting whoever is still connected.
func (s *server) drop(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return fmt.Errorf("drop database %s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// connString returns the admin URL with its database replaced by name.
func (s *server) connString(name string) string {
	u := *s.admin
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Cluster starts a dedicated cluster for a test that stops, kills or
// restarts Postgres (never the shared one), prepared with the same prepare
// func into database "notifier", and closes it in t.Cleanup. It returns the
// cluster and the connection string of the prepared database. The cluster
// logs through the test's output, and commits synchronously, so a crash
// (Stop "immediate") loses no committed transaction. It skips the test when PostgreSQL is not
// installed but NOTIFIER_TEST_DATABASE_URL is set (a CI job with only a
// remote server), and fails it when the package's TestMain does not call Main.
func Cluster(t testing.TB) (*pgcluster.Cluster, string) {
	t.Helper()
	srv := current.Load()
	if srv == nil {
		t.Fatal("pgtest.Cluster: no prepare func: the package's TestMain must call pgtest.Main(m, prepare)")
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		Logger: logger,
		// Crash tests need crash semantics: with asynchronous commit, a
		// Stop "immediate" drops the last commits (prepare's schema, or rows
		// whose NOTIFY was already delivered). With fsync off, a synchronous
		// commit costs only a write to the page cache.
		Settings: map[string]string{"synchronous_commit": "on"},
	})
	if err != nil {
		if srv.external && errors.Is(err, pgcluster.ErrNotInstalled) {
			t.Skipf("pgtest: test needs its own PostgreSQL cluster: %v", err)
		}
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	const name = "notifier"
	if err := createDatabase(ctx, c.ConnString("postgres"), name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cs := c.ConnString(name)
	if srv.prepare != nil {
		if err := srv.prepare(ctx, cs); err != nil {
			t.Fatalf("pgtest: prepare %s: %v", name, err)
		}
	}
	return c, cs
}

// createDatabase creates an empty database through the server at admin.
func createDatabase(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("create database %s: connect: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// parseURL checks that s is a postgres:// URL, the only form whose database
// pgtest can swap.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url errors quote the input, which may hold a password.
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("scheme %q: want a postgres:// URL", u.Scheme)
	}
	return u, nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}
