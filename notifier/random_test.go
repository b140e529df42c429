package notifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/sioclient"
	"github.com/pgnotifier/notifier/notifier"
)

// Knobs of TestRandomized.
const (
	envRandomSeed     = "NOTIFIER_TEST_RANDOM_SEED"
	envRandomDuration = "NOTIFIER_TEST_RANDOM_DURATION"
	randomDuration    = 15 * time.Second // of writing, by default
	randomWriters     = 4
	randomStmtTimeout = 300 * time.Millisecond // database.statement_timeout for this test
	maxNewcomers      = 3                      // /ws and Socket.IO clients joining while events flow
)

var randomAccounts = []int64{1, 2, 3}

// TestRandomized runs random transactions of several writers (inserts, check-ins,
// status changes, account moves, deletes, doctors, savepoints, rollbacks, long open
// transactions) against the notifier while faults strike at random moments (the
// listener's backend killed, the notifier restarted, enrichment stalled past
// database.statement_timeout) and /ws and Socket.IO clients drop and resume. An oracle
// built only from what committed says which events each client must have received,
// with which facts, in which order; every client's stream is checked against it.
//
// Seeded: NOTIFIER_TEST_RANDOM_SEED replays the same writes, faults and client actions (the
// scheduling of goroutines and of PostgreSQL still varies); NOTIFIER_TEST_RANDOM_DURATION
// sets how long the writers write.
func TestRandomized(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envRandomSeed); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envRandomSeed, s, err)
		}
		seed = n
	}
	dur := randomDuration
	if s := os.Getenv(envRandomDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration (%v)", envRandomDuration, s, err)
		}
		dur = d
	}
	t.Logf("seed %d: reproduce with %s=%d %s=%s go test -race -count=1 -run 'TestRandomized$' -v ./notifier/",
		seed, envRandomSeed, seed, envRandomDuration, dur)
	rng := rand.New(rand.NewPCG(seed, 0))
	replayBuffer := []int{1024, 1024, 8}[rng.IntN(3)]
	replayCache := []int{8192, 0}[rng.IntN(2)]
	t.Logf("seed %d: hub.replay_buffer=%d hub.replay_cache=%d database.statement_timeout=%s, %d writers for %s",
		seed, replayBuffer, replayCache, randomStmtTimeout, randomWriters, dur)

	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) {
			c.Database.StatementTimeout = randomStmtTimeout
			c.Hub.ReplayBuffer, c.Hub.ReplayCache = replayBuffer, replayCache
		}
	})
	r := &rtest{t: t, seed: seed, base: b.base, progress: make(chan struct{}, 1), start: time.Now(),
		tokenTTL: dur + 10*time.Minute} // outlives the run: expiry is tested elsewhere
	r.or = &oracle{start: r.start, statusName: map[int64]string{}, doctorAccount: map[int64]int64{}, patientAccount: map[int64]int64{},
		byKey: map[string]*expEvent{}, byRow: map[string][]*expEvent{}, history: map[rowRef][]string{}, byKind: map[string]int{}}
	r.loadReference(b)
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = randomWriters + 4
	r.pool, err = pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.pool.Close)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	t.Cleanup(r.stopAll)

	// Clients connected before anything is written: their window is every event.
	for _, acct := range randomAccounts {
		r.addWS(acct, "", true)
		r.addWS(acct, "", true)
	}
	r.addWS(1, "appointments.checkin", true)
	r.addWS(2, "appointments.created,doctors.created", true)
	r.addWS(3, "doctors.created,appointments.checkin", true)
	r.addSIO(1, nil, sioclient.InAuth, true) // polling, then the upgrade
	r.addSIO(2, []string{"websocket"}, sioclient.InAuth, true)
	r.addSIO(1, []string{"websocket"}, sioclient.InHeader, true)
	if !r.waitFor(waitTimeout, func() bool {
		for _, c := range r.clients {
			if !c.isConnected() {
				return false
			}
		}
		return true
	}) {
		r.fatalf("clients not all connected in time: %s", r.clientStates())
	}

	// A barrier every initial client receives before the writers start, so that each
	// has a position to resume from.
	r.barrier()
	if !r.waitFor(waitTimeout, func() bool {
		for _, c := range r.clients {
			if c.received() == 0 {
				return false
			}
		}
		return true
	}) {
		r.fatalf("the barrier's events did not reach every client in time: %s", r.clientStates())
	}

	// Writers, and faults and client actions on this goroutine meanwhile.
	stopWriting := make(chan struct{})
	var writers sync.WaitGroup
	for i := range randomWriters {
		writers.Add(1)
		go r.writer(&writers, i+1, stopWriting)
	}
	writeStart := time.Now()
	r.chaos(b, rng, writeStart.Add(dur))
	close(stopWriting)
	writers.Wait()
	r.stalls.Wait()
	writeTime := time.Since(writeStart)

	// Everything committed; wait until every client has all it should (bounded).
	finalStart := time.Now()
	evaluations := 0
	complete := r.waitForSettled(waitTimeout, 50*time.Millisecond, func() bool {
		evaluations++
		return r.analyze(false).missing == 0
	})
	finalWait := time.Since(finalStart)
	a := r.analyze(true)
	t.Logf("seed %d: final wait %s, %d evaluations; analysis %s", seed, finalWait.Round(time.Millisecond), evaluations, time.Since(finalStart.Add(finalWait)).Round(time.Millisecond))
	r.report(a, complete, writeTime, finalWait)
}

