package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/internal/sioclient"
)

// The fleet tests (issue 13) run several real `notifier serve` processes against one
// PostgreSQL, with /ws clients (gorilla) and Socket.IO clients (the real
// socket.io-client behind a small TCP load balancer of the test's own) spread over
// them, and check that every client gets every event of its account exactly once, in
// id order, whatever happens to the instance it is connected to.

const (
	fleetRecoverySecret = "fleet-recovery-secret-0123456789abcdef" // shared by every instance
	fleetWait           = 90 * time.Second                         // bounds every wait on a signal
	fleetReconnect      = 100 * time.Millisecond                   // a /ws client's delay before it reconnects
)

// fleetEvents are the events the stream produces: an insert is created; a check-in is
// updated, status.changed and checkin.
var fleetEvents = []string{"appointments.created", "appointments.updated", "appointments.status.changed", "appointments.checkin"}

// noKeepAlive serves /readyz probes without idle connections left behind for goleak.
var noKeepAlive = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// syncBuffer collects a child's output; it is read while the child writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// instance is one `notifier serve` of the fleet.
type instance struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended; err is then set
	err    error
	logs   *syncBuffer
}

// startInstance starts `notifier serve` on a free port with the fleet's shared
// secrets, as a member of the fleet (fleet.advertise_url, a 2 s lease), and env on
// top; it does not wait for readiness.
func startInstance(t *testing.T, dbURL, name string, env ...string) *instance {
	t.Helper()
	in := &instance{name: name, addr: freeAddr(t), exited: make(chan struct{}), logs: &syncBuffer{}}
	in.cmd = exec.Command(binary(t), "serve")
	in.cmd.Env = append(os.Environ(),
		"NOTIFIER_DATABASE_URL="+dbURL,
		"NOTIFIER_AUTH_JWT_SECRET="+secret,
		"NOTIFIER_SOCKETIO_RECOVERY_SECRET="+fleetRecoverySecret,
		"NOTIFIER_HTTP_ADDR="+in.addr,
		"NOTIFIER_HTTP_SHUTDOWN_TIMEOUT=5s",
		"NOTIFIER_LOGGING_FORMAT=text",
		"NOTIFIER_FLEET_ADVERTISE_URL=http://"+in.addr,
		"NOTIFIER_FLEET_LEASE=2s",
	)
	in.cmd.Env = append(in.cmd.Env, env...) // later values win
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.err = in.cmd.Wait(); close(in.exited) }()
	t.Cleanup(func() {
		_ = in.cmd.Process.Kill()
		<-in.exited
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", in.name, in.addr, in.logs)
		}
	})
	return in
}

// startFleet starts n instances and waits until each is ready.
func startFleet(t *testing.T, dbURL string, n int) []*instance {
	t.Helper()
	var fleet []*instance
	for i := range n {
		fleet = append(fleet, startInstance(t, dbURL, fmt.Sprintf("i%d", i)))
	}
	for _, in := range fleet {
		in.waitReadyz(t, http.StatusOK, "")
	}
	return fleet
}

// readyz returns /readyz's status code and reason.
func (in *instance) readyz() (int, string, error) {
	code, reason, _, err := in.readyzRole()
	return code, reason, err
}

// readyzRole returns /readyz's status code, reason and, when ready, role.
func (in *instance) readyzRole() (int, string, string, error) {
	resp, err := noKeepAlive.Get("http://" + in.addr + "/readyz")
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	var body struct {
		Reason string `json:"reason"`
		Role   string `json:"role"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body.Reason, body.Role, nil
}

// waitRoles waits until one instance of fleet leads and every other follows it, and
// returns the leader.
func waitRoles(t *testing.T, fleet []*instance) *instance {
	t.Helper()
	deadline := time.Now().Add(fleetWait)
	for {
		var leader *instance
		followers := 0
		var roles []string
		for _, in := range fleet {
			_, _, role, _ := in.readyzRole()
			roles = append(roles, in.name+"="+role)
			switch role {
			case "leader":
				leader = in
			case "follower":
				followers++
			}
		}
		if leader != nil && followers == len(fleet)-1 {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet roles %v, want one leader and followers", roles)
		}
		time.Sleep(20 * time.Millisecond) // /readyz is a polled endpoint by design
	}
}

// waitReadyz polls /readyz until it answers code (and reason, unless ""). code 0
// waits for anything but 200, an unreachable instance included.
func (in *instance) waitReadyz(t *testing.T, code int, reason string) {
	t.Helper()
	deadline := time.Now().Add(fleetWait)
	for {
		got, why, err := in.readyz()
		switch {
		case code == 0 && got != http.StatusOK:
			return
		case code != 0 && got == code && (reason == "" || why == reason):
			return
		}
		select {
		case <-in.exited:
			t.Fatalf("%s exited (%v) while waiting for /readyz %d %q", in.name, in.err, code, reason)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz %d %q (%v), want %d %q", in.name, got, why, err, code, reason)
		}
		time.Sleep(20 * time.Millisecond) // /readyz is a polled endpoint by design
	}
}

// waitExit waits for the process to end and returns its Wait error.
func (in *instance) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case <-in.exited:
		return in.err
	case <-time.After(fleetWait):
		t.Fatalf("%s did not exit", in.name)
		return nil
	}
}

// pickReady returns the address of the first instance in prefs whose /readyz answers
// 200, as a load balancer with health checks would; prefs[0] when none does.
func pickReady(prefs []*instance) string {
	for _, in := range prefs {
		if code, _, err := in.readyz(); err == nil && code == http.StatusOK {
			return in.addr
		}
	}
	return prefs[0].addr
}

// prefer returns home followed by the rest of fleet.
func prefer(home *instance, fleet []*instance) []*instance {
	out := []*instance{home}
	for _, in := range fleet {
		if in != home {
			out = append(out, in)
		}
	}
	return out
}

// fleetDatabase is a migrated clinic database with the statuses the stream uses.
func fleetDatabase(t *testing.T, dbURL string) string {
	t.Helper()
	mustCLI(t, "migrate", "up", "--database-url", dbURL)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO statuses (id, name, color) VALUES (1, 'Agendado', '#ffc107'), (2, 'Check-in', '#17a2b8')`); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// logHead is the log's head: a client resuming from it gets every later event.
func logHead(t *testing.T, dbURL string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var head int64
	if err := conn.QueryRow(t.Context(), `SELECT greatest((SELECT max(id) FROM notifier.events), (SELECT pruned_through FROM notifier.log_state))`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	return head
}

func fleetToken(t *testing.T, account int64) string {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), "accountId", account, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// record is what a client received, shared by both transports. Its mutex guards the
// fields of the client that embeds it too.
type record struct {
	name    string
	account int64
	mu      sync.Mutex
	ids     []int64  // event ids, in the order received
	conn    []int    // per event, the connection (0, 1, …) it arrived on
	bad     []string // what must never arrive (resync, a frame without id)
	changed chan struct{}
}

func newRecord(name string, account int64) record {
	return record{name: name, account: account, changed: make(chan struct{})}
}

// notify wakes waiters; r.mu is held.
func (r *record) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until cond (called with r.mu held) is true.
func (r *record) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(fleetWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("%s: waiting for %s: got %d events (last %v), bad %v", r.name, what, len(r.ids), lastOf(r.ids), r.bad)
		}
	}
}

