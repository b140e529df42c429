package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/pgcluster"
	clinicsql "github.com/pgnotifier/notifier/sql"
)

// env is what every scenario runs against: a database server, the clinic database with
// the triggers, the notifier binary and the secret its tokens are signed with.
type env struct {
	opts    options
	log     io.Writer // progress lines
	tmp     string    // removed by close
	bin     string    // the notifier binary
	secret  string
	cluster *pgcluster.Cluster // nil with --database-url
	baseURL string             // a database to run CREATE DATABASE from
	dbURL   string             // the clinic database with the triggers
	pg      pgInfo
	rev     string      // the notifier binary's VCS revision, from its build information
	dbName  string      // the clinic database's name
	stats   *statements // nil when the server does not load pg_stat_statements
}

// pgInfo records the server settings the figures depend on.
type pgInfo struct {
	Version           string `json:"version"`
	Throwaway         bool   `json:"throwaway"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
	SharedBuffers     string `json:"shared_buffers"`
	PreloadLibraries  string `json:"shared_preload_libraries"`
	MaxConnections    string `json:"max_connections"`
}

// mainDB is the database the latency, throughput and memory scenarios use.
const mainDB = "notifier_load"

func setup(ctx context.Context, opts options, log io.Writer) (e *env, err error) {
	tmp, err := os.MkdirTemp("", "notifier-load-")
	if err != nil {
		return nil, err
	}
	e = &env{opts: opts, log: log, tmp: tmp}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()

	if e.bin = opts.notifier; e.bin == "" {
		e.bin = filepath.Join(tmp, "notifier")
		e.progress("building the notifier (go build -o %s)", e.bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=auto", "-o", e.bin, "github.com/pgnotifier/notifier/cmd/notifier")
		if out, err := cmd.CombinedOutput(); err != nil {
			return e, fmt.Errorf("go build the notifier (run from the module, or pass --notifier): %w\n%s", err, out)
		}
	}
	e.rev = binaryRevision(e.bin)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return e, err
	}
	e.secret = hex.EncodeToString(secret) // 64 bytes

	if opts.databaseURL != "" {
		e.baseURL, e.dbURL = opts.databaseURL, opts.databaseURL
	} else {
		e.progress("starting a throwaway PostgreSQL")
		// pg_stat_statements shows what the notifier's queries cost the server.
		settings := map[string]string{"shared_preload_libraries": "pg_stat_statements"}
		for k, v := range opts.pgSet {
			settings[k] = v
		}
		if e.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Settings: settings}); err != nil {
			return e, err
		}
		e.baseURL = e.cluster.ConnString("postgres")
		if err := createDB(ctx, e.baseURL, mainDB); err != nil {
			return e, err
		}
		e.dbURL = e.cluster.ConnString(mainDB)
	}
	if err := e.readPGInfo(ctx, e.dbURL); err != nil {
		return e, err
	}
	if err := prepareDB(ctx, e.dbURL, opts.fkIndexes); err != nil {
		return e, err
	}
	if opts.preload > 0 {
		e.progress("preloading %d appointments", opts.preload)
		if err := preload(ctx, e.dbURL, opts.preload); err != nil {
			return e, err
		}
	}
	if _, err := e.notifierCmd(ctx, e.dbURL, "migrate", "up"); err != nil {
		return e, err
	}
	if e.stats, err = openStatements(ctx, e.dbURL); err != nil {
		return e, err
	}
	if e.stats == nil {
		e.progress("pg_stat_statements is not loaded: no per-statement breakdown")
	}
	return e, nil
}

func (e *env) close() {
	e.stats.close(context.Background())
	if e.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.cluster.Close(ctx); err != nil {
			e.progress("remove throwaway PostgreSQL: %v", err)
		}
	}
	if e.opts.keep {
		e.progress("kept %s (notifier logs)", e.tmp)
		return
	}
	_ = os.RemoveAll(e.tmp)
}

func (e *env) progress(format string, args ...any) {
	if e.log != nil {
		fmt.Fprintf(e.log, "notifier-load: "+format+"\n", args...)
	}
}

// notifierEnv is the environment the notifier runs with: the tool's, without any
// NOTIFIER_* setting of the caller's, plus the database, the secret and extra.
func (e *env) notifierEnv(dbURL string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFIER_") {
			out = append(out, kv)
		}
	}
	out = append(out, "NOTIFIER_DATABASE_URL="+dbURL, "NOTIFIER_AUTH_JWT_SECRET="+e.secret)
	return append(out, extra...)
}

// notifierCmd runs a short notifier command and returns its standard output.
func (e *env) notifierCmd(ctx context.Context, dbURL string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = e.notifierEnv(dbURL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("notifier %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// token mints a token for account with `notifier token`.
func (e *env) token(ctx context.Context, account int64) (string, error) {
	out, err := e.notifierCmd(ctx, e.dbURL, "token", "--account", fmt.Sprint(account), "--ttl", "2h")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// postgresCPU returns the server's CPU time, or false when it is not ours to look at.
func (e *env) postgresCPU() (time.Duration, bool) {
	if e.cluster == nil {
		return 0, false
	}
	pid, err := postmasterPID(filepath.Join(e.cluster.Dir(), "data"))
	if err != nil {
		return 0, false
	}
	d, err := clusterCPU(pid)
	return d, err == nil
}

// dbURLFor returns the URL of database name on the same server as baseURL.
func (e *env) dbURLFor(name string) (string, error) {
	if e.cluster != nil {
		return e.cluster.ConnString(name), nil
	}
	if strings.HasPrefix(e.baseURL, "postgres://") || strings.HasPrefix(e.baseURL, "postgresql://") {
		u, err := url.Parse(e.baseURL)
		if err != nil {
			return "", errors.New("parse --database-url: not a valid URL")
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return e.baseURL + " dbname=" + name, nil
}

func (e *env) readPGInfo(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	e.pg.Throwaway = e.cluster != nil
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&e.dbName); err != nil {
		return fmt.Errorf("read database name: %w", err)
	}
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"server_version", &e.pg.Version},
		{"fsync", &e.pg.Fsync},
		{"synchronous_commit", &e.pg.SynchronousCommit},
		{"full_page_writes", &e.pg.FullPageWrites},
		{"shared_buffers", &e.pg.SharedBuffers},
		{"max_connections", &e.pg.MaxConnections},
		{"shared_preload_libraries", &e.pg.PreloadLibraries},
	} {
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", s.name).Scan(s.dst); err != nil {
			return fmt.Errorf("read setting %s: %w", s.name, err)
		}
	}
	return nil
}

// createDB creates database name (dropping a leftover of an earlier run first).
func createDB(ctx context.Context, baseURL, name string) error {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// dropDB drops database name; used for the databases the tool made on a server it does
// not own.
func dropDB(ctx context.Context, baseURL, name string) error {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// fkIndexesSQL indexes the link tables by their foreign key, then id, as a DBA might;
// the reference schema (like a Prisma one) has no index on them. The id column
// matters: the enrichment query takes a row's first link (ORDER BY id LIMIT 1), and
// with an index on the foreign key alone PostgreSQL walks the primary key in id order
// instead, which costs as much as no index.
const fkIndexesSQL = `CREATE INDEX IF NOT EXISTS appointment_procedures_appointment_id_idx ON appointment_procedures ("appointmentId", id);
CREATE INDEX IF NOT EXISTS doctor_procedures_doctor_id_idx ON doctor_procedures ("doctorId", id)`

// prepareDB creates the reference clinic schema and seed data (both idempotent), and
// with fkIndexes the link tables' indexes.
func prepareDB(ctx context.Context, dbURL string, fkIndexes bool) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, clinicsql.Schema); err != nil {
		return fmt.Errorf("create clinic schema: %w", err)
	}
	if _, err := conn.Exec(ctx, clinicsql.Seed); err != nil {
		return fmt.Errorf("seed clinic data: %w", err)
	}
	if fkIndexes {
		if _, err := conn.Exec(ctx, fkIndexesSQL); err != nil {
			return fmt.Errorf("create link indexes: %w", err)
		}
	}
	return nil
}

// preload writes n appointments (before the triggers exist, so no events) in chunks,
// then analyzes the tables.
func preload(ctx context.Context, dbURL string, n int) error {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const chunk = 100000
	for done := 0; done < n; done += chunk {
		if err := insertMany(ctx, conn, min(chunk, n-done)); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE appointments, appointment_procedures"); err != nil {
		return fmt.Errorf("preload: analyze: %w", err)
	}
	return nil
}

// appointmentCount counts the appointments in the database: the enrichment query's
// cost depends on it where appointment_procedures has no index on "appointmentId".
func appointmentCount(ctx context.Context, dbURL string) (int64, error) {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM appointments").Scan(&n); err != nil {
		return 0, fmt.Errorf("count appointments: %w", err)
	}
	return n, nil
}

// binaryRevision returns the VCS revision a Go binary was built from ("+dirty" when
// the tree had changes), or "unknown".
func binaryRevision(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "+dirty"
	}
	return rev
}

// errNotReady is returned when a service does not become ready in time.
var errNotReady = errors.New("did not become ready")
