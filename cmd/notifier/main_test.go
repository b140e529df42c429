package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/internal/rules"
	"github.com/pgnotifier/notifier/sql"
	"github.com/pgnotifier/notifier/triggers"
)

func TestMain(m *testing.M) {
	// The tests set the configuration they mean; a NOTIFIER_* variable from the
	// caller's shell would leak into every command (NOTIFIER_TEST_*, the tests' own,
	// stays: the notifier ignores it).
	for _, name := range notifierEnv(os.Environ()) {
		os.Unsetenv(name)
	}
	code := pgtest.Run(m, prepare)
	if binDir != "" {
		_ = os.RemoveAll(binDir) // the binary the process tests built (about 20 MB)
	}
	os.Exit(code)
}

// notifierEnv names the NOTIFIER_* configuration variables in env.
func notifierEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "NOTIFIER_") && !strings.HasPrefix(name, "NOTIFIER_TEST_") {
			out = append(out, name)
		}
	}
	return out
}

// prepare creates the clinic schema, without the notifier's triggers: installing
// them is the CLI's job here.
func prepare(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql.Schema)
	return err
}

const (
	secret      = "cli-test-secret-0123456789abcdef" // 32 bytes
	otherSecret = "another-secret-0123456789abcdef!" // 32 bytes
	waitTimeout = time.Minute                        // bounds a build or a child process
)

// cli runs the notifier command in-process.
func cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(t.Context())
	t.Logf("notifier %s: err=%v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// mustCLI runs the command and fails the test on an error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := cli(t, args...)
	if err != nil {
		t.Fatalf("notifier %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// exitStatus is the status main gives err.
func exitStatus(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, config.ErrInvalid), errors.Is(err, errUsage):
		return 2
	}
	return 1
}

// verify checks that token is valid now for account under secret and claim.
func verify(t *testing.T, token, key, claim string) auth.Claims {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(key), AccountClaim: claim})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(strings.TrimSpace(token), time.Now())
	if err != nil {
		t.Fatalf("verify token %q: %v", token, err)
	}
	return c
}

// unreachableURL names a port nothing listens on.
func unreachableURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "postgres://postgres@" + addr + "/clinic?sslmode=disable&connect_timeout=5"
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notifier.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secretFile writes s to a file only its owner may read and returns its path.
func secretFile(t *testing.T, s string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestToken(t *testing.T) {
	t.Parallel()
	before := time.Now()
	out := mustCLI(t, "token", "--account", "42", "--ttl", "2m", "--jwt-secret-file", secretFile(t, secret))
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("output %q: want the token on one line", out)
	}
	c := verify(t, out, secret, auth.DefaultAccountClaim)
	if c.AccountID != 42 {
		t.Errorf("account = %d, want 42", c.AccountID)
	}
	// exp has whole seconds.
	if lo, hi := before.Add(2*time.Minute-time.Second), time.Now().Add(2*time.Minute); c.ExpiresAt.Before(lo) || c.ExpiresAt.After(hi) {
		t.Errorf("expires at %v, want between %v and %v", c.ExpiresAt, lo, hi)
	}

	before = time.Now()
	c = verify(t, mustCLI(t, "token", "--account", "1", "--jwt-secret-file", secretFile(t, secret)), secret, auth.DefaultAccountClaim)
	if lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour); c.AccountID != 1 || c.ExpiresAt.Before(lo) || c.ExpiresAt.After(hi) {
		t.Errorf("default ttl: claims %+v, want account 1 expiring in 1h", c)
	}
}

