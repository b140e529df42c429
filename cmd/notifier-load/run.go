package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// run parses args, sets up the environment, runs the chosen scenarios in order and
// writes the report to stdout; progress goes to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	// Both ends of every connection live on this machine: the tool's and the
	// notifier's descriptors, plus headroom for the database and logs.
	nofile, err := raiseNoFile(uint64(2*max(opts.idleConns, opts.clients, opts.floodClients, opts.sideClients) + 1024))
	if err != nil {
		return err
	}
	if need := uint64(opts.idleConns + 256); opts.has("memory") && nofile < need {
		return fmt.Errorf("%w: --idle-conns %d needs an open files limit of %d, the hard limit is %d", errUsage, opts.idleConns, need, nofile)
	}

	var peer string
	if opts.peerBin != "" {
		if peer, err = peerVersion(ctx, opts.peerBin); err != nil {
			return err
		}
	}

	rep := &report{Started: time.Now().UTC(), Machine: readMachine(), NoFile: nofile, Options: opts.values, LoadStart: loadAvg()}
	e, err := setup(ctx, opts, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	rep.Postgres = e.pg
	rep.Revision = e.rev

	if slices.ContainsFunc(opts.scenarios, opts.sideScenario) {
		if rep.Side, err = runSide(ctx, e, peer); err != nil {
			return fmt.Errorf("side by side: %w", err)
		}
	}
	for _, s := range opts.scenarios {
		if opts.sideScenario(s) {
			continue
		}
		var err error
		switch s {
		case "latency":
			rep.Latency, err = runLatency(ctx, e)
		case "throughput":
			rep.Throughput, err = runThroughput(ctx, e)
		case "memory":
			rep.Memory, err = runMemory(ctx, e)
		case "inserts":
			rep.Inserts, err = runInserts(ctx, e)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	rep.LoadEnd = loadAvg()
	if opts.jsonFile != "" {
		f, err := os.Create(opts.jsonFile)
		if err != nil {
			return err
		}
		if err := rep.writeJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if opts.jsonOut {
		return rep.writeJSON(stdout)
	}
	return rep.writeText(stdout)
}