func (r *record) received() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func (r *record) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func lastOf(ids []int64) any {
	if len(ids) == 0 {
		return nil
	}
	return ids[len(ids)-1]
}

// fleetClient is either transport's client.
type fleetClient interface {
	rec() *record
	connections() int
}

func (r *record) rec() *record { return r }

// wsClient is a /ws dashboard that reconnects by itself with ?since=<last id> to the
// first ready instance of its preferences.
type wsClient struct {
	record
	token string
	since int64 // resume point of the first connection

	prefs  []*instance
	addrs  []string // instances connected to, in order
	closes []int    // how each connection ended: a close code, or -1
	live   *websocket.Conn
	held   chan struct{} // non-nil: do not reconnect before it closes

	stop chan struct{}
	done chan struct{}
}

func startWS(t *testing.T, name string, account, since int64, prefs []*instance) *wsClient {
	t.Helper()
	c := &wsClient{record: newRecord(name, account), token: fleetToken(t, account), since: since,
		prefs: prefs, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		held, prefs := c.held, c.prefs
		since := c.since
		if n := len(c.ids); n > 0 {
			since = c.ids[n-1]
		}
		c.mu.Unlock()
		if held != nil {
			select {
			case <-held:
				continue
			case <-c.stop:
				return
			}
		}
		addr := pickReady(prefs)
		q := url.Values{"access_token": {c.token}, "since": {strconv.FormatInt(since, 10)}}
		conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?"+q.Encode(), nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil {
			c.mu.Lock()
			stopped := c.held != nil
			select {
			case <-c.stop:
				stopped = true
			default:
			}
			if stopped {
				c.mu.Unlock()
				conn.Close()
				continue
			}
			c.live = conn
			c.addrs = append(c.addrs, addr)
			n := len(c.addrs) - 1
			c.notify()
			c.mu.Unlock()
			c.read(conn, n)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(fleetReconnect): // a client's reconnect delay, not a synchronisation
		}
	}
}

// read records frames from conn, the client's connection n, until it ends.
func (c *wsClient) read(conn *websocket.Conn, n int) {
	defer conn.Close()
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			code := -1
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			c.mu.Lock()
			c.closes = append(c.closes, code)
			if c.live == conn {
				c.live = nil
			}
			c.notify()
			c.mu.Unlock()
			return
		}
		var f struct {
			ID    int64  `json:"id"`
			Event string `json:"event"`
		}
		err = json.Unmarshal(p, &f)
		c.mu.Lock()
		if err != nil || f.ID == 0 || !slices.Contains(fleetEvents, f.Event) {
			c.bad = append(c.bad, string(p))
		} else {
			c.ids = append(c.ids, f.ID)
			c.conn = append(c.conn, n)
		}
		c.notify()
		c.mu.Unlock()
	}
}

// pause drops the connection and keeps the client away until resume.
func (c *wsClient) pause() {
	c.mu.Lock()
	c.held = make(chan struct{})
	live := c.live
	c.mu.Unlock()
	if live != nil {
		live.Close()
	}
}

// resume lets the client reconnect, to the first ready instance of prefs.
func (c *wsClient) resume(prefs []*instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prefs = prefs
	close(c.held)
	c.held = nil
}

func (c *wsClient) connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.addrs)
}

