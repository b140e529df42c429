package listen

import (
	"strconv"
	"testing"
)

func TestPayloadID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"id":1,"event":"appointments.created","row":2,"account":3}`, 1, true},
		{`{"id":9223372036854775807,"event":"x"}`, 9223372036854775807, true},
		{`{"id":9223372036854775808,"event":"x"}`, 0, false},
		{`{"id":0,"event":"x"}`, 0, false},
		{`{"id":-1,"event":"x"}`, 0, false},
		{`{"id":,"event":"x"}`, 0, false},
		{`{"id":12}`, 0, false},
		{`{"id": 1,"event":"x"}`, 0, false},
		{`{"id":01,"event":"x"}`, 0, false},
		{`{"id":+1,"event":"x"}`, 0, false},
		{`{"event":"x","id":1}`, 0, false},
		{`hello`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := payloadID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("payloadID(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzPayloadID(f *testing.F) {
	f.Add(`{"id":1,"event":"appointments.created","row":2,"account":3}`)
	f.Add(`{"id":99999999999999999999,`)
	f.Add(`junk`)
	f.Fuzz(func(t *testing.T, p string) {
		id, ok := payloadID(p)
		if !ok {
			return
		}
		if id <= 0 {
			t.Fatalf("accepted id %d from %q", id, p)
		}
		// An accepted payload starts with exactly that id.
		prefix := `{"id":` + strconv.FormatInt(id, 10) + ","
		if len(p) < len(prefix) || p[:len(prefix)] != prefix {
			t.Fatalf("id %d is not the prefix of %q", id, p)
		}
	})
}
