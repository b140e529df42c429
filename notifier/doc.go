// Package notifier wires the stages that turn a committed row into a live event:
//
//	trigger (SQL, at COMMIT) -> notifier.events + NOTIFY
//	  -> listen   (ordered log entries, catch-up after any outage)
//	  -> decode   (entry -> Change)
//	  -> enrich   (Changes -> Events, a few queries per burst)
//	  -> hub      (Event -> Message encoded once; one room per account)
//	  -> ws / socketio (a cursor into the room and one writer per connection)
//
// # Lifecycle
//
// Run connects, reads the log's head (where live delivery starts), then runs the
// listener, the pipeline, the pruner and the HTTP server until its context ends or one
// of them fails. Shutdown: stop accepting, end every subscription (close 1001), wait
// for connections to finish within http.shutdown_timeout, then stop the listener.
//
// # Concurrency
//
// One goroutine each for the listener, the pipeline (decode, enrich, publish: one
// burst at a time, so order is kept) and the pruner; the HTTP server's per connection.
// A bounded channel between listener and pipeline; when it fills, the listener waits
// and the backlog stays in PostgreSQL.
//
// # Invariants
//
// Events are published in log order, which is commit order, each once. A burst whose
// enrichment fails is retried, never skipped. A client resuming with ?since gets the
// log's events after it, then live ones, with no gap and no duplicate (see hub).
package notifier
