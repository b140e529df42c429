// Package ratelimit holds the token bucket the transports limit client messages with.
package ratelimit

import "time"

// Bucket is a token bucket: rate tokens a second, at most rate saved up. It is not safe
// for concurrent use: each connection's reader owns its own.
type Bucket struct {
	rate, tokens float64
	last         time.Time
}

// New returns a full Bucket of rate tokens a second, as of now.
func New(rate int, now time.Time) *Bucket {
	return &Bucket{rate: float64(rate), tokens: float64(rate), last: now}
}

// Take spends a token, if there is one, and reports whether there was.
func (b *Bucket) Take(now time.Time) bool {
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
