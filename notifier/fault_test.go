package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/pgtest"
)

// TestPostgresRestart: Postgres stops (fast, then immediate) while a writer keeps
// retrying; /readyz says 503 meanwhile; afterwards every committed row's event reaches
// the client, which never reconnected, exactly once and in order.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cluster, dbURL := pgtest.Cluster(t)
			b := setup(t, func(o *setupOpts) { o.dbURL = dbURL })
			c := b.dial(t, 1, nil)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			committed := make(chan struct{}, 1000)
			wg.Add(1)
			go func() { // the clinic app: retries every failed insert
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := b.db.Exec(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, 1, 1, 1)`); err == nil {
						select {
						case committed <- struct{}{}:
						default:
						}
					}
				}
			}()
			for range 20 {
				<-committed
			}
			if err := cluster.Stop(t.Context(), mode); err != nil {
				t.Fatal(err)
			}
			waitReady(t, b, http.StatusServiceUnavailable)
			if err := cluster.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			waitReady(t, b, http.StatusOK)
			for range 20 {
				<-committed
			}
			cancel()
			wg.Wait()

			// The database's truth: every appointment that exists.
			var rows int
			if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM appointments WHERE "accountId" = 1`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			prev := int64(0)
			for range rows {
				f := c.next(t)
				if f.ID <= prev || seen[f.rowID(t)] {
					t.Fatalf("event %d (appointment %d) after %d: duplicate or out of order", f.ID, f.rowID(t), prev)
				}
				prev = f.ID
				seen[f.rowID(t)] = true
			}
			t.Logf("%s stop: %d committed appointments delivered once, in order, to a client that stayed connected", mode, rows)
		})
	}
}

// waitReady polls /readyz until it answers status.
func waitReady(t *testing.T, b *testBundle, status int) {
	t.Helper()
	waitReadyz(t, b, fmt.Sprintf("answered %d", status), func(got int, _ string) bool { return got == status })
}

// waitReadyReason waits until /readyz answers 503 with a reason containing want.
func waitReadyReason(t *testing.T, b *testBundle, want string) {
	t.Helper()
	waitReadyz(t, b, fmt.Sprintf("said %q", want), func(got int, reason string) bool {
		return got == http.StatusServiceUnavailable && strings.Contains(reason, want)
	})
}

// waitReadyz polls /readyz until ok accepts its status and reason.
func waitReadyz(t *testing.T, b *testBundle, what string, ok func(status int, reason string) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := http.Get(b.base + "/readyz")
		if err == nil {
			var body struct{ Reason string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if ok(resp.StatusCode, body.Reason) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never %s", what)
		}
		time.Sleep(20 * time.Millisecond) // an HTTP endpoint: polling is its contract
	}
}

// TestEnrichmentFailureIsolated: when the database refuses to enrich one row (here a
// row-level security policy that raises for one patient), that event is still
// delivered, partial and flagged, and the others of its burst are whole.
func TestEnrichmentFailureIsolated(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.Database(t)
	admin, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	role := "reader_" + strings.ReplaceAll(strings.TrimPrefix(dbName(t, admin), "notifier_"), "-", "_")
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		// Index lookups, so the policy below runs only on the rows a query reaches.
		`ALTER ROLE ` + role + ` SET enable_seqscan = off`,
		`ALTER ROLE ` + role + ` SET enable_hashjoin = off`,
		`ALTER ROLE ` + role + ` SET enable_mergejoin = off`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT USAGE ON SCHEMA notifier TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA notifier TO ` + role,
		`INSERT INTO patients (name, "accountId") VALUES ('Explode', 1)`,
		`ALTER TABLE patients ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY boom ON patients USING (CASE WHEN name = 'Explode' THEN 1 / (length(name) - 7) = 1 ELSE true END)`,
	} {
		if _, err := admin.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { // after the notifier stopped, before the database is dropped
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Errorf("drop role: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	b := setup(t, func(o *setupOpts) { o.dbURL = dbURL; o.mutate = func(c *configT) { c.Database.URL = u.String() } })
	c := b.dial(t, 1, nil)

	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, patient := range []string{"1", "(SELECT id FROM patients WHERE name = 'Explode')", "2"} {
		var id int64
		if err := tx.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, `+patient+`, 1, 1) RETURNING id`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, f := range c.nextN(t, 3) {
		if f.rowID(t) != ids[i] {
			t.Fatalf("frame %d = %s, want appointment %d", i, f.raw, ids[i])
		}
		if wantPartial := i == 1; f.Partial != wantPartial {
			t.Fatalf("frame %d partial = %v: %s", i, f.Partial, f.raw)
		}
		if i != 1 && f.object(t)["patient"] == nil {
			t.Fatalf("frame %d lost its enrichment: %s", i, f.raw)
		}
	}
}

func dbName(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
