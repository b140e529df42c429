package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// settleTime is how long a service is left alone before its memory is read.
const settleTime = time.Second

// memoryResult is scenario 3: a service's memory with 0 and M idle connections.
type memoryResult struct {
	Conns       int     `json:"conns"`
	Accounts    int     `json:"accounts"`
	RSS0        int64   `json:"rss_0_bytes"`
	RSSM        int64   `json:"rss_m_bytes"`
	PerConn     float64 `json:"bytes_per_conn"`
	PeakRSS     int64   `json:"peak_rss_bytes"` // VmHWM after the connections
	Threads0    int     `json:"threads_0"`
	ThreadsM    int     `json:"threads_m"`
	FDs0        int     `json:"fds_0"`
	FDsM        int     `json:"fds_m"`
	DialSecs    float64 `json:"dial_seconds"`
	Delivered   int     `json:"delivered_probe"`        // connections that got one probe event
	Goroutines0 int     `json:"goroutines_0,omitempty"` // from /metrics go_goroutines, when exposed
	GoroutinesM int     `json:"goroutines_m,omitempty"`
	Goroutines  string  `json:"goroutines"`
}

func runMemory(ctx context.Context, e *env) (*memoryResult, error) {
	o := e.opts
	accounts := (o.idleConns + o.perAcct - 1) / o.perAcct
	svc, err := notifierSide{e: e, dbURL: e.dbURL}.start(ctx, "memory", accounts)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	return e.measureMemory(ctx, svc, e.dbURL)
}

// measureMemory measures a fresh service on dbURL (its triggers installed) with 0 and
// --idle-conns idle connections, --idle-per-account on each account.
func (e *env) measureMemory(ctx context.Context, svc service, dbURL string) (*memoryResult, error) {
	o := e.opts
	accounts := (o.idleConns + o.perAcct - 1) / o.perAcct
	res := &memoryResult{Conns: o.idleConns, Accounts: accounts}
	srv := svc.process()
	time.Sleep(settleTime)
	st0, err := srv.status()
	if err != nil {
		return nil, err
	}
	res.RSS0, res.Threads0, res.FDs0 = st0.RSS, st0.Threads, openFDs(srv.pid)
	res.Goroutines0, _ = srv.goroutines(ctx)

	e.progress("memory: %d idle connections over %d accounts (%s)", o.idleConns, accounts, srv.name)
	began := time.Now()
	conns, err := svc.open(ctx, o.idleConns, o.perAcct)
	if err != nil {
		return nil, err
	}
	res.DialSecs = time.Since(began).Seconds()
	// Idle dashboards still read, so that pings are answered and the probe arrives.
	probe := make(chan struct{}, len(conns))
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Go(func() {
			_, _ = readTexts(c, began, func(b []byte, _ time.Duration) {
				if _, _, ok := svc.parse(b); ok {
					probe <- struct{}{}
				}
			})
		})
	}
	defer func() {
		closeAll(conns)
		readers.Wait()
	}()
	time.Sleep(settleTime)
	stM, err := srv.status()
	if err != nil {
		return nil, err
	}
	res.RSSM, res.PeakRSS, res.ThreadsM, res.FDsM = stM.RSS, stM.HWM, stM.Threads, openFDs(srv.pid)
	var ok bool
	if res.GoroutinesM, ok = srv.goroutines(ctx); ok {
		res.Goroutines = fmt.Sprintf("%d -> %d (%.2f per connection)", res.Goroutines0, res.GoroutinesM,
			float64(res.GoroutinesM-res.Goroutines0)/float64(max(o.idleConns, 1)))
	} else {
		res.Goroutines = "not visible through the public contract (/metrics has no go_goroutines)"
	}
	if o.idleConns > 0 {
		res.PerConn = float64(res.RSSM-res.RSS0) / float64(o.idleConns)
	}

	// Check the connections were live, not just open: one event per account reaches
	// them all.
	if err := insertProbe(ctx, dbURL, accounts); err != nil {
		return nil, err
	}
	timeout := time.After(drainTimeout)
wait:
	for res.Delivered < len(conns) {
		select {
		case <-probe:
			res.Delivered++
		case <-timeout:
			break wait
		}
	}
	return res, nil
}

// insertProbe commits one appointment for each of accounts 1..accounts in dbURL.
func insertProbe(ctx context.Context, dbURL string, accounts int) error {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for a := range accounts {
		if _, err := insertOneFor(ctx, conn, int64(a+1), 0); err != nil {
			return err
		}
	}
	return nil
}
