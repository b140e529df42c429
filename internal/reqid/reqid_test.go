package reqid

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	var seen string
	h := Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = From(r.Context()) }))
	for _, tc := range []struct {
		name, in string
		kept     bool
	}{
		{"none", "", false},
		{"proxy's", "3f2a9c1e-77b0.4_x", true},
		{"too long", strings.Repeat("a", 65), false},
		{"log forgery", "a\nlevel=ERROR msg=forged", false},
		{"quote", `a"b`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/ws", nil)
			if tc.in != "" {
				req.Header.Set(Header, tc.in)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get(Header)
			if got != seen || got == "" {
				t.Fatalf("response id %q, context id %q", got, seen)
			}
			if (got == tc.in) != tc.kept {
				t.Fatalf("id %q for %q: kept %v, want %v", got, tc.in, got == tc.in, tc.kept)
			}
			if !tc.kept && len(got) != 16 {
				t.Fatalf("generated id %q, want 16 hex digits", got)
			}
		})
	}
}

func TestIDsDiffer(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
	}
}

func TestFromOutsideARequest(t *testing.T) {
	t.Parallel()
	if id := From(t.Context()); id != "" {
		t.Fatalf("From = %q outside a request", id)
	}
}
