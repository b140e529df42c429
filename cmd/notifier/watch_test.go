package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/config"
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
		{[]string{"watch"}, errUsage, "--token, or --account"},
		{[]string{"watch", "extra"}, errUsage, "no arguments"},
		{[]string{"watch", "--account", "-1"}, errUsage, "--account"},
		{[]string{"watch", "--token", "t", "--since", "-1"}, errUsage, "--since"},
		{[]string{"watch", "--token", "t", "--url", "ftp://host/ws"}, errUsage, "--url"},
		{[]string{"watch", "--token", "t", "--url", "localhost:8080"}, errUsage, "--url"},
		{[]string{"watch", "--account", "1", "--jwt-secret="}, config.ErrInvalid, "auth.jwt_secret"},
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
