package pipeline

import (
	"sync"

	"github.com/pgnotifier/notifier/notifier/hub"
)

// recent remembers the last messages encoded, by event id, so that subscribers that
// fall behind their room's ring together (a burst larger than the ring reaches every
// slow connection of an account at once) read the log each but share one enrichment
// and one encoding per event.
//
// Partial messages are not kept: a replay enriches them again. A lookup names the
// account it replays for, and a message of another account is never returned, whatever
// the log's ids did.
//
// Safe for concurrent use: the pipeline adds, connection writers replaying look up.
type recent struct {
	mu   sync.Mutex
	byID map[int64]*hub.Message
	ring []int64 // ids in insertion order, oldest at next once full
	next int
}

func newRecent(size int) *recent {
	return &recent{byID: make(map[int64]*hub.Message, size), ring: make([]int64, 0, size)}
}

func (r *recent) add(msgs []*hub.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cap(r.ring) == 0 {
		return
	}
	for _, m := range msgs {
		if m.Partial {
			continue
		}
		if _, ok := r.byID[m.ID]; ok {
			continue
		}
		if len(r.ring) < cap(r.ring) {
			r.ring = append(r.ring, m.ID)
		} else {
			delete(r.byID, r.ring[r.next])
			r.ring[r.next] = m.ID
			r.next = (r.next + 1) % len(r.ring)
		}
		r.byID[m.ID] = m
	}
}

// get returns the message with id for account, or nil.
func (r *recent) get(id, account int64) *hub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.byID[id]; m != nil && m.AccountID == account {
		return m
	}
	return nil
}

// clear forgets every message, when the log's ids may have been reused.
func (r *recent) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.byID)
	r.ring = r.ring[:0]
	r.next = 0
}