func (c *wsClient) lastAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.addrs) == 0 {
		return ""
	}
	return c.addrs[len(c.addrs)-1]
}

func (c *wsClient) close() {
	c.mu.Lock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	live := c.live
	c.mu.Unlock()
	if live != nil {
		live.Close()
	}
	<-c.done
}

// proxy is a TCP load balancer in front of the fleet for one Socket.IO client: each
// connection goes to the first ready instance of its preferences. cut drops every
// connection, as a network failure would; hold refuses new ones.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	prefs  []*instance
	hold   bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, prefs []*instance) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, prefs: prefs, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) serve(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	hold, prefs := p.hold || p.closed, p.prefs
	p.mu.Unlock()
	if hold {
		c.Close()
		return
	}
	b, err := net.DialTimeout("tcp", pickReady(prefs), 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.closed || p.hold {
		p.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	p.conns[c], p.conns[b] = struct{}{}, struct{}{}
	p.mu.Unlock()
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(b, c)
		b.Close()
		c.Close()
		close(copied)
	}()
	_, _ = io.Copy(c, b)
	c.Close()
	b.Close()
	<-copied
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

// cut drops every open connection; with hold, new ones are refused until release.
func (p *proxy) cut(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = hold
	for c := range p.conns {
		c.Close()
	}
}

// release lets connections through again, to the first ready instance of prefs.
func (p *proxy) release(prefs []*instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold, p.prefs = false, prefs
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cut(true)
	p.wg.Wait()
}

// sioClient is a real socket.io-client (websocket transport) behind its own proxy.
type sioClient struct {
	record
	px          *proxy
	connects    []sioclient.Connect
	disconnects []string // reasons
	notices     []string // notifier.disconnect reasons
}

func startSIO(t *testing.T, name string, account, since int64, prefs []*instance) *sioClient {
	t.Helper()
	px := startProxy(t, prefs)
	c := &sioClient{record: newRecord(name, account), px: px}
	cl := sioclient.Start(t, sioclient.Options{
		URL: "http://" + px.ln.Addr().String(), Token: fleetToken(t, account), Since: since,
		Events:     append(slices.Clone(fleetEvents), "notifier.resync", "notifier.disconnect"),
		Transports: []string{"websocket"}, ReconnectionDelay: 100 * time.Millisecond, ReconnectionDelayMax: 300 * time.Millisecond,
	})
	go c.consume(cl.C)
	return c
}

// consume records what the client saw until its process ends (sioclient's cleanup).
func (c *sioClient) consume(ch <-chan any) {
	for v := range ch {
		c.mu.Lock()
		switch v := v.(type) {
		case sioclient.Connect:
			c.connects = append(c.connects, v)
		case sioclient.Disconnect:
			c.disconnects = append(c.disconnects, v.Reason)
		case sioclient.Event:
			switch v.Name {
			case "notifier.disconnect":
				var d struct {
					Reason string `json:"reason"`
				}
				_ = json.Unmarshal(v.Data, &d)
				c.notices = append(c.notices, d.Reason)
			default:
				id, err := strconv.ParseInt(v.Offset, 10, 64)
				if err != nil || v.Name == "notifier.resync" {
					c.bad = append(c.bad, v.String())
					break
				}
				c.ids = append(c.ids, id)
				c.conn = append(c.conn, len(c.connects)-1)
			}
		}
		c.notify()
		c.mu.Unlock()
	}
}

func (c *sioClient) connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.connects)
}

// lastConnect waits for connect number n (1-based) and returns it.
func (c *sioClient) waitConnect(t *testing.T, n int) sioclient.Connect {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("connect #%d", n), func() bool { return len(c.connects) >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects[n-1]
}

// writer commits a seeded stream: appointment inserts and check-ins of appointments
// it booked, for accounts 1 and 2, one transaction each.
type writer struct {
	conn   *pgx.Conn
	rng    *rand.Rand
	booked map[int64][]int64
	ops    int
}

func newWriter(ctx context.Context, dbURL string, seed uint64) (*writer, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	return &writer{conn: conn, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), booked: map[int64][]int64{}}, nil
}

