package migrate_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/internal/rules"
	"github.com/pgnotifier/notifier/sql"
)

// builtinRules is the rule set the built-in migrations leave installed: the state line
// of the newest one that has one.
func builtinRules(t *testing.T) rules.Set {
	t.Helper()
	ms := load(t)
	for i := len(ms) - 1; i >= 0; i-- {
		s, ok, err := rules.State(ms[i].Up)
		if err != nil {
			t.Fatalf("%04d_%s: %v", ms[i].Version, ms[i].Name, err)
		}
		if ok {
			return s
		}
	}
	t.Fatal("no built-in migration records its rules")
	return rules.Set{}
}

// layer lays the rule file yaml over the built-in rules.
func layer(t *testing.T, yaml string) rules.Set {
	t.Helper()
	f, err := rules.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse rules: %v", err)
	}
	s, err := rules.Apply(builtinRules(t), f)
	if err != nil {
		t.Fatalf("apply rules: %v", err)
	}
	return s
}

// rulesMigration is the generated migration from prev to next, numbered v.
func rulesMigration(v int, prev, next rules.Set) migrate.Migration {
	g := rules.Generate(prev, next)
	return migrate.Migration{Version: v, Name: "rules", Up: g.Up, Down: g.Down}
}

// withMessages adds Avon's messages table to the clinic database.
func (b *testBundle) withMessages(t *testing.T) *testBundle {
	t.Helper()
	exec(t, b.conn, sql.Messages)
	return b
}

func upAll(t *testing.T, b *testBundle, ms []migrate.Migration) {
	t.Helper()
	applied, err := migrate.Up(t.Context(), b.conn, ms)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("applied %d migrations", len(applied))
}

// functionDefs are the definitions of schema notifier's functions: a rules migration
// rewrites notifier.derive() in place, which the catalog's names alone do not show.
func functionDefs(t *testing.T, q querier) []string {
	t.Helper()
	return scan[[]string](t, q, `SELECT coalesce(array_agg(pg_get_functiondef(p.oid) ORDER BY p.proname), '{}')
FROM pg_proc p WHERE p.pronamespace = 'notifier'::regnamespace`)
}

// ruleEvents is notifier.rule_events as "rule/name/op/alias_of", in rule order.
func ruleEvents(t *testing.T, q querier) []string {
	t.Helper()
	return scan[[]string](t, q, `SELECT coalesce(array_agg(rule || '/' || name || '/' || op || '/' || coalesce(alias_of, '') ORDER BY rule, ord), '{}')
FROM notifier.rule_events`)
}

func versions(ms []migrate.Migration) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.Version
	}
	return out
}

