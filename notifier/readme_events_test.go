package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/triggers"
)

// readmeExample is one example payload of the README's "Events" section: a line
// starting with the event's name in backquotes, then a ```json block.
type readmeExample struct {
	name    string
	marker  string // the line naming the event
	json    []byte
	relayed bool // the marker says "relayed": a name clients emit (socketio.relay)
}

var exampleMarker = regexp.MustCompile("^`([a-z][a-z0-9_.]*)`")

// readmeEventsSection returns the README's "### Events" section, up to the next "## ".
func readmeEventsSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Events\n")
	if !ok {
		t.Fatal(`README.md has no "### Events" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// readmeExamples parses the examples of the README's events section, by name.
func readmeExamples(t *testing.T, section string) map[string]readmeExample {
	t.Helper()
	lines := strings.Split(section, "\n")
	out := map[string]readmeExample{}
	for i := 0; i+1 < len(lines); i++ {
		m := exampleMarker.FindStringSubmatch(lines[i])
		if m == nil || lines[i+1] != "```json" {
			continue
		}
		var body strings.Builder
		j := i + 2
		for ; j < len(lines) && lines[j] != "```"; j++ {
			body.WriteString(lines[j] + "\n")
		}
		if j == len(lines) {
			t.Fatalf("README.md: the example of %s has no closing ```", m[1])
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("README.md shows two examples of %s", m[1])
		}
		ex := readmeExample{name: m[1], marker: lines[i], json: []byte(body.String()), relayed: strings.Contains(lines[i], "relayed")}
		if _, err := decodeOne(ex.json); err != nil {
			t.Errorf("README.md's example of %s is not one JSON value: %v", ex.name, err)
		}
		out[m[1]] = ex
		i = j
	}
	if len(out) == 0 {
		t.Fatal("README.md's events section has no example (a line naming the event in backquotes, then a ```json block)")
	}
	return out
}

// tableEvents returns the event names in the first column of the section's table.
func tableEvents(section string) []string {
	name := regexp.MustCompile("`([a-z][a-z0-9_]*\\.[a-z0-9_.]+)`")
	var out []string
	for line := range strings.Lines(section) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], " |")
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func decodeOne(p []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one value")
	}
	return v, nil
}

// keyDiff lists where doc and got differ in their objects' keys (recursively; arrays
// by their first element), or in the kind of a value both give (object, array,
// string, number, boolean; null matches any scalar).
func keyDiff(path string, doc, got any) []string {
	kind := func(v any) string {
		switch v.(type) {
		case map[string]any:
			return "an object"
		case []any:
			return "an array"
		case string:
			return "a string"
		case float64:
			return "a number"
		case bool:
			return "a boolean"
		}
		return "null"
	}
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: the README shows an object, the event has %s", path, kind(got))}
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(d)) {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: in the README, not in the event", path, k))
				continue
			}
			out = append(out, keyDiff(path+"."+k, d[k], g[k])...)
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			if _, ok := d[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: in the event, not in the README", path, k))
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		switch {
		case !ok:
			return []string{fmt.Sprintf("%s: the README shows an array, the event has %s", path, kind(got))}
		case len(d) == 0 && len(g) == 0:
			return nil
		case len(d) == 0 || len(g) == 0:
			return []string{fmt.Sprintf("%s: the README shows %d elements, the event has %d: nothing to compare", path, len(d), len(g))}
		}
		return keyDiff(path+"[0]", d[0], g[0])
	}
	if k := kind(got); k == "an object" || k == "an array" {
		return []string{fmt.Sprintf("%s: the README shows %s, the event has %s", path, kind(doc), k)}
	}
	if kd, kg := kind(doc), kind(got); kd != "null" && kg != "null" && kd != kg {
		return []string{fmt.Sprintf("%s: the README shows %s, the event has %s", path, kd, kg)}
	}
	return nil
}