func (w *writer) step(ctx context.Context) error {
	account := int64(1 + w.rng.IntN(2))
	w.ops++
	if b := w.booked[account]; len(b) > 0 && w.rng.IntN(5) < 2 {
		i := w.rng.IntN(len(b))
		id := b[i]
		w.booked[account] = slices.Delete(b, i, i+1)
		_, err := w.conn.Exec(ctx, `UPDATE appointments SET "statusId" = 2, "updatedAt" = now() AT TIME ZONE 'UTC' WHERE id = $1`, id)
		return err
	}
	var id int64
	err := w.conn.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES (now(), '09:00', '09:15', 1, $1) RETURNING id`, account).Scan(&id)
	w.booked[account] = append(w.booked[account], id)
	return err
}

// write runs n writers of ops steps each, one step per pace, and returns a wait
// func that reports their errors.
func write(t *testing.T, dbURL string, seed uint64, n, ops int, pace time.Duration) (wait func()) {
	t.Helper()
	errs := make(chan error, n)
	for i := range n {
		w, err := newWriter(t.Context(), dbURL, seed+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer w.conn.Close(context.Background())
			var tick <-chan time.Time // pace 0: as fast as the writer goes
			if pace > 0 {
				tk := time.NewTicker(pace) // the commit rate, not a synchronisation
				defer tk.Stop()
				tick = tk.C
			}
			for range ops {
				if err := w.step(t.Context()); err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", i, w.ops, err)
					return
				}
				if tick != nil {
					<-tick
				}
			}
			errs <- nil
		}()
	}
	return func() {
		t.Helper()
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeNow commits ops steps from one writer and returns when they are committed.
func writeNow(t *testing.T, dbURL string, seed uint64, ops int) {
	t.Helper()
	write(t, dbURL, seed, 1, ops, time.Microsecond)()
}

// logEvents returns the log's events after since by account, in id order, failing
// on an event the stream does not make.
func logEvents(t *testing.T, dbURL string, since int64) map[int64][]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT id, account_id, event FROM notifier.events WHERE id > $1 ORDER BY id`, since)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64][]int64{}
	for rows.Next() {
		var id, account int64
		var event string
		if err := rows.Scan(&id, &account, &event); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(fleetEvents, event) {
			t.Fatalf("log holds %s #%d, not of the stream", event, id)
		}
		out[account] = append(out[account], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce commits a last appointment per account (the sentinel), waits until
// every client has its account's, and checks that each received exactly its account's
// events after since, each once, in id order. It returns the number of events per
// account.
func checkExactlyOnce(t *testing.T, dbURL string, since int64, clients []fleetClient) map[int64]int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	sentinel := map[int64]int64{}
	for _, account := range []int64{1, 2} {
		var row, id int64
		err := conn.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES (now(), '18:00', '18:15', 1, $1) RETURNING id`, account).Scan(&row)
		if err == nil {
			err = conn.QueryRow(t.Context(), `SELECT id FROM notifier.events WHERE account_id = $1 AND row_id = $2 AND event = 'appointments.created'`, account, row).Scan(&id)
		}
		sentinel[account] = id
		if err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(context.Background())
	want := logEvents(t, dbURL, since)
	for _, fc := range clients {
		r := fc.rec()
		r.waitFor(t, "the sentinel", func() bool { return slices.Contains(r.ids, sentinel[r.account]) })
	}
	for _, fc := range clients {
		r := fc.rec()
		got := r.received()
		if !slices.Equal(got, want[r.account]) {
			t.Errorf("%s (account %d): %s", r.name, r.account, diff(got, want[r.account]))
		}
		r.mu.Lock()
		if len(r.bad) > 0 {
			t.Errorf("%s: unexpected %v", r.name, r.bad)
		}
		r.mu.Unlock()
	}
	return map[int64]int{1: len(want[1]), 2: len(want[2])}
}

// diff describes how got differs from want.
func diff(got, want []int64) string {
	seen := map[int64]int{}
	var dups []int64
	for _, id := range got {
		if seen[id]++; seen[id] == 2 {
			dups = append(dups, id)
		}
	}
	var missing []int64
	for _, id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	wanted := map[int64]bool{}
	for _, id := range want {
		wanted[id] = true
	}
	var foreign []int64
	for _, id := range got {
		if !wanted[id] {
			foreign = append(foreign, id)
		}
	}
	order := -1
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			order = i
			break
		}
	}
	return fmt.Sprintf("got %d events, want %d: duplicates %v, missing %v, not of the account %v, first out of order at %d",
		len(got), len(want), dups, missing, foreign, order)
}

// fleetSeed is the stream's seed: NOTIFIER_TEST_FLEET_SEED or the clock, logged to reproduce.
func fleetSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NOTIFIER_TEST_FLEET_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NOTIFIER_TEST_FLEET_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (NOTIFIER_TEST_FLEET_SEED reproduces the stream)", seed)
	return seed
}

// spread starts ws /ws clients and sio Socket.IO clients, round robin over the fleet
// and accounts 1 and 2, resuming from since, and waits until each is connected.
func spread(t *testing.T, fleet []*instance, since int64, ws, sio int) ([]*wsClient, []*sioClient) {
	t.Helper()
	var wss []*wsClient
	var sios []*sioClient
	for i := range ws {
		home := fleet[i%len(fleet)]
		wss = append(wss, startWS(t, fmt.Sprintf("ws%d@%s", i, home.name), int64(1+i%2), since, prefer(home, fleet)))
	}
	for i := range sio {
		home := fleet[i%len(fleet)]
		sios = append(sios, startSIO(t, fmt.Sprintf("sio%d@%s", i, home.name), int64(1+(i+1)%2), since, prefer(home, fleet)))
	}
	for _, c := range wss {
		c.waitFor(t, "connect", func() bool { return len(c.addrs) > 0 })
	}
	for _, c := range sios {
		if cn := c.waitConnect(t, 1); cn.Recovered {
			t.Fatalf("%s: first connect recovered: %+v", c.name, cn)
		}
	}
	return wss, sios
}

func all(wss []*wsClient, sios []*sioClient) []fleetClient {
	var out []fleetClient
	for _, c := range wss {
		out = append(out, c)
	}
	for _, c := range sios {
		out = append(out, c)
	}
	return out
}

// checkUndisturbed fails for a client that connected more than once.
func checkUndisturbed(t *testing.T, clients []fleetClient) {
	t.Helper()
	for _, c := range clients {
		if n := c.connections(); n != 1 {
			t.Errorf("%s connected %d times, want once", c.rec().name, n)
		}
	}
}

// checkRecovered checks a Socket.IO client's last connect recovered its session.
func checkRecovered(t *testing.T, c *sioClient) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	first, last := c.connects[0], c.connects[len(c.connects)-1]
	if len(c.connects) < 2 || !last.Recovered || last.ID != first.ID {
		t.Errorf("%s: connects %+v, want a recovered reconnect of %s", c.name, c.connects, first.ID)
	}
}

// TestFleetExactlyOnce: three instances, one PostgreSQL, clients of two accounts on
// both transports spread over them: each gets every event of its account exactly once
// in id order, nothing of the other. A /ws client that moves to another instance with
// ?since and a Socket.IO client whose transport is cut and that lands on another
// instance (recovery id minted by the first, verified by the second) lose nothing and
// repeat nothing of what committed while they were away.
func TestFleetExactlyOnce(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	db := fleetDatabase(t, pgtest.Database(t))
	fleet := startFleet(t, db, 3)
	waitRoles(t, fleet)
	// Enrichment once per event: only the leader listens (and so reads and enriches).
	listeners := 0
	for _, b := range activity(t, db) {
		if b.app == "notifier-listen" {
			listeners++
		}
	}
	if listeners != 1 {
		t.Errorf("%d notifier-listen backends under a fleet of 3, want 1 (the leader's)", listeners)
	}
	since := logHead(t, db)
	wss, sios := spread(t, fleet, since, 6, 6)

	write(t, db, seed, 2, 100, 5*time.Millisecond)()

	// ws0 and sio0 are on i0; both go away, miss a stretch, and come back on i1.
	mover, smover := wss[0], sios[0]
	mover.pause()
	smover.px.cut(true)
	smover.waitFor(t, "disconnect", func() bool { return len(smover.disconnects) == 1 })
	mover.waitFor(t, "disconnect", func() bool { return len(mover.closes) == 1 })
	before := mover.count()
	writeNow(t, db, seed+100, 40)
	mover.resume(prefer(fleet[1], fleet))
	smover.px.release(prefer(fleet[1], fleet))
	mover.waitFor(t, "reconnect", func() bool { return len(mover.addrs) == 2 })
	if got := mover.lastAddr(); got != fleet[1].addr {
		t.Fatalf("%s reconnected to %s, want %s", mover.name, got, fleet[1].addr)
	}
	smover.waitConnect(t, 2)
	checkRecovered(t, smover)
	writeNow(t, db, seed+200, 40)

	n := checkExactlyOnce(t, db, since, all(wss, sios))
	checkUndisturbed(t, all(wss[1:], sios[1:]))
	if got := mover.received(); len(got) <= before {
		t.Errorf("%s got nothing after its move", mover.name)
	}
	t.Logf("%d /ws + %d Socket.IO clients on %d instances: accounts' events %v", len(wss), len(sios), len(fleet), n)
}

// TestFleetSIGKILL: the fleet's leader killed outright mid-stream: its clients
// reconnect to another instance and resume without gap or duplicate; the others
// notice nothing (their instances read the log alone until one takes the lease over),
// and the two left form a fleet again.
func TestFleetSIGKILL(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	db := fleetDatabase(t, pgtest.Database(t))
	fleet := startFleet(t, db, 3)
	victim := waitRoles(t, fleet)
	since := logHead(t, db)
	wss, sios := spread(t, fleet, since, 6, 6)
	var theirs, others []fleetClient
	for _, c := range all(wss, sios) {
		if strings.HasSuffix(c.rec().name, "@"+victim.name) {
			theirs = append(theirs, c)
		} else {
			others = append(others, c)
		}
	}

	wait := write(t, db, seed, 2, 150, 10*time.Millisecond)
	for _, c := range theirs {
		r := c.rec()
		r.waitFor(t, "events before the kill", func() bool { return len(r.ids) >= 10 })
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.waitExit(t)
	wait()

	n := checkExactlyOnce(t, db, since, all(wss, sios))
	for _, c := range theirs {
		switch c := c.(type) {
		case *wsClient:
			if a := c.lastAddr(); a == victim.addr || c.connections() < 2 {
				t.Errorf("%s: connected to %v, want a reconnect to another instance", c.name, c.addrs)
			}
		case *sioClient:
			checkRecovered(t, c)
		}
	}
	checkUndisturbed(t, others)
	var rest []*instance
	for _, in := range fleet {
		if in != victim {
			rest = append(rest, in)
		}
	}
	next := waitRoles(t, rest)
	t.Logf("killed leader %s mid-stream; %d clients moved, %d undisturbed; %s leads now; accounts' events %v", victim.name, len(theirs), len(others), next.name, n)
}

// TestFleetLateStart: an instance started after events committed serves, from the
// log, a /ws resume from an id older than itself and a Socket.IO recovery whose id
// another instance minted.
func TestFleetLateStart(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	db := fleetDatabase(t, pgtest.Database(t))
	fleet := startFleet(t, db, 2)
	since := logHead(t, db)
	wss, sios := spread(t, fleet, since, 2, 2)
	writeNow(t, db, seed, 60)

	// Everyone on i0 leaves; more commits; then i2 starts, and they come back there.
	ws, sio := wss[0], sios[0]
	ws.pause()
	sio.px.cut(true)
	sio.waitFor(t, "disconnect", func() bool { return len(sio.disconnects) == 1 })
	writeNow(t, db, seed+100, 60)
	late := startInstance(t, db, "late")
	late.waitReadyz(t, http.StatusOK, "")
	ws.resume([]*instance{late})
	sio.px.release([]*instance{late})
	fresh := startWS(t, "fresh@late", 1, since, []*instance{late}) // resumes from before late existed
	ws.waitFor(t, "reconnect", func() bool { return len(ws.addrs) == 2 })
	if a := ws.lastAddr(); a != late.addr {
		t.Fatalf("%s reconnected to %s, want %s", ws.name, a, late.addr)
	}
	sio.waitConnect(t, 2)
	checkRecovered(t, sio)
	writeNow(t, db, seed+200, 30)

	clients := append(all(wss, sios), fresh)
	n := checkExactlyOnce(t, db, since, clients)
	checkUndisturbed(t, []fleetClient{wss[1], sios[1], fresh})
	t.Logf("late instance served a /ws resume, a fresh resume and a Socket.IO recovery; accounts' events %v", n)
}

// TestFleetPostgresRestart: PostgreSQL stops and starts again under a running fleet:
// every instance becomes ready again and every client ends with every event committed
// before and after, exactly once.
func TestFleetPostgresRestart(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	cluster, cs := pgtest.Cluster(t)
	db := fleetDatabase(t, cs)
	fleet := startFleet(t, db, 3)
	since := logHead(t, db)
	wss, sios := spread(t, fleet, since, 6, 3)
	writeNow(t, db, seed, 80)

	ctx, cancel := context.WithTimeout(t.Context(), fleetWait)
	defer cancel()
	if err := cluster.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	for _, in := range fleet {
		in.waitReadyz(t, 0, "")
	}
	if err := cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range fleet {
		in.waitReadyz(t, http.StatusOK, "")
	}
	writeNow(t, db, seed+100, 80)

	n := checkExactlyOnce(t, db, since, all(wss, sios))
	moved := 0
	for _, c := range all(wss, sios) {
		if c.connections() > 1 {
			moved++
		}
	}
	t.Logf("postgres restarted under %d instances; %d of %d clients reconnected; accounts' events %v", len(fleet), moved, len(wss)+len(sios), n)
}

// TestFleetDrain: SIGTERM with http.drain_delay: the instance answers /readyz 503
// "draining" while its clients still get events, then closes them (1001 on /ws,
// notifier.disconnect on Socket.IO); they reconnect to a ready instance and lose
// nothing.
func TestFleetDrain(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	db := fleetDatabase(t, pgtest.Database(t))
	victim := startInstance(t, db, "drain", "NOTIFIER_HTTP_DRAIN_DELAY=2s")
	fleet := append([]*instance{victim}, startFleet(t, db, 2)...)
	victim.waitReadyz(t, http.StatusOK, "")
	since := logHead(t, db)
	wss, sios := spread(t, fleet, since, 6, 6)
	var theirs []fleetClient
	for _, c := range all(wss, sios) {
		if strings.HasSuffix(c.rec().name, "@"+victim.name) {
			theirs = append(theirs, c)
		}
	}

	wait := write(t, db, seed, 2, 150, 10*time.Millisecond)
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	victim.waitReadyz(t, http.StatusServiceUnavailable, "draining")
	// Committed while draining: delivered on the victim's connections before they close.
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	drained := map[int64]int64{}
	for _, account := range []int64{1, 2} {
		var row, id int64
		if err := conn.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES (now(), '12:00', '12:15', 1, $1) RETURNING id`, account).Scan(&row); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(t.Context(), `SELECT id FROM notifier.events WHERE row_id = $1 AND event = 'appointments.created'`, row).Scan(&id); err != nil {
			t.Fatal(err)
		}
		drained[account] = id
	}
	conn.Close(context.Background())
	for _, c := range theirs {
		r := c.rec()
		id := drained[r.account]
		r.waitFor(t, "the event committed while draining", func() bool { return slices.Contains(r.ids, id) })
		r.mu.Lock()
		if on := r.conn[slices.Index(r.ids, id)]; on != 0 {
			t.Errorf("%s: event %d committed while draining arrived on connection %d, want the first", r.name, id, on)
		}
		r.mu.Unlock()
	}
	if err := victim.waitExit(t); err != nil {
		t.Errorf("%s exit: %v", victim.name, err)
	}
	wait()

	n := checkExactlyOnce(t, db, since, all(wss, sios))
	for _, c := range theirs {
		switch c := c.(type) {
		case *wsClient:
			c.mu.Lock()
			if len(c.closes) == 0 || c.closes[0] != websocket.CloseGoingAway || len(c.addrs) < 2 || c.addrs[1] == victim.addr {
				t.Errorf("%s: closes %v, connected to %v: want 1001, then another instance", c.name, c.closes, c.addrs)
			}
			c.mu.Unlock()
		case *sioClient:
			c.mu.Lock()
			if !slices.Contains(c.notices, "server shutting down") {
				t.Errorf("%s: notifier.disconnect %v, want server shutting down", c.name, c.notices)
			}
			c.mu.Unlock()
			checkRecovered(t, c)
		}
	}
	var others []fleetClient
	for _, c := range all(wss, sios) {
		if !slices.Contains(theirs, c) {
			others = append(others, c)
		}
	}
	checkUndisturbed(t, others)
	t.Logf("drained %s: %d clients moved without loss; accounts' events %v", victim.name, len(theirs), n)
}

