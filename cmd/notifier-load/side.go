package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// sideDB is the database of the side-by-side runs, on the same server as the others.
const sideDB = "notifier_load_side"

// Warm-up before each side-by-side run: rounds of one event per account until every
// dashboard has had one.
const (
	warmRounds  = 5
	warmTimeout = 2 * time.Second // per round
)

// sideResult is --peer-bin: the notifier and a peer measured in turn on one workload.
type sideResult struct {
	Peer     string      `json:"peer"` // its --version
	Runs     int         `json:"runs_per_side"`
	Database string      `json:"database"`
	Fixed    *sidePhase  `json:"fixed_rate,omitempty"`
	Full     *sidePhase  `json:"full_speed,omitempty"`
	Memory   *sideMemory `json:"memory,omitempty"`
}

// sidePhase is one workload, run --runs times on each side, alternately.
type sidePhase struct {
	Clients    int         `json:"clients"`
	Accounts   int         `json:"accounts"`
	Writers    int         `json:"writers"`
	Rate       int         `json:"rate_per_s,omitempty"`  // commits/s over all writers; 0: as fast as they go
	NotesBytes int         `json:"notes_bytes,omitempty"` // notes in each appointment written
	Transport  string      `json:"transport"`             // the notifier's dashboards: ws or socketio
	Seconds    float64     `json:"seconds"`
	LateAfter  float64     `json:"late_after_s"`
	Notifier   sideSummary `json:"notifier"`
	Peer       sideSummary `json:"peer"`
}

// sideSummary is one side's runs in order and their summary: the median of each
// figure, but the worst run's count of events late, lost, duplicated or misdelivered.
type sideSummary struct {
	Summary sideRun   `json:"summary"`
	Runs    []sideRun `json:"runs"`
}

// sideRun is one run of one side.
type sideRun struct {
	Rows        int64   `json:"appointments_at_start"`
	Commits     int     `json:"commits"`
	CommitRate  float64 `json:"commits_per_s"`          // over the writing time, at least the run's duration
	LateInserts int     `json:"late_inserts,omitempty"` // fixed rate: started over one interval behind schedule
	Latency     dist    `json:"latency"`                // commit returned -> frame read, every (client, event)
	Expected    int64   `json:"expected"`               // (client, event) pairs
	Delivered   int64   `json:"delivered"`              // within drainTimeout of the last commit
	Late        int64   `json:"late"`                   // not delivered within LateAfter of the last commit
	Lost        int64   `json:"lost"`                   // not delivered within drainTimeout of the last commit
	Duplicates  int64   `json:"duplicates"`
	Foreign     int64   `json:"foreign"` // frames of another account's event
	ServiceCPU  float64 `json:"service_cpu_s"`
	CPUPerMsg   float64 `json:"service_cpu_us_per_msg"`
	PostgresCPU float64 `json:"postgres_cpu_s,omitempty"` // throwaway cluster only
	PGPerCommit float64 `json:"postgres_cpu_us_per_commit,omitempty"`
	PeakRSS     int64   `json:"peak_rss_bytes"` // VmHWM of the service's process
	Busy        float64 `json:"machine_busy_pct"`
}

// sideMemory is the memory scenario on both sides.
type sideMemory struct {
	Conns    int           `json:"conns"`
	Accounts int           `json:"accounts"`
	Notifier memorySummary `json:"notifier"`
	Peer     memorySummary `json:"peer"`
}

// memorySummary is one side's memory runs and their medians (probe: the worst run).
type memorySummary struct {
	PerConn   float64         `json:"bytes_per_conn"`
	RSS0      float64         `json:"rss_0_bytes"`
	RSSM      float64         `json:"rss_m_bytes"`
	PeakRSS   float64         `json:"peak_rss_bytes"`
	Delivered int             `json:"delivered_probe"`
	Runs      []*memoryResult `json:"runs"`
}