func TestTokenConfigFile(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, fmt.Sprintf("auth:\n  jwt_secret_file: %s\n  account_claim: tenant\n", secretFile(t, secret)))
	out := mustCLI(t, "--config", file, "token", "--account", "7")
	if c := verify(t, out, secret, "tenant"); c.AccountID != 7 {
		t.Errorf("account = %d, want 7", c.AccountID)
	}
	// A flag beats the file.
	out = mustCLI(t, "token", "--config", file, "--account", "7", "--jwt-secret-file", secretFile(t, otherSecret))
	verify(t, out, otherSecret, "tenant")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	sf, short := secretFile(t, secret), secretFile(t, "too-short")
	for _, tc := range []struct {
		args []string
		want error
		says string
	}{
		{[]string{"bogus"}, errUsage, "bogus"},
		{[]string{"--bogus"}, errUsage, "--bogus"},
		{[]string{"token", "--jwt-secret-file", sf}, errUsage, "--account"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "0"}, errUsage, "--account"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "-3"}, errUsage, "--account"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "x"}, errUsage, "--account"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "1", "--ttl", "500ms"}, errUsage, "--ttl"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "1", "--ttl", "0"}, errUsage, "--ttl"},
		{[]string{"token", "--jwt-secret-file", sf, "--account", "1", "extra"}, errUsage, "extra"},
		{[]string{"token", "--account", "1"}, config.ErrInvalid, "auth.jwt_secret"},
		{[]string{"token", "--account", "1", "--jwt-secret-file", short}, config.ErrInvalid, "auth.jwt_secret"},
		{[]string{"token", "--account", "1", "--jwt-secret-file", sf, "--log-level", "loud"}, config.ErrInvalid, "logging.level"},
		{[]string{"token", "--account", "1", "--jwt-secret-file", sf, "--config", "/nonexistent/notifier.yaml"}, config.ErrInvalid, "/nonexistent/notifier.yaml"},
		{[]string{"token", "--account", "1", "--jwt-secret-file", "/nonexistent/secret"}, config.ErrInvalid, "auth.jwt_secret_file"},
		// Secrets are never flags: the removed ones say where the secret goes now.
		{[]string{"token", "--account", "1", "--jwt-secret", secret}, config.ErrInvalid, "NOTIFIER_AUTH_JWT_SECRET"},
		{[]string{"--jwt-secret=" + secret, "serve"}, config.ErrInvalid, "auth.jwt_secret_file"},
		{[]string{"watch", "--token", "t"}, config.ErrInvalid, "NOTIFIER_WATCH_TOKEN"},
		{[]string{"migrate"}, errUsage, "up, down, status"},
		{[]string{"migrate", "sideways"}, errUsage, `"sideways"`},
		{[]string{"migrate", "up", "down"}, errUsage, "one of"},
		{[]string{"migrate", "status"}, config.ErrInvalid, "database.url"},
		{[]string{"migrate", "up", "--database-url", "postgres://u:p%zz@h/db"}, config.ErrInvalid, "database.url"},
		{[]string{"serve", "extra"}, errUsage, "extra"},
		{[]string{"serve", "--jwt-secret-file", sf}, config.ErrInvalid, "database.url"},
		{[]string{"serve", "--database-url", "postgres://h/db"}, config.ErrInvalid, "auth.jwt_secret"},
		{[]string{"demo", "extra"}, errUsage, "extra"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out, _, err := cli(t, tc.args...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v (exit status %d, want %d)", err, tc.want, exitStatus(err), exitStatus(tc.want))
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not mention %s", err, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out := mustCLI(t)
	for _, cmd := range []string{"serve", "migrate", "rules", "token", "demo"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("help does not list %s", cmd)
		}
	}
}

func TestMigrateSQL(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Load(triggers.FS)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&want, "-- %04d_%s.up.sql\n%s\n", m.Version, m.Name, m.Up)
	}
	// No database needed: a DBA prints the SQL to apply it with their own tool.
	if out := mustCLI(t, "migrate", "sql"); out != want.String() {
		t.Errorf("migrate sql printed:\n%s\nwant:\n%s", out, want.String())
	}
}

