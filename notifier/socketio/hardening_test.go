package socketio_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// checkAnswerHeaders asserts what every polling answer and error answer carries.
func checkAnswerHeaders(t testing.TB, what string, r response) {
	t.Helper()
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s (%d): X-Content-Type-Options = %q, want nosniff", what, r.status, got)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s (%d): Cache-Control = %q, want no-store", what, r.status, got)
	}
}

// TestPollingAnswersNotSniffed: the handshake, GET and POST answers, and the
// error answers, are nosniff and no-store.
func TestPollingAnswersNotSniffed(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *socketio.Config, _ *hub.Config) {
		c.MaxPayload = 1000
		c.AllowedOrigins = []string{"https://dash.example"}
	})
	handshake := do(t, http.MethodGet, b.eioURL("polling", ""), "", nil)
	if handshake.status != http.StatusOK {
		t.Fatalf("handshake: %d %s", handshake.status, handshake.body)
	}
	checkAnswerHeaders(t, "handshake", handshake)
	p := &pollingSession{t: t, b: b, sid: parseOpen(t, handshake.body).SID}

	post := p.post(`40{"token":"` + token(t, 1, time.Hour) + `"}`)
	if post.status != http.StatusOK || post.body != "ok" {
		t.Fatalf("POST: %d %s", post.status, post.body)
	}
	checkAnswerHeaders(t, "POST", post)
	get := p.get()
	if get.status != http.StatusOK || !strings.HasPrefix(get.body, `40{"sid":`) {
		t.Fatalf("GET: %d %s", get.status, get.body)
	}
	checkAnswerHeaders(t, "GET", get)

	base := b.base + socketio.Path
	for _, tc := range []struct {
		name, method, url, body string
		header                  http.Header
		status                  int
	}{
		{"no EIO", http.MethodGet, base + "?transport=polling", "", nil, 400},
		{"unknown transport", http.MethodGet, base + "?EIO=4&transport=flash", "", nil, 400},
		{"POST handshake", http.MethodPost, b.eioURL("polling", ""), "", nil, 400},
		{"unknown sid GET", http.MethodGet, b.eioURL("polling", "nope"), "", nil, 400},
		{"unknown sid POST", http.MethodPost, b.eioURL("polling", "nope"), "3", nil, 400},
		{"PUT on a session", http.MethodPut, b.eioURL("polling", p.sid), "", nil, 400},
		{"POST too large", http.MethodPost, b.eioURL("polling", p.sid), strings.Repeat("4", 2000), nil, 413},
		{"websocket without upgrade", http.MethodGet, b.eioURL("websocket", ""), "", nil, 400},
		{"origin refused", http.MethodGet, b.eioURL("polling", ""), "", http.Header{"Origin": {"https://evil.example"}}, 403},
	} {
		r := do(t, tc.method, tc.url, tc.body, tc.header)
		if r.status != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, r.status, r.body, tc.status)
		}
		checkAnswerHeaders(t, tc.name, r)
	}
	p.mustPost("41\x1e1") // the client's close, so that cleanup does not wait
}

// TestNamespaceNotEchoed: a CONNECT to an unknown namespace is answered with a
// CONNECT_ERROR naming it only when the name needs no escaping. Others get no
// answer, so nothing the client chose reaches a response: the next packet is
// the ack of a CONNECT to "/". Control characters and invalid UTF-8 close the
// session without an answer.
func TestNamespaceNotEchoed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		nsp    string
		answer string // the CONNECT_ERROR, when the namespace is echoed
		closes bool
	}{
		{nsp: "/admin", answer: `44/admin,{"message":"Invalid namespace"}`},
		{nsp: "/%3Cscript%3E", answer: `44/%3Cscript%3E,{"message":"Invalid namespace"}`},
		{nsp: "/a-b_c.d~e!f$g(h)i*j+k;l=m:n@o/p", answer: `44/a-b_c.d~e!f$g(h)i*j+k;l=m:n@o/p,{"message":"Invalid namespace"}`},

		{nsp: `/<script>alert(1)</script>`},
		{nsp: `/"quoted"`},
		{nsp: `/"}]`},
		{nsp: `/it's`},
		{nsp: `/a&amp;b`},
		{nsp: `/back\slash`},
		{nsp: "/caf\u00e9"},
		{nsp: "/line\u2028separator"},
		{nsp: "/a b"},

		{nsp: "/nul\x00", closes: true},
		{nsp: "/bell\x07", closes: true},
		{nsp: "/tab\t", closes: true},
		{nsp: "/del\x7f", closes: true},
		{nsp: "/bad\xff\xfeutf8", closes: true},
		{nsp: "/cut\xc3", closes: true},
	} {
		connect := `40` + tc.nsp + `,{}`
		// WebSocket.
		w := b.openWS(t)
		w.send(connect)
		switch {
		case tc.answer != "":
			if got := w.read(); got != tc.answer {
				t.Errorf("websocket %q: got %q, want %q", tc.nsp, got, tc.answer)
			}
		case tc.closes:
			w.closed() // fails on any frame but a ping
		default:
			w.connect(token(t, 1, time.Hour)) // fails unless the ack comes first
		}
		// Polling.
		p := b.openPolling(t)
		r := p.post(connect)
		if r.status != http.StatusOK {
			t.Errorf("polling %q: POST %d %s", tc.nsp, r.status, r.body)
			continue
		}
		switch {
		case tc.answer != "":
			if got := p.packets(1)[0]; got != tc.answer {
				t.Errorf("polling %q: got %q, want %q", tc.nsp, got, tc.answer)
			}
		case tc.closes:
			p.gone() // fails on a body but the close packet
		default:
			p.connect(token(t, 1, time.Hour)) // fails unless the ack comes first
			p.mustPost("41\x1e1")
		}
	}
}
