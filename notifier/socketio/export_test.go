package socketio

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
		s.inMu.Lock()
		have := len(s.inputs)
		s.inMu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-s.ready:
		case <-s.done:
			return false
		}
	}
}
