package ws_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/reqid"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/ws"
)

// syncBuffer is a log destination safe for the handler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogLinesCarryRequestID: behind reqid.Handler, a connection's log lines name its
// request id and component, and the handshake's answer names the same id.
func TestLogLinesCarryRequestID(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := hub.New(hub.Config{}, 0)
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(secret), AccountClaim: auth.DefaultAccountClaim})
	if err != nil {
		t.Fatal(err)
	}
	hd := ws.New(ws.Config{Events: decode.AllKinds, Logger: logger}, h, v)
	srv := httptest.NewServer(reqid.Handler(hd))
	t.Cleanup(func() { h.Close(); hd.Wait(); srv.Close() })

	tok, err := auth.Mint([]byte(secret), auth.DefaultAccountClaim, 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Authorization": {"Bearer " + tok}, reqid.Header: {"trace-42"}}
	conn, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if got := resp.Header.Get(reqid.Header); got != "trace-42" {
		t.Errorf("handshake answer %s = %q, want trace-42", reqid.Header, got)
	}
	// The "connected" line follows the handshake's answer: wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "msg=connected") {
				if !strings.Contains(line, "component=ws") || !strings.Contains(line, "request_id=trace-42") {
					t.Errorf("connected line lacks component or request id: %s", line)
				}
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no connected line in:\n%s", logs.String())
}