// TestReadmeEvents: every example payload in the README's "Events" section has exactly
// the keys (recursively; arrays by their first element) of a real event of its name,
// made by a real notifier from the clinic app's writes to a real PostgreSQL, and read as
// a dashboard reads it: a /ws frame, or the Socket.IO payload for the events only
// Socket.IO has. Every event the installed rules emit, every event the table names and
// every event of the notifier's own has an example; an example of any other name must
// say it is relayed, and is checked by relaying it.
func TestReadmeEvents(t *testing.T) {
	t.Parallel()
	section := readmeEventsSection(t)
	examples := readmeExamples(t, section)
	own := []string{contract.EventResync, contract.EventDisconnect, contract.EventError}
	var relayed []string
	for name, ex := range examples {
		switch {
		case slices.Contains(clinicEvents, name) || slices.Contains(own, name):
		case ex.relayed:
			relayed = append(relayed, name)
		default:
			t.Errorf("README.md shows an example of %s, which the service does not emit (a relayed name's line must say \"relayed\")", name)
		}
	}
	slices.Sort(relayed)
	refused := "message_created" // a relayed name to refuse an emit of (notifier.error)
	if len(relayed) > 0 {
		refused = relayed[0]
	}
	relay := slices.Clone(relayed)
	if !slices.Contains(relay, refused) {
		relay = append(relay, refused)
	}
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.SocketIO.Relay = relay }
	})

	rows, err := b.db.Query(t.Context(), `SELECT name FROM notifier.rule_events ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	installed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	named := slices.Concat(installed, tableEvents(section), own)
	slices.Sort(named)
	for _, name := range slices.Compact(named) {
		if _, ok := examples[name]; !ok {
			t.Errorf("README.md's events section has no example of %s (a line starting with `%s`, then a ```json block)", name, name)
		}
	}

	actual := map[string][]byte{} // a real event of each name, as the dashboard reads it
	actual[contract.EventResync] = b.dial(t, 1, url.Values{"since": {"1"}}).next(t).raw

	// The clinic app's day: each statement its own transaction, every join filled in.
	live := b.dial(t, 1, nil)
	var appt, doc int64
	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', 'Observações sobre o agendamento', 1, 1, 1, 1) RETURNING id`).Scan(&appt); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 1)`, appt); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `UPDATE appointments SET notes = 'Trazer exames anteriores' WHERE id = $1`, appt)
	for _, status := range []int{2, 3, 4} { // Check-in, Em atendimento, Finalizado
		b.exec(t, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, status, appt)
	}
	b.exec(t, `UPDATE appointments SET "deletedAt" = now() AT TIME ZONE 'UTC' WHERE id = $1`, appt)
	tx, err = b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `INSERT INTO doctors (name, crm, email, phone, "accountId")
VALUES ('Dr. João Silva', '12345', 'joao.silva@example.com', '(81) 99999-9999', 1) RETURNING id`).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO doctor_procedures ("doctorId", "procedureId") VALUES ($1, 1), ($1, 2)`, doc); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `UPDATE doctors SET phone = '(81) 98888-8888' WHERE id = $1`, doc)
	b.exec(t, `UPDATE doctors SET "isBusy" = true WHERE id = $1`, doc)
	b.exec(t, `UPDATE doctors SET "deletedAt" = now() AT TIME ZONE 'UTC' WHERE id = $1`, doc)
	for missing := slices.Clone(clinicEvents); len(missing) > 0; {
		f := live.next(t)
		if f.Partial {
			t.Fatalf("partial event: %s", f.raw)
		}
		if _, seen := actual[f.Event]; !seen {
			actual[f.Event] = f.raw
		}
		missing = slices.DeleteFunc(missing, func(n string) bool { return n == f.Event })
	}

	// Socket.IO: a refused relay (notifier.error), a relayed emit, a token that expires
	// (notifier.disconnect).
	sender := b.sio(t, 1, func(o *sioclient.Options) { o.Events = []string{contract.EventError} })
	listener := b.sio(t, 1, func(o *sioclient.Options) { o.Events = relayed })
	expiring := b.sio(t, 1, func(o *sioclient.Options) {
		o.Token = token(t, 1, 5*time.Second) // expires after the others connected and relayed
		o.Events = []string{contract.EventDisconnect}
		no := false
		o.Reconnection = &no
	})
	sender.WaitConnect()
	listener.WaitConnect()
	expiring.WaitConnect()
	for _, name := range relayed {
		var payload map[string]any
		if err := json.Unmarshal(examples[name].json, &payload); err != nil {
			t.Fatalf("README.md's example of %s: %v", name, err)
		}
		delete(payload, "relayedBy") // the server adds it
		sender.Emit(name, payload)
		e := listener.WaitEvent()
		if e.Name != name {
			t.Fatalf("relayed %s, the listener got %s", name, e)
		}
		actual[name] = e.Data
	}
	sender.Emit(refused, "not an object")
	if e := sender.WaitEvent(); e.Name == contract.EventError {
		actual[contract.EventError] = e.Data
	} else {
		t.Fatalf("a refused relay: got %s, want %s", e, contract.EventError)
	}
	if e := expiring.WaitEvent(); e.Name == contract.EventDisconnect {
		actual[contract.EventDisconnect] = e.Data
	} else {
		t.Fatalf("a token expiring: got %s, want %s", e, contract.EventDisconnect)
	}

	for _, name := range slices.Sorted(maps.Keys(examples)) {
		got, ok := actual[name]
		if !ok {
			t.Errorf("no real %s to compare README.md's example with", name)
			continue
		}
		doc, _ := decodeOne(examples[name].json)
		ev, err := decodeOne(got)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, got, err)
		}
		if diff := keyDiff(name, doc, ev); len(diff) > 0 {
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, got, "", "  ")
			t.Errorf("README.md's example of %s differs from a real one:\n  %s\nthe real one:\n%s", name, strings.Join(diff, "\n  "), pretty.String())
		}
	}
}

// TestReadmeKeyDiff: the comparison TestReadmeEvents makes fails on a key the README
// lacks or adds, at any depth, and passes on different values.
func TestReadmeKeyDiff(t *testing.T) {
	t.Parallel()
	const event = `{"id":1,"data":{"a":"x","b":null,"c":{"d":1},"e":[{"f":1},{"g":2}]}}`
	for _, tc := range []struct {
		doc  string
		diff bool
	}{
		{`{"id":9,"data":{"a":"y","b":"set","c":{"d":2},"e":[{"f":3}]}}`, false},
		{`{"id":9,"data":{"a":"y","b":null,"c":{"d":2},"e":[{"f":3},{"zzz":1}]}}`, false}, // arrays: the first element
		{`{"id":9,"data":{"a":"y","c":{"d":2},"e":[{"f":3}]}}`, true},                     // lacks b
		{`{"id":9,"data":{"a":"y","b":null,"c":{},"e":[{"f":3}]}}`, true},                 // lacks c.d
		{`{"id":9,"data":{"a":"y","b":null,"c":{"d":2,"x":0},"e":[{"f":3}]}}`, true},      // adds c.x
		{`{"id":9,"data":{"a":"y","b":null,"c":{"d":2},"e":[{"g":3}]}}`, true},            // e[0] differs
		{`{"id":9,"data":{"a":"y","b":null,"c":null,"e":[{"f":3}]}}`, true},               // null for an object
		{`{"id":9,"data":{"a":"y","b":null,"c":{"d":2},"e":[]}}`, true},                   // no element to compare
		{`{"id":9,"data":{"a":1,"b":null,"c":{"d":2},"e":[{"f":3}]}}`, true},              // a number for a string
	} {
		doc, _ := decodeOne([]byte(tc.doc))
		got, _ := decodeOne([]byte(event))
		if d := keyDiff("ev", doc, got); (len(d) > 0) != tc.diff {
			t.Errorf("%s: diff %q, want a diff: %v", tc.doc, d, tc.diff)
		}
	}
}

// docGrants returns the GRANT statements of the ```sql block of file whose first line
// is head, without their semicolons.
func docGrants(t *testing.T, file, head string) []string {
	t.Helper()
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```sql\n"+head)
	if !ok {
		t.Fatalf("%s has no ```sql block starting with %q", file, head)
	}
	block, _, _ = strings.Cut(block, "```")
	var out []string
	for line := range strings.Lines(block) {
		if strings.HasPrefix(line, "GRANT ") {
			stmt, _, _ := strings.Cut(line, ";")
			out = append(out, stmt)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no GRANT in the block %q", file, head)
	}
	return out
}

