package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/sioclient"
)

// Knobs of TestSnapshotThenFollow.
const (
	envSnapSeed     = "NOTIFIER_TEST_SNAPSHOT_SEED"
	envSnapDuration = "NOTIFIER_TEST_SNAPSHOT_DURATION"
	envSnapTouch    = "NOTIFIER_TEST_SNAPSHOT_TOUCH" // "0": writers never touch updatedAt alone (Prisma does; the default)
	snapDuration    = 10 * time.Second               // of writing, by default
	snapWriters     = 4
	snapClients     = 50
	snapCatchUp     = 2 * time.Minute // bound of the final wait for every client
	snapShown       = 15              // findings shown per category
	snapPrefill     = 100             // appointments per writer and account before the run
)

// TestSnapshotThenFollow proves "load, then follow" (issue 12) with no gap and no
// duplicate. Writers run random clinic transactions on two accounts (appointments
// today and on other days, check-in, serving, finished, rescheduling in and out of
// today, soft and hard deletes, moves between accounts, doctors created, renamed,
// busy, soft- and hard-deleted; savepoints rolled back, whole transactions rolled
// back, transactions held open). Meanwhile 50 dashboards, half /ws and half Socket.IO,
// each at a random moment take the three lists' snapshots (every page), then follow
// from their H: /ws?since=min(H), ignoring per list what its own H covers; Socket.IO
// with auth.since likewise.
//
// Three oracles:
//   - each snapshot on its own: no id twice, no row of another account, every row
//     belonging to the list, in the list's order (as PostgreSQL sorts the payloads);
//   - each snapshot against the log: a reference client per account follows from the
//     first event; the lists built from the events up to H must equal the snapshot
//     taken at H, ids and payloads (an event missing from H, or one H claims but the
//     snapshot does not show, is found here, with the client, list and H);
//   - the end: once every client has received the account's last event, fresh
//     snapshots (checked against plain SQL on the tables) must equal every client's
//     lists exactly: same ids, same payloads, none missing, none twice, none stale.
//
// Seeded: NOTIFIER_TEST_SNAPSHOT_SEED replays the same writes and client choices (the
// scheduling still varies); NOTIFIER_TEST_SNAPSHOT_DURATION sets how long writers write.
func TestSnapshotThenFollow(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envSnapSeed); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSnapSeed, s, err)
		}
		seed = n
	}
	dur := snapDuration
	if s := os.Getenv(envSnapDuration); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration (%v)", envSnapDuration, s, err)
		}
		dur = d
	}
	touch := os.Getenv(envSnapTouch) != "0"
	t.Logf("seed %d: reproduce with %s=%d %s=%s go test -race -count=1 -run 'TestSnapshotThenFollow$' -v ./notifier/",
		seed, envSnapSeed, seed, envSnapDuration, dur)

	b := setup(t)
	var stats snapWriteStats
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	r := &snapRun{t: t, seed: seed, base: b.base, db: b.db, today: today.Format("2006-01-02"),
		progress: make(chan struct{}, 1), tokenTTL: dur + 30*time.Minute,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	t.Cleanup(r.hc.CloseIdleConnections)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { r.cancel(); r.wg.Wait() })

	// Writers, and their first rows: lists of several pages.
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = snapWriters + 2
	wpool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wpool.Close)
	var ws []*snapWriter
	for i := range snapWriters {
		w := &snapWriter{idx: i + 1, pool: wpool, rng: rand.New(rand.NewPCG(seed, uint64(i+1))), today: today, touch: touch,
			m: snapModel{appts: map[int64]snapAppt{}, docs: map[int64]snapDoc{}}, stats: &stats}
		if err := w.prefill(t.Context(), snapPrefill); err != nil {
			t.Fatalf("prefill: %v", err)
		}
		ws = append(ws, w)
	}

	// Before the writers start: each account's lists, and a reference client that
	// follows from there and so receives every event of the run.
	r.refs = map[int64]*snapClient{}
	for _, acct := range snapAccounts {
		ref := r.newClient(acct, false, "reference")
		for _, l := range snapLists {
			s, err := snapTake(t.Context(), r.hc, r.base, ref.token, l, false, nil)
			if err != nil {
				t.Fatalf("account %d: first snapshot of %s: %v", acct, l, err)
			}
			ref.snaps = append(ref.snaps, s)
		}
		ref.minSince = ref.snaps[0].since
		for _, s := range ref.snaps {
			ref.minSince = min(ref.minSince, s.since)
		}
		r.refs[acct] = ref
		r.wg.Add(1)
		go r.followWS(ref, false)
	}
	if !r.waitFor(waitTimeout, func() bool { return r.refs[1].isFollowing() && r.refs[2].isFollowing() }) {
		t.Fatalf("reference clients not connected: %s", r.states())
	}

	// Writers start.
	stop := make(chan struct{})
	writerErrs := make(chan error, snapWriters)
	var writers sync.WaitGroup
	for _, w := range ws {
		writers.Add(1)
		go func() {
			defer writers.Done()
			if err := w.run(r.ctx, stop); err != nil {
				writerErrs <- err
			}
		}()
	}
	writeStart := time.Now()

	// Dashboards: each at a random moment of the first 80% of the writing.
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range snapClients {
		acct := snapAccounts[rng.IntN(len(snapAccounts))]
		c := r.newClient(acct, i%2 == 1, "")
		at := time.Duration(rng.Int64N(int64(dur) * 8 / 10))
		crng := rand.New(rand.NewPCG(seed, uint64(1000+i)))
		r.wg.Add(1)
		go r.dashboard(c, at, crng)
	}

	// Write for dur, and on until every dashboard follows, so that all of them follow
	// while writes happen.
	following := func() bool {
		for _, c := range r.clients {
			if !c.isFollowing() && !c.hasFailed() {
				return false
			}
		}
		return true
	}
	writeUntil := time.NewTimer(dur)
	select {
	case <-writeUntil.C:
	case err := <-writerErrs:
		t.Fatalf("[seed %d] %v", seed, err)
	}
	if !r.waitFor(dur+time.Minute, following) {
		t.Fatalf("[seed %d] dashboards not all following in time: %s", seed, r.states())
	}
	close(stop)
	writers.Wait()
	select {
	case err := <-writerErrs:
		t.Fatalf("[seed %d] %v", seed, err)
	default:
	}
	writeTime := time.Since(writeStart)

	// Every client (references too) has the last event of its account.
	last := map[int64]int64{}
	var lastAll int64
	for _, acct := range snapAccounts {
		var n int64
		if err := b.db.QueryRow(t.Context(), `SELECT coalesce(max(id), 0) FROM notifier.events WHERE account_id = $1`, acct).Scan(&n); err != nil {
			t.Fatal(err)
		}
		last[acct] = n
	}
	if err := b.db.QueryRow(t.Context(), `SELECT coalesce(max(id), 0) FROM notifier.events`).Scan(&lastAll); err != nil {
		t.Fatal(err)
	}
	waitStart := time.Now()
	all := append(slices.Clone(r.clients), r.refs[1], r.refs[2])
	if !r.waitFor(snapCatchUp, func() bool {
		for _, c := range all {
			if !c.hasFailed() && !c.caughtUp(last[c.account]) {
				return false
			}
		}
		return true
	}) {
		r.problem("follow", "after %s, not every client had the last event (account 1: %d, account 2: %d): %s",
			snapCatchUp, last[1], last[2], r.states())
	}
	finalWait := time.Since(waitStart)
	if d := time.Now().UTC().Format("2006-01-02"); d != r.today {
		t.Skipf("the UTC day changed during the run (%s -> %s): today's list changed under the test", r.today, d)
	}

	// Fresh snapshots, checked against the tables.
	finals := map[int64]map[string]snapshotTaken{}
	for _, acct := range snapAccounts {
		finals[acct] = map[string]snapshotTaken{}
		tok := token(t, acct, time.Hour)
		for _, l := range snapLists {
			s, err := snapTake(t.Context(), r.hc, r.base, tok, l, false, nil)
			if err != nil {
				t.Fatalf("account %d: final snapshot of %s: %v", acct, l, err)
			}
			for _, p := range snapCheckItems(t.Context(), b.db, acct, r.today, s) {
				r.problem("snapshot", "final snapshot of account %d %s (since %d): %s", acct, l, s.since, p)
			}
			want, err := snapSQL(t.Context(), b.db, l, acct, r.today)
			if err != nil {
				t.Fatal(err)
			}
			if got := snapIDs(s.items); !slices.Equal(got, want) {
				r.problem("snapshot", "final snapshot of account %d %s: ids %v, the tables say %v", acct, l, got, want)
			}
			if s.since < lastAll {
				r.problem("snapshot", "final snapshot of account %d %s: since %d, but the log holds %d", acct, l, s.since, lastAll)
			}
			finals[acct][l] = s
		}
	}
	r.cancel() // every client has what it will get
	r.wg.Wait()

	compared := r.checkAgainstLog(finals)
	comparedFinal := r.checkFinal(finals)
	r.report(&stats, writeTime, finalWait, last, compared, comparedFinal)
}

