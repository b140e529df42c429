// Package inflight counts the connections a handler serves so that shutdown can wait
// for them, without racing a connection that arrives while it waits.
package inflight

import "sync"

// Group is a sync.WaitGroup that stops admitting once Wait is called: a WaitGroup's
// Add must not run concurrently with a Wait on a zero counter, and a request already
// past a handler's checks may reach Add while shutdown waits.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Add admits one more and reports true, or reports false once Wait has been called:
// the caller then must not start what it would have counted.
func (g *Group) Add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// Done marks one admitted by Add as finished.
func (g *Group) Done() { g.wg.Done() }

// Wait stops admitting and waits for every admitted one to be Done.
func (g *Group) Wait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