// checkStatus checks `migrate status` against want: "pending" or "applied", the
// built-in migrations and then, once applied, one line per built-in event.
func checkStatus(t *testing.T, want string, args ...string) {
	t.Helper()
	out := mustCLI(t, append([]string{"migrate", "status"}, args...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < len(migrationNames) {
		t.Fatalf("status %q: want one line per migration %v", out, migrationNames)
	}
	lines, events := lines[:len(migrationNames)], lines[len(migrationNames):]
	wantEvents := builtinEvents
	if want == "pending" {
		wantEvents = nil
	}
	if !slices.Equal(events, wantEvents) {
		t.Errorf("status %q: events\n%q\nwant\n%q", out, events, wantEvents)
	}
	for i, line := range lines {
		name, state, ok := strings.Cut(line, "\t")
		if !ok || name != migrationNames[i] {
			t.Fatalf("status line %q: want %s\\t<state>", line, migrationNames[i])
		}
		if want == "pending" {
			if state != "pending" {
				t.Errorf("%s: state %q, want pending", name, state)
			}
			continue
		}
		at, ok := strings.CutPrefix(state, "applied ")
		if !ok {
			t.Fatalf("%s: state %q, want applied <time>", name, state)
		}
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatalf("applied time %q: %v", at, err)
		}
		if d := time.Since(ts); d < -time.Minute || d > time.Minute {
			t.Errorf("applied at %v, want about now", ts)
		}
	}
}

// migrationNames are the embedded migrations, in order; appliedAll and revertedAll are
// what `migrate up` and `migrate down` print for them on a fresh database;
// builtinEvents what `migrate status` lists after them once they are applied.
var migrationNames, appliedAll, revertedAll, builtinEvents = builtins()

func builtins() (names []string, applied, reverted string, events []string) {
	ms, err := migrate.Load(triggers.FS)
	if err != nil {
		panic(err) // the embedded files: TestMigrateSQL reports the same error
	}
	var set rules.Set
	for _, m := range ms {
		name := fmt.Sprintf("%04d_%s", m.Version, m.Name)
		names = append(names, name)
		applied += "applied " + name + "\n"
		reverted = "reverted " + name + "\n" + reverted
		if s, ok, _ := rules.State(m.Up); ok {
			set = s
		}
	}
	return names, applied, reverted, eventLines(set)
}

// eventLines are the lines `migrate status` and `rules check` print for the events of
// s, by rule name (as notifier.rule_events orders them).
func eventLines(s rules.Set) []string {
	rs := slices.Clone(s.Rules)
	slices.SortStableFunc(rs, func(a, b rules.Rule) int { return strings.Compare(a.Name, b.Name) })
	var out []string
	for _, r := range rs {
		for _, e := range r.Events {
			out = append(out, fmt.Sprintf("event %s\trule %s\ton %s", e.Name, r.Name, e.On))
			for _, a := range e.Aliases {
				out = append(out, fmt.Sprintf("event %s\trule %s\ton %s\talias of %s", a, r.Name, e.On, e.Name))
			}
		}
	}
	return out
}

func countTriggers(t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'notifier%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateLifecycle(t *testing.T) {
	t.Parallel()
	db := []string{"--database-url", pgtest.Database(t)}
	migrateCmd := func(action string) string { return mustCLI(t, append([]string{"migrate", action}, db...)...) }

	checkStatus(t, "pending", db...)
	if out := migrateCmd("up"); out != appliedAll {
		t.Errorf("migrate up printed %q", out)
	}
	checkStatus(t, "applied", db...)
	if n := countTriggers(t, db[1]); n != 6 {
		t.Errorf("%d notifier triggers after migrate up, want 6", n)
	}
	if out := migrateCmd("up"); out != "up to date\n" {
		t.Errorf("second migrate up printed %q", out)
	}
	if out := migrateCmd("down"); out != revertedAll {
		t.Errorf("migrate down printed %q", out)
	}
	if n := countTriggers(t, db[1]); n != 0 {
		t.Errorf("%d notifier triggers after migrate down, want 0", n)
	}
	if out := migrateCmd("down"); out != "nothing to revert\n" {
		t.Errorf("second migrate down printed %q", out)
	}
	checkStatus(t, "pending", db...)
}

// emptyDatabase is a database without the clinic tables.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.Database(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatal(err)
	}
	return url
}

func TestMigrateRuntimeErrors(t *testing.T) {
	t.Parallel()
	t.Run("no clinic schema", func(t *testing.T) {
		t.Parallel()
		url := emptyDatabase(t)
		_, _, err := cli(t, "migrate", "up", "--database-url", url)
		if !errors.Is(err, migrate.ErrSchemaIncomplete) || exitStatus(err) != 1 {
			t.Fatalf("error %v (exit status %d), want ErrSchemaIncomplete, status 1", err, exitStatus(err))
		}
		if !strings.Contains(err.Error(), "table appointments") {
			t.Errorf("error %q does not name the missing tables", err)
		}
		checkStatus(t, "pending", "--database-url", url)
	})
	t.Run("unreachable database", func(t *testing.T) {
		t.Parallel()
		for _, action := range []string{"up", "down", "status"} {
			_, _, err := cli(t, "migrate", action, "--database-url", unreachableURL(t))
			if err == nil || exitStatus(err) != 1 {
				t.Errorf("migrate %s: error %v (exit status %d), want a runtime failure, status 1", action, err, exitStatus(err))
			}
		}
	})
}