// TestFleetCost measures, for docs/scaling.md, what a fleet of 0, 1, 3 and 6
// instances (one leading, the others following it), and 3 and 6 instances without a
// fleet (each reading and enriching the log alone), cost one PostgreSQL at a fixed commit rate (100 commits/s for 10 s, 20
// /ws clients per instance): the postgres processes' CPU (utime+stime from /proc,
// before and after, the notifier's backends apart) per event, and the connections each
// instance holds (pg_stat_activity, matched to the instance by client port). It writes
// the figures to the test log and /tmp/notifier-fleet-cost.txt. Skipped unless
// NOTIFIER_TEST_FLEET_COST=1.
func TestFleetCost(t *testing.T) {
	if os.Getenv("NOTIFIER_TEST_FLEET_COST") != "1" {
		t.Skip("NOTIFIER_TEST_FLEET_COST=1 measures the fleet's cost to PostgreSQL")
	}
	seed := fleetSeed(t)
	cluster, cs := pgtest.Cluster(t)
	db := fleetDatabase(t, cs)
	pm := postmasterPID(t, cluster.Dir())
	var lines []string
	for i, c := range []struct {
		n     int
		alone bool
	}{{0, false}, {1, false}, {3, false}, {6, false}, {3, true}, {6, true}} {
		t.Run(fmt.Sprintf("instances=%d,alone=%v", c.n, c.alone), func(t *testing.T) {
			lines = append(lines, measureFleet(t, db, pm, c.n, c.alone, seed+uint64(i)))
		})
	}
	// The fleet's rate limit: 4 writers as fast as they go under a fleet of 3.
	t.Run("instances=3,full-speed", func(t *testing.T) {
		lines = append(lines, measureFleetRate(t, db, seed+100))
	})
	report := strings.Join(lines, "\n") + "\n"
	t.Logf("fleet cost (CLK_TCK assumed 100):\n%s", report)
	if err := os.WriteFile("/tmp/notifier-fleet-cost.txt", []byte(report), 0o644); err != nil {
		t.Error(err)
	}
}

