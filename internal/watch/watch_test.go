package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/internal/watch"
	"github.com/pgnotifier/notifier/notifier"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, clinicdb.PrepareURL)
}

const testSecret = "watch-test-secret-0123456789abcdef0123"

// waitTimeout bounds every wait on a signal; generous because CI machines are shared.
const waitTimeout = 20 * time.Second

// testBundle is a notifier on a database of its own, and a pool to write to it as
// the clinic app would.
type testBundle struct {
	db    *pgxpool.Pool
	wsURL string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dbURL := pgtest.Database(t)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = dbURL
	cfg.Auth.JWTSecret = testSecret
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := notifier.New(cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)), ln)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("notifier.Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("notifier did not stop in time")
		}
	})
	select {
	case <-svc.Started():
	case err := <-done:
		t.Fatalf("notifier stopped before it was ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("notifier not ready in time")
	}
	return &testBundle{db: pool, wsURL: "ws://" + ln.Addr().String() + "/ws"}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func token(t *testing.T, account int64, ttl time.Duration, now time.Time) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), "accountId", account, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// lines is an io.Writer whose complete lines arrive on a channel.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	c   chan string
	t   *testing.T
	tag string
}

func newLines(t *testing.T, tag string) *lines {
	return &lines{c: make(chan string, 1000), t: t, tag: tag}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // incomplete: keep for the next write
			return len(p), nil
		}
		line = strings.TrimSuffix(line, "\n")
		l.t.Logf("%s: %s", l.tag, line)
		l.c <- line
	}
}

// next returns the next line, failing the test if none comes in time.
func (l *lines) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-l.c:
		return s
	case <-time.After(waitTimeout):
		t.Fatalf("no %s line in time", l.tag)
		return ""
	}
}

// waitMatch skips lines until one matches re and returns its submatches.
func (l *lines) waitMatch(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case s := <-l.c:
			if m := re.FindStringSubmatch(s); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s line matching %s in time", l.tag, re)
			return nil
		}
	}
}

// watcher is a running watch.Run.
type watcher struct {
	out, status *lines
	cancel      context.CancelFunc
	done        chan error
}

func startWatch(t *testing.T, cfg watch.Config) *watcher {
	t.Helper()
	w := &watcher{out: newLines(t, "out"), status: newLines(t, "status"), done: make(chan error, 1)}
	cfg.Out, cfg.Status = w.out, w.status
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(context.Background())
	go func() { w.done <- watch.Run(ctx, cfg) }()
	t.Cleanup(func() {
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(waitTimeout):
			t.Error("watch.Run did not return after cancel")
		}
	})
	return w
}

// result waits for Run to return.
func (w *watcher) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err // for Cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatal("watch.Run did not return in time")
		return nil
	}
}

