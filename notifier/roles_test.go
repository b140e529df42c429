package notifier_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// runtimeGrants returns the runtime role's GRANT statements exactly as docs/security.md
// lists them, for role in database db.
func runtimeGrants(t *testing.T, role, db string) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```sql\n-- runtime role")
	if !ok {
		t.Fatal("docs/security.md has no runtime role block")
	}
	block, _, _ = strings.Cut(block, "```")
	var grants []string
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "GRANT ") {
			line = strings.ReplaceAll(line, "notifier_runtime", role)
			line = strings.ReplaceAll(line, "DATABASE clinic", "DATABASE "+pgx.Identifier{db}.Sanitize())
			grants = append(grants, strings.TrimSuffix(line, ";"))
		}
	}
	if len(grants) == 0 {
		t.Fatal("no GRANT in the runtime role block")
	}
	return grants
}

// TestRuntimeRoleGrants: `serve` runs as a role holding exactly the grants
// docs/security.md lists: it starts, delivers live and replayed events, prunes the log
// and may rebase it; a CONNECT-only role holding the old public advisory key, or
// trying the commit lock, stalls no event commit.
func TestRuntimeRoleGrants(t *testing.T) {
	t.Parallel()
	dbURL := pgtestDatabase(t)
	admin, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	db := dbName(t, admin)
	suffix := strings.ReplaceAll(strings.TrimPrefix(db, "notifier_"), "-", "_")
	runtime, outsider := "runtime_"+suffix, "outsider_"+suffix
	stmts := []string{`CREATE ROLE ` + runtime + ` LOGIN`, `CREATE ROLE ` + outsider + ` LOGIN`,
		`REVOKE ALL ON DATABASE ` + pgx.Identifier{db}.Sanitize() + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + pgx.Identifier{db}.Sanitize() + ` TO ` + outsider}
	for _, q := range append(stmts, runtimeGrants(t, runtime, db)...) {
		if _, err := admin.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Errorf("drop roles: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for _, r := range []string{runtime, outsider} {
			if _, err := conn.Exec(context.Background(), `DROP OWNED BY `+r+`; DROP ROLE `+r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	as := func(role string) string {
		u, _ := url.Parse(dbURL)
		u.User = url.User(role)
		return u.String()
	}
	b := setup(t, func(o *setupOpts) {
		o.dbURL = dbURL
		o.mutate = func(c *configT) {
			c.Database.URL = as(runtime)
			c.Log.Retention = time.Hour
			c.Log.PruneInterval = 50 * time.Millisecond
			c.Fleet.AdvertiseURL = "http://127.0.0.1:1" // leads alone: the lease's grants
		}
	})
	var leaseURL string
	if err := admin.QueryRow(t.Context(), `SELECT url FROM notifier.fleet_lease WHERE expires_at > now()`).Scan(&leaseURL); err != nil || leaseURL != "http://127.0.0.1:1" {
		t.Fatalf("fleet lease as the runtime role: %q, %v", leaseURL, err)
	}
	since := b.svc.Hub().Head()
	c := b.dial(t, 1, nil)
	id := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != id || f.Partial {
		t.Fatalf("live as the runtime role: %s", f.raw)
	}
	r := b.dial(t, 1, url.Values{"since": {itoa(since)}})
	if f := r.next(t); f.rowID(t) != id || f.Partial {
		t.Fatalf("replayed as the runtime role: %s", f.raw)
	}

	// A CONNECT-only role holds the advisory key 0001 ordered commits with, and cannot
	// take the lock 0002 orders them with: commits and events go on.
	out, err := pgx.Connect(t.Context(), as(outsider))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	if _, err := out.Exec(t.Context(), `SELECT pg_advisory_lock(7957695015192261490)`); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Exec(t.Context(), `BEGIN; LOCK TABLE notifier.commit_lock IN EXCLUSIVE MODE`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a CONNECT-only role locking notifier.commit_lock: %v, want permission denied", err)
	}
	_, _ = out.Exec(t.Context(), `ROLLBACK`)
	for _, q := range []string{`LOCK TABLE notifier.fleet_lease IN ACCESS SHARE MODE`, `SELECT 1 FROM notifier.fleet_lease FOR UPDATE`} {
		if _, err := out.Exec(t.Context(), `BEGIN; `+q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("a CONNECT-only role: %s: %v, want permission denied", q, err)
		}
		_, _ = out.Exec(t.Context(), `ROLLBACK`)
	}
	next := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != next {
		t.Fatalf("with the advisory key held: %s", f.raw)
	}

	// Retention prunes with the runtime role's grants; the runtime role may rebase.
	b.exec(t, `UPDATE notifier.events SET created_at = now() - interval '2 hours'`)
	deadline := time.Now().Add(waitTimeout)
	for {
		var pruned, head int64
		if err := admin.QueryRow(t.Context(), `SELECT pruned_through, (SELECT coalesce(max(id), 0) FROM notifier.events) FROM notifier.log_state`).Scan(&pruned, &head); err != nil {
			t.Fatal(err)
		}
		if head == 0 && pruned >= next {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime role did not prune: pruned_through %d, head %d", pruned, head)
		}
		time.Sleep(20 * time.Millisecond) // the prune runs on its own ticker
	}
	rt, err := pgx.Connect(t.Context(), as(runtime))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	if _, err := rt.Exec(t.Context(), `SELECT notifier.rebase($1)`, next); err != nil {
		t.Errorf("rebase as the runtime role: %v", err)
	}
}
