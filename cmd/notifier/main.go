// Command notifier turns committed database changes into live events on dashboards.
//
//	notifier serve                  run the service
//	notifier migrate up|down|status install, remove or inspect the triggers and event log
//	notifier rules sql|check        write (or check) the migration of a rule file
//	notifier token --account N      print a token for testing
//	notifier demo                   a throwaway Postgres, the clinic schema, the service,
//	                                a simulated clinic and the dashboard at /
//	notifier watch --account N      print a running notifier's events in the terminal
//
// Exit status: 0 on success, 1 on a runtime failure, 2 on bad configuration or usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgnotifier/notifier/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		if errors.Is(err, config.ErrInvalid) || errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
