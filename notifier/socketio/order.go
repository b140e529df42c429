package socketio

import (
	"slices"
	"time"
)

// The session's input queue, in arrival order (arrival.go): requests by stamp,
// frames as their readers read them.

// expect registers a request for s as it arrives, before it reads a body or
// upgrades, and returns its stamp: its connection's (first), when that is its first
// request and came within arrivalWait of the accept, else one taken now. The
// request then enqueues with the stamp, or forgets it; until then the loop applies
// no request stamped after it.
func (s *session) expect(first *connArrival) uint64 {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	var stamp uint64
	if first != nil && time.Since(first.at) < s.hd.arrivalWait {
		stamp = first.stamp
	} else {
		stamp = s.hd.seq.Add(1) // under inMu: no request of s is stamped after it and registered before it
	}
	if !s.inClosed {
		s.expected = append(s.expected, stamp)
	}
	return stamp
}

// forget drops a request's registration when it enqueues nothing (refused, failed, or
// replaced by a kill); after an enqueue it does nothing.
func (s *session) forget(stamp uint64) {
	s.inMu.Lock()
	dropped := s.dropExpectedLocked(stamp)
	s.inMu.Unlock()
	if dropped {
		signal(s.ready)
	}
}

func (s *session) dropExpectedLocked(stamp uint64) bool {
	for i, e := range s.expected {
		if e == stamp {
			s.expected[i] = s.expected[len(s.expected)-1]
			s.expected = s.expected[:len(s.expected)-1]
			return true
		}
	}
	return false
}

// kill asks the loop to end the session, after what arrived before; ReasonShutdown
// ends it gracefully.
func (s *session) kill(reason string) {
	s.enqueue(input{kill: reason}, 0)
}

// enqueue hands x to the loop. A frame (stamp 0) joins its reader's frames; a
// request takes its place by stamp, the one expect gave it (which ends its
// registration), or one taken now when 0 (a kill). False once the loop has ended: x
// was not taken.
func (s *session) enqueue(x input, stamp uint64) bool {
	s.inMu.Lock()
	if s.inClosed {
		s.inMu.Unlock()
		return false
	}
	if c := x.in.conn; c != nil {
		s.frames = append(s.frames, x)
		c.queued++
		c.queuedBytes += len(x.in.payload)
	} else {
		if stamp == 0 {
			stamp = s.hd.seq.Add(1)
		} else {
			s.dropExpectedLocked(stamp)
		}
		i := len(s.requests)
		for i > 0 && s.requests[i-1].stamp > stamp {
			i--
		}
		s.requests = append(s.requests, request{})
		copy(s.requests[i+1:], s.requests[i:])
		s.requests[i] = request{x, stamp}
	}
	s.inMu.Unlock()
	signal(s.ready)
	return true
}

// queued reports how many inputs wait for the loop.
func (s *session) queued() int {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	return len(s.frames) + len(s.requests)
}

// next takes the input to apply now, if any: the oldest frame of a WebSocket whose
// request the loop has taken, else the earliest request once it is due. It runs in
// the loop.
func (s *session) next() (input, bool) {
	s.inMu.Lock()
	if i := s.frameDueLocked(); i >= 0 {
		x := s.frames[i]
		c := x.in.conn
		if i == 0 { // the usual case
			s.frames[0] = input{}
			s.frames = s.frames[1:]
		} else {
			s.frames = slices.Delete(s.frames, i, i+1)
		}
		c.queued--
		c.queuedBytes -= len(x.in.payload)
		more := len(s.frames)+len(s.requests) > 0
		s.inMu.Unlock()
		signal(c.room)
		if more {
			signal(s.ready)
		}
		return x, true
	}
	if len(s.requests) == 0 {
		s.inMu.Unlock()
		return input{}, false
	}
	head := s.requests[0].stamp
	earlier := false
	for _, e := range s.expected {
		earlier = earlier || e < head
	}
	s.inMu.Unlock()
	if !s.due(head, earlier) {
		return input{}, false
	}
	s.inMu.Lock()
	if len(s.requests) == 0 || s.requests[0].stamp != head || s.frameDueLocked() >= 0 {
		// Meanwhile an earlier request enqueued, or a reader enqueued a frame (one
		// that it read before it caught up goes first): look again.
		s.inMu.Unlock()
		signal(s.ready)
		return input{}, false
	}
	x := s.requests[0].input
	s.requests[0] = request{}
	s.requests = s.requests[1:]
	more := len(s.frames)+len(s.requests) > 0
	s.inMu.Unlock()
	s.unhold()
	if more {
		signal(s.ready)
	}
	return x, true
}

// frameDueLocked returns the index of the oldest frame the loop may take, or -1: a
// frame waits while the input that brought its WebSocket is still queued.
func (s *session) frameDueLocked() int {
	for i, x := range s.frames {
		if x.in.conn.handled {
			return i
		}
	}
	return -1
}

// due reports whether the request stamped head may be applied: nothing that arrived
// before it can still reach the session (earlier: a registered request stamped
// before it has not enqueued), or it has been held back arrivalWait; the hold ends
// when next takes it (unhold), so a look again keeps its deadline. When not, it
// arms what wakes the loop to look again: the request's enqueue or forget, or a
// probe's reader parking (both signal ready), the unread connection settling
// (orderWake), or the end of the wait (orderTimer).
func (s *session) due(head uint64, earlier bool) bool {
	now := time.Now()
	if s.holding != head {
		s.holding, s.holdUntil = head, now.Add(s.hd.arrivalWait)
	}
	if !now.Before(s.holdUntil) {
		s.orderWake = nil
		return true
	}
	until := s.holdUntil
	var wake <-chan struct{}
	switch {
	case earlier:
	case s.hd.unreadFrom(s.addr, head, now, &wake, &until):
	case s.probe != nil && !s.probe.caughtUp():
	default:
		s.orderWake = nil
		return true
	}
	s.orderWake = wake
	s.orderTimer.Reset(until.Sub(now))
	if h := s.hd.onHold; h != nil {
		h(s)
	}
	return false
}

// unreadFrom reports whether an unread connection from addr was stamped before
// stamp, and sets what to wait on: its settling, until it stops counting.
func (hd *Handler) unreadFrom(addr string, stamp uint64, now time.Time, wake *<-chan struct{}, until *time.Time) bool {
	a := hd.earlierUnread(addr, stamp, now)
	if a == nil {
		return false
	}
	*wake = a.settled
	if end := a.at.Add(hd.arrivalWait); end.Before(*until) {
		*until = end
	}
	return true
}

// unhold ends a hold: nothing is waited for.
func (s *session) unhold() {
	s.holding = 0
	s.orderWake = nil
	s.orderTimer.Stop()
	if s.probe != nil {
		s.probe.unwatch()
	}
}

// step applies the next input, if one is due.
func (s *session) step() {
	if x, ok := s.next(); ok {
		s.handle(x)
	}
}