// snapRun is the state of one TestSnapshotThenFollow.
type snapRun struct {
	t        *testing.T
	seed     uint64
	base     string
	db       *pgxpool.Pool // checks
	hc       *http.Client
	today    string
	tokenTTL time.Duration
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	progress chan struct{}

	clients []*snapClient // test goroutine only (set before the dashboards start)
	refs    map[int64]*snapClient

	mu       sync.Mutex
	findings map[string][]string
}

// snapClient is one dashboard: its snapshots, then the events it followed.
type snapClient struct {
	name     string
	account  int64
	sio      bool
	token    string
	snaps    []snapshotTaken // written by its goroutine before following
	minSince int64

	mu         sync.Mutex
	events     []snapEvent
	following  bool
	failed     bool
	last       int64
	foreignDel int // deleted events whose payload names another account
}

func (r *snapRun) newClient(account int64, sio bool, kind string) *snapClient {
	c := &snapClient{account: account, sio: sio, token: token(r.t, account, r.tokenTTL)}
	if kind == "" {
		kind = "ws"
		if sio {
			kind = "sio"
		}
		r.clients = append(r.clients, c)
		kind = fmt.Sprintf("%s#%d", kind, len(r.clients))
	}
	c.name = fmt.Sprintf("%s(account %d)", kind, account)
	return c
}

