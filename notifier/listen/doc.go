// Package listen owns the LISTEN connection and turns it into an ordered stream of
// event-log entries.
//
// # Lifecycle
//
// Run connects on a dedicated connection (never a pooled one), runs LISTEN, reads the
// log from its cursor (catch-up), reports ready, then waits for notifications. When the
// connection fails it reports not ready, waits with jittered exponential backoff and
// starts again from the same cursor, forever, until its context ends.
//
// # Concurrency
//
// One goroutine: Run. Notifications are collected by the pgconn OnNotification hook,
// which pgx calls on the goroutine that reads the socket, so no lock is needed.
// Entries go to a bounded channel; when it is full Run waits (the log, not memory,
// holds the backlog: nothing is dropped).
//
// # Invariants
//
// Entries leave in strictly increasing id order, each id once, and only ever come from
// the log: a NOTIFY payload is a wake-up whose id says whether the log is worth reading
// (id > cursor), never an event by itself. So a notification forged by hand (any
// database user can NOTIFY) costs at most one read and cannot inject, reroute or hide
// an event. Ids are drawn at COMMIT under a lock held until the commit is visible, so
// reading "id > cursor" never skips a row that commits later. An idle check reads the
// log every IdleCheck, so a lost notification delays an event by at most that long.
package listen