// The tests below set environment variables, so they cannot run in parallel.

func TestConfigFromEnv(t *testing.T) {
	url := pgtest.Database(t)
	t.Setenv("NOTIFIER_DATABASE_URL", url)
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET", secret)
	checkStatus(t, "pending")
	if out := mustCLI(t, "migrate", "up"); out != appliedAll {
		t.Errorf("migrate up printed %q", out)
	}
	verify(t, mustCLI(t, "token", "--account", "3"), secret, auth.DefaultAccountClaim)

	t.Setenv("NOTIFIER_AUTH_ACCOUNT_CLAIM", "tenant")
	verify(t, mustCLI(t, "token", "--account", "3"), secret, "tenant")
}

func TestFlagsWinOverEnv(t *testing.T) {
	url := pgtest.Database(t)
	t.Setenv("NOTIFIER_DATABASE_URL", unreachableURL(t))
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET", otherSecret)
	checkStatus(t, "pending", "--database-url", url)

	t.Setenv("NOTIFIER_LOGGING_LEVEL", "loud")
	if _, _, err := cli(t, "token", "--account", "3"); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("bad NOTIFIER_LOGGING_LEVEL: error %v, want ErrInvalid", err)
	}
	verify(t, mustCLI(t, "token", "--account", "3", "--log-level", "debug"), otherSecret, auth.DefaultAccountClaim)
}

func TestEnvWinsOverFile(t *testing.T) {
	url := pgtest.Database(t)
	file := writeConfig(t, fmt.Sprintf("database:\n  url: %s\nauth:\n  jwt_secret: %s\n", unreachableURL(t), otherSecret))
	t.Setenv("NOTIFIER_DATABASE_URL", url)
	checkStatus(t, "pending", "--config", file)
	verify(t, mustCLI(t, "--config", file, "token", "--account", "3"), otherSecret, auth.DefaultAccountClaim)
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET", secret)
	verify(t, mustCLI(t, "--config", file, "token", "--account", "3"), secret, auth.DefaultAccountClaim)
}

func TestBadConfigFromEnv(t *testing.T) {
	t.Setenv("NOTIFIER_HUB_MAX_LAG", "0")
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET", secret)
	for _, args := range [][]string{
		{"token", "--account", "1"},
		{"migrate", "status", "--database-url", unreachableURL(t)},
		{"serve", "--database-url", unreachableURL(t)},
	} {
		_, _, err := cli(t, args...)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "hub.max_lag") {
			t.Errorf("notifier %s with NOTIFIER_HUB_MAX_LAG=0: %v, want an invalid configuration naming hub.max_lag", strings.Join(args, " "), err)
		}
	}
}

// TestUnknownEnvKey: every command that loads the configuration refuses a NOTIFIER_*
// variable that names no key, in one line naming it, before doing anything; the
// tests' NOTIFIER_TEST_* variables are not the notifier's.
func TestUnknownEnvKey(t *testing.T) {
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET", secret)
	t.Setenv("NOTIFIER_TEST_UNKNOWN_TO_THE_NOTIFIER", "1")
	verify(t, mustCLI(t, "token", "--account", "1"), secret, auth.DefaultAccountClaim)

	t.Setenv("NOTIFIER_HTTP_ADR", ":1")
	// Each would fail at once on something else (or succeed) without the check.
	for _, args := range [][]string{
		{"serve"},
		{"config", "check"},
		{"token", "--account", "1"},
		{"migrate", "sql"},
		{"migrate", "status"},
		{"rules", "check", "--rules", messagesExample},
		{"watch"},
		{"demo", "--rate", "-1"},
	} {
		out, _, err := cli(t, args...)
		const want = "invalid configuration: environment NOTIFIER_HTTP_ADR: unknown key (did you mean NOTIFIER_HTTP_ADDR?)"
		if !errors.Is(err, config.ErrInvalid) || err.Error() != want || out != "" {
			t.Errorf("notifier %s with NOTIFIER_HTTP_ADR: error %v, stdout %.80q; want %q and nothing printed", strings.Join(args, " "), err, out, want)
		}
	}
}