func (c *snapClient) isFollowing() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.following }
func (c *snapClient) hasFailed() bool   { c.mu.Lock(); defer c.mu.Unlock(); return c.failed }

func (c *snapClient) caughtUp(last int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.following && max(c.last, c.minSince) >= last
}

func (r *snapRun) problem(cat, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findings == nil {
		r.findings = map[string][]string{}
	}
	r.findings[cat] = append(r.findings[cat], fmt.Sprintf(format, args...))
}

func (r *snapRun) fail(c *snapClient, format string, args ...any) {
	c.mu.Lock()
	c.failed = true
	c.mu.Unlock()
	r.problem("client", c.name+": "+format, args...)
	r.signal()
}

func (r *snapRun) signal() {
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

// waitFor waits for cond, evaluated again whenever a client reports progress.
func (r *snapRun) waitFor(timeout time.Duration, cond func() bool) bool {
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
	}
}

func (r *snapRun) states() string {
	var s []string
	for _, c := range append(slices.Clone(r.clients), r.refs[1], r.refs[2]) {
		c.mu.Lock()
		s = append(s, fmt.Sprintf("%s: since %d following=%v failed=%v events=%d last=%d", c.name, c.minSince, c.following, c.failed, len(c.events), c.last))
		c.mu.Unlock()
	}
	return "\n  " + strings.Join(s, "\n  ")
}

// dashboard waits for its moment, takes the three snapshots in a random order
// (following every cursor, with pauses between pages), then follows from min(H).
func (r *snapRun) dashboard(c *snapClient, at time.Duration, rng *rand.Rand) {
	defer r.wg.Done()
	if !sleepCtx(r.ctx, at) {
		return
	}
	inQuery := rng.IntN(3) == 0
	for _, i := range rng.Perm(len(snapLists)) {
		l := snapLists[i]
		pause := func() { sleepCtx(r.ctx, time.Duration(rng.IntN(40))*time.Millisecond) }
		s, err := snapTake(r.ctx, r.hc, r.base, c.token, l, inQuery, pause)
		if err != nil {
			if r.ctx.Err() == nil {
				r.fail(c, "snapshot of %s: %v", l, err)
			}
			return
		}
		for _, p := range snapCheckItems(r.ctx, r.db, c.account, r.today, s) {
			r.problem("snapshot", "%s: %s (since %d, %d items in %d pages): %s", c.name, l, s.since, len(s.items), s.pages, p)
		}
		c.snaps = append(c.snaps, s)
	}
	c.minSince = c.snaps[0].since
	for _, s := range c.snaps {
		c.minSince = min(c.minSince, s.since)
	}
	if c.sio {
		r.followSIO(c, rng)
		return
	}
	r.wg.Add(1)
	r.followWS(c, inQuery)
}

// followWS follows /ws?since=minSince until the test ends.
func (r *snapRun) followWS(c *snapClient, inQuery bool) {
	defer r.wg.Done()
	q := url.Values{"since": {strconv.FormatInt(c.minSince, 10)}}
	h := http.Header{}
	if inQuery {
		q.Set("access_token", c.token)
	} else {
		h.Set("Authorization", "Bearer "+c.token)
	}
	u := "ws" + strings.TrimPrefix(r.base, "http") + "/ws?" + q.Encode()
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := dialer.DialContext(r.ctx, u, h)
	if err != nil {
		if r.ctx.Err() == nil {
			r.fail(c, "dial /ws?since=%d: %v (%s)", c.minSince, err, respBody(resp))
		}
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(r.ctx, func() { _ = conn.Close() })
	defer stop()
	c.mu.Lock()
	c.following = true
	c.mu.Unlock()
	r.signal()
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			if r.ctx.Err() == nil {
				r.fail(c, "connection ended: %v", err)
			}
			return
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			r.problem("follow", "%s: undecodable frame %q: %v", c.name, p, err)
			continue
		}
		if f.Partial {
			r.problem("follow", "%s: partial event (enrichment failed): %s", c.name, p)
		}
		r.record(c, f.ID, f.Event, f.Data)
	}
}