// rtest is the state of one TestRandomized.
type rtest struct {
	t        *testing.T
	seed     uint64
	base     string        // the notifier's base URL; read once, b.base changes under restart
	tokenTTL time.Duration // of every client's token
	pool     *pgxpool.Pool
	or       *oracle
	start    time.Time
	progress chan struct{} // a client received something or (re)connected
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // clients
	stalls   sync.WaitGroup
	stalling atomic.Bool
	clients  []*rclient // test goroutine only

	kills, killed, restarts, stallN, wsDrops, sioDrops, newcomers int // test goroutine only
	spRollbacks, writerErrors                                     atomic.Int64
}

func (r *rtest) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("[seed %d] "+format, append([]any{r.seed}, args...)...)
}

func (r *rtest) errorf(format string, args ...any) {
	r.t.Helper()
	r.t.Errorf("[seed %d] "+format, append([]any{r.seed}, args...)...)
}

// stopAll ends clients; writers have ended already, or end on the cancelled context.
func (r *rtest) stopAll() {
	r.cancel()
	for _, c := range r.clients {
		c.mu.Lock()
		if c.conn != nil {
			_ = c.conn.Close()
		}
		c.mu.Unlock()
	}
	r.wg.Wait()
	r.stalls.Wait()
}

// signal wakes the test goroutine's waitFor.
func (r *rtest) signal() {
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

// waitFor waits for cond, re-evaluated whenever a client reports progress.
func (r *rtest) waitFor(timeout time.Duration, cond func() bool) bool {
	return r.waitForSettled(timeout, 0, cond)
}

// waitForSettled is waitFor for a costly cond: after a signal it lets more progress
// gather for settle before evaluating again.
func (r *rtest) waitForSettled(timeout, settle time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-r.progress:
		case <-deadline.C:
			return cond()
		}
		if settle > 0 && !sleepCtx(r.ctx, settle) {
			return false
		}
	}
}

