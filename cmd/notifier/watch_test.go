package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/watch"
)

// TestWatchUsage: watch refuses what it cannot run with a usage error (exit 2) or a
// configuration error naming the key, before connecting anywhere.
func TestWatchUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want error
		says string
	}{
		{[]string{"watch"}, errUsage, "NOTIFIER_WATCH_TOKEN or --token-file), or --account"},
		{[]string{"watch", "extra"}, errUsage, "no arguments"},
		{[]string{"watch", "--account", "-1"}, errUsage, "--account"},
		{[]string{"watch", "--account", "1", "--since", "-1"}, errUsage, "--since"},
		{[]string{"watch", "--account", "1", "--url", "ftp://host/ws"}, errUsage, "--url"},
		{[]string{"watch", "--account", "1", "--url", "localhost:8080"}, errUsage, "--url"},
		{[]string{"watch", "--account", "1"}, config.ErrInvalid, "auth.jwt_secret"},
		{[]string{"watch", "--token-file", "/nonexistent/token"}, config.ErrInvalid, "watch.token_file"},
		{[]string{"watch", "--token", "t"}, config.ErrInvalid, "--token-file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			root := newRoot()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.ExecuteContext(t.Context())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want %v mentioning %q", err, tc.want, tc.says)
			}
		})
	}
}

// TestWatchToken: watch connects with the token of NOTIFIER_WATCH_TOKEN or of the
// file --token-file names; the server here refuses every handshake, naming the
// Authorization header it got.
func TestWatchToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "got " + r.Header.Get("Authorization")})
	}))
	defer srv.Close()
	refused := func(t *testing.T, want string, args ...string) {
		t.Helper()
		_, _, err := cli(t, append([]string{"watch", "--url", srv.URL}, args...)...)
		if !errors.Is(err, watch.ErrRefused) || !strings.Contains(err.Error(), "got Bearer "+want) {
			t.Errorf("watch %s: error %v, want the server's refusal of Bearer %s", strings.Join(args, " "), err, want)
		}
	}
	refused(t, "token-from-file", "--token-file", secretFile(t, "token-from-file"))
	t.Setenv("NOTIFIER_WATCH_TOKEN", "token-from-env")
	refused(t, "token-from-env")
	if _, _, err := cli(t, "watch", "--url", srv.URL, "--token-file", secretFile(t, "token-from-file")); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("NOTIFIER_WATCH_TOKEN and --token-file: error %v, want an invalid configuration: not both", err)
	}
}

func TestWatchURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, events, want string }{
		{"ws://localhost:8080/ws", "", "ws://localhost:8080/ws"},
		{"http://localhost:8080/ws", "", "ws://localhost:8080/ws"},
		{"http://localhost:8080", "", "ws://localhost:8080/ws"}, // the base URL the demo prints
		{"http://localhost:8080/", "", "ws://localhost:8080/ws"},
		{"https://notifier.example/ws", "doctors.created", "wss://notifier.example/ws?events=doctors.created"},
		{"wss://notifier.example/ws?events=a", "appointments.created,doctors.created", "wss://notifier.example/ws?events=appointments.created%2Cdoctors.created"},
	} {
		got, err := watchURL(tc.raw, tc.events)
		if err != nil || got != tc.want {
			t.Errorf("watchURL(%q, %q) = %q, %v; want %q", tc.raw, tc.events, got, err, tc.want)
		}
	}
}
