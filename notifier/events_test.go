package notifier_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/config"
)

var isoMillis = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// TestAppointmentCreatedPayload checks every field seed 000 documents.
func TestAppointmentCreatedPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)

	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := tx.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId", "createdAt", "updatedAt")
VALUES ('2025-01-23 00:00:00', '09:00', '09:15', 'Observações sobre o agendamento', 1, 1, 1, 1, '2025-01-23 10:00:00', '2025-01-23 10:00:00') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// Two links: the payload carries the one with the lowest id.
	if _, err := tx.Exec(t.Context(), `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 1), ($1, 2)`, id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	f := c.next(t)
	if f.Event != "appointments.created" || f.ID <= 0 || f.Partial {
		t.Fatalf("frame = %s", f.raw)
	}
	var got map[string]any
	if err := json.Unmarshal(f.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id":        float64(id),
		"date":      "2025-01-23T00:00:00.000Z",
		"startTime": "09:00",
		"endTime":   "09:15",
		"notes":     "Observações sobre o agendamento",
		"accountId": float64(1),
		"createdAt": "2025-01-23T10:00:00.000Z",
		"updatedAt": "2025-01-23T10:00:00.000Z",
		"deletedAt": nil,
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	sub := func(path ...string) any {
		var cur any = got
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object in %s", path, f.Data)
			}
			cur = m[p]
		}
		return cur
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"doctor", "id"}, float64(1)},
		{[]string{"doctor", "name"}, "Dr. Victor"},
		{[]string{"patient", "id"}, float64(1)},
		{[]string{"patient", "name"}, "João Silva"},
		{[]string{"patient", "contact", "phone"}, "(81) 99999-9999"},
		{[]string{"status", "id"}, float64(1)},
		{[]string{"status", "name"}, "Agendado"},
		{[]string{"status", "color"}, "#ffc107"},
		{[]string{"appointmentProcedures", "procedure", "id"}, float64(1)},
		{[]string{"appointmentProcedures", "procedure", "name"}, "Ultrassom: Tireoide"},
		{[]string{"appointmentProcedures", "procedure", "price"}, "100"},
	}
	for _, c := range checks {
		if g := sub(c.path...); !reflect.DeepEqual(g, c.want) {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), g, c.want)
		}
	}
}

// TestAppointmentNullsAndPrice covers null relations and a price with a fractional part.
func TestAppointmentNullsAndPrice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	// Patient 3 has no contact; no procedure link at all first.
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-23 14:30:15.5', '14:30', '14:45', 2, 3, 1, 1)`)
	f := c.next(t)
	got := f.object(t)
	if got["appointmentProcedures"] != nil {
		t.Errorf("appointmentProcedures = %v, want null", got["appointmentProcedures"])
	}
	if p := got["patient"].(map[string]any); p["contact"] != nil {
		t.Errorf("patient.contact = %v, want null", p["contact"])
	}
	if got["date"] != "2025-01-23T14:30:15.500Z" {
		t.Errorf("date = %v", got["date"])
	}
	for _, k := range []string{"createdAt", "updatedAt"} {
		if s, _ := got[k].(string); !isoMillis.MatchString(s) {
			t.Errorf("%s = %v, want UTC ISO-8601 with milliseconds", k, got[k])
		}
	}

	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	_ = tx.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-24', '10:00', '10:15', 2, 2, 1, 1) RETURNING id`).Scan(&id)
	_, _ = tx.Exec(t.Context(), `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 3)`, id)
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	f = c.next(t)
	proc := f.object(t)["appointmentProcedures"].(map[string]any)["procedure"].(map[string]any)
	if proc["price"] != "99.5" || proc["name"] != "Raio-X: Tórax" {
		t.Errorf("procedure = %v, want price \"99.5\"", proc)
	}
}

