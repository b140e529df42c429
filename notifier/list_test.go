package notifier_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgnotifier/notifier/internal/sioclient"
)

// getSnapshot fetches one page of a list as account.
func (b *testBundle) getSnapshot(t *testing.T, account int64, path string) (int, map[string]json.RawMessage) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.base+"/v1/snapshot"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, account, time.Hour))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %d %s: %v", path, resp.StatusCode, body, err)
	}
	return resp.StatusCode, m
}

// TestSnapshotIsTheEventsPayload: a list's item is byte for byte the data of the
// event that made it (one enrichment query for both), since is the last event the
// snapshot saw, and following from it delivers the next commit and nothing before.
func TestSnapshotIsTheEventsPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	live := b.dial(t, 1, nil)
	var id int64
	if err := b.db.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (now() AT TIME ZONE 'UTC', '09:00', '09:15', 1, 1, 2, 1) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	created := live.next(t)
	b.insertAppointment(t, 2) // another account's: in no list of account 1
	var head int64
	if err := b.db.QueryRow(t.Context(), `SELECT max(id) FROM notifier.events`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{"/appointments.today", "/appointments.checkin"} {
		status, page := b.getSnapshot(t, 1, list)
		var items []json.RawMessage
		_ = json.Unmarshal(page["items"], &items)
		if status != http.StatusOK || len(items) != 1 || !bytes.Equal(items[0], created.Data) {
			t.Fatalf("%s: %d %v, want one item equal to the event's data %s", list, status, page, created.Data)
		}
		if string(page["since"]) != itoa(head) || string(page["next"]) != "null" {
			t.Fatalf("%s: since %s next %s, want since %d (the newest event the snapshot saw, of any account) and no next", list, page["since"], page["next"], head)
		}
	}
	status, page := b.getSnapshot(t, 1, "/doctors")
	var doctors []map[string]any
	_ = json.Unmarshal(page["items"], &doctors)
	if status != http.StatusOK || len(doctors) != 2 || doctors[0]["accountId"] != float64(1) {
		t.Fatalf("doctors: %d %v", status, page)
	}
	var since int64
	_ = json.Unmarshal(page["since"], &since)
	follow := b.dial(t, 1, url.Values{"since": {itoa(since)}})
	next := b.insertAppointment(t, 1)
	if f := follow.next(t); f.rowID(t) != next {
		t.Fatalf("followed from since %d: got %s, want appointment %d", since, f.raw, next)
	}
	if status, page := b.getSnapshot(t, 1, "/nope"); status != http.StatusNotFound || string(page["error"]) != `"unknown list \"nope\""` {
		t.Fatalf("unknown list: %d %v", status, page)
	}
	status, page = b.getSnapshot(t, 1, "")
	if status != http.StatusOK || !bytes.Contains(page["lists"], []byte(`"appointments.checkin"`)) {
		t.Fatalf("lists: %d %s", status, page["lists"])
	}
}

// TestSocketIOSince: auth.since resumes a Socket.IO client after an event id, as
// /ws?since does (number or numeric string); anything else is a connect_error naming
// it, which the client does not retry.
func TestSocketIOSince(t *testing.T) {
	t.Parallel()
	b := setup(t)
	live := b.dial(t, 1, nil)
	first := b.insertAppointment(t, 1)
	after := live.next(t)
	second := b.insertAppointment(t, 1)
	live.next(t)
	for _, since := range []any{after.ID, itoa(after.ID)} {
		c := b.sio(t, 1, func(o *sioclient.Options) { o.Since = since })
		c.WaitConnect()
		if e := c.WaitEvent(); eventRow(t, e)["id"] != float64(second) {
			t.Fatalf("since %v: got %s, want appointment %d (and not %d)", since, e, second, first)
		}
	}
	for _, bad := range []any{"abc", -1, 1.5, map[string]any{}} {
		c := b.sio(t, 1, func(o *sioclient.Options) { o.Since = bad })
		ce := c.WaitConnectError()
		if ce.Message != "auth.since must be a non-negative event id" || !strings.Contains(string(ce.Data), "bad_since") || ce.Active {
			t.Errorf("since %v: connect_error = %+v", bad, ce)
		}
	}
}