const (
	costCommits    = 1000
	costPace       = 10 * time.Millisecond // 100 commits/s
	costClients    = 20                    // per instance
	costTickMillis = 10                    // 1/CLK_TCK, 100 on Linux
)

// measureFleet runs n instances (in a fleet, or alone: without fleet.advertise_url)
// with costClients clients each through one stream and returns a line of figures.
func measureFleet(t *testing.T, dbURL string, pm, n int, alone bool, seed uint64) string {
	var fleet []*instance
	var env []string
	if alone {
		env = append(env, "NOTIFIER_FLEET_ADVERTISE_URL=")
	}
	for i := range n {
		fleet = append(fleet, startInstance(t, dbURL+"&application_name=fleet-i"+strconv.Itoa(i), fmt.Sprintf("i%d", i), env...))
	}
	for _, in := range fleet {
		in.waitReadyz(t, http.StatusOK, "")
	}
	if !alone && n > 0 {
		waitRoles(t, fleet)
	}
	since := logHead(t, dbURL)
	clients := costClientsOn(t, fleet, since)
	before := pgTicks(t, pm)
	began := time.Now()
	write(t, dbURL+"&application_name=fleet-writer", seed, 1, costCommits, costPace)()
	elapsed := time.Since(began)
	events := checkExactlyOnce(t, dbURL, since, clients)
	after := pgTicks(t, pm)
	total := events[1] + events[2]

	conns := activity(t, dbURL)
	byInstance := make([]map[string]int, n)
	appOf := map[int]string{} // backend pid -> application_name, for the fleet's backends
	for i, in := range fleet {
		byInstance[i] = map[string]int{}
		ports := localPorts(t, in.cmd.Process.Pid)
		for _, a := range conns {
			if ports[a.port] {
				byInstance[i][a.app]++
				appOf[a.pid] = a.app
			}
		}
	}
	// The writer's backend has exited by now: its CPU is in the postmaster's reaped
	// children, so in "writes and server" with the triggers' work.
	listenTicks, poolTicks := 0, 0
	for pid, ticks := range after.backends {
		switch d := ticks - before.backends[pid]; {
		case appOf[pid] == "notifier-listen":
			listenTicks += d
		case appOf[pid] != "":
			poolTicks += d
		}
	}
	totalTicks := after.total - before.total
	ms := func(ticks int) int { return ticks * costTickMillis }
	perEvent := func(ticks int) float64 { return float64(ms(ticks)*1000) / float64(total) }
	var perInst []string
	for i, m := range byInstance {
		perInst = append(perInst, fmt.Sprintf("i%d: pool %d + listen %d", i, m["fleet-i"+strconv.Itoa(i)], m["notifier-listen"]))
	}
	line := fmt.Sprintf("instances=%d alone=%v clients=%d commits=%d in %.1fs (%.0f/s) events=%d | postgres cpu %d ms = %.0f µs/event: notifier listen backends %d ms (%.0f µs/event), notifier pool backends %d ms (%.0f µs/event), writes and server %d ms | connections [%s]",
		n, alone, len(clients), costCommits+2, elapsed.Seconds(), float64(costCommits)/elapsed.Seconds(), total,
		ms(totalTicks), perEvent(totalTicks), ms(listenTicks), perEvent(listenTicks), ms(poolTicks), perEvent(poolTicks),
		ms(totalTicks-listenTicks-poolTicks), strings.Join(perInst, "; "))
	t.Log(line)
	return line
}

