package notifier

import (
	"testing"

	"github.com/pgnotifier/notifier/notifier/hub"
)

func TestRecent(t *testing.T) {
	t.Parallel()
	r := newRecent(3)
	msg := func(id int64) *hub.Message { return &hub.Message{ID: id} }
	r.add([]*hub.Message{msg(1), msg(2)})
	r.add([]*hub.Message{msg(2), msg(3), msg(4)}) // 2 again: not stored twice; 1 evicted
	for id, want := range map[int64]bool{1: false, 2: true, 3: true, 4: true} {
		if got := r.get(id) != nil; got != want {
			t.Errorf("get(%d) present = %v, want %v", id, got, want)
		}
	}
	r.add([]*hub.Message{msg(5)})
	if r.get(2) != nil || r.get(5) == nil {
		t.Error("oldest not evicted first")
	}
	off := newRecent(0)
	off.add([]*hub.Message{msg(1)})
	if off.get(1) != nil {
		t.Error("a zero-size cache stored a message")
	}
}
