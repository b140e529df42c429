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
// Entries leave in strictly increasing id order, each id once. NOTIFY carries the
// entry itself; ids are drawn at COMMIT under a lock held until the commit is visible,
// so NOTIFYs arrive in id order and a payload whose id is cursor+1 is delivered as is.
// A larger id means a gap (a rolled-back id, or a notification missed): the log is read
// from the cursor, which returns every committed id below it. NOTIFY is only ever a
// shortcut: an idle check reads the log every IdleCheck, so a lost notification delays
// an event by at most that long.
package listen
