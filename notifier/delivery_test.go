package notifier_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/notifier"
	"github.com/pgnotifier/notifier/notifier/eventlog"
	"github.com/pgnotifier/notifier/notifier/ws"
)

// TestBadTokens: every refused handshake is a 401 with a JSON reason and no upgrade.
func TestBadTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	enc := base64.RawURLEncoding.EncodeToString
	valid := jwt.MapClaims{"accountId": 1, "exp": now.Add(time.Hour).Unix()}
	cases := []struct {
		name, token, want string
	}{
		{"missing", "", "missing token"},
		{"garbage", "not-a-token", "malformed token"},
		{"expired", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"accountId": 1, "exp": now.Add(-time.Minute).Unix()}), "token expired"},
		{"wrong secret", sign(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef012345"), valid), "invalid signature"},
		{"alg none", enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(`{"accountId":1,"exp":9999999999}`)) + ".", "unexpected signing algorithm"},
		{"HS512", sign(jwt.SigningMethodHS512, []byte(testSecret), valid), "unexpected signing algorithm"},
		{"missing account", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "missing or invalid account claim"},
		{"non-numeric account", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"accountId": "abc", "exp": now.Add(time.Hour).Unix()}), "missing or invalid account claim"},
		{"no exp", sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"accountId": 1}), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := b.tryDial(t, tc.token, nil)
			if err == nil {
				t.Fatal("upgraded with a bad token")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("response %s, want 401", respBody(resp))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
				t.Fatalf("body: %v %+v", err, body)
			}
			if tc.want != "" && body.Error != tc.want {
				t.Errorf("error = %q, want %q", body.Error, tc.want)
			}
		})
	}
	// The browser route: ?access_token works like the header.
	u := "ws" + b.base[len("http"):] + "/ws?access_token=" + url.QueryEscape(token(t, 1, time.Hour))
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("access_token: %v", err)
	}
	conn.Close()
}

// TestTokenExpiryCloses: a live connection is closed with 4001 when its token expires.
func TestTokenExpiryCloses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, resp, err := b.tryDial(t, token(t, 1, 2*time.Second), nil)
	if err != nil {
		t.Fatalf("dial: %v %s", err, respBody(resp))
	}
	start := time.Now()
	ce := c.closeErr(t)
	if ce.Code != ws.CloseTokenExpired || ce.Text != "token expired" {
		t.Fatalf("close = %d %q, want 4001 token expired", ce.Code, ce.Text)
	}
	t.Logf("closed %s after connect", time.Since(start).Round(time.Millisecond))
}

// TestSinceResume: a client that reconnects with ?since gets what it missed, then live
// events, with no duplicate and no gap; from the room's buffer and from the log.
func TestSinceResume(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ buffer, cache int }{
		{1024, 8192}, // from the room's ring
		{2, 8192},    // most from the log, encoded messages reused from the recent cache
		{2, 0},       // most from the log, enriched again
	} {
		t.Run(fmt.Sprintf("replay_buffer=%d,replay_cache=%d", tc.buffer, tc.cache), func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(o *setupOpts) {
				o.mutate = func(c *configT) { c.Hub.ReplayBuffer, c.Hub.ReplayCache = tc.buffer, tc.cache }
			})
			c := b.dial(t, 1, nil)
			keep := b.dial(t, 1, nil) // keeps the room alive while c is away
			_ = keep
			var want []int64
			for range 3 {
				want = append(want, b.insertAppointment(t, 1))
			}
			got := c.nextN(t, 3)
			last := got[2].ID
			c.conn.Close()

			b.insertAppointment(t, 2) // another account's event in between
			for range 7 {
				want = append(want, b.insertAppointment(t, 1))
			}
			keep.nextN(t, 7) // all published before we resume
			r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(last, 10)}})
			missed := r.nextN(t, 7)
			want = append(want, b.insertAppointment(t, 1))
			live := r.next(t)
			all := append(missed, live)
			prev := last
			for i, f := range all {
				if f.ID <= prev {
					t.Fatalf("frame %d id %d not after %d", i, f.ID, prev)
				}
				prev = f.ID
				if f.rowID(t) != want[3+i] {
					t.Fatalf("frame %d is appointment %d, want %d", i, f.rowID(t), want[3+i])
				}
			}
		})
	}
}

