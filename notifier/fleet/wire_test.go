package fleet

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pgnotifier/notifier/notifier/hub"
)

// TestWire: records decode to what was encoded; truncated, trailing and unknown ones
// are errors, never a shorter record.
func TestWire(t *testing.T) {
	msgs := []*hub.Message{
		{ID: 1796661971965428, AccountID: 7, Name: "appointments.created", Data: []byte(`{"id":1}`)},
		{ID: 1796661971965430, AccountID: -1, Name: "chat", Origin: "sock", Partial: true, Data: []byte(`{}`)},
	}
	b := appendEvents(nil, msgs)
	r, err := decode(b)
	if err != nil || len(r.Events) != 2 || r.Reset || r.State {
		t.Fatalf("decode: %+v, %v", r, err)
	}
	for i, e := range r.Events {
		m := msgs[i]
		if e.ID != m.ID || e.AccountID != m.AccountID || e.Name != m.Name || e.Origin != m.Origin || e.Partial != m.Partial || !bytes.Equal(e.Data, m.Data) {
			t.Errorf("event %d: %+v, want %+v", i, e, m)
		}
	}
	for i := range b {
		if _, err := decode(b[:i]); !errors.Is(err, errMalformed) {
			t.Errorf("truncated to %d bytes: %v, want malformed", i, err)
		}
	}
	if _, err := decode(append(b, 0)); !errors.Is(err, errMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := decode([]byte{'Z', 0}); !errors.Is(err, errMalformed) {
		t.Errorf("unknown type: %v", err)
	}
	if r, err := decode(appendReset(nil, 42)); err != nil || !r.Reset || r.Head != 42 {
		t.Errorf("reset: %+v, %v", r, err)
	}
	if r, err := decode(appendState(nil, true, 43)); err != nil || !r.State || !r.Ready || r.Head != 43 {
		t.Errorf("state: %+v, %v", r, err)
	}
	if _, err := decode([]byte{recEvents, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, errMalformed) {
		t.Errorf("a count larger than the record: %v", err)
	}
}

// FuzzDecode: any bytes decode or fail cleanly, and what decodes encodes back to the
// same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(appendEvents(nil, []*hub.Message{{ID: 5, AccountID: 1, Name: "x", Origin: "o", Partial: true, Data: []byte("{}")}}))
	f.Add(appendReset(nil, -3))
	f.Add(appendState(nil, false, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			return
		}
		var again []byte
		switch {
		case r.Reset:
			again = appendReset(nil, r.Head)
		case r.State:
			if b[1] > 1 {
				return // any non-1 byte reads as not ready
			}
			again = appendState(nil, r.Ready, r.Head)
		default:
			msgs := make([]*hub.Message, len(r.Events))
			for i, e := range r.Events {
				msgs[i] = &hub.Message{ID: e.ID, AccountID: e.AccountID, Name: e.Name, Origin: e.Origin, Partial: e.Partial, Data: e.Data}
			}
			again = appendEvents(nil, msgs)
		}
		if r2, err := decode(again); err != nil || len(r2.Events) != len(r.Events) || r2.Head != r.Head {
			t.Fatalf("re-encoded %x: %+v, %v", again, r2, err)
		}
	})
}
