package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// throughputResult is scenario 2: a flood of events fanned out to many clients.
type throughputResult struct {
	Clients       int            `json:"clients"`
	Events        int            `json:"events"`
	Batch         int            `json:"events_per_tx"`
	Writers       int            `json:"writers"`
	CommitSeconds float64        `json:"commit_seconds"`      // writers' wall time
	CommitRate    float64        `json:"commit_events_per_s"` // events committed per second
	Seconds       float64        `json:"deliver_seconds"`     // first write to last receipt
	TailSeconds   float64        `json:"tail_seconds"`        // last commit to last receipt
	Expected      int64          `json:"expected"`
	Delivered     int64          `json:"delivered"`
	MsgRate       float64        `json:"delivered_msgs_per_s"`
	FrameBytes    float64        `json:"frame_bytes_avg"`
	NotifierCPU   float64        `json:"notifier_cpu_s"`
	CPUPerMsg     float64        `json:"notifier_cpu_us_per_msg"`
	CPUPerEvent   float64        `json:"notifier_cpu_us_per_event"`
	PostgresCPU   float64        `json:"postgres_cpu_s,omitempty"` // only on the throwaway cluster
	ToolCPU       float64        `json:"tool_cpu_s"`
	Busy          float64        `json:"machine_busy_pct"`
	PeakRSS       int64          `json:"notifier_peak_rss_bytes"` // VmHWM
	Disorder      int64          `json:"out_of_order"`
	Closed        map[string]int `json:"closed_by_server,omitempty"` // close code -> clients
	Stmts         []stmtStat     `json:"postgres_statements,omitempty"`
	Rows          int64          `json:"appointments_at_start"`
}

type floodClient struct {
	count    atomic.Int64
	bytes    atomic.Int64
	lastAt   atomic.Int64 // time.Duration since base of the latest frame
	disorder atomic.Int64
	ended    atomic.Bool
	code     int
}

func runThroughput(ctx context.Context, e *env) (*throughputResult, error) {
	o := e.opts
	res := &throughputResult{Clients: o.floodClients, Events: o.floodEvents, Batch: o.floodBatch, Writers: o.floodWriters}
	res.Expected = int64(o.floodEvents) * int64(o.floodClients)
	base := time.Now()

	var err error
	if res.Rows, err = appointmentCount(ctx, e.dbURL); err != nil {
		return nil, err
	}
	srv, token, err := e.serveAccount1(ctx, "throughput", e.dbURL)
	if err != nil {
		return nil, err
	}
	defer e.stopServer(srv)
	e.progress("throughput: %d events in transactions of %d from %d writers, %d clients", o.floodEvents, o.floodBatch, o.floodWriters, o.floodClients)
	conns, err := dialMany(ctx, srv.addr, token, o.floodClients, o.dialParallel)
	if err != nil {
		return nil, err
	}
	clients := make([]*floodClient, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		fc := &floodClient{}
		clients[i] = fc
		readers.Go(func() {
			last := int64(0)
			fc.code, _ = readFrames(c, base, func(ev, _ int64, size int, at time.Duration) {
				if ev <= last {
					fc.disorder.Add(1)
				}
				last = ev
				fc.bytes.Add(int64(size))
				fc.lastAt.Store(int64(at))
				fc.count.Add(1)
			})
			fc.ended.Store(true)
		})
	}
	defer func() {
		closeAll(conns)
		readers.Wait()
	}()
	if err := srv.awaitSubscribers(ctx, o.floodClients, 30*time.Second); err != nil {
		return nil, err
	}

	writers := make([]*pgx.Conn, o.floodWriters)
	for i := range writers {
		if writers[i], err = pgx.Connect(ctx, e.dbURL); err != nil {
			return nil, fmt.Errorf("connect writer: %w", err)
		}
		defer writers[i].Close(context.WithoutCancel(ctx))
	}

	if err := e.stats.reset(ctx); err != nil {
		return nil, err
	}
	cpu0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	pg0, pgOK := e.postgresCPU()
	tool0 := selfCPU()
	busy0 := readMachineCPU()
	started := time.Now()

	// Writers take transactions from a shared counter until K events are committed.
	txs := (o.floodEvents + o.floodBatch - 1) / o.floodBatch
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range writers {
		g.Go(func() error {
			for {
				tx := int(next.Add(1)) - 1
				if tx >= txs {
					return nil
				}
				n := min(o.floodBatch, o.floodEvents-tx*o.floodBatch)
				if err := insertMany(gctx, w, n); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	committed := time.Now()
	res.CommitSeconds = committed.Sub(started).Seconds()
	res.CommitRate = float64(o.floodEvents) / res.CommitSeconds

	// Wait until every client that is still connected has every event.
	deadline := time.Now().Add(o.floodTimeout)
	for time.Now().Before(deadline) {
		done := true
		for _, c := range clients {
			if !c.ended.Load() && c.count.Load() < int64(o.floodEvents) {
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
	tool1 := selfCPU()
	res.Busy = busyPercent(busy0, readMachineCPU())
	st, _ := srv.status()
	res.PeakRSS = st.HWM
	if res.Stmts, err = e.stats.read(ctx, e.dbName); err != nil {
		return nil, err
	}

	var lastAt time.Duration
	var bytes int64
	for _, c := range clients {
		res.Delivered += c.count.Load()
		res.Disorder += c.disorder.Load()
		bytes += c.bytes.Load()
		lastAt = max(lastAt, time.Duration(c.lastAt.Load()))
	}
	end := base.Add(lastAt)
	res.Seconds = end.Sub(started).Seconds()
	res.TailSeconds = end.Sub(committed).Seconds()
	res.MsgRate = float64(res.Delivered) / res.Seconds
	if res.Delivered > 0 {
		res.FrameBytes = float64(bytes) / float64(res.Delivered)
		res.CPUPerMsg = us(cpu1-cpu0) / float64(res.Delivered)
	}
	res.NotifierCPU = (cpu1 - cpu0).Seconds()
	res.CPUPerEvent = us(cpu1-cpu0) / float64(o.floodEvents)
	if pgOK {
		res.PostgresCPU = (pg1 - pg0).Seconds()
	}
	res.ToolCPU = (tool1 - tool0).Seconds()

	closeAll(conns)
	readers.Wait()
	for _, c := range clients {
		if c.code != 0 {
			if res.Closed == nil {
				res.Closed = map[string]int{}
			}
			res.Closed[fmt.Sprint(c.code)]++
		}
	}
	return res, nil
}