var connected = regexp.MustCompile(`connected to ws://`)

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// book inserts an appointment of João Silva (patient 1) with Dr. Victor (doctor 1) at
// start for account 1, and returns its id.
func (b *testBundle) book(t *testing.T, start string) int64 {
	t.Helper()
	var id int64
	err := b.db.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (current_date, $1, $1, 1, 1, 1, 1) RETURNING id`, start).Scan(&id)
	if err != nil {
		t.Fatalf("insert appointment: %v", err)
	}
	return id
}

var eventLine = regexp.MustCompile(`^\d\d:\d\d:\d\d (\S+) #(\d+) (.*)$`)

// TestLines: one line per event, in the documented format, for every event of an
// appointment's day and a doctor's, as the clinic app's writes make them.
func TestLines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now())})
	w.status.waitMatch(t, connected)

	id := b.book(t, "09:00")
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (current_date, '10:00', '10:15', 3, 4, 1, 2)`) // account 2: not ours
	for _, status := range []int{2, 3, 4} { // Check-in, Em atendimento, Finalizado
		b.exec(t, `UPDATE appointments SET "statusId" = $2, "updatedAt" = now() WHERE id = $1`, id, status)
	}
	b.exec(t, `UPDATE appointments SET date = current_date + 1, "startTime" = '10:30', "endTime" = '10:45' WHERE id = $1`, id)
	b.exec(t, `UPDATE appointments SET "deletedAt" = now() WHERE id = $1`, id)
	var tomorrow string
	if err := b.db.QueryRow(t.Context(), `SELECT to_char(current_date + 1, 'YYYY-MM-DD')`).Scan(&tomorrow); err != nil {
		t.Fatal(err)
	}
	tx, err := b.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var doctor int64
	if err := tx.QueryRow(t.Context(), `INSERT INTO doctors (name, "accountId") VALUES ('Dra. Ana Lima', 1) RETURNING id`).Scan(&doctor); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO doctor_procedures ("doctorId", "procedureId") VALUES ($1, 1), ($1, 2)`, doctor); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `UPDATE doctors SET phone = '(81) 91111-2222' WHERE id = $1`, doctor)
	b.exec(t, `UPDATE doctors SET "isBusy" = true WHERE id = $1`, doctor)
	b.exec(t, `UPDATE doctors SET "deletedAt" = now() WHERE id = $1`, doctor)

	const who = "João Silva with Dr. Victor"
	want := []struct{ event, summary string }{
		{"appointments.created", who + " 09:00"},
		{"appointments.updated", ""}, // the status changes' updated lines: set below
		{"appointments.status.changed", "João Silva: Agendado -> Check-in"},
		{"appointments.checkin", who + " 09:00"},
		{"appointments.updated", ""},
		{"appointments.status.changed", "João Silva: Check-in -> Em atendimento"},
		{"appointments.serving", who + " 09:00"},
		{"appointments.updated", ""},
		{"appointments.status.changed", "João Silva: Em atendimento -> Finalizado"},
		{"appointments.finished", who + " 09:00"},
		{"appointments.updated", who + " " + tomorrow + " 10:30 (Finalizado)"},
		{"appointments.deleted", who + " 10:30"},
		{"doctors.created", "Dra. Ana Lima (2 procedures)"},
		{"doctors.updated", "Dra. Ana Lima (2 procedures, available)"},
		{"doctors.updated", "Dra. Ana Lima (2 procedures, busy)"},
		{"doctors.busy", "Dra. Ana Lima is busy"},
		{"doctors.deleted", "Dra. Ana Lima"},
	}
	// Those carry today's date and the new status.
	var today string
	if err := b.db.QueryRow(t.Context(), `SELECT to_char(current_date, 'YYYY-MM-DD')`).Scan(&today); err != nil {
		t.Fatal(err)
	}
	for i, status := range []string{"Check-in", "Em atendimento", "Finalizado"} {
		want[1+3*i].summary = who + " " + today + " 09:00 (" + status + ")"
	}
	var last int64
	for _, wl := range want {
		line := w.out.next(t)
		m := eventLine.FindStringSubmatch(line)
		if m == nil || m[1] != wl.event || m[3] != wl.summary {
			t.Fatalf("line %q, want `hh:mm:ss %s #<id> %s`", line, wl.event, wl.summary)
		}
		var n int64
		fmt.Sscan(m[2], &n)
		if n <= last {
			t.Errorf("event id %d after %d", n, last)
		}
		last = n
	}
}

// TestJSON: --json prints each frame as the notifier sent it, one per line.
func TestJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now()), JSON: true})
	w.status.waitMatch(t, connected)
	id := b.book(t, "11:30")
	var f struct {
		ID    int64  `json:"id"`
		Event string `json:"event"`
		Data  struct {
			ID        int64  `json:"id"`
			StartTime string `json:"startTime"`
			Patient   struct{ Name string }
		} `json:"data"`
	}
	line := w.out.next(t)
	if err := json.Unmarshal([]byte(line), &f); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if f.ID == 0 || f.Event != "appointments.created" || f.Data.ID != id || f.Data.StartTime != "11:30" || f.Data.Patient.Name != "João Silva" {
		t.Errorf("frame %+v", f)
	}
}

// gatedDialer dials through a gate the test can close (new dials wait) and keeps
// the connections it made, so the test can drop them as a network failure would.
type gatedDialer struct {
	mu    sync.Mutex
	open  chan struct{} // closed while dials may proceed
	conns []net.Conn
}

func newGatedDialer() *gatedDialer {
	g := &gatedDialer{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedDialer) dialer() *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: waitTimeout,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			g.mu.Lock()
			open := g.open
			g.mu.Unlock()
			select {
			case <-open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				g.mu.Lock()
				g.conns = append(g.conns, c)
				g.mu.Unlock()
			}
			return c, err
		},
	}
}