// followSIO follows with a real socket.io-client whose auth carries since: a number
// or a numeric string, at random.
func (r *snapRun) followSIO(c *snapClient, rng *rand.Rand) {
	o := sioclient.Options{URL: r.base, Token: c.token, Events: append(slices.Clone(snapEvents), "notifier.resync", "notifier.disconnect"),
		Timeout: snapCatchUp}
	if rng.IntN(2) == 0 {
		o.Since = c.minSince
	} else {
		o.Since = strconv.FormatInt(c.minSince, 10)
	}
	if rng.IntN(2) == 0 {
		o.Transports = []string{"websocket"}
	}
	if rng.IntN(4) == 0 {
		o.TokenIn = sioclient.InHeader
	}
	c.mu.Lock()
	c.name = strings.TrimSuffix(c.name, ")") + fmt.Sprintf(", since %v, transports %v, token in %s)", o.Since, o.Transports, cmp(o.TokenIn, sioclient.InAuth))
	c.mu.Unlock()
	// Start fails the test (from this goroutine: it then ends) only when Node or the
	// npm packages are missing.
	cl := sioclient.Start(r.t, o)
	conns := 0
	for {
		var v any
		var ok bool
		select {
		case <-r.ctx.Done():
			return
		case v, ok = <-cl.C:
		}
		if !ok {
			if r.ctx.Err() == nil {
				r.fail(c, "the socket.io-client process ended")
			}
			return
		}
		switch v := v.(type) {
		case sioclient.Connect:
			conns++
			if conns > 1 {
				r.problem("follow", "%s: reconnected (%d, recovered %v): the test drops nothing", c.name, conns, v.Recovered)
			}
			c.mu.Lock()
			c.following = true
			c.mu.Unlock()
			r.signal()
		case sioclient.ConnectError:
			r.fail(c, "connect_error %q %s", v.Message, v.Data)
			return
		case sioclient.Disconnect:
			if r.ctx.Err() == nil {
				r.problem("follow", "%s: disconnect %q", c.name, v.Reason)
			}
		case sioclient.Event:
			if v.Name == "notifier.resync" || v.Name == "notifier.disconnect" {
				r.problem("follow", "%s: %s %s", c.name, v.Name, v.Data)
				continue
			}
			id, err := strconv.ParseInt(v.Offset, 10, 64)
			if err != nil {
				r.problem("follow", "%s: event without a numeric offset: %s", c.name, v)
				continue
			}
			r.record(c, id, v.Name, v.Data)
		}
	}
}

func cmp[T comparable](v, dflt T) T {
	var zero T
	if v == zero {
		return dflt
	}
	return v
}

// record keeps one event: in id order, after since, of the client's account.
func (r *snapRun) record(c *snapClient, id int64, name string, data json.RawMessage) {
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		if name == "notifier.resync" {
			r.problem("follow", "%s: notifier.resync after id %d: nothing was pruned", c.name, c.last)
		} else {
			r.problem("follow", "%s: event %d %s with data %s", c.name, id, name, data)
		}
		return
	}
	c.mu.Lock()
	defer r.signal()
	defer c.mu.Unlock()
	switch {
	case id <= c.minSince:
		r.problem("follow", "%s: event %d %s, at or before since %d", c.name, id, name, c.minSince)
	case id <= c.last:
		r.problem("follow", "%s: event %d %s after %d: out of order or twice", c.name, id, name, c.last)
	}
	if p := snapForeign(c.account, obj); p != "" {
		if strings.HasSuffix(name, ".deleted") {
			c.foreignDel++
		} else {
			r.problem("foreign", "%s: event %d %s of another account (%s): %s", c.name, id, name, p, snapJSON(obj))
		}
	}
	c.last = max(c.last, id)
	c.events = append(c.events, snapEvent{id: id, name: name, obj: obj})
}

// checkAgainstLog replays each account's reference stream and compares, at each
// snapshot's H, the lists the events up to H make with that snapshot. It returns how
// many items it compared.
func (r *snapRun) checkAgainstLog(finals map[int64]map[string]snapshotTaken) int {
	compared := 0
	for _, acct := range snapAccounts {
		ref := r.refs[acct]
		type taken struct {
			who string
			s   snapshotTaken
		}
		var all []taken
		for _, c := range r.clients {
			if c.account == acct {
				for _, s := range c.snaps {
					all = append(all, taken{c.name, s})
				}
			}
		}
		for _, l := range snapLists {
			all = append(all, taken{"final", finals[acct][l]})
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].s.since < all[j].s.since })
		state := newSnapState()
		baseSince := map[string]int64{}
		for _, s := range ref.snaps {
			state.load(s)
			baseSince[s.list] = s.since
		}
		next := 0
		for _, tk := range all {
			for ; next < len(ref.events) && ref.events[next].id <= tk.s.since; next++ {
				ev := ref.events[next]
				for _, l := range snapListsOf(ev.name) {
					if ev.id > baseSince[l] {
						state.apply(l, r.today, ev)
					}
				}
			}
			compared += len(tk.s.items)
			for _, d := range snapDiff(tk.s.items, state[tk.s.list], "the lists the reference's events up to H make") {
				r.problem("snapshot vs log", "%s: %s since %d (%d items): %s", tk.who, tk.s.list, tk.s.since, len(tk.s.items), d)
			}
		}
	}
	return compared
}

