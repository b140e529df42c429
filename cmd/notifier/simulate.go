package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/internal/simulate"
)

// simulatorApplicationName is the simulator's application_name in pg_stat_activity.
const simulatorApplicationName = "notifier-demo-simulator"

// startSimulator runs the demo's simulated clinic on dbURL at rate changes per second
// (none when rate is 0) until ctx ends or the returned stop is called; stop waits for
// it. A simulator that fails is logged and the demo goes on without it: the
// notifier still serves whatever else writes to the database.
func startSimulator(ctx context.Context, dbURL string, rate float64, logger *slog.Logger) (stop func()) {
	if rate == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := runSimulator(ctx, dbURL, rate, logger); err != nil {
			logger.With("component", "simulate").ErrorContext(ctx, "simulator stopped", "error", err)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

func runSimulator(ctx context.Context, dbURL string, rate float64, logger *slog.Logger) error {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return errors.New("simulator: cannot parse the database URL") // the error would quote it
	}
	pc.MaxConns = 2
	pc.ConnConfig.RuntimeParams["application_name"] = simulatorApplicationName
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	sim, err := simulate.New(pool, simulate.Config{Rate: rate, Logger: logger})
	if err != nil {
		return err
	}
	return sim.Run(ctx)
}