// drop closes the gate and every connection.
func (g *gatedDialer) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

func (g *gatedDialer) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

// TestResumeAfterDrop: the connection dies; what commits meanwhile is printed after
// the reconnection, which resumes after the last event printed: nothing lost, nothing
// twice.
func TestResumeAfterDrop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGatedDialer()
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now()), Dialer: g.dialer()})
	w.status.waitMatch(t, connected)

	b.book(t, "08:00")
	first := eventLine.FindStringSubmatch(w.out.next(t))
	if first == nil || first[1] != "appointments.created" {
		t.Fatalf("first line %v", first)
	}

	g.drop()
	w.status.waitMatch(t, regexp.MustCompile(`connection lost`))
	b.book(t, "08:15")
	b.book(t, "08:30")
	g.reopen()
	w.status.waitMatch(t, regexp.MustCompile(`^\d\d:\d\d:\d\d reconnected, resuming after #`+first[2]+`$`))

	for _, start := range []string{"08:15", "08:30"} {
		line := w.out.next(t)
		if !strings.HasSuffix(line, " João Silva with Dr. Victor "+start) || strings.Contains(line, " #"+first[2]+" ") {
			t.Fatalf("line %q, want the %s booking made while disconnected", line, start)
		}
	}
	b.book(t, "08:45")
	if line := w.out.next(t); !strings.HasSuffix(line, " 08:45") {
		t.Errorf("live line after the resume %q", line)
	}
	select {
	case extra := <-w.out.c:
		t.Errorf("extra line %q", extra)
	default:
	}
}

// TestTokenExpiry: a connection closed with 4001 ends Run with ErrTokenExpired when
// it cannot mint a token, and goes on with a fresh one when it can.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t.Run("no minting", func(t *testing.T) {
		t.Parallel()
		w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Second, time.Now())})
		w.status.waitMatch(t, connected)
		if err := w.result(t); !errors.Is(err, watch.ErrTokenExpired) {
			t.Fatalf("Run = %v, want ErrTokenExpired", err)
		}
	})
	t.Run("minting", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		minted := 0
		w := startWatch(t, watch.Config{
			URL:   b.wsURL,
			Token: token(t, 1, time.Second, time.Now()),
			TokenFunc: func() (string, error) {
				mu.Lock()
				defer mu.Unlock()
				minted++
				return auth.Mint([]byte(testSecret), "accountId", 1, time.Hour, time.Now())
			},
		})
		w.status.waitMatch(t, connected)
		w.status.waitMatch(t, regexp.MustCompile(`minted a fresh one`))
		w.status.waitMatch(t, regexp.MustCompile(`reconnected`))
		b.book(t, "14:00")
		if line := w.out.next(t); !strings.HasSuffix(line, " 14:00") {
			t.Errorf("line after a fresh token %q", line)
		}
		mu.Lock()
		defer mu.Unlock()
		if minted != 1 {
			t.Errorf("minted %d tokens, want 1", minted)
		}
	})
	t.Run("expired at handshake", func(t *testing.T) {
		t.Parallel()
		w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Minute, time.Now().Add(-time.Hour))})
		if err := w.result(t); !errors.Is(err, watch.ErrTokenExpired) {
			t.Fatalf("Run = %v, want ErrTokenExpired", err)
		}
	})
}

// TestRefused: a token the notifier rejects for good is an error at once, not a
// retry loop.
func TestRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad, err := auth.Mint([]byte("another-secret-0123456789abcdef0123456"), "accountId", 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: bad})
	err = w.result(t)
	if !errors.Is(err, watch.ErrRefused) || !strings.Contains(err.Error(), "invalid signature") {
		t.Fatalf("Run = %v, want ErrRefused with the server's reason", err)
	}
}

// TestResync: a since the notifier cannot serve (beyond its log's head) is said to
// have missed events; live events follow.
func TestResync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now()), Since: 1_000_000})
	w.status.waitMatch(t, regexp.MustCompile(`resuming after #1000000`))
	w.status.waitMatch(t, regexp.MustCompile(`cannot resume after #1000000 .*events were missed`))
	b.book(t, "16:00")
	if line := w.out.next(t); !strings.HasSuffix(line, " 16:00") {
		t.Errorf("line after a resync %q", line)
	}
}

