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
// A reconnect after entries were emitted first checks that the log still holds the
// last one (eventlog.Holds). If the log went back (a crash with asynchronous commit, a
// failover, a restore), ids the listener emitted may name other events: it logs an
// error and calls Config.OnDiverged, which rebases the log above the cursor, before it
// reads on from the same cursor.
//
// # Concurrency
//
// One goroutine: Run. Notifications are collected by the pgconn OnNotification hook,
// which pgx calls on the goroutine that reads the socket, so no lock is needed. The
// hook also collects those that arrive while a log read is running, which no later
// WaitForNotification reports: Run reads again before it waits whenever one announces
// an id above the cursor.
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
// log every IdleCheck, so a lost notification delays an event by at most that long. A
// payload that is not ours costs no read: it is counted (Config.OnForeign) and logged
// at most once per 10s, so a role that can only connect cannot flood the log.
package listen
