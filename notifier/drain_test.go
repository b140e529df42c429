package notifier_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDrainDelay: on shutdown an instance first answers /readyz 503 "draining" for
// http.drain_delay while it still delivers to the clients it has, then closes them
// with 1001, so a load balancer moves new clients away before the old ones go.
func TestDrainDelay(t *testing.T) {
	t.Parallel()
	const drain = 2 * time.Second
	b := setup(t, func(o *setupOpts) { o.mutate = func(c *configT) { c.HTTP.DrainDelay = drain } })
	c := b.dial(t, 1, nil)
	b.cancel() // SIGTERM, as cmd/notifier maps it
	b.cancel = nil
	began := time.Now()
	waitReadyReason(t, b, "draining")
	id := b.insertAppointment(t, 1) // committed while draining: still delivered
	if f := c.next(t); f.rowID(t) != id {
		t.Fatalf("while draining got %s, want appointment %d", f.raw, id)
	}
	ce := c.closeErr(t)
	if ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close %d %q, want 1001", ce.Code, ce.Text)
	}
	if waited := time.Since(began); waited < drain {
		t.Errorf("closed after %s, before the drain delay (%s) ended", waited, drain)
	}
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("notifier.Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Error("notifier did not stop in time")
	}
}
