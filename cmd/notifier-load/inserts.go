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

// insertsResult is scenario 4: the app's write rate with and without the triggers.
type insertsResult struct {
	Workers int         `json:"workers"`
	Seconds float64     `json:"seconds"`
	Runs    []insertRun `json:"runs"`
	// Ratio is tx/s with the triggers over tx/s without (1 = no cost).
	Ratio float64 `json:"ratio_triggers_over_plain"`
	// RatioNotify is tx/s with a bare NOTIFY trigger over tx/s without: what any
	// LISTEN/NOTIFY design pays.
	RatioNotify float64 `json:"ratio_notify_only_over_plain"`
	// RatioServed is the same with the notifier running and a dashboard connected.
	RatioServed float64 `json:"ratio_served_over_plain,omitempty"`
}

// insertRun is one database's figures.
type insertRun struct {
	Name        string     `json:"name"`
	Tx          int64      `json:"tx"`
	TxRate      float64    `json:"tx_per_s"`
	Latency     dist       `json:"tx_latency"`
	NotifierCPU float64    `json:"notifier_cpu_s,omitempty"`
	Delivered   int64      `json:"delivered,omitempty"` // events the dashboard got
	Busy        float64    `json:"machine_busy_pct"`
	Stmts       []stmtStat `json:"postgres_statements,omitempty"`
}

// Databases of scenario 4, made fresh and identical but for the triggers.
const (
	dbPlain    = "notifier_load_plain"
	dbNotify   = "notifier_load_notify"
	dbTriggers = "notifier_load_triggers"
	dbServed   = "notifier_load_served"
)

// notifyOnlySQL is the trigger a raw LISTEN/NOTIFY consumer (pg_eventserv's docs, for
// one) has the app install: NOTIFY a small JSON per row, no log, no lock of its own.
// PostgreSQL still serialises notifying commits in a database (PreCommit_Notify).
const notifyOnlySQL = `CREATE FUNCTION load_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('load', json_build_object('id', NEW.id, 'accountId', NEW."accountId")::text);
    RETURN NULL;
END $$;
CREATE TRIGGER load_notify AFTER INSERT ON appointments FOR EACH ROW EXECUTE FUNCTION load_notify()`

func runInserts(ctx context.Context, e *env) (*insertsResult, error) {
	o := e.opts
	res := &insertsResult{Workers: o.insertWorkers, Seconds: o.insertDuration.Seconds()}
	names := []string{dbPlain, dbNotify, dbTriggers}
	if o.insertServed {
		names = append(names, dbServed)
	}
	urls := map[string]string{}
	for _, name := range names {
		if err := createDB(ctx, e.baseURL, name); err != nil {
			return nil, err
		}
		if e.cluster == nil {
			defer func() {
				if err := dropDB(context.WithoutCancel(ctx), e.baseURL, name); err != nil {
					e.progress("drop database %s: %v", name, err)
				}
			}()
		}
		u, err := e.dbURLFor(name)
		if err != nil {
			return nil, err
		}
		urls[name] = u
		if err := prepareDB(ctx, u, o.fkIndexes); err != nil {
			return nil, err
		}
		switch name {
		case dbPlain:
		case dbNotify:
			if err := execSQL(ctx, u, notifyOnlySQL); err != nil {
				return nil, fmt.Errorf("install the NOTIFY-only trigger: %w", err)
			}
		default:
			if _, err := e.notifierCmd(ctx, u, "migrate", "up"); err != nil {
				return nil, err
			}
		}
	}

	e.progress("inserts: %d workers for %s without triggers", o.insertWorkers, o.insertDuration)
	plain, err := e.insertLoopStats(ctx, dbPlain, urls[dbPlain])
	if err != nil {
		return nil, err
	}
	plain.Name = "no triggers"
	e.progress("inserts: %d workers for %s with a NOTIFY-only trigger", o.insertWorkers, o.insertDuration)
	notify, err := e.insertLoopStats(ctx, dbNotify, urls[dbNotify])
	if err != nil {
		return nil, err
	}
	notify.Name = "NOTIFY-only trigger (pg_eventserv style)"
	e.progress("inserts: %d workers for %s with the notifier's triggers", o.insertWorkers, o.insertDuration)
	trig, err := e.insertLoopStats(ctx, dbTriggers, urls[dbTriggers])
	if err != nil {
		return nil, err
	}
	trig.Name = "notifier triggers (notifier off)"
	res.Runs = []insertRun{plain, notify, trig}
	res.Ratio = ratio(trig.TxRate, plain.TxRate)
	res.RatioNotify = ratio(notify.TxRate, plain.TxRate)
	if o.insertServed {
		e.progress("inserts: %d workers for %s with triggers, notifier serving one dashboard", o.insertWorkers, o.insertDuration)
		served, err := insertServed(ctx, e, urls[dbServed])
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, served)
		res.RatioServed = ratio(served.TxRate, plain.TxRate)
	}
	return res, nil
}

