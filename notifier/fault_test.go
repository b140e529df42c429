package notifier_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

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
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := http.Get(b.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d", status)
		}
		time.Sleep(20 * time.Millisecond) // an HTTP endpoint: polling is its contract
	}
}
