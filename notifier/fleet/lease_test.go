package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/pgtest"
)

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestLease: one holder at a time; the holder renews, the others see it; a release
// or a lapse hands it over with a new term, and the old holder cannot renew then.
func TestLease(t *testing.T) {
	t.Parallel()
	db := pool(t)
	ctx := t.Context()
	a := NewLease(db, "http://a", time.Hour)
	b := NewLease(db, "http://b", 300*time.Millisecond)
	if a.ID() == b.ID() {
		t.Fatal("two leases share an id")
	}

	held, h, err := a.Acquire(ctx)
	if err != nil || !held || h.Term != 1 || h.URL != "http://a" {
		t.Fatalf("first acquire: %v %+v %v, want held, term 1", held, h, err)
	}
	if held, h, err = a.Acquire(ctx); err != nil || !held || h.Term != 1 {
		t.Fatalf("renewal: %v %+v %v, want held, same term", held, h, err)
	}
	held, h, err = b.Acquire(ctx)
	if err != nil || held || h.ID != a.ID() || h.URL != "http://a" || !h.Live || h.Term != 1 {
		t.Fatalf("another's acquire: %v %+v %v, want a's live lease", held, h, err)
	}

	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if held, h, err = b.Acquire(ctx); err != nil || !held || h.Term != 2 {
		t.Fatalf("acquire after release: %v %+v %v, want held, term 2", held, h, err)
	}
	if held, h, err = a.Acquire(ctx); err != nil || held || h.ID != b.ID() {
		t.Fatalf("the old holder's renewal: %v %+v %v, want b's lease", held, h, err)
	}
	if err := a.Release(ctx); err != nil { // not a's: a no-op
		t.Fatal(err)
	}
	if _, h, _ = a.Acquire(ctx); !h.Live || h.ID != b.ID() {
		t.Fatalf("a released b's lease: %+v", h)
	}

	// b stops renewing: its 300 ms lapse by the database's clock, then a takes over.
	deadline := time.Now().Add(30 * time.Second)
	for {
		held, h, err = a.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's lease never lapsed: %+v", h)
		}
		time.Sleep(50 * time.Millisecond) // the lapse is a time in the database, polled
	}
	if h.Term != 3 {
		t.Fatalf("takeover term %d, want 3", h.Term)
	}
}

// TestLeaseWithoutMigration: a database without 0006 is an error, not a lease.
func TestLeaseWithoutMigration(t *testing.T) {
	t.Parallel()
	db := pool(t)
	if _, err := db.Exec(t.Context(), `DROP TABLE notifier.fleet_lease`); err != nil {
		t.Fatal(err)
	}
	if held, _, err := NewLease(db, "http://a", time.Second).Acquire(context.Background()); err == nil || held {
		t.Fatalf("acquire without the table: %v, %v", held, err)
	}
}
