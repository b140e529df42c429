// Package notifier wires the stages that turn a committed row into a live event:
//
//	trigger (SQL, at COMMIT) -> notifier.events + NOTIFY
//	  -> listen   (ordered log entries, catch-up after any outage)
//	  -> pipeline (decode each entry, enrich a burst in one round trip, encode once)
//	  -> hub      (Message encoded once; one room per account; replays via pipeline)
//	  -> ws / socketio (a cursor into the room and one writer per connection)
//
// In a fleet (fleet.advertise_url) only the leader runs listen and pipeline; the
// others take the leader's messages from package fleet straight into their hubs
// (source.go).
//
// # Lifecycle
//
// Run connects, reads the log's head (where live delivery starts) and the installed
// events, then runs the source (listener and pipeline, or a fleet's stream), the
// pruner and the HTTP server until its context ends or one of them fails. When the
// context ends, /readyz answers 503 "draining" for http.drain_delay while everything
// still serves; then the source, the pruner and the HTTP server stop together: the
// server stops accepting, every subscription ends (close 1001 on /ws, a disconnect
// notice on Socket.IO), open connections get http.shutdown_timeout to finish, and a
// fleet's leader releases its lease so that a follower takes over at once.
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
