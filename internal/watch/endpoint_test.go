package watch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEndpoint: the base URL the demo prints works as --url; anything else but ws(s)
// or http(s) with a host is refused before dialing.
func TestEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ws://127.0.0.1:8080/ws":           "ws://127.0.0.1:8080/ws",
		"http://127.0.0.1:8080":            "ws://127.0.0.1:8080/ws",
		"http://127.0.0.1:8080/":           "ws://127.0.0.1:8080/ws",
		"https://notifier.example":         "wss://notifier.example/ws",
		"wss://notifier.example/custom/ws": "wss://notifier.example/custom/ws",
	} {
		u, err := endpoint(in)
		if err != nil || u.String() != want {
			t.Errorf("endpoint(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://h/ws", "ws://", "http:///ws"} {
		if _, err := endpoint(bad); err == nil {
			t.Errorf("endpoint(%q) accepted", bad)
		}
	}
}

// TestNotAWebSocket: a server that answers the handshake with a page (the URL points
// somewhere else than /ws) is a permanent refusal, not something to retry forever.
func TestNotAWebSocket(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>a page</title>"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := Run(ctx, Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/dashboard", Token: "t"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "without upgrading") {
		t.Fatalf("Run = %v, want ErrRefused saying the answer was not an upgrade", err)
	}
}
