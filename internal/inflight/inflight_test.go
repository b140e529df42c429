package inflight_test

import (
	"sync"
	"testing"

	"github.com/pgnotifier/notifier/internal/inflight"
)

// TestGroup: Wait waits for the admitted, and admits none after it; Add and Wait may
// run concurrently (run with -race).
func TestGroup(t *testing.T) {
	t.Parallel()
	var g inflight.Group
	release := make(chan struct{})
	if !g.Add() {
		t.Fatal("Add refused before Wait")
	}
	go func() { <-release; g.Done() }()
	var adders sync.WaitGroup
	for range 50 {
		adders.Add(1)
		go func() {
			defer adders.Done()
			if g.Add() {
				g.Done()
			}
		}()
	}
	waited := make(chan struct{})
	go func() { g.Wait(); close(waited) }()
	close(release)
	<-waited
	adders.Wait()
	if g.Add() {
		t.Fatal("Add admitted after Wait")
	}
}
