package main

import (
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `notifier version` and `--version` print the version, the commit and
// Go's version.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := mustCLI(t, args...)
		if !strings.HasPrefix(out, "notifier ") || !strings.Contains(out, "commit ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("notifier %s = %q", strings.Join(args, " "), out)
		}
	}
}

// TestConfigCheck: config check loads what serve would, says ok or names the
// problem in one line with exit status 2, and starts nothing.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	good := writeConfig(t, "database:\n  url: postgres://127.0.0.1:1/nothing\nauth:\n  jwt_secret: 0123456789abcdef0123456789abcdef\n")
	if out := mustCLI(t, "config", "check", "--config", good); out != "configuration ok\n" {
		t.Errorf("config check of a good file = %q", out)
	}
	for body, says := range map[string]string{
		"http:\n  adr: \":9000\"\n":  `unknown key "http.adr"`,
		"ws:\n  ping_interval: 25\n": "ws.ping_interval",
		"logging:\n  level: loud\n":  "logging.level",
		"{}\n":                       "database.url",
	} {
		_, _, err := cli(t, "config", "check", "--config", writeConfig(t, body))
		if exitStatus(err) != 2 || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "\n") {
			t.Errorf("config check of %q: %v (status %d), want one line naming %s", body, err, exitStatus(err), says)
		}
	}
	if _, _, err := cli(t, "config", "lint"); exitStatus(err) != 2 {
		t.Errorf("config lint: %v, want a usage error", err)
	}
}
