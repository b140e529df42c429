package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// drainTimeout bounds how long a scenario waits for the last deliveries once the
// writers are done.
const drainTimeout = 10 * time.Second

// latencyResult is scenario 1: commit-to-receipt latency.
type latencyResult struct {
	Clients  int        `json:"clients"`
	Rate     int        `json:"rate_per_s"`
	Seconds  float64    `json:"seconds"`
	Events   int        `json:"events"`        // measured (warm-up excluded)
	Warmup   int        `json:"warmup_events"` // committed first, not measured
	Late     int        `json:"late_inserts"`  // inserts started more than one interval behind schedule
	Bare     dist       `json:"bare_listen"`   // raw LISTEN client: NOTIFY payload received
	WS       dist       `json:"ws"`            // every (client, event) receipt
	WSFirst  dist       `json:"ws_first"`      // per event, the first client to get it
	WSLast   dist       `json:"ws_last"`       // per event, the last client to get it
	Commit   dist       `json:"commit_rtt"`    // the writer's INSERT...COMMIT round trip
	Enrich   dist       `json:"enrich_query"`  // the enrichment SQL for one id, run by the tool
	RatioP50 float64    `json:"ratio_p50"`     // WS p50 / bare LISTEN p50
	DiffP50  float64    `json:"diff_p50_us"`   // WS p50 - bare LISTEN p50
	Missing  int64      `json:"missing"`       // (client, event) receipts not seen in time
	BareMiss int        `json:"bare_missing"`  // events the raw LISTEN client did not see
	Disorder int64      `json:"out_of_order"`  // frames whose event id did not increase
	CPUPerEv float64    `json:"notifier_cpu_us_per_event"`
	Busy     float64    `json:"machine_busy_pct"`
	Stmts    []stmtStat `json:"postgres_statements,omitempty"`
	Rows     int64      `json:"appointments_at_start"`
}

type receipt struct {
	row int64
	at  time.Duration
}

// latencyClient is one dashboard's receipts.
type latencyClient struct {
	got      []receipt // written by the reader only; read once it is done
	count    atomic.Int64
	disorder atomic.Int64
}