// TestSinceResumeEmptyRoom: resuming when nobody of the account stayed connected
// replays from the log.
func TestSinceResumeEmptyRoom(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	b.insertAppointment(t, 1)
	last := c.next(t).ID
	c.conn.Close()
	var want []int64
	for range 5 {
		want = append(want, b.insertAppointment(t, 1))
	}
	waitHead(t, b, last+5)
	r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(last, 10)}})
	for i, f := range r.nextN(t, 5) {
		if f.rowID(t) != want[i] {
			t.Fatalf("frame %d = appointment %d, want %d", i, f.rowID(t), want[i])
		}
	}
}

// waitHead waits until the notifier has published through id.
func waitHead(t *testing.T, b *testBundle, id int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for b.svc.Hub().Head() < id {
		if time.Now().After(deadline) {
			t.Fatalf("head %d, want %d", b.svc.Hub().Head(), id)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter the test cannot be signalled on
	}
}

// TestResync: a position the log no longer holds (pruned, or ahead of it) gets
// notifier.resync first, then live events.
func TestResync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	b.insertAppointment(t, 1)
	first := c.next(t).ID
	b.insertAppointment(t, 1)
	c.next(t)
	// Prune everything, as retention would.
	n, err := eventlog.Prune(t.Context(), b.db, time.Now().Add(time.Hour), 1000)
	if err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	for _, since := range []int64{first - 1, 1 << 40} {
		r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(since, 10)}})
		if f := r.next(t); f.Event != "notifier.resync" || string(f.raw) != `{"event":"notifier.resync"}` {
			t.Fatalf("since=%d: first frame %s, want resync", since, f.raw)
		}
		id := b.insertAppointment(t, 1)
		if f := r.next(t); f.rowID(t) != id {
			t.Fatalf("since=%d: after resync got %s, want live appointment %d", since, f.raw, id)
		}
	}
	// Bad since values are refused before the upgrade.
	for _, since := range []string{"-1", "abc", "1.5"} {
		_, resp, err := b.tryDial(t, token(t, 1, time.Hour), url.Values{"since": {since}})
		if err == nil || resp == nil || resp.StatusCode != 400 {
			t.Errorf("since=%s: %v %s, want 400", since, err, respBody(resp))
		}
	}
}

// TestOpenTransactionBlocksNothing: a transaction that inserted an appointment and
// stays open neither blocks another's insert nor delays its event; its own event
// follows when it commits, in commit order.
func TestOpenTransactionBlocksNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	long, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(context.Background())
	var longID int64
	if err := long.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES ('2025-01-23', '08:00', '08:15', 1, 1, 1, 1) RETURNING id`).Scan(&longID); err != nil {
		t.Fatal(err)
	}
	// An unrelated long write transaction too.
	other, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	if _, err := other.Exec(t.Context(), `INSERT INTO contacts (phone) VALUES ('000')`); err != nil {
		t.Fatal(err)
	}

	short := b.insertAppointment(t, 1) // same account, later id, commits first
	f := c.next(t)
	if f.rowID(t) != short {
		t.Fatalf("got %s, want the short transaction's appointment %d", f.raw, short)
	}
	if err := long.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	g := c.next(t)
	if g.rowID(t) != longID || g.ID <= f.ID {
		t.Fatalf("got %s (id %d), want appointment %d after id %d", g.raw, g.ID, longID, f.ID)
	}
}

// TestConcurrentWriters: many writers with interleaved transactions of various
// lengths and rollbacks: every committed event reaches every client exactly once, in
// increasing id order, and each transaction's events stay in insert order.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	c2 := b.dial(t, 1, url.Values{"events": {"appointments.created"}})
	const writers, txPerWriter = 8, 25
	var mu sync.Mutex
	committed := map[int64]int{} // appointment id -> position within its transaction
	txOf := map[int64]int{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range txPerWriter {
				tx, err := b.db.Begin(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				n := 1 + (w+i)%3
				var ids []int64
				for range n {
					var id int64
					if err := tx.QueryRow(context.Background(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, 1, 1, 1) RETURNING id`).Scan(&id); err != nil {
						t.Error(err)
						return
					}
					ids = append(ids, id)
					if (w+i)%4 == 0 {
						_, _ = tx.Exec(context.Background(), "SELECT pg_sleep(0.01)") // hold it open a little
					}
				}
				if (w*txPerWriter+i)%7 == 3 {
					_ = tx.Rollback(context.Background())
					continue
				}
				if err := tx.Commit(context.Background()); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, id := range ids {
					committed[id] = j
					txOf[id] = w*txPerWriter + i
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, cl := range []*wsClient{c, c2} {
		seen := map[int64]bool{}
		lastPos := map[int]int{}
		prev := int64(0)
		for range len(committed) {
			f := cl.next(t)
			id := f.rowID(t)
			if f.ID <= prev {
				t.Fatalf("event id %d after %d", f.ID, prev)
			}
			prev = f.ID
			pos, ok := committed[id]
			if !ok {
				t.Fatalf("event for appointment %d that was rolled back or never written", id)
			}
			if seen[id] {
				t.Fatalf("appointment %d delivered twice", id)
			}
			seen[id] = true
			if p, ok := lastPos[txOf[id]]; ok && pos != p+1 {
				t.Fatalf("appointment %d is insert %d of its transaction, after insert %d", id, pos, p)
			}
			lastPos[txOf[id]] = pos
		}
	}
	t.Logf("%d events from %d transactions delivered exactly once to 2 clients", len(committed), writers*txPerWriter)
}