// runSide runs the chosen side-by-side scenarios: for each, --runs rounds of the
// notifier then the peer, each run on the side database reset to the same rows and
// carrying only its own side's triggers. version is the peer's --version.
func runSide(ctx context.Context, e *env, version string) (*sideResult, error) {
	o := e.opts
	res := &sideResult{Peer: version, Runs: o.runs, Database: fmt.Sprintf(
		"%s, one for both sides: before every run its appointments are truncated (then --preload=%d rows written, and a CHECKPOINT on the throwaway cluster), and only that side's triggers are installed (notifier migrate up, or the peer's NOTIFY trigger), removed after (migrate down, DROP TRIGGER)", sideDB, o.preload)}
	if err := createDB(ctx, e.baseURL, sideDB); err != nil {
		return nil, err
	}
	if e.cluster == nil {
		defer func() {
			if err := dropDB(context.WithoutCancel(ctx), e.baseURL, sideDB); err != nil {
				e.progress("drop database %s: %v", sideDB, err)
			}
		}()
	}
	dbURL, err := e.dbURLFor(sideDB)
	if err != nil {
		return nil, err
	}
	if err := prepareDB(ctx, dbURL, o.fkIndexes); err != nil {
		return nil, err
	}
	sides := []contender{notifierSide{e: e, dbURL: dbURL, transport: o.sideTransport}, peerSide{e: e, bin: o.peerBin, dbURL: dbURL}}

	phase := func(rate int) *sidePhase {
		return &sidePhase{Clients: o.sideClients, Accounts: o.sideAccounts, Writers: o.sideWriters, Rate: rate,
			NotesBytes: o.sideNotes, Transport: o.sideTransport, Seconds: o.sideDuration.Seconds(), LateAfter: o.lateAfter.Seconds()}
	}
	for _, p := range []struct {
		scenario string
		dst      **sidePhase
		rate     int
	}{{"latency", &res.Fixed, o.sideRate}, {"throughput", &res.Full, 0}} {
		if !o.has(p.scenario) {
			continue
		}
		ph := phase(p.rate)
		var runs [2][]sideRun
		for i := range o.runs {
			for s, c := range sides {
				name := fmt.Sprintf("side-%s-%d", p.scenario, i+1)
				e.progress("%s: %s run %d of %d: %s", p.scenario, c.label(), i+1, o.runs, ph.describe())
				var r sideRun
				err := e.sideOnce(ctx, c, dbURL, name, o.sideAccounts, func(svc service) error {
					var err error
					r, err = e.sideLoad(ctx, svc, dbURL, p.rate)
					return err
				})
				if err != nil {
					return nil, fmt.Errorf("%s, %s run %d: %w", p.scenario, c.label(), i+1, err)
				}
				if r.Late > 0 {
					e.progress("%s: %s run %d: %d of %d receipts late (%d lost)", p.scenario, c.label(), i+1, r.Late, r.Expected, r.Lost)
				}
				runs[s] = append(runs[s], r)
			}
		}
		ph.Notifier = sideSummary{Summary: summariseSide(runs[0]), Runs: runs[0]}
		ph.Peer = sideSummary{Summary: summariseSide(runs[1]), Runs: runs[1]}
		*p.dst = ph
	}

	if o.has("memory") {
		accounts := (o.idleConns + o.perAcct - 1) / o.perAcct
		mem := &sideMemory{Conns: o.idleConns, Accounts: accounts}
		var runs [2][]*memoryResult
		for i := range o.runs {
			for s, c := range sides {
				var r *memoryResult
				err := e.sideOnce(ctx, c, dbURL, fmt.Sprintf("side-memory-%d", i+1), accounts, func(svc service) error {
					var err error
					r, err = e.measureMemory(ctx, svc, dbURL)
					return err
				})
				if err != nil {
					return nil, fmt.Errorf("memory, %s run %d: %w", c.label(), i+1, err)
				}
				runs[s] = append(runs[s], r)
			}
		}
		mem.Notifier, mem.Peer = summariseMemory(runs[0]), summariseMemory(runs[1])
		res.Memory = mem
	}
	return res, nil
}