// checkFinal builds each dashboard's lists from its snapshots and the events it
// followed, and compares them with the final snapshots.
func (r *snapRun) checkFinal(finals map[int64]map[string]snapshotTaken) int {
	compared := 0
	for _, c := range append(slices.Clone(r.clients), r.refs[1], r.refs[2]) {
		if c.failed || len(c.snaps) != len(snapLists) {
			continue
		}
		state := newSnapState()
		since := map[string]int64{}
		for _, s := range c.snaps {
			state.load(s)
			since[s.list] = s.since
		}
		for _, ev := range c.events {
			for _, l := range snapListsOf(ev.name) {
				if ev.id > since[l] {
					state.apply(l, r.today, ev)
				}
			}
		}
		for _, l := range snapLists {
			f := finals[c.account][l]
			compared += len(f.items)
			for _, d := range snapDiff(f.items, state[l], "the client's lists") {
				r.problem("final", "%s: %s (snapshot since %d, followed from %d, %d events): %s", c.name, l, since[l], c.minSince, len(c.events), d)
			}
		}
	}
	return compared
}

func (r *snapRun) report(stats *snapWriteStats, writeTime, finalWait time.Duration, last map[int64]int64, compared, comparedFinal int) {
	t := r.t
	var deliveries, pages, retries, snaps, sioN, foreignDel int
	var sinces []int64
	for _, c := range r.clients {
		deliveries += len(c.events)
		foreignDel += c.foreignDel
		if c.sio {
			sioN++
		}
		for _, s := range c.snaps {
			pages += s.pages
			retries += s.retries
			snaps++
		}
		sinces = append(sinces, c.minSince)
	}
	slices.Sort(sinces)
	var sizes []string
	for _, acct := range snapAccounts {
		sizes = append(sizes, fmt.Sprintf("account %d: %d events (last id %d)", acct, len(r.refs[acct].events), last[acct]))
	}
	t.Logf("seed %d figures: %s of writing, final wait %s\n"+
		"  writers: %d transactions committed, %d rolled back, %d savepoints rolled back, %d statements\n"+
		"  events: %s\n"+
		"  dashboards: %d (%d Socket.IO, %d /ws); %d snapshots in %d pages (%d 503s waited out); followed from since %v\n"+
		"  deliveries: %d; items compared: %d against the log at H, %d against the final snapshots; deleted events naming the new account: %d",
		r.seed, writeTime.Round(time.Millisecond), finalWait.Round(time.Millisecond),
		stats.committed.Load(), stats.rolledBack.Load(), stats.spRolledBack.Load(), stats.ops.Load(),
		strings.Join(sizes, "; "),
		len(r.clients), sioN, len(r.clients)-sioN, snaps, pages, retries, sinces,
		deliveries, compared, comparedFinal, foreignDel)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cat := range slices.Sorted(maps.Keys(r.findings)) {
		f := r.findings[cat]
		more := ""
		if len(f) > snapShown {
			more = fmt.Sprintf("\n  … and %d more", len(f)-snapShown)
			f = f[:snapShown]
		}
		t.Errorf("[seed %d] %s: %d findings (reproduce: %s=%d):\n  %s%s", r.seed, cat, len(r.findings[cat]), envSnapSeed, r.seed, strings.Join(f, "\n  "), more)
	}
	if stats.committed.Load() < 20 || deliveries < 100 {
		t.Errorf("[seed %d] only %d transactions and %d deliveries: the test proved little", r.seed, stats.committed.Load(), deliveries)
	}
}