func runLatency(ctx context.Context, e *env) (*latencyResult, error) {
	o := e.opts
	res := &latencyResult{Clients: o.clients, Rate: o.rate, Seconds: o.duration.Seconds(), Warmup: o.warmup}
	total := o.warmup + int(float64(o.rate)*o.duration.Seconds())
	base := time.Now()

	var err error
	if res.Rows, err = appointmentCount(ctx, e.dbURL); err != nil {
		return nil, err
	}
	srv, token, err := e.serveAccount1(ctx, "latency", e.dbURL)
	if err != nil {
		return nil, err
	}
	defer e.stopServer(srv)

	// The baseline: a raw LISTEN consumer on the triggers' channel.
	bare, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect bare listener: %w", err)
	}
	defer bare.Close(context.WithoutCancel(ctx))
	if _, err := bare.Exec(ctx, `LISTEN notifier`); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	bareCtx, stopBare := context.WithCancel(ctx)
	var bareGot []receipt
	var bareCount atomic.Int64
	bareDone := make(chan struct{})
	go func() {
		defer close(bareDone)
		for {
			n, err := bare.WaitForNotification(bareCtx)
			if err != nil {
				return
			}
			at := time.Since(base)
			if row, ok := intAfter([]byte(n.Payload), `"row":`); ok {
				bareGot = append(bareGot, receipt{row, at})
				bareCount.Add(1)
			}
		}
	}()
	// Before bare.Close (deferred earlier, so run later): a pgx.Conn is not safe for
	// concurrent use.
	defer func() {
		stopBare()
		<-bareDone
	}()

	e.progress("latency: %d clients, %d inserts/s for %s (+%d warm-up)", o.clients, o.rate, o.duration, o.warmup)
	conns, err := dialMany(ctx, srv.addr, token, o.clients, o.dialParallel)
	if err != nil {
		return nil, err
	}
	clients := make([]*latencyClient, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		lc := &latencyClient{got: make([]receipt, 0, total)}
		clients[i] = lc
		readers.Go(func() {
			last := int64(0)
			_, _ = readFrames(c, base, func(ev, row int64, _ int, at time.Duration) {
				if ev <= last {
					lc.disorder.Add(1)
				}
				last = ev
				lc.got = append(lc.got, receipt{row, at})
				lc.count.Add(1)
			})
		})
	}
	defer func() {
		closeAll(conns)
		readers.Wait()
	}()
	if err := srv.awaitSubscribers(ctx, o.clients, 30*time.Second); err != nil {
		return nil, err
	}

	writer, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect writer: %w", err)
	}
	defer writer.Close(context.WithoutCancel(ctx))

	// Write at a fixed rate: insert i starts at start + i*interval, or at once when
	// behind (counted as late).
	if err := e.stats.reset(ctx); err != nil {
		return nil, err
	}
	interval := time.Second / time.Duration(o.rate)
	commits := make([]receipt, 0, total)
	commitRTT := make([]time.Duration, 0, total)
	var cpu0 time.Duration
	var busy0 machineCPU
	start := time.Now()
	for i := range total {
		if i == o.warmup {
			cpu0, _ = srv.cpu()
			busy0 = readMachineCPU()
		}
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if -d > interval {
			res.Late++
		}
		began := time.Now()
		id, err := insertOne(ctx, writer)
		if err != nil {
			return nil, err
		}
		done := time.Now()
		commits = append(commits, receipt{id, done.Sub(base)})
		if i >= o.warmup {
			commitRTT = append(commitRTT, done.Sub(began))
		}
	}

	// Wait for the last deliveries.
	want := int64(total)
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		all := bareCount.Load() >= want
		for _, c := range clients {
			all = all && c.count.Load() >= want
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu1, _ := srv.cpu()
	res.Busy = busyPercent(busy0, readMachineCPU())
	if res.Stmts, err = e.stats.read(ctx, e.dbName); err != nil {
		return nil, err
	}
	stopBare()
	<-bareDone
	closeAll(conns)
	readers.Wait()

	// Commit times of the measured events, by appointment id.
	measured := commits[o.warmup:]
	res.Events = len(measured)
	index := make(map[int64]int, len(measured))
	for i, c := range measured {
		index[c.row] = i
	}
	var bareLat []time.Duration
	for _, r := range bareGot {
		if i, ok := index[r.row]; ok {
			bareLat = append(bareLat, r.at-measured[i].at)
		}
	}
	res.BareMiss = len(measured) - len(bareLat)

	const unset = time.Duration(-1 << 63)
	first := make([]time.Duration, len(measured))
	last := make([]time.Duration, len(measured))
	seen := make([]int, len(measured))
	for i := range first {
		first[i], last[i] = unset, unset
	}
	wsLat := make([]time.Duration, 0, len(measured)*len(clients))
	for _, c := range clients {
		res.Disorder += c.disorder.Load()
		for _, r := range c.got {
			i, ok := index[r.row]
			if !ok {
				continue
			}
			d := r.at - measured[i].at
			wsLat = append(wsLat, d)
			if first[i] == unset || d < first[i] {
				first[i] = d
			}
			if last[i] == unset || d > last[i] {
				last[i] = d
			}
			seen[i]++
		}
	}
	var firsts, lasts []time.Duration
	for i := range measured {
		res.Missing += int64(len(clients) - seen[i])
		if seen[i] > 0 {
			firsts = append(firsts, first[i])
		}
		if seen[i] == len(clients) {
			lasts = append(lasts, last[i])
		}
	}
	res.Bare = summarise(bareLat)
	res.WS = summarise(wsLat)
	res.WSFirst = summarise(firsts)
	res.WSLast = summarise(lasts)
	res.Commit = summarise(commitRTT)
	res.RatioP50 = ratio(res.WS.P50US, res.Bare.P50US)
	res.DiffP50 = res.WS.P50US - res.Bare.P50US
	if res.Events > 0 {
		res.CPUPerEv = us(cpu1-cpu0) / float64(res.Events)
	}

	// Where part of the notifier's time goes: the enrichment query it runs per burst,
	// here for one id, as a lone event's burst is.
	ids := make([]int64, 0, 200)
	for _, c := range measured[max(0, len(measured)-200):] {
		ids = append(ids, c.row)
	}
	if res.Enrich, err = probeEnrich(ctx, e.dbURL, ids); err != nil {
		return nil, err
	}
	return res, nil
}

// probeEnrich times the appointments enrichment query, one id per round trip, on a
// connection set up as the notifier's pool is (TimeZone UTC, statement cache).
func probeEnrich(ctx context.Context, dbURL string, ids []int64) (dist, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return dist{}, err
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return dist{}, fmt.Errorf("connect enrichment probe: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	d := make([]time.Duration, 0, len(ids))
	for i, id := range ids {
		began := time.Now()
		rows, err := conn.Query(ctx, "SELECT id, payload::text FROM notifier.enrich_appointments($1)", []int64{id})
		if err != nil {
			return dist{}, fmt.Errorf("enrichment probe: %w", err)
		}
		for rows.Next() {
			_ = rows.RawValues()
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dist{}, fmt.Errorf("enrichment probe: %w", err)
		}
		if i > 0 { // the first one prepares the statement
			d = append(d, time.Since(began))
		}
	}
	return summarise(d), nil
}