// TestReadmeGrants: the README's two blocks of grants are all a migrator and a runtime
// role need, as they stand, and docs/deploy.md repeats them. Login roles for the app
// (owning the clinic tables), the migrator and the runtime, in a database whose CONNECT
// is revoked from PUBLIC: the migrator installs every migration, a notifier running as
// the runtime role (leading a fleet, relaying) delivers the app's writes live and
// replayed, relays an emit and answers a snapshot, and the migrator removes it all.
func TestReadmeGrants(t *testing.T) {
	t.Parallel()
	const migratorHead, runtimeHead = "-- migrator role", "-- runtime role"
	migratorGrants, runtimeGrants := docGrants(t, "../README.md", migratorHead), docGrants(t, "../README.md", runtimeHead)
	for head, want := range map[string][]string{migratorHead: migratorGrants, runtimeHead: runtimeGrants} {
		if got := docGrants(t, "../docs/deploy.md", head); !slices.Equal(got, want) {
			t.Errorf("docs/deploy.md's %q block:\n%s\nREADME.md's:\n%s", head, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	ctx := t.Context()
	dbURL := pgtestDatabase(t)
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	ms, err := migrate.Load(triggers.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Down(ctx, admin, ms); err != nil { // the template comes migrated
		t.Fatal(err)
	}
	db := dbName(t, admin)
	suffix := strings.ReplaceAll(strings.TrimPrefix(db, "notifier_"), "-", "_")
	app, migrator, runtime := "app_"+suffix, "migrator_"+suffix, "runtime_"+suffix
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Errorf("drop roles: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for _, r := range []string{runtime, migrator, app} {
			if _, err := conn.Exec(context.Background(), `DROP OWNED BY `+r+`; DROP ROLE `+r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	quoted := pgx.Identifier{db}.Sanitize()
	for _, q := range []string{
		`CREATE ROLE ` + app + ` LOGIN`, `CREATE ROLE ` + migrator + ` LOGIN`, `CREATE ROLE ` + runtime + ` LOGIN`,
		`DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER TABLE public.%I OWNER TO ` + app + `', r.tablename);
  END LOOP;
END $$`,
		`REVOKE ALL ON DATABASE ` + quoted + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + quoted + ` TO ` + app,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	names := strings.NewReplacer("notifier_migrator", migrator, "notifier_runtime", runtime, "clinic_app", app, "DATABASE clinic", "DATABASE "+quoted)
	grant := func(stmts []string) {
		t.Helper()
		for _, q := range stmts {
			if _, err := admin.Exec(ctx, names.Replace(q)); err != nil {
				t.Fatalf("%s: %v", names.Replace(q), err)
			}
		}
	}
	as := func(role string) string {
		u, _ := url.Parse(dbURL)
		u.User = url.User(role)
		return u.String()
	}
	connect := func(role string) *pgx.Conn {
		t.Helper()
		conn, err := pgx.Connect(ctx, as(role))
		if err != nil {
			t.Fatalf("connect as %s: %v", role, err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}

	grant(migratorGrants)
	mig := connect(migrator)
	if applied, err := migrate.Up(ctx, mig, ms); err != nil || len(applied) != len(ms) {
		t.Fatalf("migrate up as the migrator: %d of %d applied, %v", len(applied), len(ms), err)
	}
	grant(runtimeGrants)

	b := setup(t, func(o *setupOpts) {
		o.dbURL = dbURL
		o.mutate = func(c *configT) {
			c.Database.URL = as(runtime)
			c.Fleet.AdvertiseURL = "http://127.0.0.1:1" // leads alone: the lease's grants
			c.SocketIO.Relay = []string{"message_created"}
		}
	})
	since := b.svc.Hub().Head()
	live := b.dial(t, 1, nil)
	var id int64
	if err := connect(app).QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', 1, 1, 1, 1) RETURNING id`).Scan(&id); err != nil {
		t.Fatalf("insert as the app: %v", err)
	}
	if f := live.next(t); f.Event != "appointments.created" || f.rowID(t) != id || f.Partial {
		t.Fatalf("live as the runtime role: %s", f.raw)
	}
	if f := b.dial(t, 1, url.Values{"since": {itoa(since)}}).next(t); f.rowID(t) != id || f.Partial {
		t.Fatalf("replayed as the runtime role: %s", f.raw)
	}
	if code, page := b.getSnapshot(t, 1, "/doctors"); code != http.StatusOK || len(page["items"]) < 3 {
		t.Fatalf("snapshot as the runtime role: %d %v", code, page)
	}
	sender := b.sio(t, 1, func(o *sioclient.Options) { o.Events = []string{contract.EventError} })
	listener := b.sio(t, 1, func(o *sioclient.Options) { o.Events = []string{"message_created"} })
	sender.WaitConnect()
	listener.WaitConnect()
	sender.Emit("message_created", map[string]any{"id": 1, "content": "relayed as the runtime role"})
	if e := listener.WaitEvent(); e.Name != "message_created" {
		t.Fatalf("relay as the runtime role: got %s", e)
	}

	b.stop(t)
	if reverted, err := migrate.Down(ctx, mig, ms); err != nil || len(reverted) != len(ms) {
		t.Fatalf("migrate down as the migrator: %d of %d reverted, %v", len(reverted), len(ms), err)
	}
}
