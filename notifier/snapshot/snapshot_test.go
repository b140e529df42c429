package snapshot

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func items(n, size int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(`"` + strings.Repeat("x", size-2) + `"`)
	}
	return out
}

func status(t *testing.T, err error) int {
	t.Helper()
	var e *errorAnswer
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an answer", err)
	}
	return e.status
}

// TestCursors: pages come out in order with their snapshot's since, the last page
// ends the cursor, a cursor serves only its account and list, expires, and the kept
// pages stay within both bounds (the oldest cursors go first).
func TestCursors(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	h := New(Config{CursorTTL: time.Minute, MaxCursors: 2, MaxKeptBytes: 100, NowFunc: func() time.Time { return now }}, nil, nil)
	id := h.keep(&cursor{account: 1, list: "l", since: 42, pages: [][]json.RawMessage{items(2, 10), items(1, 10)}})
	if !strings.HasPrefix(id, "42.") {
		t.Fatalf("cursor %q does not carry its since", id)
	}
	if _, err := h.next(2, "l", id+".1"); status(t, err) != http.StatusForbidden {
		t.Fatal("another account's token used the cursor")
	}
	if _, err := h.next(1, "other", id+".1"); status(t, err) != http.StatusForbidden {
		t.Fatal("the cursor served another list")
	}
	for range 2 { // a lost answer asked again gets the same page
		b, err := h.next(1, "l", id+".1")
		if err != nil || !strings.Contains(string(b), `"since":42`) || !strings.Contains(string(b), `"next":"`+id+`.2"`) {
			t.Fatalf("second page = %s, %v", b, err)
		}
	}
	b, err := h.next(1, "l", id+".2")
	if err != nil || !strings.Contains(string(b), `"next":null`) {
		t.Fatalf("last page = %s, %v", b, err)
	}
	if _, err := h.next(1, "l", id+".3"); status(t, err) != http.StatusGone {
		t.Fatal("a page past the last served")
	}
	h.mu.Lock()
	h.drop(id)
	h.mu.Unlock()
	if h.kept != 0 {
		t.Fatalf("kept %d bytes after the cursor went", h.kept)
	}
	for _, bad := range []string{"x", "42", "42.abc.1", "nope.AAAAAAAAAAAAAAAAAAAAAA.1", "42.!!!!!!!!!!!!!!!!!!!!!!.1", "42.AAAAAAAAAAAAAAAAAAAAAA", "42.AAAAAAAAAAAAAAAAAAAAAA.0", "42.AAAAAAAAAAAAAAAAAAAAAA.x"} {
		if _, err := h.next(1, "l", bad); status(t, err) != http.StatusBadRequest {
			t.Errorf("cursor %q: want malformed", bad)
		}
	}
	a := h.keep(&cursor{account: 1, list: "l", pages: [][]json.RawMessage{items(4, 10)}})
	b2 := h.keep(&cursor{account: 1, list: "l", pages: [][]json.RawMessage{items(4, 10)}})
	c := h.keep(&cursor{account: 1, list: "l", pages: [][]json.RawMessage{items(4, 10)}}) // over MaxCursors: a goes
	if _, err := h.next(1, "l", a+".1"); status(t, err) != http.StatusGone {
		t.Error("the oldest cursor was kept beyond MaxCursors")
	}
	big := h.keep(&cursor{account: 1, list: "l", pages: [][]json.RawMessage{items(7, 10)}}) // 70 + 40 > 100: b2 goes
	if _, err := h.next(1, "l", b2+".1"); status(t, err) != http.StatusGone || h.kept > 100 {
		t.Errorf("kept %d bytes, bound 100", h.kept)
	}
	now = now.Add(2 * time.Minute)
	for _, id := range []string{c, big} {
		if _, err := h.next(1, "l", id+".1"); status(t, err) != http.StatusGone {
			t.Error("an expired cursor served")
		}
	}
	if h.kept != 0 || len(h.cursors) != 0 {
		t.Errorf("kept %d bytes in %d cursors after all expired", h.kept, len(h.cursors))
	}
}