// TestListenerKilled: the listener's backend is terminated repeatedly mid-stream; the
// client stays connected and gets everything once, in order.
func TestListenerKilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	const total = 3000
	var kills int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			if _, err := b.db.Exec(context.Background(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, 1, 1, 1)`); err != nil {
				t.Error(err)
				return
			}
			if i%200 == 100 {
				var n int
				if err := b.db.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, notifier.ListenerApplicationName).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				kills += n
			}
		}
	}()
	prev := int64(0)
	for i := range total {
		f := c.next(t)
		if f.ID <= prev {
			t.Fatalf("frame %d: id %d after %d", i, f.ID, prev)
		}
		prev = f.ID
	}
	<-done
	var logged int
	if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM notifier.events WHERE event = 'appointments.created'`).Scan(&logged); err != nil || logged != total {
		t.Fatalf("log has %d appointments.created, want %d (%v)", logged, total, err)
	}
	if kills == 0 {
		t.Fatal("the listener was never terminated: the test proved nothing")
	}
	t.Logf("%d events delivered once, in order, across %d listener terminations", total, kills)
}

// TestForeignNotify: junk sent by hand on the notifier's channel is skipped.
func TestForeignNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.dial(t, 1, nil)
	for _, p := range []string{"hello", `{"id":"x"}`, `{"id":999999999,"event":"bogus","row":1,"account":1}`, ""} {
		b.exec(t, `SELECT pg_notify('notifier', $1)`, p)
	}
	id := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != id {
		t.Fatalf("got %s, want appointment %d", f.raw, id)
	}
}

// TestHealthAndReady: /healthz while running; /readyz 200 while the listener is
// connected and caught up.
func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(b.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
	}
}

// TestShutdownClosesWith1001: on shutdown every connection gets a 1001 close frame
// and Run returns nil.
func TestShutdownClosesWith1001(t *testing.T) {
	t.Parallel()
	b := setup(t)
	clients := []*wsClient{b.dial(t, 1, nil), b.dial(t, 2, nil), b.dial(t, 1, nil)}
	b.stop(t)
	for i, c := range clients {
		ce := c.closeErr(t)
		if ce.Code != websocket.CloseGoingAway {
			t.Errorf("client %d close = %d %q, want 1001", i, ce.Code, ce.Text)
		}
	}
}

// TestNotMigrated: a database without the notifier schema is refused with a clear error.
func TestNotMigrated(t *testing.T) {
	t.Parallel()
	dbURL := freshDatabase(t)
	cfg := testConfig(t, dbURL)
	svc, err := notifier.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(t.Context()); err != notifier.ErrNotMigrated {
		t.Fatalf("Run = %v, want ErrNotMigrated", err)
	}
}

// freshDatabase returns a test database with the notifier removed (migrate down).
func freshDatabase(t *testing.T) string {
	t.Helper()
	dbURL := pgtestDatabase(t)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "DROP SCHEMA notifier CASCADE"); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// TestRolledBackIDGap: a transaction that draws an event id at COMMIT and then fails