// TestSnapshotPagination: a list of 450 rows comes in pages of 200, 200 and 50 that
// follow next, all with the same since (the log's head), in the list's order, no id
// twice, nothing of another account or day. The pages are the list as of the first
// request: rows inserted, changed, moved or deleted between page requests do not
// show in later pages; they come, in commit order and nothing else, as events after
// since, to /ws?since and to Socket.IO's auth.since alike, and applying them to the
// pages gives a fresh snapshot exactly.
func TestSnapshotPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	today := time.Now().UTC().Format("2006-01-02")
	hc := &http.Client{Timeout: 30 * time.Second}
	tok := token(t, 1, time.Hour)

	// Many rows share a time: the id orders them.
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", notes, "statusId", "accountId")
SELECT $1::date + (g % 97) * interval '13 minutes', lpad((7 + g % 12)::text, 2, '0') || ':00', '23:59', 'p' || g, 1 + g % 2, 1
FROM generate_series(1, 450) g`, today)
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId")
SELECT $1::date + interval '9 hours', '09:00', '09:15', 1, 2 FROM generate_series(1, 30)`, today) // another account
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId")
SELECT $1::date + d, '09:00', '09:15', 1, 1 FROM unnest(ARRAY[interval '1 day', interval '-1 millisecond', interval '2 days']) AS d, generate_series(1, 7)`, today) // other days, at the edges
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId", "deletedAt")
SELECT $1::date + interval '10 hours', '10:00', '10:15', 1, 1, now() FROM generate_series(1, 5)`, today) // deleted
	want, err := snapSQL(ctx, b.db, listToday, 1, today)
	if err != nil || len(want) != 450 {
		t.Fatalf("the tables hold %d of today's rows (%v), want 450", len(want), err)
	}
	var head int64
	if err := b.db.QueryRow(ctx, `SELECT max(id) FROM notifier.events`).Scan(&head); err != nil {
		t.Fatal(err)
	}

	var pages []snapPage
	var items []snapItem
	get := func(cursor string) snapPage {
		t.Helper()
		q := url.Values{}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		a, err := snapGet(ctx, hc, b.base, tok, "/"+listToday, q, len(pages)%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := snapParsePage(a)
		if err != nil {
			t.Fatalf("page %d: %v", len(pages)+1, err)
		}
		for _, raw := range p.Items {
			it, err := snapParseItem(raw)
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, it)
		}
		pages = append(pages, p)
		return p
	}
	at := func(i int) int64 { return want[i] }

	p1 := get("")
	since := *p1.Since
	if since != head {
		t.Errorf("since %d, want the log's head %d (nothing else was writing)", since, head)
	}
	if len(p1.Items) != snapPageSize || p1.Next == nil {
		t.Fatalf("first page: %d items, next %v", len(p1.Items), p1.Next)
	}

	// Followers from since, before anything changes.
	ws := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(since, 10)}})
	sio := b.sio(t, 1, func(o *sioclient.Options) {
		o.Since = strconv.FormatInt(since, 10)
		o.Events = slices.Clone(snapEvents)
	})
	sio.WaitConnect()

	// Between pages 1 and 2, each its own transaction: three rows that would sort last
	// (on page 3 if it were read now), a note on a page-3 row, a page-2 row soft-deleted
	// and another moved to account 2.
	type change struct {
		event string
		row   int64
	}
	var changes []change
	insert := func(when string, n int) {
		t.Helper()
		rows, err := b.db.Query(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId")
SELECT $1::timestamp, '23:59', '23:59', 1, 1 FROM generate_series(1, $2) RETURNING id`, when, n)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgxCollectIDs(rows)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		for _, id := range ids {
			changes = append(changes, change{"appointments.created", id})
		}
	}
	insert(today+" 23:59:59.999", 3)
	b.exec(t, `UPDATE appointments SET notes = 'changed after the snapshot' WHERE id = $1`, at(420))
	changes = append(changes, change{"appointments.updated", at(420)})
	b.exec(t, `UPDATE appointments SET "deletedAt" = now() WHERE id = $1`, at(250))
	changes = append(changes, change{"appointments.deleted", at(250)})
	b.exec(t, `UPDATE appointments SET "accountId" = 2 WHERE id = $1`, at(300))
	changes = append(changes, change{"appointments.deleted", at(300)})

	p2 := get(*p1.Next)
	if p2.Next == nil {
		t.Fatalf("second page has no next (%d items)", len(p2.Items))
	}
	// Between pages 2 and 3: rows first and last of the day, a page-3 row deleted.
	insert(today+" 00:00:00.000", 2)
	insert(today+" 23:59:59.999", 2)
	b.exec(t, `DELETE FROM appointments WHERE id = $1`, at(440))
	changes = append(changes, change{"appointments.deleted", at(440)})
	p3 := get(*p2.Next)
	if p3.Next != nil {
		t.Errorf("third page has a next: %q", *p3.Next)
	}

	for i, p := range pages {
		if *p.Since != since || *p.List != listToday {
			t.Errorf("page %d: list %q since %d, want %q %d", i+1, *p.List, *p.Since, listToday, since)
		}
	}
	if n := []int{len(p1.Items), len(p2.Items), len(p3.Items)}; !slices.Equal(n, []int{200, 200, 50}) {
		t.Errorf("page sizes %v, want [200 200 50]", n)
	}
	if got := snapIDs(items); !slices.Equal(got, want) {
		t.Errorf("the pages' ids differ from the list at the first request:\n  got  %v\n  want %v", got, want)
	}
	s := snapshotTaken{list: listToday, since: since, items: items, pages: len(pages)}
	for _, p := range snapCheckItems(ctx, b.db, 1, today, s) {
		t.Error(p)
	}
	for _, it := range items {
		switch it.id {
		case at(420):
			if it.obj["notes"] == "changed after the snapshot" {
				t.Errorf("page 3 shows a change made after the first page: %s", snapJSON(it.obj))
			}
		case at(250), at(300):
			if it.obj["deletedAt"] != nil || it.obj["accountId"] != float64(1) {
				t.Errorf("page 2 shows a change made after the first page: %s", snapJSON(it.obj))
			}
		}
	}

	// The changes, as events after since, and nothing else: a last row marks the end.
	var barrier int64
	if err := b.db.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId") VALUES ($1::date, '01:00', '01:15', 1, 1) RETURNING id`, today).Scan(&barrier); err != nil {
		t.Fatal(err)
	}
	changes = append(changes, change{"appointments.created", barrier})
	var events []snapEvent
	for len(events) < len(changes) {
		f := ws.next(t)
		if f.ID <= since {
			t.Errorf("/ws?since=%d sent event %d %s", since, f.ID, f.raw)
		}
		events = append(events, snapEvent{id: f.ID, name: f.Event, obj: f.object(t)})
	}
	var got []change
	for _, e := range events {
		got = append(got, change{e.name, int64(e.obj["id"].(float64))})
	}
	if !slices.Equal(got, changes) {
		t.Errorf("/ws?since=%d events:\n  got  %v\n  want %v", since, got, changes)
	}
	for i := range changes {
		e := sio.WaitEvent()
		id, _ := strconv.ParseInt(e.Offset, 10, 64)
		if e.Name != changes[i].event || eventRow(t, e)["id"] != float64(changes[i].row) || id != events[i].id {
			t.Errorf("Socket.IO auth.since=%q event %d: %s, want %v (id %d)", strconv.FormatInt(since, 10), i, e, changes[i], events[i].id)
		}
	}

	// The pages plus the events are the list now.
	state := newSnapState()
	state.load(s)
	for _, e := range events {
		state.apply(listToday, today, e)
	}
	fresh, err := snapTake(ctx, hc, b.base, tok, listToday, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range snapDiff(fresh.items, state[listToday], "the pages plus the events") {
		t.Errorf("pages + events vs a fresh snapshot: %s", d)
	}
	t.Logf("%d items in %d pages since %d; %d events after it; fresh snapshot of %d items in %d pages since %d",
		len(items), len(pages), since, len(events), len(fresh.items), fresh.pages, fresh.since)
}

// TestSnapshotErrors: every refusal is a JSON {"error": reason} with the status the
// contract names and no items: an unknown list (404), a malformed cursor (400), a
// cursor of another account or list (403, and it stays usable by its owner), a cursor
// past the last page, unknown or past snapshot.cursor_ttl (410; a page asked again is the same page), no token, a bad one or an
// expired one (401, "token expired"), and more snapshots at once than
// snapshot.max_concurrent with no room in snapshot.max_queued (503 with Retry-After;
// both succeed once the first can read).
func TestSnapshotErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	hc := &http.Client{Timeout: 30 * time.Second}
	today := time.Now().UTC().Format("2006-01-02")
	const many = `INSERT INTO appointments (date, "startTime", "endTime", "statusId", "accountId")
SELECT $1::date + interval '9 hours', '09:00', '09:15', 1, 1 FROM generate_series(1, 250)`
	tok1, tok2 := token(t, 1, time.Hour), token(t, 2, time.Hour)
	get := func(b *testBundle, tok, path string, q url.Values, inQuery bool) snapAnswer {
		t.Helper()
		a, err := snapGet(ctx, hc, b.base, tok, path, q, inQuery)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	refused := func(what string, a snapAnswer, status int, reason string) {
		t.Helper()
		if p := snapErrorBody(a, status, reason); p != "" {
			t.Errorf("%s: %s", what, p)
		}
	}
	firstPage := func(b *testBundle, tok string) snapPage {
		t.Helper()
		p, err := snapParsePage(get(b, tok, "/"+listToday, nil, false))
		if err != nil {
			t.Fatal(err)
		}
		if p.Next == nil {
			t.Fatalf("a list of 250 rows has no next")
		}
		return p
	}
	cursorQ := func(c string) url.Values { return url.Values{"cursor": {c}} }

	t.Run("lists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := get(b, tok1, "", nil, false)
		var idx struct {
			Lists []struct {
				Name  string `json:"name"`
				Rule  string `json:"rule"`
				Limit int    `json:"limit"`
			} `json:"lists"`
		}
		if err := json.Unmarshal(a.body, &idx); err != nil || a.status != http.StatusOK {
			t.Fatalf("GET /v1/snapshot: %s (%v)", a, err)
		}
		got := map[string]string{}
		for _, l := range idx.Lists {
			got[l.Name] = fmt.Sprintf("%s/%d", l.Rule, l.Limit)
		}
		if want := map[string]string{listToday: "appointments/200", listCheckin: "appointments/200", listDoctors: "doctors/200"}; !maps.Equal(got, want) {
			t.Errorf("lists %v, want %v", got, want)
		}
		refused("no token on the index", get(b, "", "", nil, false), http.StatusUnauthorized, "")
	})

	t.Run("requests", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.exec(t, many, today)
		refused("unknown list", get(b, tok1, "/nope", nil, false), http.StatusNotFound, `unknown list "nope"`)
		for _, c := range []string{"garbage", "1.short.1", "x.AAAAAAAAAAAAAAAAAAAAAA.1", "1.!!!!!!!!!!!!!!!!!!!!!!.1", "1.AAAAAAAAAAAAAAAAAAAAAA", "1.AAAAAAAAAAAAAAAAAAAAAA.0"} {
			refused("malformed cursor "+c, get(b, tok1, "/"+listToday, cursorQ(c), false), http.StatusBadRequest, "malformed cursor")
		}
		p := firstPage(b, tok1)
		refused("another account's token", get(b, tok2, "/"+listToday, cursorQ(*p.Next), false), http.StatusForbidden, "cursor belongs to another account or list")
		refused("another list", get(b, tok1, "/"+listDoctors, cursorQ(*p.Next), true), http.StatusForbidden, "cursor belongs to another account or list")
		p2, err := snapParsePage(get(b, tok1, "/"+listToday, cursorQ(*p.Next), true))
		if err != nil {
			t.Fatalf("the cursor after two refusals: %v", err)
		}
		if len(p2.Items) != 50 || p2.Next != nil || *p2.Since != *p.Since {
			t.Errorf("second page: %d items, next %v, since %d (first %d)", len(p2.Items), p2.Next, *p2.Since, *p.Since)
		}
		// A page asked again (its answer lost) is the same page: cursors name pages.
		again, err := snapParsePage(get(b, tok1, "/"+listToday, cursorQ(*p.Next), true))
		if err != nil || len(again.Items) != len(p2.Items) || string(again.Items[0]) != string(p2.Items[0]) {
			t.Errorf("the second page asked again: %v, %d items", err, len(again.Items))
		}
		past := strings.TrimSuffix(*p.Next, ".1") + ".2" // the page after the last
		refused("a cursor past the last page", get(b, tok1, "/"+listToday, cursorQ(past), false), http.StatusGone, "cursor expired or unknown: take a new snapshot")
		unknown := "12345.AAAAAAAAAAAAAAAAAAAAAA.1" // well formed, never issued
		refused("an unknown cursor", get(b, tok1, "/"+listToday, cursorQ(unknown), false), http.StatusGone, "cursor expired or unknown: take a new snapshot")

		expired, err := auth.Mint([]byte(testSecret), "accountId", 1, time.Hour, time.Now().Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		forged, err := auth.Mint([]byte("another-secret-0123456789abcdef0123456789"), "accountId", 1, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, inQuery := range []bool{false, true} {
			where := map[bool]string{false: "header", true: "access_token"}[inQuery]
			refused("no token", get(b, "", "/"+listToday, nil, inQuery), http.StatusUnauthorized, "")
			refused("garbage token in "+where, get(b, "not-a-token", "/"+listToday, nil, inQuery), http.StatusUnauthorized, "")
			refused("forged token in "+where, get(b, forged, "/"+listToday, nil, inQuery), http.StatusUnauthorized, "")
			refused("expired token in "+where, get(b, expired, "/"+listToday, nil, inQuery), http.StatusUnauthorized, "token expired")
			refused("expired token with a cursor in "+where, get(b, expired, "/"+listToday, cursorQ(unknown), inQuery), http.StatusUnauthorized, "token expired")
		}
	})

	t.Run("ttl", func(t *testing.T) {
		t.Parallel()
		const ttl = time.Second // the least snapshot.cursor_ttl takes
		b := setup(t, func(o *setupOpts) { o.mutate = func(c *configT) { c.Snapshot.CursorTTL = ttl } })
		b.exec(t, many, today)
		p := firstPage(b, tok1)
		// Expiry is a time, not an event: wait it out.
		time.Sleep(ttl + 200*time.Millisecond)
		refused("a cursor past its TTL", get(b, tok1, "/"+listToday, cursorQ(*p.Next), false), http.StatusGone, "cursor expired or unknown: take a new snapshot")
	})

	t.Run("busy", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(o *setupOpts) {
			o.mutate = func(c *configT) { c.Snapshot.MaxConcurrent, c.Snapshot.MaxQueued = 1, 0 }
		})
		// Hold the first snapshot inside its transaction: the list reads appointments,
		// which another transaction locks.
		lock, err := b.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = lock.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := lock.Exec(ctx, `LOCK TABLE appointments IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		first := make(chan snapAnswer, 1)
		go func() {
			a, err := snapGet(ctx, hc, b.base, tok1, "/"+listToday, nil, false)
			if err != nil {
				a = snapAnswer{status: -1, body: []byte(err.Error())}
			}
			first <- a
		}()
		// The signal: its backend waits for the lock.
		deadline := time.Now().Add(waitTimeout)
		for {
			var n int
			if err := b.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%list_appointments%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first snapshot never waited for the lock")
			}
			select {
			case a := <-first:
				t.Fatalf("the first snapshot did not wait for the lock: %s", a)
			case <-time.After(10 * time.Millisecond):
			}
		}
		for _, l := range []string{listToday, listDoctors} {
			a := get(b, tok2, "/"+l, nil, false)
			refused("a second snapshot ("+l+") while one is in progress", a, http.StatusServiceUnavailable, "")
			if secs, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("503 with Retry-After %q, want a number of seconds", a.header.Get("Retry-After"))
			}
		}
		if err := lock.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := snapParsePage(<-first); err != nil {
			t.Errorf("the held snapshot after the lock went: %v", err)
		}
		if _, err := snapParsePage(get(b, tok2, "/"+listToday, nil, false)); err != nil {
			t.Errorf("the refused snapshot, again: %v", err)
		}
	})
}