// costClientsOn connects costClients /ws clients to each instance, over accounts 1
// and 2, resuming after since, and waits until all are connected.
func costClientsOn(t *testing.T, fleet []*instance, since int64) []fleetClient {
	t.Helper()
	var clients []fleetClient
	for _, in := range fleet {
		for j := range costClients {
			clients = append(clients, startWS(t, fmt.Sprintf("ws%d@%s", j, in.name), int64(1+j%2), since, []*instance{in}))
		}
	}
	for _, c := range clients {
		c := c.(*wsClient)
		c.waitFor(t, "connect", func() bool { return len(c.addrs) > 0 })
	}
	return clients
}

// measureFleetRate runs a fleet of 3 with costClients clients each while 4 writers
// commit as fast as they go, checks every event reached every client, and returns
// the commit and delivery rates.
func measureFleetRate(t *testing.T, dbURL string, seed uint64) string {
	var fleet []*instance
	for i := range 3 {
		fleet = append(fleet, startInstance(t, dbURL, fmt.Sprintf("r%d", i)))
	}
	for _, in := range fleet {
		in.waitReadyz(t, http.StatusOK, "")
	}
	waitRoles(t, fleet)
	since := logHead(t, dbURL)
	clients := costClientsOn(t, fleet, since)
	const writers, ops = 4, 2500
	began := time.Now()
	write(t, dbURL, seed, writers, ops, 0)()
	wrote := time.Since(began)
	events := checkExactlyOnce(t, dbURL, since, clients)
	delivered := time.Since(began)
	total := events[1] + events[2]
	line := fmt.Sprintf("instances=3 full speed: %d writers, %d commits in %.1fs (%.0f/s), %d events, every client had all of them %.1fs after the first commit (%.0f events/s through the fleet, %.0f deliveries/s)",
		writers, writers*ops, wrote.Seconds(), float64(writers*ops)/wrote.Seconds(), total, delivered.Seconds(),
		float64(total)/delivered.Seconds(), float64(total*costClients*3/2)/delivered.Seconds())
	t.Log(line)
	return line
}

