package socketio

import "time"

// AwaitQueued blocks until the session sid holds n inputs its loop has not taken
// yet, and reports false if the session is unknown or ends first. The tests call it
// while they hold the loop (in Config.NowFunc): it takes the loop's wake-up signal
// to wait on, and gives it back.
func (hd *Handler) AwaitQueued(sid string, n int) bool {
	s := hd.lookup(sid)
	if s == nil {
		return false
	}
	defer signal(s.ready)
	for {
		if s.queued() >= n {
			return true
		}
		select {
		case <-s.ready:
		case <-s.done:
			return false
		}
	}
}

// SetArrivalWait replaces arrivalWait, before the server starts: a test
// that holds a request back on purpose makes the wait longer than any scheduling
// delay of a loaded machine.
func (hd *Handler) SetArrivalWait(d time.Duration) { hd.arrivalWait = d }

// OnHold has f called, in the loop, each time a session's loop holds a request
// back for an earlier arrival (order.go). Set before the server starts.
func (hd *Handler) OnHold(f func(sid string)) {
	hd.onHold = func(s *session) { f(s.id) }
}