// TestUnreachable: with nothing listening, Run retries with backoff until its
// context ends, then returns nil.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nobody listens on
	w := startWatch(t, watch.Config{URL: "ws://" + addr + "/ws", Token: "x"})
	retry := regexp.MustCompile(`cannot connect to ws://` + regexp.QuoteMeta(addr) + `/ws: .*; retrying in`)
	w.status.waitMatch(t, retry)
	w.status.waitMatch(t, retry)
	w.cancel()
	if err := w.result(t); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event, data string
		partial     bool
		want        string
	}{
		{"appointments.created", `{"id":1,"startTime":"09:00","doctor":{"name":"Dr. Victor"},"patient":{"name":"João Silva"}}`, false, "appointments.created #9 João Silva with Dr. Victor 09:00"},
		{"appointments.checkin", `{"id":1,"startTime":"10:30","doctor":null,"patient":{"name":"Ana"}}`, false, "appointments.checkin #9 Ana 10:30"},
		{"appointments.created", `{"id":1,"doctor":null,"patient":null}`, false, "appointments.created #9 (no patient)"},
		{"appointments.created", `{"id":55,"accountId":1}`, true, "appointments.created #9 appointment 55 (gone before it could be read)"},
		{"doctors.created", `{"id":7,"name":"Dr. X","doctorProcedures":[{"id":1},{"id":2}]}`, false, "doctors.created #9 Dr. X (2 procedures)"},
		{"doctors.created", `{"id":7,"name":"Dra. Y","doctorProcedures":[{"id":1}]}`, false, "doctors.created #9 Dra. Y (1 procedure)"},
		{"doctors.created", `{"id":7,"name":"Dra. Z","doctorProcedures":[]}`, false, "doctors.created #9 Dra. Z (0 procedures)"},
		{"doctors.created", `{"id":7,"accountId":1}`, true, "doctors.created #9 doctor 7 (gone before it could be read)"},
		{"appointments.updated", `{"id":1,"date":"2025-01-24T00:00:00.000Z","startTime":"10:00","doctor":{"name":"Dr. Victor"},"patient":{"name":"João Silva"},"status":{"id":1,"name":"Agendado"}}`, false, "appointments.updated #9 João Silva with Dr. Victor 2025-01-24 10:00 (Agendado)"},
		{"appointments.updated", `{"id":1,"startTime":"10:00","patient":{"name":"Ana"},"status":null}`, false, "appointments.updated #9 Ana 10:00"},
		{"appointments.status.changed", `{"id":123,"patient":{"name":"João Silva"},"status":{"id":2,"name":"Check-in"},"previousStatus":{"id":1,"name":"Agendado"}}`, false, "appointments.status.changed #9 João Silva: Agendado -> Check-in"},
		{"appointments.status.changed", `{"id":123,"patient":null,"status":{"id":2,"name":"Check-in"},"previousStatus":null}`, false, "appointments.status.changed #9 (no patient): (none) -> Check-in"},
		{"appointments.status.changed", `{"id":123,"patient":{"name":"Ana"},"status":{"id":6},"previousStatus":{"id":2,"name":"Check-in"}}`, false, "appointments.status.changed #9 Ana: Check-in -> status 6"},
		{"appointments.serving", `{"id":1,"startTime":"09:00","doctor":{"name":"Dr. Victor"},"patient":{"name":"João Silva"}}`, false, "appointments.serving #9 João Silva with Dr. Victor 09:00"},
		{"appointments.finished", `{"id":1,"startTime":"09:00","patient":{"name":"João Silva"}}`, false, "appointments.finished #9 João Silva 09:00"},
		{"appointments.deleted", `{"id":1,"startTime":"09:00","doctor":{"name":"Dr. Victor"},"patient":{"name":"João Silva"},"deletedAt":"2025-01-23T10:00:00.000Z"}`, false, "appointments.deleted #9 João Silva with Dr. Victor 09:00"},
		{"appointments.deleted", `{"id":55,"accountId":1}`, true, "appointments.deleted #9 appointment 55 (gone before it could be read)"},
		{"doctors.updated", `{"id":7,"name":"Dr. X","isBusy":false,"doctorProcedures":[{"id":1}]}`, false, "doctors.updated #9 Dr. X (1 procedure, available)"},
		{"doctors.updated", `{"id":7,"name":"Dr. X","isBusy":true,"doctorProcedures":[]}`, false, "doctors.updated #9 Dr. X (0 procedures, busy)"},
		{"doctors.busy", `{"id":7,"name":"Dr. X","isBusy":true,"doctorProcedures":[]}`, false, "doctors.busy #9 Dr. X is busy"},
		{"doctors.deleted", `{"id":7,"name":"Dr. X","deletedAt":"2025-01-23T10:00:00.000Z","doctorProcedures":[]}`, false, "doctors.deleted #9 Dr. X"},
		{"doctors.deleted", `{"id":7,"accountId":1}`, true, "doctors.deleted #9 doctor 7 (gone before it could be read)"},
		{"doctors.something", `{"id":7,"name":"Dr. X","doctorProcedures":[{"id":1},{"id":2}]}`, false, "doctors.something #9 Dr. X (2 procedures)"},
		{"something.else", `{"id":7}`, false, "something.else #9"},
		{"appointments.created", `not json`, false, "appointments.created #9"},
	} {
		if got := watch.Summary(9, tc.event, tc.partial, json.RawMessage(tc.data)); got != tc.want {
			t.Errorf("Summary(%s, %s) = %q, want %q", tc.event, tc.data, got, tc.want)
		}
	}
}