func (r *rtest) loadReference(b *testBundle) {
	t := r.t
	o := r.or
	rows, err := b.db.Query(t.Context(), `SELECT id, name FROM statuses ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		o.statusName[id] = name
		o.statuses = append(o.statuses, id)
		if name == "Check-in" {
			o.checkin = id
		}
	}
	if rows.Err() != nil || o.checkin == 0 || len(o.statuses) < 3 {
		t.Fatalf("statuses: %v %v (need 'Check-in' and two others)", rows.Err(), o.statusName)
	}
	for _, q := range []struct {
		sql string
		acc map[int64]int64
		ids *[]int64
	}{
		{`SELECT id, "accountId" FROM doctors ORDER BY id`, o.doctorAccount, &o.doctors},
		{`SELECT id, "accountId" FROM patients ORDER BY id`, o.patientAccount, &o.patients},
	} {
		rows, err := b.db.Query(t.Context(), q.sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var acct *int64
			if err := rows.Scan(&id, &acct); err != nil {
				t.Fatal(err)
			}
			if acct != nil {
				q.acc[id] = *acct
			}
			*q.ids = append(*q.ids, id)
		}
		if rows.Err() != nil || len(*q.ids) == 0 {
			t.Fatalf("%s: %v, %d rows", q.sql, rows.Err(), len(*q.ids))
		}
	}
}

// ---- clients ----

// rclient is one dashboard: a /ws client that resumes with ?since, or a real
// socket.io-client that recovers; either way one stream over its lifetime.
type rclient struct {
	name      string
	sioT      bool
	account   int64
	filter    map[string]bool // nil: every event
	filterQ   string
	initial   bool // connected before any write: its window is everything
	token     string
	sio       *sioclient.Client
	pauseDrop time.Duration

	mu          sync.Mutex
	got         []rxEvent
	problems    []finding
	conn        *websocket.Conn // /ws: the current connection
	dropping    bool
	connected   bool
	conns       int
	resumes     int
	freshDial   time.Time // when the latest connection without a position was made
	lastConnect time.Time
	closes      map[string]int
	connErrors  int
}

func (c *rclient) problem(cat, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, finding{cat, c.name + ": " + fmt.Sprintf(format, args...)})
}

func (c *rclient) isConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *rclient) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *rclient) lastID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) == 0 {
		return 0
	}
	return c.got[len(c.got)-1].id
}

func (r *rtest) newClient(account int64, filter string, initial bool, kind string) *rclient {
	c := &rclient{account: account, initial: initial, filterQ: filter, closes: map[string]int{},
		token: token(r.t, account, r.tokenTTL)}
	c.name = fmt.Sprintf("%s#%d(account %d", kind, len(r.clients)+1, account)
	if filter != "" {
		c.filter = map[string]bool{}
		for _, n := range strings.Split(filter, ",") {
			c.filter[n] = true
		}
		c.name += " events=" + filter
	}
	if !initial {
		c.name += ", joined at " + r.or.rel(time.Now())
	}
	c.name += ")"
	r.clients = append(r.clients, c)
	return c
}

func (r *rtest) addWS(account int64, filter string, initial bool) *rclient {
	c := r.newClient(account, filter, initial, "ws")
	r.wg.Add(1)
	go r.runWS(c)
	return c
}

// runWS connects, reads, and reconnects with ?since=<last id> until the test ends.
func (r *rtest) runWS(c *rclient) {
	defer r.wg.Done()
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	var failingSince time.Time
	backoff := 20 * time.Millisecond
	for {
		q := url.Values{}
		if c.filterQ != "" {
			q.Set("events", c.filterQ)
		}
		last := c.lastID()
		if last > 0 {
			q.Set("since", strconv.FormatInt(last, 10))
		}
		u := "ws" + strings.TrimPrefix(r.base, "http") + "/ws"
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		conn, resp, err := dialer.DialContext(r.ctx, u, http.Header{"Authorization": {"Bearer " + c.token}})
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			status, body := 0, ""
			if resp != nil {
				status = resp.StatusCode
				p, _ := io.ReadAll(resp.Body)
				body = string(p)
			}
			if status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden {
				c.problem("client", "handshake %s refused: %d %s", u, status, body)
				return
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > 2*waitTimeout {
				c.problem("client", "could not reconnect for %s: %v %d %s", time.Since(failingSince).Round(time.Millisecond), err, status, body)
				return
			}
			if !sleepCtx(r.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 500*time.Millisecond)
			continue
		}
		failingSince, backoff = time.Time{}, 20*time.Millisecond
		c.mu.Lock()
		c.conn, c.connected = conn, true
		c.conns++
		if last == 0 {
			c.freshDial = time.Now()
		} else {
			c.resumes++
		}
		connNo := c.conns
		c.mu.Unlock()
		r.signal()

		err = r.readWS(c, conn, connNo)
		_ = conn.Close()
		c.mu.Lock()
		dropped, pause := c.dropping, c.pauseDrop
		c.conn, c.connected, c.dropping = nil, false, false
		if !dropped {
			reason := "read error"
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				reason = fmt.Sprintf("close %d %s", ce.Code, ce.Text)
			}
			c.closes[reason]++
		}
		c.mu.Unlock()
		if r.ctx.Err() != nil {
			return
		}
		if dropped && !sleepCtx(r.ctx, pause) { // away a while: it misses events
			return
		}
	}
}

func (r *rtest) readWS(c *rclient, conn *websocket.Conn, connNo int) error {
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			c.problem("client", "undecodable frame %q: %v", p, err)
			continue
		}
		if f.Event == "notifier.resync" {
			c.problem("resync", "connection %d got %s (after id %d): no range was pruned", connNo, p, c.lastID())
			continue
		}
		rx := newRx(f.ID, f.Event, f.Data, f.Partial, connNo)
		c.mu.Lock()
		c.got = append(c.got, rx)
		c.mu.Unlock()
		r.signal()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// addSIO starts a real socket.io-client (a Node process) and its reader.
func (r *rtest) addSIO(account int64, transports []string, in sioclient.TokenIn, initial bool) *rclient {
	c := r.newClient(account, "", initial, "sio")
	c.name = strings.TrimSuffix(c.name, ")") + fmt.Sprintf(" transports=%v token in %s)", transports, in)
	c.sioT = true
	c.sio = sioclient.Start(r.t, sioclient.Options{
		URL: r.base, Token: c.token, TokenIn: in, Transports: transports,
		Events:            append(slices.Sorted(maps.Keys(knownKinds)), "notifier.resync", "notifier.disconnect"),
		ReconnectionDelay: 100 * time.Millisecond, ReconnectionDelayMax: 500 * time.Millisecond,
	})
	r.wg.Add(1)
	go r.runSIO(c)
	return c
}

// runSIO records what the client saw until the test ends or the process does.
func (r *rtest) runSIO(c *rclient) {
	defer r.wg.Done()
	for {
		var v any
		var ok bool
		select {
		case <-r.ctx.Done():
			return
		case v, ok = <-c.sio.C:
		}
		if !ok {
			if r.ctx.Err() == nil {
				c.problem("client", "the socket.io-client process ended")
			}
			return
		}
		c.mu.Lock()
		switch v := v.(type) {
		case sioclient.Connect:
			c.conns++
			if c.conns > 1 {
				if v.Recovered {
					c.resumes++
				} else {
					c.problems = append(c.problems, finding{"not recovered", fmt.Sprintf("%s: reconnect %d (transport %s) has socket.recovered false, after id %d",
						c.name, c.conns-1, v.Transport, lastOf(c.got))})
				}
			} else {
				c.freshDial = time.Now()
			}
			c.connected, c.lastConnect = true, time.Now()
		case sioclient.Disconnect:
			c.connected = false
			c.closes["disconnect "+v.Reason]++
			if !v.Active {
				c.problems = append(c.problems, finding{"client", fmt.Sprintf("%s: disconnect %q after which the client does not reconnect", c.name, v.Reason)})
			}
		case sioclient.ConnectError:
			c.connErrors++
			if !v.Active {
				c.problems = append(c.problems, finding{"client", fmt.Sprintf("%s: connect_error %q %s, not retried", c.name, v.Message, v.Data)})
			}
		case sioclient.Event:
			switch v.Name {
			case "notifier.resync":
				c.problems = append(c.problems, finding{"resync", fmt.Sprintf("%s: notifier.resync after id %d: no range was pruned", c.name, lastOf(c.got))})
			case "notifier.disconnect":
				c.closes["notifier.disconnect "+string(v.Data)]++
			default:
				id, err := strconv.ParseInt(v.Offset, 10, 64)
				if err != nil {
					c.problems = append(c.problems, finding{"client", fmt.Sprintf("%s: event without a numeric offset: %s", c.name, v)})
					break
				}
				c.got = append(c.got, newRx(id, v.Name, v.Data, false, c.conns))
			}
		}
		c.mu.Unlock()
		r.signal()
	}
}

func lastOf(got []rxEvent) int64 {
	if len(got) == 0 {
		return 0
	}
	return got[len(got)-1].id
}

func (r *rtest) clientStates() string {
	var s []string
	for _, c := range r.clients {
		c.mu.Lock()
		s = append(s, fmt.Sprintf("%s: connected=%v connections=%d received=%d", c.name, c.connected, c.conns, len(c.got)))
		c.mu.Unlock()
	}
	return "\n  " + strings.Join(s, "\n  ")
}

// ---- faults and client actions ----

// chaos strikes at random moments until the deadline: runs on the test goroutine.
func (r *rtest) chaos(b *testBundle, rng *rand.Rand, until time.Time) {
	var lastRestart time.Time
	sioNewcomer := false
	for time.Now().Before(until) {
		if !sleepCtx(r.ctx, time.Duration(100+rng.IntN(500))*time.Millisecond) {
			return
		}
		if r.writerErrors.Load() > 0 {
			return
		}
		switch p := rng.IntN(100); {
		case p < 20:
			var n int
			if err := r.pool.QueryRow(r.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
				notifier.ListenerApplicationName).Scan(&n); err != nil {
				r.fatalf("kill the listener: %v", err)
			}
			r.kills++
			r.killed += n
		case p < 30:
			if r.stalling.Load() || time.Since(lastRestart) < 2500*time.Millisecond {
				continue
			}
			b.restart(r.t)
			lastRestart = time.Now()
			r.restarts++
		case p < 43:
			if r.stalling.Load() {
				continue
			}
			hold := 2*randomStmtTimeout + time.Duration(rng.Int64N(int64(3*randomStmtTimeout)))
			r.stalling.Store(true)
			r.stallN++
			r.stalls.Add(1)
			go r.stall(hold)
		case p < 75:
			var live []*rclient
			for _, c := range r.clients {
				if !c.sioT && c.isConnected() && c.received() > 0 {
					live = append(live, c)
				}
			}
			if len(live) == 0 {
				continue
			}
			c := live[rng.IntN(len(live))]
			c.mu.Lock()
			if c.conn != nil {
				c.dropping = true
				c.pauseDrop = time.Duration(rng.IntN(400)) * time.Millisecond
				_ = c.conn.Close()
				r.wsDrops++
			}
			c.mu.Unlock()
		case p < 92:
			var live []*rclient
			for _, c := range r.clients {
				c.mu.Lock()
				if c.sioT && c.connected && time.Since(c.lastConnect) > 200*time.Millisecond {
					live = append(live, c)
				}
				c.mu.Unlock()
			}
			if len(live) == 0 {
				continue
			}
			live[rng.IntN(len(live))].sio.CloseEngine()
			r.sioDrops++
		default:
			if r.newcomers >= maxNewcomers {
				continue
			}
			if !sioNewcomer && rng.IntN(3) == 0 {
				r.addSIO(randomAccounts[rng.IntN(len(randomAccounts))], []string{"websocket"}, sioclient.InAuth, false)
				r.newcomers++
				sioNewcomer = true
				continue
			}
			filters := []string{"", "", "appointments.created", "appointments.checkin,doctors.created"}
			r.addWS(randomAccounts[rng.IntN(len(randomAccounts))], filters[rng.IntN(len(filters))], false)
			r.newcomers++
		}
	}
}

// stall holds contacts, which enrichment joins and the app's writes do not touch,
// longer than database.statement_timeout.
func (r *rtest) stall(hold time.Duration) {
	defer r.stalls.Done()
	defer r.stalling.Store(false)
	tx, err := r.pool.Begin(r.ctx)
	if err != nil {
		if r.ctx.Err() == nil {
			r.errorf("stall: %v", err)
		}
		return
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(r.ctx, `LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE`); err != nil {
		if r.ctx.Err() == nil {
			r.errorf("stall: %v", err)
		}
		return
	}
	sleepCtx(r.ctx, hold)
}

// ---- writers ----

// writer runs random transactions until told to stop.
func (r *rtest) writer(wg *sync.WaitGroup, idx int, stop <-chan struct{}) {
	defer wg.Done()
	w := newWriterState(idx)
	rng := rand.New(rand.NewPCG(r.seed, uint64(idx)))
	for {
		select {
		case <-stop:
			return
		case <-r.ctx.Done():
			return
		default:
		}
		if err := r.randomTx(w, rng); err != nil {
			if r.ctx.Err() == nil {
				r.writerErrors.Add(1)
				r.errorf("writer %d: %v", idx, err)
			}
			return
		}
	}
}

// wtx is one open transaction of a writer.
type wtx struct {
	r     *rtest
	tx    pgx.Tx
	m     *txModel
	rng   *rand.Rand
	label string
	sp    int
}

func (r *rtest) randomTx(w *writerState, rng *rand.Rand) error {
	w.txSeq++
	label := fmt.Sprintf("w%d#%d", w.idx, w.txSeq)
	tx, err := r.pool.Begin(r.ctx)
	if err != nil {
		return err
	}
	x := &wtx{r: r, tx: tx, m: w.begin(), rng: rng, label: label}
	for range 1 + rng.IntN(5) {
		if err := x.randomOp(0); err != nil {
			_ = tx.Rollback(context.Background())
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	if rng.IntN(100) < 12 {
		if err := tx.Rollback(r.ctx); err != nil {
			return fmt.Errorf("%s: rollback: %w", label, err)
		}
		r.or.rollback(x.m, label)
		return nil
	}
	return x.commit()
}

func (x *wtx) commit() error {
	start := time.Now()
	err := x.tx.Commit(x.r.ctx)
	end := time.Now()
	if err != nil {
		return fmt.Errorf("%s: COMMIT: %w", x.label, err)
	}
	x.r.or.commit(x.m, x.label, start, end)
	return nil
}

func (x *wtx) notes() string {
	x.m.w.opSeq++
	return fmt.Sprintf("%s.%d", x.label, x.m.w.opSeq)
}

func nullable(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func (x *wtx) randAccount() int64 {
	if x.rng.IntN(100) < 8 {
		return 0
	}
	return randomAccounts[x.rng.IntN(len(randomAccounts))]
}

func (x *wtx) randStatusOtherThan(s int64) int64 {
	var c []int64
	for _, id := range x.r.or.statuses {
		if id != s && id != x.r.or.checkin {
			c = append(c, id)
		}
	}
	return c[x.rng.IntN(len(c))]
}

func (x *wtx) pickAppt(ok func(apptState) bool) (int64, bool) {
	var c []int64
	for _, id := range x.m.liveAppts() {
		if ok == nil || ok(x.m.curAppt(id)) {
			c = append(c, id)
		}
	}
	if len(c) == 0 {
		return 0, false
	}
	// Half the time a row of this transaction, when it has some.
	if x.rng.IntN(2) == 0 {
		for i := len(c) - 1; i >= 0; i-- {
			if x.m.insertedHere(c[i]) && x.rng.IntN(2) == 0 {
				return c[i], true
			}
		}
	}
	return c[x.rng.IntN(len(c))], true
}

func (x *wtx) statusName(s int64) string { return x.r.or.statusName[s] }

// randomOp runs one random statement (or a few, or a savepoint block).
func (x *wtx) randomOp(depth int) error {
	o := x.r.or
	switch p := x.rng.IntN(100); {
	case p < 22:
		for range 1 + x.rng.IntN(3) {
			if err := x.insertAppt(); err != nil {
				return err
			}
		}
		return nil
	case p < 36: // check-in
		id, ok := x.pickAppt(func(s apptState) bool { return s.status != o.checkin })
		if !ok {
			return x.insertAppt()
		}
		return x.setStatus(id, o.checkin)
	case p < 44: // a status change, Check-in or not
		id, ok := x.pickAppt(nil)
		if !ok {
			return x.insertAppt()
		}
		s := o.statuses[x.rng.IntN(len(o.statuses))]
		if s == x.m.curAppt(id).status {
			s = x.randStatusOtherThan(s)
		}
		return x.setStatus(id, s)
	case p < 49: // Check-in, then away, in one transaction
		id, ok := x.pickAppt(nil)
		if !ok {
			return x.insertAppt()
		}
		if err := x.setStatus(id, o.checkin); err != nil {
			return err
		}
		return x.setStatus(id, x.randStatusOtherThan(o.checkin))
	case p < 53: // to Check-in through another status
		id, ok := x.pickAppt(func(s apptState) bool { return s.status != o.checkin })
		if !ok {
			return x.insertAppt()
		}
		if err := x.setStatus(id, x.randStatusOtherThan(x.m.curAppt(id).status)); err != nil {
			return err
		}
		return x.setStatus(id, o.checkin)
	case p < 62: // account move
		id, ok := x.pickAppt(nil)
		if !ok {
			return x.insertAppt()
		}
		st := x.m.curAppt(id)
		to := x.randAccount()
		for to == st.account {
			to = x.randAccount()
		}
		from := st.account
		st.account, st.notes = to, x.notes()
		if _, err := x.tx.Exec(x.r.ctx, `UPDATE appointments SET "accountId" = $1, notes = $2 WHERE id = $3`, nullable(to), st.notes, id); err != nil {
			return err
		}
		x.m.writeAppt(id, st, fmt.Sprintf("MOVE account %d→%d notes=%s", from, to, st.notes))
		return nil
	case p < 66: // notes only
		id, ok := x.pickAppt(nil)
		if !ok {
			return x.insertAppt()
		}
		st := x.m.curAppt(id)
		st.notes = x.notes()
		if _, err := x.tx.Exec(x.r.ctx, `UPDATE appointments SET notes = $1 WHERE id = $2`, st.notes, id); err != nil {
			return err
		}
		x.m.writeAppt(id, st, "UPDATE notes="+st.notes)
		return nil
	case p < 72: // delete, often a row inserted in this transaction
		id, ok := x.pickAppt(nil)
		if !ok {
			return x.insertAppt()
		}
		if _, err := x.tx.Exec(x.r.ctx, `DELETE FROM appointments WHERE id = $1`, id); err != nil {
			return err
		}
		x.m.writeAppt(id, apptState{}, "DELETE")
		return nil
	case p < 79: // a doctor, sometimes renamed in the same transaction
		acct := x.randAccount()
		name := "Dr. " + x.notes()
		var id int64
		if err := x.tx.QueryRow(x.r.ctx, `INSERT INTO doctors (name, "accountId") VALUES ($1, $2) RETURNING id`, name, nullable(acct)).Scan(&id); err != nil {
			return err
		}
		x.m.insertDoc(id, docState{exists: true, account: acct, name: name}, fmt.Sprintf("INSERT doctor account=%d name=%q", acct, name))
		if x.rng.IntN(4) == 0 {
			return x.renameDoctor(id)
		}
		return nil
	case p < 83:
		ids := x.m.liveDocs()
		if len(ids) == 0 {
			return nil
		}
		return x.renameDoctor(ids[x.rng.IntN(len(ids))])
	case p < 85:
		ids := x.m.liveDocs()
		if len(ids) == 0 {
			return nil
		}
		id := ids[x.rng.IntN(len(ids))]
		if _, err := x.tx.Exec(x.r.ctx, `DELETE FROM doctors WHERE id = $1`, id); err != nil {
			return err
		}
		x.m.writeDoc(id, docState{}, "DELETE doctor")
		return nil
	case p < 93:
		if depth >= 2 {
			return x.insertAppt()
		}
		x.sp++
		name := fmt.Sprintf("sp%d", x.sp)
		if _, err := x.tx.Exec(x.r.ctx, "SAVEPOINT "+name); err != nil {
			return err
		}
		snap := x.m.snapshot()
		for range 1 + x.rng.IntN(3) {
			if err := x.randomOp(depth + 1); err != nil {
				return err
			}
		}
		if x.rng.IntN(100) < 60 {
			if _, err := x.tx.Exec(x.r.ctx, "ROLLBACK TO SAVEPOINT "+name); err != nil {
				return err
			}
			x.m.restore(snap)
			x.r.spRollbacks.Add(1)
			return nil
		}
		_, err := x.tx.Exec(x.r.ctx, "RELEASE SAVEPOINT "+name)
		return err
	default: // hold the transaction open a while
		d := time.Duration(x.rng.IntN(80)) * time.Millisecond
		if x.rng.IntN(20) == 0 {
			d = time.Duration(300+x.rng.IntN(600)) * time.Millisecond
		}
		if x.rng.IntN(2) == 0 {
			_, err := x.tx.Exec(x.r.ctx, `SELECT pg_sleep($1)`, d.Seconds())
			return err
		}
		sleepCtx(x.r.ctx, d)
		return x.r.ctx.Err()
	}
}

func (x *wtx) insertAppt() error {
	o := x.r.or
	st := apptState{exists: true, account: x.randAccount(), status: o.statuses[0], notes: x.notes(),
		start: fmt.Sprintf("%02d:%02d", 7+x.rng.IntN(11), 15*x.rng.IntN(4))}
	if st.status == o.checkin {
		st.status = x.randStatusOtherThan(o.checkin)
	}
	if x.rng.IntN(100) < 15 {
		st.status = o.statuses[x.rng.IntN(len(o.statuses))] // Check-in at insert too: created only
	}
	if x.rng.IntN(10) > 0 {
		st.doctor = o.doctors[x.rng.IntN(len(o.doctors))]
	}
	if x.rng.IntN(10) > 0 {
		st.patient = o.patients[x.rng.IntN(len(o.patients))]
	}
	var id int64
	if err := x.tx.QueryRow(x.r.ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES (now(), $1, '23:59', $2, $3, $4, $5, $6) RETURNING id`, st.start, st.notes, nullable(st.doctor), nullable(st.patient), st.status, nullable(st.account)).Scan(&id); err != nil {
		return err
	}
	x.m.insertAppt(id, st, fmt.Sprintf("INSERT account=%d status=%s notes=%s doctor=%d patient=%d", st.account, x.statusName(st.status), st.notes, st.doctor, st.patient))
	return nil
}

