package notifier_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestLogWentBack: the database loses its last commits (as a crash with asynchronous
// commit, a failover to an asynchronous standby or a restore would) and reuses their
// ids for other rows. The notifier notices when its listener reconnects: connected
// clients get notifier.resync, new events get ids above every id delivered, a client
// resuming from a lost id gets resync, and nobody gets a reused id's event.
func TestLogWentBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	for range 3 {
		b.insertAppointment(t, 1)
	}
	got := c.nextN(t, 3)
	kept, lost := got[0].ID, got[2].ID
	// Lose the last two commits' log rows and let the sequence go back with them.
	b.exec(t, `DELETE FROM notifier.events WHERE id > $1`, kept)
	b.exec(t, `SELECT setval('notifier.events_id_seq', $1)`, kept)
	reused := []int64{b.insertAppointment(t, 2), b.insertAppointment(t, 1)} // ids kept+1, kept+2 again
	b.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'notifier-listen'`)

	if f := c.next(t); f.Event != "notifier.resync" {
		t.Fatalf("after the log went back: %s, want notifier.resync", f.raw)
	}
	fresh := b.insertAppointment(t, 1)
	f := c.next(t)
	if f.rowID(t) != fresh || f.ID <= lost {
		t.Fatalf("then %s (id %d), want appointment %d with an id above %d", f.raw, f.ID, fresh, lost)
	}
	for _, r := range reused {
		if strings.Contains(string(f.raw), `"id":`+strconv.FormatInt(r, 10)+`,"date"`) {
			t.Errorf("a row written under a reused id reached the client: %s", f.raw)
		}
	}
	r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(kept+1, 10)}})
	if f := r.next(t); f.Event != "notifier.resync" {
		t.Fatalf("resume from a lost id: %s, want notifier.resync", f.raw)
	}
	if n := b.metrics(t); !strings.Contains(n, "notifier_log_rebases_total 1") {
		t.Errorf("metrics do not count the rebase")
	}
}