// insertServed is insertLoop with the notifier running on the database and one
// dashboard of account 1 reading every event.
func insertServed(ctx context.Context, e *env, dbURL string) (insertRun, error) {
	srv, token, err := e.serveAccount1(ctx, "inserts", dbURL)
	if err != nil {
		return insertRun{}, err
	}
	defer e.stopServer(srv)
	conn, err := dial(ctx, srv.addr, token)
	if err != nil {
		return insertRun{}, err
	}
	var got atomic.Int64
	var reader sync.WaitGroup
	reader.Go(func() {
		_, _ = readFrames(conn, time.Now(), func(int64, int64, int, time.Duration) { got.Add(1) })
	})
	defer func() {
		_ = conn.Close()
		reader.Wait()
	}()
	if err := srv.awaitSubscribers(ctx, 1, 30*time.Second); err != nil {
		return insertRun{}, err
	}
	if err := e.stats.reset(ctx); err != nil {
		return insertRun{}, err
	}
	cpu0, _ := srv.cpu()
	run, err := insertLoop(ctx, dbURL, e.opts.insertWorkers, e.opts.insertDuration)
	if err != nil {
		return insertRun{}, err
	}
	cpu1, _ := srv.cpu()
	// Let the dashboard catch up, so Delivered says whether it kept up.
	deadline := time.Now().Add(drainTimeout)
	for got.Load() < run.Tx && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	run.Name = "notifier triggers + notifier serving 1 dashboard"
	run.NotifierCPU = (cpu1 - cpu0).Seconds()
	run.Delivered = got.Load()
	if run.Stmts, err = e.stats.read(ctx, dbServed); err != nil {
		return insertRun{}, err
	}
	return run, nil
}

// insertLoopStats is insertLoop on database name with its statement statistics.
func (e *env) insertLoopStats(ctx context.Context, name, dbURL string) (insertRun, error) {
	if err := e.stats.reset(ctx); err != nil {
		return insertRun{}, err
	}
	run, err := insertLoop(ctx, dbURL, e.opts.insertWorkers, e.opts.insertDuration)
	if err != nil {
		return insertRun{}, err
	}
	run.Stmts, err = e.stats.read(ctx, name)
	return run, err
}

// insertLoop runs workers connections that each commit one appointment per
// transaction, back to back, for d; it reports transactions per second.
func insertLoop(ctx context.Context, dbURL string, workers int, d time.Duration) (insertRun, error) {
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		c, err := connect(ctx, dbURL)
		if err != nil {
			return insertRun{}, err
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
		if _, err := insertOne(ctx, c); err != nil { // prepare the statement
			return insertRun{}, err
		}
	}
	lat := make([][]time.Duration, workers)
	busy0 := readMachineCPU()
	began := time.Now()
	end := began.Add(d)
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range conns {
		g.Go(func() error {
			for {
				t := time.Now()
				if t.After(end) {
					return nil
				}
				if _, err := insertOne(gctx, c); err != nil {
					return err
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		})
	}
	if err := g.Wait(); err != nil {
		return insertRun{}, err
	}
	elapsed := time.Since(began)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return insertRun{
		Tx:      int64(len(all)),
		TxRate:  float64(len(all)) / elapsed.Seconds(),
		Latency: summarise(all),
		Busy:    busyPercent(busy0, readMachineCPU()),
	}, nil
}

// execSQL runs sql (several statements allowed) on a new connection to dbURL.
func execSQL(ctx context.Context, dbURL, sql string) error {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// connect opens one connection.
func connect(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return c, nil
}
