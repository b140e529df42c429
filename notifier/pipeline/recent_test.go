package pipeline

import (
	"testing"

	"github.com/pgnotifier/notifier/notifier/hub"
)

func TestRecent(t *testing.T) {
	t.Parallel()
	r := newRecent(3)
	msg := func(id int64) *hub.Message { return &hub.Message{ID: id, AccountID: 1} }
	r.add([]*hub.Message{msg(1), msg(2)})
	r.add([]*hub.Message{msg(2), msg(3), msg(4)}) // 2 again: not stored twice; 1 evicted
	for id, want := range map[int64]bool{1: false, 2: true, 3: true, 4: true} {
		if got := r.get(id, 1) != nil; got != want {
			t.Errorf("get(%d) present = %v, want %v", id, got, want)
		}
	}
	r.add([]*hub.Message{msg(5)})
	if r.get(2, 1) != nil || r.get(5, 1) == nil {
		t.Error("oldest not evicted first")
	}
	off := newRecent(0)
	off.add([]*hub.Message{msg(1)})
	if off.get(1, 1) != nil {
		t.Error("a zero-size cache stored a message")
	}
}

// TestRecentKeepsAccounts: a message is only ever returned for its own account (ids can
// repeat when a log is replaced), partial messages are not kept, and clear forgets all.
func TestRecentKeepsAccounts(t *testing.T) {
	t.Parallel()
	r := newRecent(4)
	r.add([]*hub.Message{{ID: 7, AccountID: 1}, {ID: 8, AccountID: 2, Partial: true}})
	if r.get(7, 2) != nil {
		t.Error("account 1's message returned for account 2")
	}
	if r.get(7, 1) == nil {
		t.Error("account 1's message not returned for account 1")
	}
	if r.get(8, 2) != nil {
		t.Error("a partial message was cached")
	}
	r.clear()
	if r.get(7, 1) != nil {
		t.Error("clear kept a message")
	}
	r.add([]*hub.Message{{ID: 9, AccountID: 1}})
	if r.get(9, 1) == nil {
		t.Error("cache unusable after clear")
	}
}
