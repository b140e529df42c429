package rules_test

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/internal/rules"
	"github.com/pgnotifier/notifier/triggers"
)

// builtin is the rule set the newest built-in migration recording one leaves installed.
func builtin(t *testing.T) rules.Set {
	t.Helper()
	names, err := fs.Glob(triggers.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for i := len(names) - 1; i >= 0; i-- {
		b, err := fs.ReadFile(triggers.FS, names[i])
		if err != nil {
			t.Fatal(err)
		}
		s, ok, err := rules.State(string(b))
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		if ok {
			return s
		}
	}
	t.Fatal("no built-in migration records its rules")
	return rules.Set{}
}

// TestFileErrors: what the generator can tell without a database is refused when the
// file is read and laid over the built-in rules, on one line naming the rule (or the
// file's section) and the problem.
func TestFileErrors(t *testing.T) {
	t.Parallel()
	const ok = "rules:\n  - name: messages\n    table: messages\n    account: accountId\n"
	ev := "    events:\n      - {name: message_created, on: insert}\n"
	for _, tc := range []struct {
		name, yaml string
		rule       string // the rule the error names; "" for the file
		says       string
	}{
		{"empty", "", "", "empty file"},
		{"unknown key", "rules:\n  - name: messages\n    tabel: messages\n    account: accountId\n" + ev, "", "field tabel not found"},
		{"unknown top-level key", "rule:\n  - name: messages\n", "", "field rule not found"},
		{"unknown event key", ok + "    events:\n      - {name: message_created, on: insert, if: true}\n", "", "field if not found"},
		{"bad op", ok + "    events:\n      - {name: message_created, on: create}\n", "messages", `event "message_created": on must be insert, update or delete, not "create"`},
		{"no op", ok + "    events:\n      - {name: message_created}\n", "messages", `on must be insert, update or delete, not ""`},
		{"duplicate event in a rule", ok + "    events:\n      - {name: message_created, on: insert}\n      - {name: message_created, on: update}\n",
			"messages", `event "message_created" is also emitted by rule "messages"`},
		{"event of a built-in rule", ok + "    events:\n      - {name: appointments.created, on: insert}\n",
			"messages", `event "appointments.created" is also emitted by rule "appointments"`},
		{"alias of an existing event", "aliases:\n  appointments.finished: [appointments.checkin]\n",
			"appointments", `event "appointments.checkin" is also emitted by rule "appointments"`},
		{"disable unknown", "disable: [appointments.cancelled]\n", "", `disable: no rule emits "appointments.cancelled"`},
		{"aliases of unknown", "aliases:\n  appointments.cancelled: [x]\n", "", `aliases: no rule emits "appointments.cancelled"`},
		{"aliases of disabled", "disable: [appointments.finished]\naliases:\n  appointments.finished: [x]\n", "", `aliases: no rule emits "appointments.finished"`},
		{"bad rule name", "rules:\n  - name: Messages\n    table: messages\n    account: accountId\n" + ev, "Messages", "name must match"},
		{"bad table", "rules:\n  - name: messages\n    table: messages;drop\n    account: accountId\n" + ev, "messages", `table: "messages;drop" is not [schema.]table`},
		{"bad account column", "rules:\n  - name: messages\n    table: messages\n    account: account id\n" + ev, "messages", `column "account id" is not an identifier`},
		{"bad ignored column", ok + "    ignore: [\"updatedAt\\\"\"]\n" + ev, "messages", `column "updatedAt\"" is not an identifier`},
		{"bad event name", ok + "    events:\n      - {name: message created, on: insert}\n", "messages", `event name "message created" must match`},
		{"notifier event name", ok + "    events:\n      - {name: notifier.resync, on: insert}\n", "messages", `event name "notifier.resync"`},
		{"bad alias name", "aliases:\n  appointments.finished: [\"done!\"]\n", "appointments", `event name "done!" must match`},
		{"; in where", ok + "    where: r.body <> ''; DROP TABLE messages\n" + ev, "messages", "where: must be one expression or query (no ;)"},
		{"; in when", ok + "    events:\n      - {name: message_created, on: insert, when: \"true; SELECT 1\"}\n", "messages", `event "message_created": when: must be one expression or query (no ;)`},
		{"comment in when", ok + "    events:\n      - {name: message_created, on: insert, when: true -- )}\n", "messages", "comments are not allowed in a condition"},
		{"; in enrich", ok + "    enrich: SELECT 1 AS id, '{}'::json AS payload; DELETE FROM messages\n" + ev, "messages", "enrich: must be one expression or query (no ;)"},
		{"dollar tag in enrich", ok + "    enrich: SELECT $notifier_rule$ AS id\n" + ev, "messages", "must not contain $notifier_rule$"},
		{"placeholder in where", ok + "    where: r.body = '__NOTIFIER_TABLE__'\n" + ev, "messages", "must not contain __NOTIFIER_TABLE__"},
		{"no table", "rules:\n  - name: messages\n    account: accountId\n" + ev, "messages", "table is required"},
		{"no account", "rules:\n  - name: messages\n    table: messages\n" + ev, "messages", "account (the integer column naming the row's account) is required"},
		{"no events", ok, "messages", "no events"},
		{"columns and ignore", ok + "    columns: [body]\n    ignore: [updatedAt]\n" + ev, "messages", "columns and ignore exclude each other"},
		{"patch beyond events", "rules:\n  - name: appointments\n    account: tenantId\n", "appointments", "only enrich and events can change without table"},
		{"enrich_file outside ReadFile", ok + "    enrich_file: x.sql\n" + ev, "messages", "enrich_file is only read by ReadFile"},
		{"bad lookup", "lookups:\n  - {table: threads, value: \"ti tle\"}\n", "", `lookup "threads": key and value must be column names`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := rules.Parse([]byte(tc.yaml))
			if err == nil {
				var s rules.Set
				s, err = rules.Apply(builtin(t), f)
				if err == nil {
					t.Fatalf("Apply = %d rules, want an error", len(s.Rules))
				}
			}
			t.Logf("error: %v", err)
			var re *rules.Error
			if !errors.As(err, &re) || re.Rule != tc.rule {
				t.Errorf("error %v (%T): want a *rules.Error naming rule %q", err, err, tc.rule)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %s", err, tc.says)
			}
			if tc.rule != "" && !strings.HasPrefix(err.Error(), `rule "`+tc.rule+`": `) {
				t.Errorf("error %q does not start with the rule's name", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

// TestReadFileExample: the examples are valid rule files.
func TestReadFileExample(t *testing.T) {
	t.Parallel()
	f, err := rules.ReadFile("../../triggers/examples/messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := rules.Apply(builtin(t), f)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.Rules, func(r rules.Rule) bool { return r.Name == "messages" })
	if i < 0 {
		t.Fatal("no rule messages")
	}
	r := s.Rules[i]
	if r.Table != "messages" || r.Key != "id" || r.Account != "accountId" || r.SoftDelete != "deletedAt" || r.Enrich != "" {
		t.Errorf("rule messages = %+v", r)
	}
	if got, want := (rules.Set{Rules: []rules.Rule{r}}).Events(), []string{"message_created", "message_updated", "message_deleted"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestGenerate: each migration records the set it leaves installed, its down the set
// before; the same set twice changes no rule; a file layers over the built-ins.
func TestGenerate(t *testing.T) {
	t.Parallel()
	base := builtin(t)
	f, err := rules.Parse([]byte(`rules:
  - name: appointments
    events:
      - {name: appointments.created, on: insert, when: new.notes IS NOT NULL}
  - name: messages
    table: Chat.Message
    account: accountId
    events:
      - {name: message_created, on: insert}
disable: [doctors.busy]
aliases:
  appointments.checkin: [appointment_checkin]
`))
	if err != nil {
		t.Fatal(err)
	}
	next, err := rules.Apply(base, f)
	if err != nil {
		t.Fatal(err)
	}
	events := next.Events()
	for _, want := range []string{"appointments.created", "appointments.checkin", "appointment_checkin", "message_created"} {
		if !slices.Contains(events, want) {
			t.Errorf("events %v lack %s", events, want)
		}
	}
	if slices.Contains(events, "doctors.busy") {
		t.Errorf("events %v: doctors.busy is disabled", events)
	}
	if i := slices.Index(events, "appointments.checkin"); i < 0 || i+1 >= len(events) || events[i+1] != "appointment_checkin" {
		t.Errorf("events %v: the alias does not follow its event", events)
	}
	if base.Equal(next) || !next.Equal(next) {
		t.Error("Equal does not tell the sets apart")
	}

	m := rules.Generate(base, next)
	for name, tc := range map[string]struct {
		sql  string
		want rules.Set
	}{"up": {m.Up, next}, "down": {m.Down, base}} {
		got, ok, err := rules.State(tc.sql)
		if err != nil || !ok || !got.Equal(tc.want) {
			t.Errorf("%s: State = %v, %v; want the set it leaves installed", name, ok, err)
		}
		lines := strings.SplitN(tc.sql, "\n", 3)
		// A table named with capitals is quoted, as to_regclass reads it.
		if want := `-- notifier needs: OWNER "Chat"."Message", OWNER appointments, OWNER doctors, OWNER statuses`; lines[1] != want {
			t.Errorf("%s: second line %q, want %q", name, lines[1], want)
		}
	}
	if !strings.Contains(m.Up, `CREATE CONSTRAINT TRIGGER "notifier_messages_capture"`+"\n"+`    AFTER INSERT OR UPDATE OR DELETE ON "Chat"."Message"`) {
		t.Error("up does not create the capture trigger of Chat.Message")
	}
	// Unchanged rules are left alone: the lookup of statuses stays.
	if strings.Contains(m.Up, "Lookup statuses") || strings.Contains(m.Down, "Lookup statuses") {
		t.Error("the unchanged lookup of statuses is dropped or created")
	}

	same := rules.Generate(next, next)
	for name, sql := range map[string]string{"up": same.Up, "down": same.Down} {
		if !strings.Contains(sql, "-- No rule changes.") || strings.Contains(sql, "CREATE TRIGGER") || strings.Contains(sql, "DROP") {
			t.Errorf("%s of an unchanged set changes rules:\n%s", name, sql)
		}
	}
}
