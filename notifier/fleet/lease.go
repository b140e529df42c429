package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what Lease needs of a pool or connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Holder is who holds the lease, as Acquire last read it.
type Holder struct {
	ID   string // the holding process's random id; "" when no instance ever held it
	URL  string // where its followers stream from (fleet.advertise_url)
	Term int64  // how many times the lease changed hands
	Live bool   // the lease has not lapsed
}

// Lease is one process's claim on notifier.fleet_lease. The database's clock decides
// lapses, so the instances' clocks need not agree.
type Lease struct {
	db  Querier
	id  string
	url string
	ttl time.Duration
}

// NewLease returns a claim for the process that followers reach at url, lapsing ttl
// after each renewal. Its id is random, so that a restarted process never renews the
// lease of the one before it: that one's followers first see it lapse.
func NewLease(db Querier, url string, ttl time.Duration) *Lease {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &Lease{db: db, id: hex.EncodeToString(b[:]), url: url, ttl: ttl}
}

// ID returns the process's id in the lease.
func (l *Lease) ID() string { return l.id }

// TTL returns how long a renewal holds.
func (l *Lease) TTL() time.Duration { return l.ttl }

// acquireSQL takes the lease if it lapsed or renews it if this process holds it, and
// returns, in one round trip, whether it did and who held it before.
const acquireSQL = `
WITH took AS (
    UPDATE notifier.fleet_lease
    SET holder = $1, url = $2,
        term = CASE WHEN holder IS NOT DISTINCT FROM $1 THEN term ELSE term + 1 END,
        expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3)
    WHERE holder IS NOT DISTINCT FROM $1 OR expires_at < pg_catalog.clock_timestamp()
    RETURNING term)
SELECT (SELECT term FROM took), coalesce(l.holder, ''), coalesce(l.url, ''), l.term,
       l.expires_at > pg_catalog.clock_timestamp()
FROM notifier.fleet_lease l`

// Acquire takes or renews the lease. held reports whether this process holds it now;
// when it does not, h is the instance that does (or did, if !h.Live).
func (l *Lease) Acquire(ctx context.Context) (held bool, h Holder, err error) {
	var term *int64
	err = l.db.QueryRow(ctx, acquireSQL, l.id, l.url, l.ttl.Seconds()).Scan(&term, &h.ID, &h.URL, &h.Term, &h.Live)
	if err != nil {
		return false, Holder{}, fmt.Errorf("fleet lease: %w", err)
	}
	if term != nil {
		return true, Holder{ID: l.id, URL: l.url, Term: *term, Live: true}, nil
	}
	return false, h, nil
}

// Release lets the lease lapse now if this process holds it, so that a follower takes
// over without waiting for the lapse.
func (l *Lease) Release(ctx context.Context) error {
	if _, err := l.db.Exec(ctx, `UPDATE notifier.fleet_lease SET expires_at = '-infinity' WHERE holder = $1`, l.id); err != nil {
		return fmt.Errorf("release fleet lease: %w", err)
	}
	return nil
}