// TestOneEventPerAppointmentInInsertOrder: an app that creates one appointment per
// selected procedure in one transaction yields one event each, in insert order.
func TestOneEventPerAppointmentInInsertOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for proc := 1; proc <= 3; proc++ {
		var id int64
		if err := tx.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-23', '09:00', '09:15', 1, 1, 1, 1) RETURNING id`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, $2)`, id, proc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	frames := c.nextN(t, 3)
	for i, f := range frames {
		if f.Event != "appointments.created" || f.rowID(t) != ids[i] {
			t.Fatalf("frame %d = %s, want appointment %d", i, f.raw, ids[i])
		}
		if i > 0 && f.ID <= frames[i-1].ID {
			t.Fatalf("event ids not increasing: %d then %d", frames[i-1].ID, f.ID)
		}
		// Each carries its own procedure: enrichment saw the links of its transaction.
		proc := f.object(t)["appointmentProcedures"].(map[string]any)["procedure"].(map[string]any)
		if proc["id"] != float64(i+1) {
			t.Errorf("appointment %d procedure = %v, want %d", ids[i], proc["id"], i+1)
		}
	}
}

// TestCheckin: only a change to the status named Check-in emits appointments.checkin.
func TestCheckin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insertAppointment(t, 1)
	c := b.dial(t, 1, url.Values{"events": {"appointments.checkin,doctors.created"}})

	b.exec(t, `UPDATE appointments SET notes = 'no status change' WHERE id = $1`, id)
	b.exec(t, `UPDATE appointments SET "statusId" = 1 WHERE id = $1`, id) // same status
	b.exec(t, `UPDATE appointments SET "statusId" = 3 WHERE id = $1`, id) // not Check-in
	b.exec(t, `UPDATE appointments SET "statusId" = 2, "updatedAt" = '2025-01-23 09:00:00' WHERE id = $1`, id)
	f := c.next(t)
	if f.Event != "appointments.checkin" || f.rowID(t) != id {
		t.Fatalf("first frame = %s, want the check-in of %d", f.raw, id)
	}
	got := f.object(t)
	status := got["status"].(map[string]any)
	if status["id"] != float64(2) || status["name"] != "Check-in" || status["color"] != "#17a2b8" {
		t.Errorf("status = %v", status)
	}
	if got["updatedAt"] != "2025-01-23T09:00:00.000Z" {
		t.Errorf("updatedAt = %v", got["updatedAt"])
	}
	// Still Check-in: no second event. A doctor insert afterwards is the next frame.
	b.exec(t, `UPDATE appointments SET "statusId" = 2 WHERE id = $1`, id)
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. Sentinel', 1)`)
	if f := c.next(t); f.Event != "doctors.created" {
		t.Fatalf("frame after a no-op status update = %s, want the doctor", f.raw)
	}
}