// postmasterPID reads the first line of the cluster's postmaster.pid.
func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(dir + "/data/postmaster.pid")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// ticks is the CPU of a postgres server in clock ticks: total is the postmaster's
// own and reaped children's plus every live child's utime+stime; backends by pid.
type ticks struct {
	total    int
	backends map[int]int
}

// procStat returns a process's parent pid, utime+stime and cutime+cstime.
func procStat(pid int) (ppid, self, children int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3, state
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	n := func(i int) int { v, _ := strconv.Atoi(f[i]); return v }
	return n(1), n(11) + n(12), n(13) + n(14), nil
}

func pgTicks(t *testing.T, pm int) ticks {
	t.Helper()
	_, self, reaped, err := procStat(pm)
	if err != nil {
		t.Fatal(err)
	}
	out := ticks{total: self + reaped, backends: map[int]int{}}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, self, _, err := procStat(pid)
		if err != nil || ppid != pm {
			continue
		}
		out.total += self
		out.backends[pid] = self
	}
	return out
}

type backend struct {
	pid, port int
	app       string
}

// activity lists the database's client backends.
func activity(t *testing.T, dbURL string) []backend {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT pid, coalesce(client_port, -1), coalesce(application_name, '') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (backend, error) {
		var b backend
		err := r.Scan(&b.pid, &b.port, &b.app)
		return b, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// localPorts returns the local TCP ports of a process's sockets (/proc/pid/fd and
// /proc/pid/net/tcp).
func localPorts(t *testing.T, pid int) map[int]bool {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, file := range []string{"/net/tcp", "/net/tcp6"} {
		b, err := os.ReadFile(dir + file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports[int(p)] = true
			}
		}
	}
	return ports
}

// TestFleetWrongKey: an instance whose fleet key is not its leader's is refused the
// stream (401), says so, and reads the log alone: its clients still get every event.
func TestFleetWrongKey(t *testing.T) {
	t.Parallel()
	seed := fleetSeed(t)
	db := fleetDatabase(t, pgtest.Database(t))
	leader := startInstance(t, db, "leader")
	leader.waitReadyz(t, http.StatusOK, "")
	waitRoles(t, []*instance{leader})
	odd := startInstance(t, db, "odd", "NOTIFIER_FLEET_SECRET=not-the-fleet-key-not-the-fleet-key")
	odd.waitReadyz(t, http.StatusOK, "")
	since := logHead(t, db)
	wss, sios := spread(t, []*instance{leader, odd}, since, 4, 2)
	writeNow(t, db, seed, 60)
	n := checkExactlyOnce(t, db, since, all(wss, sios))
	if _, _, role, _ := odd.readyzRole(); role != "fallback" {
		t.Errorf("instance with another key: role %q, want fallback", role)
	}
	if !strings.Contains(odd.logs.String(), "401") {
		t.Errorf("the refused stream is not logged:\n%s", odd.logs)
	}
	t.Logf("accounts' events %v", n)
}