// TestRuleErrorsAtMigrate: a rule the generator accepts but the database refuses
// fails `migrate up` naming the rule and the problem, and changes nothing, whether the
// rules migration comes with the built-in ones on a fresh database or alone after them.
func TestRuleErrorsAtMigrate(t *testing.T) {
	t.Parallel()
	rule := func(fields string) string {
		return "rules:\n  - name: bad\n" + fields + "    events:\n      - {name: bad.created, on: insert}\n      - {name: bad.updated, on: update}\n"
	}
	for _, tc := range []struct {
		name, yaml string
		want       string // a regular expression the error matches
	}{
		{"no table", rule("    table: nope\n    account: accountId\n"), `rule "bad": table nope does not exist`},
		{"no schema", rule("    table: elsewhere.messages\n    account: accountId\n"), `rule "bad": table elsewhere.messages does not exist`},
		{"no account column", rule("    table: messages\n    account: tenant\n"), `rule "bad": table messages has no column "tenant"`},
		{"no key column", rule("    table: messages\n    key: uuid\n    account: accountId\n"), `rule "bad": table messages has no column "uuid"`},
		{"no soft_delete column", rule("    table: messages\n    account: accountId\n    soft_delete: removedAt\n"), `rule "bad": table messages has no column "removedAt"`},
		{"no ignored column", rule("    table: messages\n    account: accountId\n    ignore: [editedAt]\n"), `rule "bad": table messages has no column "editedAt"`},
		{"text account", rule("    table: messages\n    account: body\n"), `rule "bad": column "body" of messages is text, not an integer`},
		{"timestamp key", rule("    table: messages\n    key: createdAt\n    account: accountId\n"), `rule "bad": column "createdAt" of messages is timestamp without time zone, not an integer`},
		{"where names no column", rule("    table: messages\n    account: accountId\n    where: r.\"threadID\" > 0\n"), `rule "bad": where or when condition: .*threadID.* does not exist`},
		{"when names no column", "rules:\n  - name: bad\n    table: messages\n    account: accountId\n    events:\n      - {name: bad.edited, on: update, when: new.edited}\n",
			`rule "bad": where or when condition: column new.edited does not exist`},
		{"when not boolean", "rules:\n  - name: bad\n    table: messages\n    account: accountId\n    events:\n      - {name: bad.edited, on: update, when: new.body}\n",
			`rule "bad": where or when condition: .*boolean`},
		{"when reads a table", "rules:\n  - name: bad\n    table: messages\n    account: accountId\n    events:\n      - {name: bad.edited, on: update, when: EXISTS (SELECT FROM threads)}\n",
			`rule "bad": where or when condition: relation "threads" does not exist`},
		{"enrich without id", rule("    table: messages\n    account: accountId\n    enrich: SELECT ev.id AS event, ev.r::json AS payload FROM ev\n"),
			`rule "bad": enrich must return columns id \(the event id\) and payload \(json\)`},
		{"enrich reads no table", rule("    table: messages\n    account: accountId\n    enrich: SELECT ev.id, t.body::json AS payload FROM ev JOIN threads t ON t.id = ev.id\n"),
			`rule "bad": enrich: relation "threads" does not exist`},
		{"lookup of no table", "lookups:\n  - {table: threads, value: title}\n", `lookup threads: table threads does not exist`},
		{"lookup of no column", "lookups:\n  - {table: messages, value: title}\n", `lookup messages: table messages has no column "title"`},
		{"where syntax", rule("    table: messages\n    account: accountId\n    where: r.body =\n"), `rule "bad": where or when condition: syntax error`},
		{"enrich syntax", rule("    table: messages\n    account: accountId\n    enrich: SELECT FROM WHERE\n"), `rule "bad": enrich: syntax error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := regexp.MustCompile(tc.want)
			ms := append(load(t), rulesMigration(1001, builtinRules(t), layer(t, tc.yaml)))
			b := setup(t).clinic(t).withMessages(t)
			check := func(t *testing.T, err error) {
				t.Helper()
				if err == nil {
					t.Fatal("Up with a bad rule succeeded")
				}
				t.Logf("error: %v", err)
				if !want.MatchString(err.Error()) || !strings.Contains(err.Error(), "1001_rules") {
					t.Errorf("error %q: want 1001_rules and %s", err, tc.want)
				}
			}

			before := catalog(t, b.conn)
			_, err := migrate.Up(t.Context(), b.conn, ms)
			check(t, err)
			if schemaExists(t, b.conn, "notifier") {
				t.Error("schema notifier exists after a failed Up")
			}
			if after := catalog(t, b.conn); !slices.Equal(after, before) {
				t.Errorf("catalog changed by a failed Up:\nbefore %q\nafter  %q", before, after)
			}

			b.up(t)
			before, defs := catalog(t, b.conn), functionDefs(t, b.conn)
			_, err = migrate.Up(t.Context(), b.conn, ms)
			check(t, err)
			if after := catalog(t, b.conn); !slices.Equal(after, before) {
				t.Errorf("catalog changed by a failed Up:\nbefore %q\nafter  %q", before, after)
			}
			if !slices.Equal(functionDefs(t, b.conn), defs) {
				t.Error("a failed Up changed a function of schema notifier")
			}
			if n := scan[int](t, b.conn, "SELECT count(*) FROM notifier.schema_migrations"); n != len(ms)-1 {
				t.Errorf("notifier.schema_migrations has %d rows, want the %d built-in ones", n, len(ms)-1)
			}
			if trg := notifierTriggers(t, b.conn); !slices.Equal(trg, allTriggers) {
				t.Errorf("triggers %v after a failed Up, want %v", trg, allTriggers)
			}
		})
	}
}

// message is a notifier.events row of the messages rule.
type message struct {
	Event   string
	Account int64
	Data    string // row_data, as jsonb text
}

func messageEvents(t *testing.T, q querier, after int64) []message {
	t.Helper()
	rows, err := q.Query(t.Context(), "SELECT event, account_id, row_data::text FROM notifier.events WHERE id > $1 ORDER BY id", after)
	if err != nil {
		t.Fatal(err)
	}
	var out []message
	for rows.Next() {
		var m message
		if err := rows.Scan(&m.Event, &m.Account, &m.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// messageRow is a message as jsonb text, as the capture trigger records it.
func messageRow(t *testing.T, q querier, id int64) string {
	t.Helper()
	return scan[string](t, q, "SELECT to_jsonb(m)::text FROM messages m WHERE id = $1", id)
}

func lastEventID(t *testing.T, q querier) int64 {
	t.Helper()
	return scan[int64](t, q, "SELECT coalesce(max(id), 0) FROM notifier.events")
}

// TestMessagesExample: triggers/examples/messages.yaml, generated and applied over the
// built-in rules, makes Avon's three events of a message's life, to its account, with
// the row as committed as the payload; DownTo the built-ins removes it all again.
func TestMessagesExample(t *testing.T) {
	t.Parallel()
	f, err := rules.ReadFile("../../triggers/examples/messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := builtinRules(t)
	next, err := rules.Apply(base, f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := next.Events()[len(base.Events()):], []string{"message_created", "message_updated", "message_deleted"}; !slices.Equal(got, want) {
		t.Errorf("events added %v, want %v", got, want)
	}
	b := setup(t).clinic(t).withMessages(t)
	ms := load(t)
	b.up(t)
	builtinCatalog, builtinDefs, builtinEvents := catalog(t, b.conn), functionDefs(t, b.conn), ruleEvents(t, b.conn)
	all := append(slices.Clone(ms), rulesMigration(1001, base, next))
	upAll(t, b, all)
	if got := ruleEvents(t, b.conn); !slices.Equal(got[len(got)-3:], []string{
		"messages/message_created/insert/", "messages/message_updated/update/", "messages/message_deleted/delete/"}) {
		t.Errorf("notifier.rule_events = %q", got)
	}

	mark := lastEventID(t, b.conn)
	id := scan[int64](t, b.conn, `INSERT INTO messages ("threadId", body, "authorId", "accountId") VALUES (1, 'hello', 5, 7) RETURNING id`)
	created := messageRow(t, b.conn, id)
	exec(t, b.conn, `UPDATE messages SET body = 'hello, world', "updatedAt" = now() WHERE id = $1`, id)
	updated := messageRow(t, b.conn, id)
	exec(t, b.conn, `UPDATE messages SET "updatedAt" = now() + interval '1 minute' WHERE id = $1`, id) // updatedAt alone: no event
	exec(t, b.conn, `UPDATE messages SET "deletedAt" = now() WHERE id = $1`, id)
	softDeleted := messageRow(t, b.conn, id)
	exec(t, b.conn, `DELETE FROM messages WHERE id = $1`, id) // already gone for the dashboard
	other := scan[int64](t, b.conn, `INSERT INTO messages ("threadId", body, "authorId", "accountId") VALUES (2, 'bye', 6, 8) RETURNING id`)
	otherRow := messageRow(t, b.conn, other)
	exec(t, b.conn, `DELETE FROM messages WHERE id = $1`, other)
	exec(t, b.conn, `INSERT INTO messages (body) VALUES ('no account')`) // no account: no event
	got := messageEvents(t, b.conn, mark)
	want := []message{
		{"message_created", 7, created},
		{"message_updated", 7, updated},
		{"message_deleted", 7, softDeleted},
		{"message_created", 8, otherRow},
		{"message_deleted", 8, otherRow},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
	// No enrich: the payload is the row as committed.
	var payloads []string
	for _, p := range scan[[]string](t, b.conn, `SELECT array_agg(x.payload::text ORDER BY x.id)
FROM notifier.enrich_messages(ARRAY(SELECT id FROM notifier.events WHERE id > $1)) x`, mark) {
		var v any
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			t.Fatalf("payload %s: %v", p, err)
		}
		payloads = append(payloads, scan[string](t, b.conn, "SELECT $1::jsonb::text", p))
	}
	if len(payloads) != len(want) {
		t.Fatalf("%d payloads, want %d", len(payloads), len(want))
	}
	for i, p := range payloads {
		if p != want[i].Data {
			t.Errorf("payload %d = %s, want the row %s", i, p, want[i].Data)
		}
	}

	newest := ms[len(ms)-1].Version
	reverted, err := migrate.DownTo(t.Context(), b.conn, all, newest)
	if err != nil || len(reverted) != 1 || reverted[0].Version != 1001 {
		t.Fatalf("DownTo(%d) = %v, %v; want 1001_rules reverted", newest, versions(reverted), err)
	}
	if after := catalog(t, b.conn); !slices.Equal(after, builtinCatalog) {
		t.Errorf("catalog after DownTo(%d) differs from the built-ins':\nbefore %q\nafter  %q", newest, builtinCatalog, after)
	}
	if !slices.Equal(functionDefs(t, b.conn), builtinDefs) || !slices.Equal(ruleEvents(t, b.conn), builtinEvents) {
		t.Errorf("DownTo(%d) did not restore the built-in functions and events", newest)
	}
	mark = lastEventID(t, b.conn)
	exec(t, b.conn, `INSERT INTO messages ("accountId") VALUES (7)`)
	if got := messageEvents(t, b.conn, mark); len(got) != 0 {
		t.Errorf("events after DownTo(%d): %+v, want none", newest, got)
	}
	if reverted, err := migrate.Down(t.Context(), b.conn, all); err != nil || len(reverted) != len(ms) {
		t.Errorf("Down = %v, %v; want the %d built-ins reverted", versions(reverted), err, len(ms))
	}
}

// statusUpdate moves appointment id to the named status and returns the events it made.
func statusUpdate(t *testing.T, b *testBundle, id int64, status string) []string {
	t.Helper()
	mark := lastEventID(t, b.conn)
	exec(t, b.conn, `UPDATE appointments SET "statusId" = $1 WHERE id = $2`, statusID(t, b.conn, status), id)
	var names []string
	for _, m := range messageEvents(t, b.conn, mark) {
		names = append(names, m.Event)
	}
	return names
}

// TestAliases: an alias emits the event under a second name too, right after it.
func TestAliases(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	base := builtinRules(t)
	upAll(t, b, append(load(t), rulesMigration(1001, base, layer(t, "aliases:\n  appointments.finished: [appointmnents.finished]\n"))))
	id := appointment(t, b.conn, statusID(t, b.conn, "Agendado"), 1)
	if got, want := statusUpdate(t, b, id, "Finalizado"), []string{
		"appointments.updated", "appointments.status.changed", "appointments.finished", "appointmnents.finished",
	}; !slices.Equal(got, want) {
		t.Errorf("events of a finish: %v, want %v", got, want)
	}
	if got, want := statusUpdate(t, b, id, "Check-in"), []string{
		"appointments.updated", "appointments.status.changed", "appointments.checkin",
	}; !slices.Equal(got, want) {
		t.Errorf("events of a check-in: %v, want %v", got, want)
	}
	events, err := migrate.Events(t.Context(), b.conn)
	if err != nil {
		t.Fatal(err)
	}
	want := migrate.Event{Name: "appointmnents.finished", Rule: "appointments", Op: "update", AliasOf: "appointments.finished"}
	if !slices.Contains(events, want) {
		t.Errorf("Events = %+v, want %+v among them", events, want)
	}
}

// TestDisable: a disabled event is not emitted; the rule's others are.
func TestDisable(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t)
	upAll(t, b, append(load(t), rulesMigration(1001, builtinRules(t), layer(t, "disable: [appointments.updated]\n"))))
	id := appointment(t, b.conn, statusID(t, b.conn, "Agendado"), 1)
	if got, want := statusUpdate(t, b, id, "Check-in"), []string{"appointments.status.changed", "appointments.checkin"}; !slices.Equal(got, want) {
		t.Errorf("events of a check-in: %v, want %v", got, want)
	}
	mark := lastEventID(t, b.conn)
	exec(t, b.conn, `UPDATE appointments SET notes = 'late' WHERE id = $1`, id)
	if got := messageEvents(t, b.conn, mark); len(got) != 0 {
		t.Errorf("events of a notes change: %+v, want none", got)
	}
	if slices.Contains(ruleEvents(t, b.conn), "appointments/appointments.updated/update/") {
		t.Error("notifier.rule_events still lists appointments.updated")
	}
}

// TestRuleChangeRoundTrip: a changed rule is a second migration whose down restores
// the first's rules exactly; up again installs the change again.
func TestRuleChangeRoundTrip(t *testing.T) {
	t.Parallel()
	const v1 = `rules:
  - name: messages
    table: messages
    account: accountId
    soft_delete: deletedAt
    events:
      - {name: message_created, on: insert}
      - {name: message_updated, on: update}
      - {name: message_deleted, on: delete}
`
	// v2 stops counting updatedAt alone as an update, and tells edits of the body apart.
	v2 := strings.Replace(v1, "    soft_delete: deletedAt\n", "    soft_delete: deletedAt\n    ignore: [updatedAt]\n", 1) +
		"      - {name: message_edited, on: update, when: old.body IS DISTINCT FROM new.body, keep_old: true}\n"
	base := builtinRules(t)
	s1, s2 := layer(t, v1), layer(t, v2)
	m1, m2 := rulesMigration(1001, base, s1), rulesMigration(1002, s1, s2)
	if back, ok, err := rules.State(m2.Down); err != nil || !ok || !back.Equal(s1) {
		t.Errorf("1002's down records %+v (%v, %v), want the rules of 1001", back, ok, err)
	}
	b := setup(t).clinic(t).withMessages(t)
	all := append(load(t), m1, m2)
	id := scan[int64](t, b.conn, `INSERT INTO messages ("accountId", body) VALUES (7, 'a') RETURNING id`)

	touch := func(t *testing.T) []string {
		t.Helper()
		mark := lastEventID(t, b.conn)
		exec(t, b.conn, `UPDATE messages SET "updatedAt" = now() WHERE id = $1`, id)
		exec(t, b.conn, `UPDATE messages SET body = body || '!' WHERE id = $1`, id)
		var names []string
		for _, m := range messageEvents(t, b.conn, mark) {
			names = append(names, m.Event)
		}
		return names
	}
	upAll(t, b, append(load(t), m1))
	v1Catalog, v1Defs, v1Events := catalog(t, b.conn), functionDefs(t, b.conn), ruleEvents(t, b.conn)
	wantV1 := []string{"message_updated", "message_updated"}
	if got := touch(t); !slices.Equal(got, wantV1) {
		t.Errorf("v1: events %v, want %v", got, wantV1)
	}

	upAll(t, b, all)
	wantV2 := []string{"message_updated", "message_edited"}
	if got := touch(t); !slices.Equal(got, wantV2) {
		t.Errorf("v2: events %v, want %v", got, wantV2)
	}
	old := scan[string](t, b.conn, `SELECT old_data ->> 'body' FROM notifier.events WHERE event = 'message_edited' ORDER BY id DESC LIMIT 1`)
	if old != "a!" {
		t.Errorf("message_edited kept the old body %q, want %q", old, "a!")
	}

	if reverted, err := migrate.DownTo(t.Context(), b.conn, all, 1001); err != nil || len(reverted) != 1 || reverted[0].Version != 1002 {
		t.Fatalf("DownTo(1001) = %v, %v; want 1002_rules reverted", versions(reverted), err)
	}
	if !slices.Equal(catalog(t, b.conn), v1Catalog) || !slices.Equal(functionDefs(t, b.conn), v1Defs) || !slices.Equal(ruleEvents(t, b.conn), v1Events) {
		t.Error("1002's down did not restore 1001's rules exactly")
	}
	if got := touch(t); !slices.Equal(got, wantV1) {
		t.Errorf("v1 again: events %v, want %v", got, wantV1)
	}

	upAll(t, b, all)
	if got := touch(t); !slices.Equal(got, wantV2) {
		t.Errorf("v2 again: events %v, want %v", got, wantV2)
	}
}

// TestDownUnknownMigration: Down refuses to leave behind an applied migration it was
// not given (a rules folder not configured), changing nothing.
func TestDownUnknownMigration(t *testing.T) {
	t.Parallel()
	b := setup(t).clinic(t).withMessages(t)
	upAll(t, b, append(load(t), rulesMigration(1001, builtinRules(t), layer(t, "rules:\n  - {name: messages, table: messages, account: accountId, events: [{name: message_created, on: insert}]}\n"))))
	before := catalog(t, b.conn)
	for name, down := range map[string]func() error{
		"Down":      func() error { _, err := migrate.Down(t.Context(), b.conn, load(t)); return err },
		"DownTo(0)": func() error { _, err := migrate.DownTo(t.Context(), b.conn, load(t), 0); return err },
	} {
		if err := down(); err == nil || !strings.Contains(err.Error(), "applied migrations not given: 1001 ") {
			t.Errorf("%s without 1001: %v, want an error naming 1001", name, err)
		}
	}
	if after := catalog(t, b.conn); !slices.Equal(after, before) {
		t.Error("a refused Down changed the catalog")
	}
}