// hookTransport calls after once, when the first answer of a request whose path ends
// with suffix has been read.
type hookTransport struct {
	suffix string
	once   sync.Once
	after  func()
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, h.suffix) {
		h.once.Do(h.after)
	}
	return resp, err
}

var listHeader = regexp.MustCompile(`^(\S+): (\d+) items? as of event #(\d+)$`)

// snapshotLines waits for the snapshot's status line and returns what was printed
// before it: the items of each list, by list name.
func snapshotLines(t *testing.T, w *watcher) map[string][]string {
	t.Helper()
	w.status.waitMatch(t, regexp.MustCompile(`snapshot of \d+ lists as of event`))
	got := map[string][]string{}
	list := ""
	for {
		select {
		case line := <-w.out.c: // written before the status line
			if m := listHeader.FindStringSubmatch(line); m != nil {
				list = m[1]
				got[list] = []string{}
				continue
			}
			if list == "" || !strings.HasPrefix(line, "  ") {
				t.Fatalf("line %q is neither a list header nor an item", line)
			}
			got[list] = append(got[list], strings.TrimPrefix(line, "  "))
		default:
			return got
		}
	}
}

// TestSnapshot: --snapshot prints the rows committed before it started, under a
// header per list, then follows from the lists' H: what was already listed is not
// printed again, a change committed while the lists were being read is printed once,
// and a change after that follows.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.book(t, "07:30")
	b.exec(t, `UPDATE appointments SET "statusId" = 2, "updatedAt" = now() WHERE id = $1`, id) // Check-in
	// The hook runs in Run's goroutine, which makes the requests.
	between := make(chan error, 1)
	hook := &hookTransport{suffix: "/v1/snapshot/appointments.today", after: func() {
		_, err := b.db.Exec(context.Background(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES (current_date, '07:45', '08:00', 1, 1, 1, 1)`)
		between <- err
	}}
	w := startWatch(t, watch.Config{
		URL:        b.wsURL,
		Token:      token(t, 1, time.Hour, time.Now()),
		Snapshot:   true,
		HTTPClient: &http.Client{Transport: hook, Timeout: waitTimeout},
	})
	got := snapshotLines(t, w)
	if err := <-between; err != nil {
		t.Fatalf("insert while the lists are read: %v", err)
	}
	var today string
	if err := b.db.QueryRow(t.Context(), `SELECT to_char(current_date, 'YYYY-MM-DD')`).Scan(&today); err != nil {
		t.Fatal(err)
	}
	booked := fmt.Sprintf("appointment %d: João Silva with Dr. Victor %s 07:30 (Check-in)", id, today)
	for _, want := range []struct{ list, item string }{
		{"appointments.today", booked},
		{"appointments.checkin", booked},
		{"doctors", "doctor 1: Dr. Victor (2 procedures, available)"},
	} {
		if !slices.Contains(got[want.list], want.item) {
			t.Errorf("list %s = %q, want it to hold %q", want.list, got[want.list], want.item)
		}
	}
	if len(got["appointments.checkin"]) != 1 {
		t.Errorf("check-in list %q, want the one appointment checked in", got["appointments.checkin"])
	}
	w.status.waitMatch(t, regexp.MustCompile(`connected to ws://\S+, resuming after #\d+$`))

	// Committed after appointments.today was read: its event follows, once.
	line := eventLine.FindStringSubmatch(w.out.next(t))
	if line == nil || line[1] != "appointments.created" || !strings.HasSuffix(line[3], " 07:45") {
		t.Fatalf("first line after the snapshot %v, want the 07:45 booking's creation", line)
	}
	b.book(t, "08:45")
	if line := w.out.next(t); !strings.Contains(line, " appointments.created #") || !strings.HasSuffix(line, " 08:45") {
		t.Fatalf("live line %q, want the 08:45 booking", line)
	}
	select {
	case extra := <-w.out.c:
		t.Errorf("extra line %q", extra)
	default:
	}
}

// TestSnapshotLists: Lists chooses the lists; JSON prints {"list","item"} lines, then
// frames, those of tables no list covers included; an unknown list is refused.
func TestSnapshotLists(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now()), Snapshot: true, Lists: []string{"doctors"}, JSON: true})
	w.status.waitMatch(t, regexp.MustCompile(`snapshot of 1 lists as of event #\d+; following from there`))
	var names []string
	for len(w.out.c) > 0 {
		var item struct {
			List string `json:"list"`
			Item struct {
				ID        int64  `json:"id"`
				Name      string `json:"name"`
				AccountID int64  `json:"accountId"`
			} `json:"item"`
		}
		line := <-w.out.c
		if err := json.Unmarshal([]byte(line), &item); err != nil || item.List != "doctors" || item.Item.AccountID != 1 {
			t.Fatalf("line %q (%v), want a doctor of account 1", line, err)
		}
		names = append(names, item.Item.Name)
	}
	if want := []string{"Dr. Victor", "Dra. Helena"}; !slices.Equal(names, want) {
		t.Errorf("doctors %q, want %q", names, want)
	}
	w.status.waitMatch(t, connected)
	id := b.book(t, "10:00")
	var f struct {
		Event string `json:"event"`
		Data  struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if line := w.out.next(t); json.Unmarshal([]byte(line), &f) != nil || f.Event != "appointments.created" || f.Data.ID != id {
		t.Errorf("frame %q, want appointment %d's creation", line, id)
	}

	unknown := startWatch(t, watch.Config{URL: b.wsURL, Token: token(t, 1, time.Hour, time.Now()), Snapshot: true, Lists: []string{"nope"}})
	if err := unknown.result(t); !errors.Is(err, watch.ErrRefused) || !strings.Contains(err.Error(), `unknown list "nope"`) {
		t.Errorf("Run with an unknown list = %v, want ErrRefused naming it", err)
	}
}

func TestItemSummary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ list, item, want string }{
		{"appointments.today", `{"id":45,"date":"2025-01-24T00:00:00.000Z","startTime":"09:00","doctor":{"name":"Dr. Victor"},"patient":{"name":"João Silva"},"status":{"id":1,"name":"Agendado"}}`, "appointment 45: João Silva with Dr. Victor 2025-01-24 09:00 (Agendado)"},
		{"appointments.checkin", `{"id":46,"startTime":"09:15","patient":null,"status":{"id":2,"name":"Check-in"}}`, "appointment 46: (no patient) 09:15 (Check-in)"},
		{"doctors", `{"id":7,"name":"Dr. X","isBusy":true,"doctorProcedures":[{"id":1},{"id":2}]}`, "doctor 7: Dr. X (2 procedures, busy)"},
		{"patients.recent", `{"id":9,"name":"Ana"}`, "row 9: Ana"},
		{"other", `{"id":9}`, "row 9"},
		{"doctors", `not json`, "(unreadable item)"},
	} {
		if got := watch.ItemSummary(tc.list, json.RawMessage(tc.item)); got != tc.want {
			t.Errorf("ItemSummary(%s, %s) = %q, want %q", tc.list, tc.item, got, tc.want)
		}
	}
}
