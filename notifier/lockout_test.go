package notifier_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestResumeLockout: a dashboard away longer than hub.max_lag resumes with ?since
// while a second dashboard of its account keeps the room open. It gets what it missed,
// then live events, on every retry, never a 4008 close: having been away is not being
// slow. From the room's ring, and from the log below the ring's floor.
func TestResumeLockout(t *testing.T) {
	t.Parallel()
	const maxLag = time.Second // the least hub.max_lag allowed
	for _, buffer := range []int{1024, 2} {
		t.Run(fmt.Sprint("replay_buffer=", buffer), func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(o *setupOpts) {
				o.mutate = func(c *configT) { c.Hub.MaxLag, c.Hub.ReplayBuffer = maxLag, buffer }
			})
			c := b.dial(t, 1, nil)
			keep := b.dial(t, 1, nil) // keeps the room open while c is away
			b.insertAppointment(t, 1)
			last := c.next(t).ID
			keep.next(t)
			c.conn.Close()

			var missed []int64
			for range 5 {
				missed = append(missed, b.insertAppointment(t, 1))
			}
			keep.nextN(t, 5)
			published := time.Now() // keep got them: they were all published before
			// Being away longer than max_lag is what this test is about: no signal to
			// wait for but the clock.
			time.Sleep(time.Until(published.Add(maxLag + 250*time.Millisecond)))

			for try := range 2 {
				r := b.dial(t, 1, url.Values{"since": {itoa(last)}})
				for i, f := range r.nextN(t, len(missed)) {
					if f.rowID(t) != missed[i] {
						t.Fatalf("try %d: frame %d is %s, want appointment %d", try, i, f.raw, missed[i])
					}
				}
				id := b.insertAppointment(t, 1)
				if f := r.next(t); f.rowID(t) != id {
					t.Fatalf("try %d: live frame %s, want appointment %d", try, f.raw, id)
				}
				keep.next(t)
				missed = append(missed, id)
				r.conn.Close()
			}
		})
	}
}