// (a later deferred constraint) leaves a hole in the ids; the next event is still
// delivered, through the listener's gap path (a log read), and the failed one never.
func TestRolledBackIDGap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `CREATE FUNCTION fail_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.notes = 'fail' THEN RAISE EXCEPTION 'late failure'; END IF; RETURN NULL; END $$`)
	// Same event, name sorts after notifier_*: fires after our capture trigger, but
	// before the flush, which runs after every deferred trigger queued before it.
	b.exec(t, `CREATE CONSTRAINT TRIGGER zz_fail_late AFTER INSERT ON appointments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_late()`)
	c := b.dial(t, 1, nil)
	first := b.insertAppointment(t, 1)
	f1 := c.next(t)
	if f1.rowID(t) != first {
		t.Fatalf("got %s", f1.raw)
	}
	if _, err := b.db.Exec(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 'fail', 1, 1, 1, 1)`); err == nil {
		t.Fatal("the failing insert committed")
	}
	second := b.insertAppointment(t, 1)
	f2 := c.next(t)
	if f2.rowID(t) != second || f2.ID != f1.ID+1 {
		t.Fatalf("got %s (id %d), want appointment %d with id %d (the failed commit drew no id)", f2.raw, f2.ID, second, f1.ID+1)
	}
	// A deferred trigger the app's own deferred triggers queue while committing fires
	// after the flush: a failure there rolls back an id already drawn. The hole is read
	// past like any other.
	b.exec(t, `CREATE TABLE late_side (id int)`)
	b.exec(t, `CREATE FUNCTION queue_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.notes = 'fail-after' THEN INSERT INTO late_side VALUES (1); END IF; RETURN NULL; END $$`)
	b.exec(t, `CREATE FUNCTION fail_side() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'later failure'; END $$`)
	b.exec(t, `CREATE CONSTRAINT TRIGGER zz_queue_late AFTER INSERT ON appointments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION queue_late()`)
	b.exec(t, `CREATE CONSTRAINT TRIGGER fail_side AFTER INSERT ON late_side DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_side()`)
	if _, err := b.db.Exec(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 'fail-after', 1, 1, 1, 1)`); err == nil {
		t.Fatal("the failing insert committed")
	}
	third := b.insertAppointment(t, 1)
	f3 := c.next(t)
	if f3.rowID(t) != third || f3.ID != f2.ID+2 {
		t.Fatalf("got %s (id %d), want appointment %d with id %d (one id lost to the rollback)", f3.raw, f3.ID, third, f2.ID+2)
	}
}

// TestDeadPeerDropped: a peer that never answers pings is dropped after ws.pong_wait;
// one that does (any reading client) stays and keeps receiving.
func TestDeadPeerDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.WS.PingInterval, c.WS.PongWait = 200*time.Millisecond, 2*time.Second }
	})
	alive := b.dial(t, 1, nil)
	u := "ws" + b.base[len("http"):] + "/ws?access_token=" + url.QueryEscape(token(t, 1, time.Hour))
	dead, _, err := websocket.DefaultDialer.Dial(u, nil) // never reads, so never answers a ping
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	deadline := time.Now().Add(waitTimeout)
	for b.svc.Hub().Subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("subscribers = %d, want the silent peer dropped", b.svc.Hub().Subscribers())
		}
		time.Sleep(10 * time.Millisecond) // a counter, not a signal
	}
	id := b.insertAppointment(t, 1)
	if f := alive.next(t); f.rowID(t) != id {
		t.Fatalf("got %s", f.raw)
	}
}

// TestForgedNotify: a database user who NOTIFYs a well-formed payload claiming the
// next id, another account's row and their own account gains nothing: events come
// from the log only, so the forgery is neither delivered nor able to hide the real
// event that takes that id.
func TestForgedNotify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	one, two := b.dial(t, 1, nil), b.dial(t, 2, nil)
	a1 := b.insertAppointment(t, 1)
	f := one.next(t)
	if f.rowID(t) != a1 {
		t.Fatalf("got %s", f.raw)
	}
	forged := fmt.Sprintf(`{"id":%d,"event":"appointments.created","row":%d,"account":2}`, f.ID+1, a1)
	b.exec(t, `SELECT pg_notify('notifier', $1)`, forged)
	a2 := b.insertAppointment(t, 2) // takes the id the forgery claimed
	g := two.next(t)
	if g.rowID(t) != a2 || g.ID != f.ID+1 {
		t.Fatalf("account 2 got %s, want its own appointment %d as event %d", g.raw, a2, f.ID+1)
	}
}
