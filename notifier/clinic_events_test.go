package notifier_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"github.com/pgnotifier/notifier/internal/sioclient"
)

// clinicEvents are the events of the clinic's rules (triggers/clinic.yaml).
var clinicEvents = []string{
	"appointments.created", "appointments.updated", "appointments.status.changed", "appointments.checkin",
	"appointments.serving", "appointments.finished", "appointments.deleted",
	"doctors.created", "doctors.updated", "doctors.busy", "doctors.deleted",
}

// step is one transaction of the clinic app and the events it must make for account 1
// (a check on each event's data, in order).
type step struct {
	name  string
	sql   []string
	want  []string
	check func(t *testing.T, i int, data map[string]any)
}

// TestClinicEvents: every operation the clinic app performs makes exactly the events
// its rules name, in order, with the row as committed, on /ws and Socket.IO alike;
// an update that changes no column makes none (a touch of updatedAt is a change: the
// payload shows it, and lists order by it); a row
// moved to another account leaves the first (deleted, as it was there) and appears in
// the second (created, with that account's joins); a client resuming from before the
// first change gets byte for byte what the live client got.
func TestClinicEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	live := b.dial(t, 1, nil)
	other := b.dial(t, 2, nil)
	sio := b.sio(t, 1, func(o *sioclient.Options) { o.Events = clinicEvents })
	sio.WaitConnect()
	b.insertAppointment(t, 1)
	first := live.next(t)
	sio.WaitEvent()

	field := func(k string, want any) func(t *testing.T, i int, d map[string]any) {
		return func(t *testing.T, i int, d map[string]any) {
			t.Helper()
			if d[k] != want {
				t.Errorf("event %d: %s = %v, want %v", i, k, d[k], want)
			}
		}
	}
	statusName := func(d map[string]any, k string) any {
		s, _ := d[k].(map[string]any)
		return s["name"]
	}
	steps := []step{
		{name: "book", sql: []string{`INSERT INTO appointments (id, date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (700001, '2025-01-23', '09:00', '09:15', 1, 1, 1, 1)`},
			want: []string{"appointments.created"}},
		{name: "reschedule", sql: []string{`UPDATE appointments SET date = '2025-01-24', "startTime" = '10:00', "endTime" = '10:15' WHERE id = 700001`},
			want: []string{"appointments.updated"}, check: field("startTime", "10:00")},
		{name: "touch", sql: []string{`UPDATE appointments SET "updatedAt" = now() WHERE id = 700001`},
			want: []string{"appointments.updated"}},
		{name: "nothing changed", sql: []string{`UPDATE appointments SET notes = notes WHERE id = 700001`}},
		{name: "check in", sql: []string{`UPDATE appointments SET "statusId" = 2 WHERE id = 700001`},
			want: []string{"appointments.updated", "appointments.status.changed", "appointments.checkin"},
			check: func(t *testing.T, i int, d map[string]any) {
				if statusName(d, "status") != "Check-in" {
					t.Errorf("event %d: status %v, want Check-in", i, d["status"])
				}
				if i == 1 && statusName(d, "previousStatus") != "Agendado" {
					t.Errorf("status change: previousStatus %v, want Agendado", d["previousStatus"])
				}
				if _, ok := d["previousStatus"]; ok != (i == 1) {
					t.Errorf("event %d: previousStatus present = %v; only appointments.status.changed carries it", i, ok)
				}
			}},
		{name: "serve", sql: []string{`UPDATE appointments SET "statusId" = 3 WHERE id = 700001`},
			want: []string{"appointments.updated", "appointments.status.changed", "appointments.serving"},
			check: func(t *testing.T, i int, d map[string]any) {
				if i == 1 && statusName(d, "previousStatus") != "Check-in" {
					t.Errorf("status change: previousStatus %v, want Check-in", d["previousStatus"])
				}
			}},
		{name: "finish", sql: []string{`UPDATE appointments SET "statusId" = 4 WHERE id = 700001`},
			want: []string{"appointments.updated", "appointments.status.changed", "appointments.finished"}},
		{name: "status set and reset in one transaction", sql: []string{
			`UPDATE appointments SET "statusId" = 2 WHERE id = 700001`, `UPDATE appointments SET "statusId" = 4 WHERE id = 700001`}},
		{name: "soft delete", sql: []string{`UPDATE appointments SET "deletedAt" = now() WHERE id = 700001`},
			want: []string{"appointments.deleted"}, check: func(t *testing.T, i int, d map[string]any) {
				if d["deletedAt"] == nil || statusName(d, "status") != "Finalizado" {
					t.Errorf("soft delete: %v, want the row as committed (deletedAt set, Finalizado)", d)
				}
			}},
		{name: "edit while deleted", sql: []string{`UPDATE appointments SET notes = 'hidden' WHERE id = 700001`}},
		{name: "restore", sql: []string{`UPDATE appointments SET "deletedAt" = NULL WHERE id = 700001`},
			want: []string{"appointments.created"}, check: field("notes", "hidden")},
		{name: "hard delete", sql: []string{`UPDATE appointments SET notes = 'last words' WHERE id = 700001`, `DELETE FROM appointments WHERE id = 700001`},
			want: []string{"appointments.deleted"}, check: func(t *testing.T, i int, d map[string]any) {
				// The transaction's own edit never committed as a state anyone saw.
				if d["notes"] != "hidden" || d["deletedAt"] != nil || d["doctor"] == nil {
					t.Errorf("hard delete: %v, want the row as it last committed, with its doctor", d)
				}
			}},
		{name: "to be moved", sql: []string{
			`INSERT INTO appointments (id, date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (700002, '2025-01-23', '11:00', '11:15', 1, 1, 1, 1)`},
			want: []string{"appointments.created"}},
		{name: "moved", sql: []string{`UPDATE appointments SET "accountId" = 2, "doctorId" = 3, "patientId" = 4, notes = 'moved' WHERE id = 700002`},
			want: []string{"appointments.deleted"}, check: func(t *testing.T, i int, d map[string]any) {
				doc, _ := d["doctor"].(map[string]any)
				if d["accountId"] != float64(1) || d["notes"] != nil || doc == nil || doc["id"] != float64(1) {
					t.Errorf("account 1's view of the move: %v, want the row as it was in account 1", d)
				}
			}},
		{name: "doctor", sql: []string{`INSERT INTO doctors (id, name, "accountId") VALUES (700003, 'Dr. Rules', 1)`},
			want: []string{"doctors.created"}, check: field("name", "Dr. Rules")},
		{name: "rename", sql: []string{`UPDATE doctors SET name = 'Dr. Renamed' WHERE id = 700003`},
			want: []string{"doctors.updated"}, check: field("name", "Dr. Renamed")},
		{name: "busy", sql: []string{`UPDATE doctors SET "isBusy" = true WHERE id = 700003`},
			want: []string{"doctors.updated", "doctors.busy"}, check: field("isBusy", true)},
		{name: "free", sql: []string{`UPDATE doctors SET "isBusy" = false WHERE id = 700003`},
			want: []string{"doctors.updated"}, check: field("isBusy", false)},
		{name: "doctor soft delete", sql: []string{`UPDATE doctors SET "deletedAt" = now() WHERE id = 700003`},
			want: []string{"doctors.deleted"}},
		{name: "doctor hard delete", sql: []string{`INSERT INTO doctors (id, name, "accountId") VALUES (700004, 'Dr. Brief', 1)`, `DELETE FROM doctors WHERE id = 700004`}},
		{name: "doctor deleted later", sql: []string{`INSERT INTO doctors (id, name, "accountId") VALUES (700005, 'Dr. Gone', 1)`},
			want: []string{"doctors.created"}},
		{name: "doctor deleted", sql: []string{`DELETE FROM doctors WHERE id = 700005`},
			want: []string{"doctors.deleted"}, check: field("name", "Dr. Gone")},
	}
	var got []frame
	for _, s := range steps {
		tx, err := b.db.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range s.sql {
			if _, err := tx.Exec(t.Context(), q); err != nil {
				t.Fatalf("%s: %q: %v", s.name, q, err)
			}
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("%s: commit: %v", s.name, err)
		}
		// A marker after each step: whatever the step made arrives before it.
		marker := b.insertAppointment(t, 1)
		var fs []frame
		for {
			f := live.next(t)
			if f.Event == "appointments.created" && f.rowID(t) == marker {
				break
			}
			fs = append(fs, f)
		}
		names := make([]string, len(fs))
		for i, f := range fs {
			names[i] = f.Event
			if s.check != nil {
				s.check(t, i, f.object(t))
			}
		}
		if !slices.Equal(names, s.want) {
			t.Errorf("%s: events %q, want %q", s.name, names, s.want)
		}
		got = append(got, fs...)
		got = append(got, frame{Event: "marker"})
	}

	// Account 2 saw only the moved row's arrival, with its own doctor and patient.
	arrived := other.next(t)
	d := arrived.object(t)
	doc, _ := d["doctor"].(map[string]any)
	if arrived.Event != "appointments.created" || arrived.rowID(t) != 700002 || d["accountId"] != float64(2) || doc == nil || doc["id"] != float64(3) {
		t.Errorf("account 2 got %s, want appointment 700002 created with doctor 3", arrived.raw)
	}

	// Socket.IO got the same events, in the same order, with the same data.
	for _, f := range got {
		if f.Event == "marker" {
			sio.WaitEvent()
			continue
		}
		e := sio.WaitEvent()
		if e.Name != f.Event || !jsonEqual(t, e.Data, f.Data) {
			t.Errorf("Socket.IO got %s, /ws got %s", e, f.raw)
		}
	}

	// A client resuming from the first event gets every frame as committed, byte for
	// byte (the rows have changed or gone since).
	replay := b.dial(t, 1, url.Values{"since": {itoa(first.ID)}})
	for _, f := range got {
		if f.Event == "marker" {
			replay.next(t)
			continue
		}
		if r := replay.next(t); !bytes.Equal(r.raw, f.raw) {
			t.Errorf("replayed %s\nlive     %s", r.raw, f.raw)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