func (x *wtx) setStatus(id, status int64) error {
	st := x.m.curAppt(id)
	from := st.status
	st.status, st.notes = status, x.notes()
	if _, err := x.tx.Exec(x.r.ctx, `UPDATE appointments SET "statusId" = $1, notes = $2 WHERE id = $3`, status, st.notes, id); err != nil {
		return err
	}
	x.m.writeAppt(id, st, fmt.Sprintf("UPDATE status %s→%s notes=%s", x.statusName(from), x.statusName(status), st.notes))
	return nil
}

func (x *wtx) renameDoctor(id int64) error {
	st := x.m.curDoc(id)
	st.name = "Dr. " + x.notes()
	if _, err := x.tx.Exec(x.r.ctx, `UPDATE doctors SET name = $1 WHERE id = $2`, st.name, id); err != nil {
		return err
	}
	x.m.writeDoc(id, st, fmt.Sprintf("RENAME doctor name=%q", st.name))
	return nil
}

// barrier: one transaction inserting an appointment and a doctor per account, then
// one checking those appointments in, so every initial client (whatever its events=)
// receives something before the writers start.
func (r *rtest) barrier() {
	w := newWriterState(0)
	rng := rand.New(rand.NewPCG(r.seed, 999))
	for n := 1; n <= 2; n++ {
		w.txSeq++
		label := fmt.Sprintf("barrier#%d", n)
		tx, err := r.pool.Begin(r.ctx)
		if err != nil {
			r.fatalf("barrier: %v", err)
		}
		x := &wtx{r: r, tx: tx, m: w.begin(), rng: rng, label: label}
		for _, acct := range randomAccounts {
			if n == 1 {
				st := apptState{exists: true, account: acct, status: r.or.statuses[0], notes: x.notes(), start: "08:00"}
				if st.status == r.or.checkin {
					st.status = x.randStatusOtherThan(r.or.checkin)
				}
				var id int64
				if err := tx.QueryRow(r.ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "statusId", "accountId") VALUES (now(), $1, '08:15', $2, $3, $4) RETURNING id`,
					st.start, st.notes, st.status, acct).Scan(&id); err != nil {
					r.fatalf("barrier: %v", err)
				}
				x.m.insertAppt(id, st, fmt.Sprintf("INSERT account=%d notes=%s", acct, st.notes))
				name := "Dr. " + x.notes()
				if err := tx.QueryRow(r.ctx, `INSERT INTO doctors (name, "accountId") VALUES ($1, $2) RETURNING id`, name, acct).Scan(&id); err != nil {
					r.fatalf("barrier: %v", err)
				}
				x.m.insertDoc(id, docState{exists: true, account: acct, name: name}, "INSERT doctor "+name)
			}
		}
		if n == 2 {
			for _, id := range slices.Clone(w.apptIDs) {
				if err := x.setStatus(id, r.or.checkin); err != nil {
					r.fatalf("barrier: %v", err)
				}
			}
		}
		if err := x.commit(); err != nil {
			r.fatalf("barrier: %v", err)
		}
	}
}

// ---- the verdict ----

func (r *rtest) report(a analysis, complete bool, writeTime, finalWait time.Duration) {
	t := r.t
	o := r.or
	o.mu.Lock()
	committed, rolledBack, events := o.committed, o.rolledBack, 0
	var parts []string
	for _, k := range []string{kindCreated, kindUpdated, kindStatus, kindCheckin, kindServing, kindFinished, kindDeleted, kindDoctor, kindDocUpdate, kindDocDelete} {
		parts = append(parts, fmt.Sprintf("%d %s", o.byKind[k], k))
	}
	kinds := strings.Join(parts, ", ")
	for _, tx := range o.txs {
		events += len(tx.events)
	}
	o.mu.Unlock()

	var deliveries, wsResumes, sioResumes, connErrors int
	closes := map[string]int{}
	var per []string
	for _, c := range r.clients {
		c.mu.Lock()
		deliveries += len(c.got)
		if c.sioT {
			sioResumes += c.resumes
		} else {
			wsResumes += c.resumes
		}
		connErrors += c.connErrors
		for k, v := range c.closes {
			closes[k] += v
		}
		per = append(per, fmt.Sprintf("%s: %d events over %d connections (%d resumes), last id %d", c.name, len(c.got), c.conns, c.resumes, lastOf(c.got)))
		c.mu.Unlock()
	}
	var closeList []string
	for k, v := range closes {
		closeList = append(closeList, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(closeList)
	t.Logf("seed %d figures: %s of writing, final wait %s (everything arrived: %v)\n"+
		"  transactions: %d committed, %d rolled back, %d savepoints rolled back\n"+
		"  events expected: %d (%s); deliveries: %d to %d clients\n"+
		"  faults: listener killed %d times (%d backends), %d notifier restarts, %d enrichment stalls > statement_timeout\n"+
		"  client actions: %d /ws drops, %d Socket.IO transport drops, %d newcomers\n"+
		"  resumes: /ws %d (with ?since), Socket.IO %d (recovered); Socket.IO connect_errors while reconnecting %d\n"+
		"  ends seen by clients (besides the test's own drops): %s\n  %s",
		r.seed, writeTime.Round(time.Millisecond), finalWait.Round(time.Millisecond), complete,
		committed, rolledBack, r.spRollbacks.Load(),
		events, kinds, deliveries, len(r.clients),
		r.kills, r.killed, r.restarts, r.stallN,
		r.wsDrops, r.sioDrops, r.newcomers,
		wsResumes, sioResumes, connErrors,
		strings.Join(closeList, ", "), strings.Join(per, "\n  "))

	for _, cat := range findingOrder {
		if n := a.counts[cat]; n > 0 {
			r.errorf("%s: %d findings (reproduce: %s=%d):\n  %s%s", cat, n, envRandomSeed, r.seed, strings.Join(a.findings[cat], "\n  "), moreFindings(n))
			delete(a.counts, cat)
		}
	}
	for cat, n := range a.counts {
		r.errorf("%s: %d findings:\n  %s%s", cat, n, strings.Join(a.findings[cat], "\n  "), moreFindings(n))
	}
	if committed < 20 || events < 20 {
		r.errorf("only %d transactions and %d events: the test proved little", committed, events)
	}
}

func moreFindings(n int) string {
	if n <= findingsShown {
		return ""
	}
	return fmt.Sprintf("\n  … and %d more", n-findingsShown)
}