// TestDoctorCreated: procedures linked in the doctor's own transaction appear,
// ordered by link id; a doctor without any gets [].
func TestDoctorCreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := tx.QueryRow(t.Context(), `INSERT INTO doctors (name, crm, email, phone, "accountId", "createdAt", "updatedAt") VALUES ('Dr. João Silva', '12345', 'joao.silva@example.com', '(81) 99999-9999', 1, '2025-01-23 10:30:00', '2025-01-23 10:30:00') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO doctor_procedures ("doctorId", "procedureId") VALUES ($1, 2), ($1, 1)`, id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dra. Sem Procedimentos', 1)`)

	f := c.next(t)
	if f.Event != "doctors.created" {
		t.Fatalf("frame = %s", f.raw)
	}
	var doc struct {
		ID               int64  `json:"id"`
		Name             string `json:"name"`
		CRM              string `json:"crm"`
		Email            string `json:"email"`
		Phone            string `json:"phone"`
		IsBusy           *bool  `json:"isBusy"`
		AccountID        int64  `json:"accountId"`
		CreatedAt        string `json:"createdAt"`
		UpdatedAt        string `json:"updatedAt"`
		DoctorProcedures []struct {
			ID        int64 `json:"id"`
			Procedure struct {
				ID    int64  `json:"id"`
				Name  string `json:"name"`
				Price string `json:"price"`
			} `json:"procedure"`
		} `json:"doctorProcedures"`
	}
	if err := json.Unmarshal(f.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ID != id || doc.Name != "Dr. João Silva" || doc.CRM != "12345" || doc.Email != "joao.silva@example.com" ||
		doc.Phone != "(81) 99999-9999" || doc.IsBusy == nil || *doc.IsBusy || doc.AccountID != 1 ||
		doc.CreatedAt != "2025-01-23T10:30:00.000Z" || doc.UpdatedAt != "2025-01-23T10:30:00.000Z" {
		t.Errorf("doctor = %s", f.Data)
	}
	if len(doc.DoctorProcedures) != 2 || doc.DoctorProcedures[0].ID >= doc.DoctorProcedures[1].ID ||
		doc.DoctorProcedures[0].Procedure.ID != 2 || doc.DoctorProcedures[0].Procedure.Price != "110" ||
		doc.DoctorProcedures[1].Procedure.Name != "Ultrassom: Tireoide" || doc.DoctorProcedures[1].Procedure.Price != "100" {
		t.Errorf("doctorProcedures = %s", f.Data)
	}
	f = c.next(t)
	if got := f.object(t)["doctorProcedures"]; !reflect.DeepEqual(got, []any{}) {
		t.Errorf("doctorProcedures without links = %#v, want []", got)
	}
}

// TestAccountIsolation: an account's events reach its connections and no other.
func TestAccountIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	one, oneBis, two := b.dial(t, 1, nil), b.dial(t, 1, nil), b.dial(t, 2, nil)
	a1 := b.insertAppointment(t, 1)
	a2 := b.insertAppointment(t, 2)
	for _, c := range []*wsClient{one, oneBis} {
		if f := c.next(t); f.rowID(t) != a1 || f.object(t)["accountId"] != float64(1) {
			t.Fatalf("account 1 got %s", f.raw)
		}
	}
	// Account 1's event was published first; had it leaked, it would come first.
	if f := two.next(t); f.rowID(t) != a2 || f.object(t)["accountId"] != float64(2) {
		t.Fatalf("account 2 got %s, want only its own appointment %d", f.raw, a2)
	}
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. Two', 2)`)
	if f := two.next(t); f.Event != "doctors.created" {
		t.Fatalf("account 2 got %s", f.raw)
	}
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. One', 1)`)
	if f := one.next(t); f.Event != "doctors.created" || f.object(t)["name"] != "Dr. One" {
		t.Fatalf("account 1 got %s, want Dr. One (not Dr. Two)", f.raw)
	}
}

// TestEventsFilter: ?events limits a connection; the allowlist limits everyone.
func TestEventsFilter(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *config.Config) {
			c.Events = []string{"appointments.created", "doctors.created"}
		}
	})
	onlyDoctors := b.dial(t, 1, url.Values{"events": {"doctors.created"}})
	all := b.dial(t, 1, nil)
	id := b.insertAppointment(t, 1)
	b.exec(t, `UPDATE appointments SET "statusId" = 2 WHERE id = $1`, id) // not allowed: never sent
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dr. Filter', 1)`)
	if f := onlyDoctors.next(t); f.Event != "doctors.created" {
		t.Fatalf("doctors-only client got %s", f.raw)
	}
	if f := all.next(t); f.Event != "appointments.created" {
		t.Fatalf("got %s", f.raw)
	}
	if f := all.next(t); f.Event != "doctors.created" {
		t.Fatalf("got %s, want doctors.created (checkin is not in the allowlist)", f.raw)
	}
	// Asking for a disallowed or unknown event is refused before the upgrade.
	for _, ev := range []string{"appointments.checkin", "bogus"} {
		_, resp, err := b.tryDial(t, token(t, 1, time.Hour), url.Values{"events": {ev}})
		if err == nil || resp == nil || resp.StatusCode != 400 {
			t.Errorf("events=%s: err %v, %s; want 400", ev, err, respBody(resp))
		}
	}
}

// TestLargeRow: NOTIFY carries ids only, so a huge row neither fails the writer's
// transaction nor loses its content.
func TestLargeRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	notes := strings.Repeat("é", 200_000)
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-23', '09:00', '09:15', $1, 1, 1, 1, 1)`, notes)
	if got := c.next(t).object(t)["notes"]; got != notes {
		t.Fatalf("notes came back %d bytes, want %d", len(got.(string)), len(notes))
	}
}