// TestBinary builds the real binary and checks its exit statuses and that it runs
// from any working directory.
func TestBinary(t *testing.T) {
	t.Parallel()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "notifier")
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitTimeout)
	defer cancel()
	started := time.Now()
	build := exec.CommandContext(ctx, gocmd, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("go build took %s", time.Since(started).Round(time.Millisecond))
	// Without this process's NOTIFIER_* settings, but with PATH, HOME and the like.
	var baseEnv []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(name, "NOTIFIER_") {
			baseEnv = append(baseEnv, kv)
		}
	}
	workDir := t.TempDir() // nothing of the repository here

	type result struct {
		code           int
		stdout, stderr string
	}
	run := func(t *testing.T, env []string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = workDir
		cmd.Env = append(append([]string(nil), baseEnv...), env...)
		cmd.WaitDelay = 5 * time.Second
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errOut.String()}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			r.code = exitErr.ExitCode()
		default:
			t.Fatalf("run notifier %s: %v", strings.Join(args, " "), err)
		}
		t.Logf("notifier %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		return r
	}
	// check runs the binary and checks its status and that stderr is empty on
	// success, one "notifier: ..." line mentioning says on failure.
	check := func(t *testing.T, env []string, code int, says string, args ...string) result {
		t.Helper()
		r := run(t, env, args...)
		if r.code != code {
			t.Errorf("exit status %d, want %d", r.code, code)
		}
		switch {
		case code == 0 && r.stderr != "":
			t.Errorf("stderr %q, want nothing", r.stderr)
		case code != 0 && (!strings.HasPrefix(r.stderr, "notifier: ") || strings.Count(r.stderr, "\n") != 1):
			t.Errorf("stderr %q, want one line starting with notifier:", r.stderr)
		case code != 0 && !strings.Contains(r.stderr, says):
			t.Errorf("stderr %q does not mention %s", r.stderr, says)
		}
		return r
	}
	secretEnv := []string{"NOTIFIER_AUTH_JWT_SECRET=" + secret}

	t.Run("token", func(t *testing.T) {
		t.Parallel()
		r := check(t, secretEnv, 0, "", "token", "--account", "1")
		if c := verify(t, r.stdout, secret, auth.DefaultAccountClaim); c.AccountID != 1 {
			t.Errorf("account %d, want 1", c.AccountID)
		}
	})
	t.Run("token without secret", func(t *testing.T) {
		t.Parallel()
		check(t, nil, 2, "auth.jwt_secret", "token", "--account", "1")
	})
	t.Run("hub.max_lag=0", func(t *testing.T) {
		t.Parallel()
		check(t, append([]string{"NOTIFIER_HUB_MAX_LAG=0"}, secretEnv...), 2, "hub.max_lag", "token", "--account", "1")
	})
	t.Run("bad duration", func(t *testing.T) {
		t.Parallel()
		check(t, append([]string{"NOTIFIER_HUB_MAX_LAG=soon"}, secretEnv...), 2, "hub.max_lag", "token", "--account", "1")
	})
	t.Run("serve with bad config", func(t *testing.T) {
		t.Parallel()
		check(t, []string{"NOTIFIER_DATABASE_URL=" + unreachableURL(t)}, 2, "auth.jwt_secret", "serve")
	})
	t.Run("missing config file", func(t *testing.T) {
		t.Parallel()
		check(t, secretEnv, 2, "nope.yaml", "--config", "nope.yaml", "token", "--account", "1")
	})
	t.Run("unknown migrate action", func(t *testing.T) {
		t.Parallel()
		check(t, nil, 2, "sideways", "migrate", "sideways")
	})
	t.Run("unknown command", func(t *testing.T) {
		t.Parallel()
		check(t, nil, 2, "bogus", "bogus")
	})
	t.Run("unknown flag", func(t *testing.T) {
		t.Parallel()
		check(t, nil, 2, "--bogus", "token", "--bogus")
	})
	t.Run("unknown env key", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"serve"}, {"config", "check"}, {"token", "--account", "1"}} {
			check(t, append([]string{"NOTIFIER_HTTP_ADR=:1"}, secretEnv...), 2, "environment NOTIFIER_HTTP_ADR: unknown key", args...)
		}
	})
	t.Run("test variable ignored", func(t *testing.T) {
		t.Parallel()
		check(t, append([]string{"NOTIFIER_TEST_UNKNOWN_TO_THE_NOTIFIER=1"}, secretEnv...), 0, "", "token", "--account", "1")
	})
	t.Run("secret flag", func(t *testing.T) {
		t.Parallel()
		if r := check(t, nil, 2, "NOTIFIER_AUTH_JWT_SECRET", "token", "--account", "1", "--jwt-secret", secret); strings.Contains(r.stderr, secret) {
			t.Errorf("stderr %q echoes the secret", r.stderr)
		}
		check(t, nil, 2, "NOTIFIER_WATCH_TOKEN", "watch", "--token", "t")
	})
	t.Run("unreachable database", func(t *testing.T) {
		t.Parallel()
		check(t, []string{"NOTIFIER_DATABASE_URL=" + unreachableURL(t)}, 1, "connect", "migrate", "status")
	})
	t.Run("no clinic schema", func(t *testing.T) {
		t.Parallel()
		check(t, []string{"NOTIFIER_DATABASE_URL=" + emptyDatabase(t)}, 1, "table appointments", "migrate", "up")
	})
	t.Run("migrate", func(t *testing.T) {
		t.Parallel()
		env := []string{"NOTIFIER_DATABASE_URL=" + pgtest.Database(t)}
		if r := check(t, nil, 0, "", "migrate", "sql"); !strings.Contains(r.stdout, "CREATE CONSTRAINT TRIGGER") {
			t.Errorf("migrate sql printed no triggers")
		}
		if r := check(t, env, 0, "", "migrate", "up"); r.stdout != appliedAll {
			t.Errorf("migrate up printed %q", r.stdout)
		}
		if r := check(t, env, 0, "", "migrate", "status"); !strings.HasPrefix(r.stdout, "0001_event_log\tapplied ") {
			t.Errorf("migrate status printed %q", r.stdout)
		}
		if r := check(t, env, 0, "", "migrate", "down"); r.stdout != revertedAll {
			t.Errorf("migrate down printed %q", r.stdout)
		}
	})
}

