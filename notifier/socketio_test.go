package notifier_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/sioclient"
)

var seedEvents = []string{"appointments.created", "appointments.checkin", "doctors.created"}

func (b *testBundle) sio(t *testing.T, account int64, mutate func(*sioclient.Options)) *sioclient.Client {
	t.Helper()
	o := sioclient.Options{URL: b.base, Token: token(t, account, time.Hour), Events: seedEvents}
	if mutate != nil {
		mutate(&o)
	}
	return sioclient.Start(t, o)
}

func eventRow(t *testing.T, e sioclient.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("%s: %v", e, err)
	}
	return m
}

// TestSocketIOSeedClient: the seeds' client code, unchanged (io(url, {auth: {token},
// withCredentials: false}), socket.on(name, handler)), over the default transports
// (polling, then the upgrade) receives all three events with the seed payloads, and
// nothing of another account.
func TestSocketIOSeedClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.sio(t, 1, nil)
	other := b.sio(t, 2, func(o *sioclient.Options) { o.Transports = []string{"websocket"}; o.TokenIn = sioclient.InHeader })
	if cn := c.WaitConnect(); cn.Recovered {
		t.Fatalf("first connect recovered: %+v", cn)
	}
	other.WaitConnect()

	id := b.insertAppointment(t, 1)
	b.exec(t, `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 1)`, id) // after: still a separate transaction
	b.exec(t, `UPDATE appointments SET "statusId" = 2 WHERE id = $1`, id)
	b.exec(t, `INSERT INTO doctors (name, "accountId") VALUES ('Dra. Socket', 1)`)
	otherID := b.insertAppointment(t, 2)

	created := c.WaitEvent()
	if created.Name != "appointments.created" || eventRow(t, created)["id"] != float64(id) {
		t.Fatalf("first event %s", created)
	}
	if p := eventRow(t, created)["patient"].(map[string]any); p["name"] != "João Silva" || p["contact"].(map[string]any)["phone"] != "(81) 99999-9999" {
		t.Fatalf("patient = %v", p)
	}
	checkin := c.WaitEvent()
	row := eventRow(t, checkin)
	if checkin.Name != "appointments.checkin" || row["status"].(map[string]any)["name"] != "Check-in" {
		t.Fatalf("second event %s", checkin)
	}
	if proc := row["appointmentProcedures"].(map[string]any)["procedure"].(map[string]any); proc["price"] != "100" {
		t.Fatalf("procedure = %v", proc)
	}
	doctor := c.WaitEvent()
	if doctor.Name != "doctors.created" || eventRow(t, doctor)["name"] != "Dra. Socket" {
		t.Fatalf("third event %s", doctor)
	}
	if doctor.Offset == "" || created.Offset == "" {
		t.Fatalf("events carry no recovery offset: %s / %s", created, doctor)
	}
	// Account 2's client (websocket only, token in the Authorization header) got only its own.
	if e := other.WaitEvent(); eventRow(t, e)["id"] != float64(otherID) {
		t.Fatalf("account 2 got %s, want appointment %d", e, otherID)
	}
}

// TestSocketIOBadToken: a refused token reaches the client as connect_error with a
// message and machine-readable data, and the client does not retry.
func TestSocketIOBadToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.sio(t, 1, func(o *sioclient.Options) { o.Token = "not-a-token" })
	ce := c.WaitConnectError()
	if ce.Message != "malformed token" || len(ce.Data) == 0 || string(ce.Data) == "null" || ce.Active {
		t.Fatalf("connect_error = %+v", ce)
	}
}

// TestSocketIORecovery: after the transport drops, the client reconnects by itself,
// gets socket.recovered === true and exactly the events it missed, in order; the
// same after the notifier itself restarts (recovery is backed by the log, not memory).
func TestSocketIORecovery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.sio(t, 1, func(o *sioclient.Options) {
		o.Transports = []string{"websocket"}
		o.ReconnectionDelay = 100 * time.Millisecond
	})
	c.WaitConnect()
	first := b.insertAppointment(t, 1)
	if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(first) {
		t.Fatalf("got %s", e)
	}

	c.CloseEngine()
	c.WaitDisconnect()
	missed := []int64{b.insertAppointment(t, 1), b.insertAppointment(t, 1)}
	if cn := c.WaitConnect(); !cn.Recovered {
		t.Fatalf("reconnect not recovered: %+v", cn)
	}
	live := b.insertAppointment(t, 1)
	for _, want := range append(missed, live) {
		if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(want) {
			t.Fatalf("got %s, want appointment %d", e, want)
		}
	}

	// A new notifier process on the same address and database.
	b.restart(t)
	d := c.WaitDisconnect()
	t.Logf("disconnect at restart: %+v", d)
	during := b.insertAppointment(t, 1)
	if cn := c.WaitReconnect(); !cn.Recovered { // retries while the notifier restarted may fail first
		t.Fatalf("reconnect to the restarted notifier not recovered: %+v", cn)
	}
	after := b.insertAppointment(t, 1)
	for _, want := range []int64{during, after} {
		e := c.WaitEvent()
		if e.Name == "notifier.disconnect" {
			e = c.WaitEvent()
		}
		if eventRow(t, e)["id"] != float64(want) {
			t.Fatalf("got %s, want appointment %d", e, want)
		}
	}
}

// TestSocketIOConnectionLimit: past http.max_connections_per_account a Socket.IO
// client gets connect_error "too many connections for this account", not a dead socket.
func TestSocketIOConnectionLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) { o.mutate = func(c *configT) { c.HTTP.MaxConnectionsPerAccount = 1 } })
	first := b.sio(t, 1, nil)
	first.WaitConnect()
	second := b.sio(t, 1, nil)
	ce := second.WaitConnectError()
	if ce.Message != "too many connections for this account" || !strings.Contains(string(ce.Data), "account_connection_limit") {
		t.Fatalf("connect_error = %+v", ce)
	}
	id := b.insertAppointment(t, 1)
	if e := first.WaitEvent(); eventRow(t, e)["id"] != float64(id) {
		t.Fatalf("first client got %s", e)
	}
}
