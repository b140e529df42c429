// Command notifier-load measures the notifier black-box, through its public contract
// only: it starts the real `notifier` binary as a subprocess (after `notifier migrate
// up` on a throwaway PostgreSQL, or the database --database-url names), talks to it
// over WebSocket and PostgreSQL, and prints figures:
//
//  1. latency: commit-to-receipt for WebSocket clients against a bare LISTEN client;
//  2. throughput: delivered messages/s and the notifier's CPU per message in a flood;
//  3. memory: resident memory per idle connection;
//  4. inserts: the app's transactions/s with and without the triggers.
//
// With --peer-bin, scenarios 1 to 3 run instead side by side with pg_eventserv (raw
// NOTIFY relayed to WebSockets), alternately, on one workload and database.
//
// Everything listens on 127.0.0.1 and is bounded in count and time. docs/performance.md
// has figures and how to reproduce them.
//
// Exit status: 0 on success, 1 when a scenario fails, 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier-load:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