// describe is the phase's workload in words.
func (p *sidePhase) describe() string {
	rate := "as fast as they go"
	if p.Rate > 0 {
		rate = fmt.Sprintf("%d commits/s in all", p.Rate)
	}
	appointment := "one appointment"
	if p.NotesBytes > 0 {
		appointment = fmt.Sprintf("one appointment with %d bytes of notes", p.NotesBytes)
	}
	via := ""
	if p.Transport == "socketio" {
		via = " (the notifier's over Socket.IO)"
	}
	return fmt.Sprintf("%d clients%s over %d accounts, %d writers, %s per transaction, %s for %.0fs",
		p.Clients, via, p.Accounts, p.Writers, appointment, rate, p.Seconds)
}

// sideOnce resets the side database, installs c's triggers, starts c for accounts and
// runs f on it, then stops it and removes the triggers.
func (e *env) sideOnce(ctx context.Context, c contender, dbURL, run string, accounts int, f func(service) error) (err error) {
	if err := e.resetSide(ctx, dbURL); err != nil {
		return err
	}
	if err := c.install(ctx); err != nil {
		return err
	}
	defer func() {
		if uerr := c.uninstall(context.WithoutCancel(ctx)); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	svc, err := c.start(ctx, run, accounts)
	if err != nil {
		return err
	}
	defer svc.stop()
	return f(svc)
}

// resetSide empties the side database's appointments and writes --preload again, so
// that every run starts from the same table; on the throwaway cluster it then runs a
// CHECKPOINT, so that no run starts with another's dirty pages to write.
func (e *env) resetSide(ctx context.Context, dbURL string) error {
	if err := execSQL(ctx, dbURL, `TRUNCATE appointment_procedures, appointments`); err != nil {
		return fmt.Errorf("truncate appointments: %w", err)
	}
	if e.opts.preload > 0 {
		if err := preload(ctx, dbURL, e.opts.preload); err != nil {
			return err
		}
	}
	if e.cluster != nil {
		if err := execSQL(ctx, dbURL, `CHECKPOINT`); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}

// sideCommit is one committed appointment: when its writer's COMMIT returned.
type sideCommit struct {
	row, account int64
	at           time.Duration // since the run's base time
}

// sideReceipt is one frame a dashboard read.
type sideReceipt struct {
	row, account int64
	at           time.Duration
}

// sideClient is one dashboard of account.
type sideClient struct {
	account int64
	got     []sideReceipt // written by the reader only; read once it is done
	frames  atomic.Int64  // appointment frames of any kind
	counted atomic.Int64  // frames of the account's measured events
}

// sideLoad runs the workload on svc: --side-clients dashboards over --side-accounts
// accounts, --side-writers writers committing one appointment per transaction, in all
// rate per second (0: as fast as they can) for --side-duration.
func (e *env) sideLoad(ctx context.Context, svc service, dbURL string, rate int) (sideRun, error) {
	o := e.opts
	var res sideRun
	var err error
	if res.Rows, err = appointmentCount(ctx, dbURL); err != nil {
		return res, err
	}
	perAccount := o.sideClients / o.sideAccounts
	base := time.Now()
	conns, err := svc.open(ctx, o.sideClients, perAccount)
	if err != nil {
		return res, err
	}
	// Frames of rows up to floor (the warm-up's) are not counted.
	var floor atomic.Int64
	floor.Store(math.MaxInt64)
	clients := make([]*sideClient, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		sc := &sideClient{account: int64(i/perAccount + 1)}
		clients[i] = sc
		readers.Go(func() {
			_, _ = readTexts(c, base, func(b []byte, at time.Duration) {
				row, account, ok := svc.parse(b)
				if !ok {
					return
				}
				sc.got = append(sc.got, sideReceipt{row, account, at})
				sc.frames.Add(1)
				if account == sc.account && row > floor.Load() {
					sc.counted.Add(1)
				}
			})
		})
	}
	defer func() {
		closeAll(conns)
		readers.Wait()
	}()

	writers := make([]*pgx.Conn, o.sideWriters)
	for i := range writers {
		if writers[i], err = connect(ctx, dbURL); err != nil {
			return res, err
		}
		defer writers[i].Close(context.WithoutCancel(ctx))
	}
	last, err := sideWarmup(ctx, writers, clients, o.sideAccounts)
	if err != nil {
		return res, err
	}
	floor.Store(last)

	srv := svc.process()
	cpu0, err := srv.cpu()
	if err != nil {
		return res, err
	}
	pg0, pgOK := e.postgresCPU()
	busy0 := readMachineCPU()
	commits, started, lateInserts, err := writeSide(ctx, writers, o.sideAccounts, rate, o.sideNotes, o.sideDuration, base)
	if err != nil {
		return res, err
	}
	res.Commits, res.LateInserts = len(commits), lateInserts
	var lastCommit time.Duration
	perAccountCommits := make(map[int64]int64, o.sideAccounts)
	index := make(map[int64]int, len(commits))
	for i, c := range commits {
		lastCommit = max(lastCommit, c.at)
		perAccountCommits[c.account]++
		index[c.row] = i
	}
	// Over the writing time, at least --side-duration: at a fixed rate the last insert
	// is due one interval before its end.
	res.CommitRate = float64(len(commits)) / max(lastCommit-started, o.sideDuration).Seconds()

	// Wait for every dashboard's events, up to drainTimeout after the last commit.
	drainBy := base.Add(lastCommit + drainTimeout)
	for time.Now().Before(drainBy) {
		done := true
		for _, c := range clients {
			if c.counted.Load() < perAccountCommits[c.account] {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu1, _ := srv.cpu()
	pg1, _ := e.postgresCPU()
	res.Busy = busyPercent(busy0, readMachineCPU())
	if st, err := srv.status(); err == nil {
		res.PeakRSS = st.HWM
	}
	closeAll(conns)
	readers.Wait()

	lateBy := lastCommit + o.lateAfter
	var lat []time.Duration
	for _, c := range clients {
		want := perAccountCommits[c.account]
		res.Expected += want
		slices.SortFunc(c.got, func(a, b sideReceipt) int { return cmp.Compare(a.row, b.row) })
		var prev, inTime, delivered int64
		for _, r := range c.got {
			i, ok := index[r.row]
			switch {
			case !ok: // a warm-up event
			case commits[i].account != c.account || r.account != c.account:
				res.Foreign++
			case r.row == prev:
				res.Duplicates++
			default:
				prev = r.row
				delivered++
				lat = append(lat, r.at-commits[i].at)
				if r.at <= lateBy {
					inTime++
				}
			}
		}
		res.Delivered += delivered
		res.Late += want - inTime
		res.Lost += want - delivered
	}
	res.Latency = summarise(lat)
	res.ServiceCPU = (cpu1 - cpu0).Seconds()
	if res.Delivered > 0 {
		res.CPUPerMsg = us(cpu1-cpu0) / float64(res.Delivered)
	}
	if pgOK {
		res.PostgresCPU = (pg1 - pg0).Seconds()
		if res.Commits > 0 {
			res.PGPerCommit = us(pg1-pg0) / float64(res.Commits)
		}
	}
	return res, nil
}

// sideWarmup commits one appointment per account, spread over the writers (so each
// has prepared its statement), until every dashboard has received one; it returns the
// last appointment id it committed.
func sideWarmup(ctx context.Context, writers []*pgx.Conn, clients []*sideClient, accounts int) (int64, error) {
	var last int64
	cold := len(clients)
	for range warmRounds {
		for a := range accounts {
			id, err := insertOneFor(ctx, writers[a%len(writers)], int64(a+1), 0)
			if err != nil {
				return 0, fmt.Errorf("warm-up: %w", err)
			}
			last = max(last, id)
		}
		deadline := time.Now().Add(warmTimeout)
		for {
			cold = 0
			for _, c := range clients {
				if c.frames.Load() == 0 {
					cold++
				}
			}
			if cold == 0 {
				return last, nil
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return 0, fmt.Errorf("warm-up: %d of %d dashboards got none of %d rounds of one event per account", cold, len(clients), warmRounds)
}

// writeSide commits appointments from writers for d: at rate per second in all, or, at
// rate 0, each writer back to back. The k-th insert (over all writers) goes to account
// k mod accounts + 1. It returns the commits, when writing started and, at a fixed
// rate, how many inserts started more than one interval behind schedule.
func writeSide(ctx context.Context, writers []*pgx.Conn, accounts, rate, notes int, d time.Duration, base time.Time) ([]sideCommit, time.Duration, int, error) {
	got := make([][]sideCommit, len(writers))
	late := make([]int, len(writers))
	total := int64(float64(rate) * d.Seconds())
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	var next atomic.Int64
	start := time.Now()
	end := start.Add(d)
	g, gctx := errgroup.WithContext(ctx)
	for w, conn := range writers {
		g.Go(func() error {
			for {
				k := next.Add(1) - 1
				if rate > 0 {
					if k >= total {
						return nil
					}
					if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
						time.Sleep(wait)
					} else if -wait > interval {
						late[w]++
					}
				} else if time.Now().After(end) {
					return nil
				}
				account := k%int64(accounts) + 1
				id, err := insertOneFor(gctx, conn, account, notes)
				if err != nil {
					return err
				}
				got[w] = append(got[w], sideCommit{id, account, time.Since(base)})
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, 0, err
	}
	var all []sideCommit
	lateAll := 0
	for w := range writers {
		all = append(all, got[w]...)
		lateAll += late[w]
	}
	return all, start.Sub(base), lateAll, nil
}

// summariseSide is the median of each figure over runs, and the worst run's late, lost,
// duplicated and foreign counts.
func summariseSide(runs []sideRun) sideRun {
	med := func(f func(sideRun) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	worst := func(f func(sideRun) int64) int64 {
		var w int64
		for _, r := range runs {
			w = max(w, f(r))
		}
		return w
	}
	return sideRun{
		Rows:        int64(med(func(r sideRun) float64 { return float64(r.Rows) })),
		Commits:     int(med(func(r sideRun) float64 { return float64(r.Commits) })),
		CommitRate:  med(func(r sideRun) float64 { return r.CommitRate }),
		LateInserts: int(med(func(r sideRun) float64 { return float64(r.LateInserts) })),
		Latency: dist{
			N:     int(med(func(r sideRun) float64 { return float64(r.Latency.N) })),
			MinUS: med(func(r sideRun) float64 { return r.Latency.MinUS }),
			P50US: med(func(r sideRun) float64 { return r.Latency.P50US }),
			P90US: med(func(r sideRun) float64 { return r.Latency.P90US }),
			P99US: med(func(r sideRun) float64 { return r.Latency.P99US }),
			MaxUS: med(func(r sideRun) float64 { return r.Latency.MaxUS }),
		},
		Expected:    int64(med(func(r sideRun) float64 { return float64(r.Expected) })),
		Delivered:   int64(med(func(r sideRun) float64 { return float64(r.Delivered) })),
		Late:        worst(func(r sideRun) int64 { return r.Late }),
		Lost:        worst(func(r sideRun) int64 { return r.Lost }),
		Duplicates:  worst(func(r sideRun) int64 { return r.Duplicates }),
		Foreign:     worst(func(r sideRun) int64 { return r.Foreign }),
		ServiceCPU:  med(func(r sideRun) float64 { return r.ServiceCPU }),
		CPUPerMsg:   med(func(r sideRun) float64 { return r.CPUPerMsg }),
		PostgresCPU: med(func(r sideRun) float64 { return r.PostgresCPU }),
		PGPerCommit: med(func(r sideRun) float64 { return r.PGPerCommit }),
		PeakRSS:     int64(med(func(r sideRun) float64 { return float64(r.PeakRSS) })),
		Busy:        med(func(r sideRun) float64 { return r.Busy }),
	}
}

// summariseMemory is the median of each figure over runs; the probe count is the
// worst run's.
func summariseMemory(runs []*memoryResult) memorySummary {
	med := func(f func(*memoryResult) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	s := memorySummary{
		PerConn: med(func(r *memoryResult) float64 { return r.PerConn }),
		RSS0:    med(func(r *memoryResult) float64 { return float64(r.RSS0) }),
		RSSM:    med(func(r *memoryResult) float64 { return float64(r.RSSM) }),
		PeakRSS: med(func(r *memoryResult) float64 { return float64(r.PeakRSS) }),
		Runs:    runs,
	}
	for i, r := range runs {
		if i == 0 || r.Delivered < s.Delivered {
			s.Delivered = r.Delivered
		}
	}
	return s
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
