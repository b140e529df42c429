package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/pgcluster"
	"github.com/pgnotifier/notifier/sql"
)

// TestDemoExistingDatabase: `demo --database-url` on a database that already has the
// clinic's tables creates only what is missing, lets the simulator write there, and
// drops nothing when it stops; a second run installs nothing again.
func TestDemoExistingDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs PostgreSQL")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), browserStartTimeout)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if errors.Is(err, pgcluster.ErrNotInstalled) {
		t.Skipf("PostgreSQL server programs not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.Close(context.Background()); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	admin := connectDB(t, cluster.ConnString("postgres"))
	if _, err := admin.Exec(ctx, "CREATE DATABASE clinic"); err != nil {
		t.Fatal(err)
	}
	dbURL := cluster.ConnString("clinic")
	db := connectDB(t, dbURL)
	// The app's database: its tables, its own statuses, and a table of its own.
	for _, stmt := range []string{
		sql.Schema,
		`INSERT INTO statuses (name, color) VALUES ('Agendado', '#ffc107'), ('Check-in', '#17a2b8'), ('Faltou', '#999999')`,
		`CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1), (2), (3)`,
	} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// The triggers NOTIFY on every event: the signal that the simulator writes.
	listener := connectDB(t, dbURL)
	if _, err := listener.Exec(ctx, "LISTEN notifier"); err != nil {
		t.Fatal(err)
	}

	bin := buildNotifier(t)
	demo := startDemo(t, bin, "--database-url", dbURL, "--http-addr", "127.0.0.1:0", "--rate", "50", "--log-format", "text")
	demo.waitFor(t, dashboardURL, browserStartTimeout)
	// Until both accounts have new appointments.
	booked := map[int64]bool{}
	for len(booked) < 2 {
		wctx, wcancel := context.WithTimeout(t.Context(), browserStartTimeout)
		n, err := listener.WaitForNotification(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("waiting for the simulator's events (booked for %v): %v\n%s", booked, err, demo.output())
		}
		var p struct {
			Event   string `json:"event"`
			Account int64  `json:"account"`
		}
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			t.Fatalf("notification %q: %v", n.Payload, err)
		}
		if p.Event == "appointments.created" {
			booked[p.Account] = true
		}
	}
	if code := demo.stop(t); code != 0 {
		t.Fatalf("demo exited with status %d\n%s", code, demo.output())
	}
	out := demo.output()
	for _, unwanted := range []string{"throwaway", "initdb"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("demo on an existing database mentions %q:\n%s", unwanted, out)
		}
	}
	if !strings.Contains(out, "installed triggers 0001_event_log") {
		t.Errorf("first run did not install the triggers:\n%s", out)
	}

	count := func(query string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(t.Context(), query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM keep_me`); n != 3 {
		t.Errorf("keep_me has %d rows, want its 3", n)
	}
	if n := count(`SELECT count(*) FROM statuses`); n != 3 {
		t.Errorf("statuses has %d rows, want the app's 3 (the seed fills only empty tables)", n)
	}
	if n := count(`SELECT count(DISTINCT "accountId") FROM appointments`); n != 2 {
		t.Errorf("appointments of %d accounts, want the simulator's 2", n)
	}

	// Again: nothing left to install, nothing dropped.
	again := startDemo(t, bin, "--database-url", dbURL, "--http-addr", "127.0.0.1:0", "--rate", "0", "--log-format", "text")
	again.waitFor(t, dashboardURL, browserStartTimeout)
	if code := again.stop(t); code != 0 {
		t.Fatalf("second demo exited with status %d\n%s", code, again.output())
	}
	if out := again.output(); strings.Contains(out, "installed triggers") || !strings.Contains(out, "simulated clinic: off") {
		t.Errorf("second run on the same database:\n%s", out)
	}
	if n := count(`SELECT count(*) FROM keep_me`); n != 3 {
		t.Errorf("keep_me has %d rows after the second run, want 3", n)
	}
}

func connectDB(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
