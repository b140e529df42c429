package ratelimit_test

import (
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/ratelimit"
)

// TestBucket: a burst of rate tokens, then one per 1/rate seconds, never more than rate saved.
func TestBucket(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	b := ratelimit.New(10, now)
	for i := range 10 {
		if !b.Take(now) {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if b.Take(now) {
		t.Fatal("an 11th token in the same instant")
	}
	if !b.Take(now.Add(100 * time.Millisecond)) {
		t.Fatal("no token after 1/rate seconds")
	}
	later := now.Add(time.Hour)
	for i := range 10 {
		if !b.Take(later) {
			t.Fatalf("token %d after an hour refused", i)
		}
	}
	if b.Take(later) {
		t.Fatal("more than rate tokens saved up")
	}
}
