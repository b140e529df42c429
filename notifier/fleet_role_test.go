package notifier_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/config"
)

// waitRole waits until /metrics reports notifier_fleet_role = role (1 leader,
// 3 fallback).
func (b *testBundle) waitRole(t *testing.T, role string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(b.metrics(t), "\nnotifier_fleet_role "+role+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("notifier_fleet_role never became %s", role)
		}
		time.Sleep(20 * time.Millisecond) // /metrics is polled by design
	}
}

// TestFleetLeaseLost: a leader that finds another holder in the lease at renewal
// stops leading; when that holder cannot be reached it reads the log alone
// (fallback), and its clients miss nothing; once the lease lapses it leads again.
func TestFleetLeaseLost(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *config.Config) {
			c.Fleet.AdvertiseURL = "http://127.0.0.1:1"
			c.Fleet.Lease = time.Second
		}
	})
	c := b.dial(t, 1, nil)
	b.waitRole(t, "1")
	if id := b.insertAppointment(t, 1); c.next(t).rowID(t) != id {
		t.Fatal("leader: wrong event")
	}

	// Another instance took the lease (as after a partition longer than the lease);
	// its URL refuses connections.
	b.exec(t, `UPDATE notifier.fleet_lease SET holder = 'elsewhere', url = 'http://127.0.0.1:1', term = term + 1, expires_at = now() + interval '1 hour'`)
	b.waitRole(t, "3")
	if id := b.insertAppointment(t, 1); c.next(t).rowID(t) != id {
		t.Fatal("fallback: wrong event")
	}

	b.exec(t, `UPDATE notifier.fleet_lease SET expires_at = '-infinity'`)
	b.waitRole(t, "1")
	if id := b.insertAppointment(t, 1); c.next(t).rowID(t) != id {
		t.Fatal("leader again: wrong event")
	}
	var holder string
	if err := b.db.QueryRow(t.Context(), `SELECT holder FROM notifier.fleet_lease`).Scan(&holder); err != nil || holder == "elsewhere" {
		t.Fatalf("lease holder %q, %v: want this instance's", holder, err)
	}
}