// messagesExample is the example rule file for Avon's messages (seed 003).
const messagesExample = "../../triggers/examples/messages.yaml"

// messagesDatabase is a test database with Avon's messages table beside the clinic's.
func messagesDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.Database(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), sql.Messages); err != nil {
		t.Fatal(err)
	}
	return url
}

// dirFiles lists the file names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func stateOf(t *testing.T, path string) rules.Set {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, ok, err := rules.State(string(b))
	if err != nil || !ok {
		t.Fatalf("%s: no state line (%v)", path, err)
	}
	return s
}

// TestRulesLifecycle: a DBA's rule file becomes a migration in rules.dir, generating it
// again without a change writes nothing, a change is a second migration whose down
// restores the first, and `migrate` applies, lists and reverts them with the built-in
// ones.
func TestRulesLifecycle(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "rules") // rules sql creates it
	example, err := os.ReadFile(messagesExample)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, example, 0o644); err != nil {
		t.Fatal(err)
	}
	rulesCmd := func(action string) string { return mustCLI(t, "rules", action, "--rules", file, "--dir", dir) }
	messageEvents := []string{
		"event message_created\trule messages\ton insert",
		"event message_updated\trule messages\ton update",
		"event message_deleted\trule messages\ton delete",
	}
	v1 := append(slices.Clone(builtinEvents), messageEvents...)
	if got := strings.Split(strings.TrimSuffix(rulesCmd("check"), "\n"), "\n"); !slices.Equal(got, v1) {
		t.Errorf("rules check listed\n%q\nwant\n%q", got, v1)
	}

	up1, down1 := filepath.Join(dir, "1001_rules.up.sql"), filepath.Join(dir, "1001_rules.down.sql")
	if out := rulesCmd("sql"); out != up1+"\n"+down1+"\n" {
		t.Errorf("rules sql printed %q, want the paths of 1001_rules", out)
	}
	if out := rulesCmd("sql"); out != "no rule changes\n" {
		t.Errorf("rules sql without a change printed %q", out)
	}
	if got := dirFiles(t, dir); !slices.Equal(got, []string{"1001_rules.down.sql", "1001_rules.up.sql"}) {
		t.Errorf("rules.dir holds %v", got)
	}

	// v2 tells an edit of the body apart.
	edited := "      - {name: message_edited, on: update, when: old.body IS DISTINCT FROM new.body}\n"
	if err := os.WriteFile(file, append(slices.Clone(example), edited...), 0o644); err != nil {
		t.Fatal(err)
	}
	up2, down2 := filepath.Join(dir, "1002_rules.up.sql"), filepath.Join(dir, "1002_rules.down.sql")
	if out := rulesCmd("sql"); out != up2+"\n"+down2+"\n" {
		t.Errorf("rules sql after a change printed %q, want the paths of 1002_rules", out)
	}
	if out := rulesCmd("sql"); out != "no rule changes\n" {
		t.Errorf("rules sql without a change printed %q", out)
	}
	if !stateOf(t, down2).Equal(stateOf(t, up1)) {
		t.Error("1002's down does not restore the rules of 1001")
	}

	url := messagesDatabase(t)
	migrateCmd := func(args ...string) string {
		return mustCLI(t, append([]string{"migrate"}, append(args, "--dir", dir, "--database-url", url)...)...)
	}
	if out := migrateCmd("up"); out != appliedAll+"applied 1001_rules\napplied 1002_rules\n" {
		t.Errorf("migrate up printed %q", out)
	}
	v2 := append(slices.Clone(v1), "event message_edited\trule messages\ton update")
	status := func() (migrations, events []string) {
		for _, line := range strings.Split(strings.TrimSuffix(migrateCmd("status"), "\n"), "\n") {
			if strings.HasPrefix(line, "event ") {
				events = append(events, line)
			} else {
				name, state, _ := strings.Cut(line, "\t")
				migrations = append(migrations, name+" "+strings.Fields(state)[0])
			}
		}
		return migrations, events
	}
	ms, events := status()
	if want := append(slices.Clone(migrationNames), "1001_rules", "1002_rules"); len(ms) != len(want) || ms[len(ms)-1] != "1002_rules applied" {
		t.Errorf("migrate status: migrations %q, want %q applied", ms, want)
	}
	if !slices.Equal(events, v2) {
		t.Errorf("migrate status: events\n%q\nwant\n%q", events, v2)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	var got []string
	if err := conn.QueryRow(t.Context(), `WITH m AS (INSERT INTO messages ("accountId", body) VALUES (7, 'hi') RETURNING id)
SELECT 1 FROM m`).Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), `SELECT array_agg(event ORDER BY id) FROM notifier.events`).Scan(&got); err != nil || !slices.Equal(got, []string{"message_created"}) {
		t.Errorf("events of an insert: %v, %v; want message_created", got, err)
	}

	// Without the rules folder, migrate refuses to revert past what it does not know.
	_, _, err = cli(t, "migrate", "down", "--database-url", url)
	if err == nil || !strings.Contains(err.Error(), "applied migrations not given: 1001, 1002 ") || exitStatus(err) != 1 {
		t.Errorf("migrate down without --dir: %v (exit status %d), want a refusal naming 1001 and 1002", err, exitStatus(err))
	}
	if out := migrateCmd("down", "--to", "1001"); out != "reverted 1002_rules\n" {
		t.Errorf("migrate down --to 1001 printed %q", out)
	}
	if _, events := status(); !slices.Equal(events, v1) {
		t.Errorf("migrate status after down --to 1001: events\n%q\nwant\n%q", events, v1)
	}
	if out := migrateCmd("up"); out != "applied 1002_rules\n" {
		t.Errorf("migrate up again printed %q", out)
	}
	if out := migrateCmd("sql"); !strings.Contains(out, "-- 1002_rules.up.sql\n-- notifier rules: ") {
		t.Errorf("migrate sql does not print 1002_rules")
	}
	if out := migrateCmd("down"); out != "reverted 1002_rules\nreverted 1001_rules\n"+revertedAll {
		t.Errorf("migrate down printed %q", out)
	}
}

// TestRulesErrors: a bad rule file, a missing setting or a rules folder with foreign
// migrations is a configuration error (exit status 2) on one line naming it, with
// nothing written; a rule the database refuses fails `migrate up` (exit status 1)
// naming the rule, and leaves everything pending.
func TestRulesErrors(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, name, body string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	badOp := write(t, "bad-op.yaml", "rules:\n  - name: messages\n    table: messages\n    account: accountId\n    events:\n      - {name: message_created, on: create}\n")
	unknownKey := write(t, "unknown.yaml", "rules:\n  - name: messages\n    tabel: messages\n")
	foreign := t.TempDir()
	for _, f := range []string{"0006_mine.up.sql", "0006_mine.down.sql"} {
		if err := os.WriteFile(filepath.Join(foreign, f), []byte("SELECT 1;"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want error
		says string
	}{
		{[]string{"rules"}, errUsage, "sql, check"},
		{[]string{"rules", "apply"}, errUsage, "sql, check"},
		{[]string{"rules", "sql"}, config.ErrInvalid, "rules.file"},
		{[]string{"rules", "check"}, config.ErrInvalid, "rules.file"},
		{[]string{"rules", "sql", "--rules", messagesExample}, config.ErrInvalid, "rules.dir"},
		{[]string{"rules", "check", "--rules", "/nonexistent/rules.yaml"}, config.ErrInvalid, "/nonexistent/rules.yaml"},
		{[]string{"rules", "check", "--rules", badOp}, config.ErrInvalid, `rule "messages": event "message_created": on must be insert, update or delete, not "create"`},
		{[]string{"rules", "sql", "--rules", badOp, "--dir", t.TempDir()}, config.ErrInvalid, `rule "messages"`},
		{[]string{"rules", "check", "--rules", unknownKey}, config.ErrInvalid, "field tabel not found"},
		{[]string{"rules", "sql", "--rules", messagesExample, "--dir", foreign}, config.ErrInvalid, "0006_mine"},
		{[]string{"migrate", "sql", "--dir", foreign}, config.ErrInvalid, "versions there start at 1001"},
		{[]string{"migrate", "status", "--dir", "/nonexistent/rules"}, config.ErrInvalid, "rules.dir /nonexistent/rules"},
		{[]string{"migrate", "up", "--to", "3", "--database-url", unreachableURL(t)}, errUsage, "--to goes with migrate down"},
		{[]string{"migrate", "down", "--to", "-1", "--database-url", unreachableURL(t)}, errUsage, "--to"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out, _, err := cli(t, tc.args...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v (exit status %d, want %d)", err, tc.want, exitStatus(err), exitStatus(tc.want))
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not mention %s", err, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	if got := dirFiles(t, foreign); len(got) != 2 {
		t.Errorf("a refused rules sql wrote into rules.dir: %v", got)
	}

	t.Run("rule the database refuses", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		file := write(t, "rules.yaml", "rules:\n  - name: messages\n    table: messages\n    account: accountId\n    events:\n      - {name: message_created, on: insert}\n")
		mustCLI(t, "rules", "sql", "--rules", file, "--dir", dir)
		url := pgtest.Database(t) // no messages table
		_, _, err := cli(t, "migrate", "up", "--dir", dir, "--database-url", url)
		if err == nil || exitStatus(err) != 1 || !regexp.MustCompile(`1001_rules: .*rule "?messages"?: table messages does not exist`).MatchString(err.Error()) {
			t.Errorf("migrate up: %v (exit status %d), want status 1 naming the rule and its missing table", err, exitStatus(err))
		}
		checkStatus(t, "pending", "--database-url", url)
	})
}

// TestRulesFromEnv: rules.file and rules.dir come from the environment too, and the
// flags win over it.
func TestRulesFromEnv(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	t.Setenv("NOTIFIER_RULES_FILE", messagesExample)
	t.Setenv("NOTIFIER_RULES_DIR", dir)
	if out := mustCLI(t, "rules", "sql"); !strings.HasPrefix(out, filepath.Join(dir, "1001_rules.up.sql")+"\n") {
		t.Errorf("rules sql printed %q, want 1001_rules in NOTIFIER_RULES_DIR", out)
	}
	if out := mustCLI(t, "rules", "sql", "--dir", other); !strings.HasPrefix(out, filepath.Join(other, "1001_rules.up.sql")+"\n") {
		t.Errorf("rules sql --dir printed %q, want 1001_rules in --dir", out)
	}
	if out := mustCLI(t, "migrate", "sql"); !strings.Contains(out, "-- 1001_rules.up.sql\n") {
		t.Error("migrate sql does not print the migration in NOTIFIER_RULES_DIR")
	}
}
