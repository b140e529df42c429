// Package hub fans enriched events out to the connections of their account: one room
// per account (orders.account.{id}) holding the account's recent messages, and a
// cursor per connection into it.
//
// # Lifecycle
//
// New takes the log position the notifier starts from; every event after it passes
// through Publish. Subscribe joins a room at a position (live, or a client's ?since);
// the connection's writer then alternates Poll (take what is due) and waiting on Wake.
// A subscription ends with Close, a slow-consumer kick, or Hub.Close at shutdown.
//
// Poll returns ErrResync, the subscription staying live, when its cursor had to skip
// events the log no longer holds: retention pruned part of a log replay's range
// (ReplayFunc reports ErrPruned; the cursor moves to the room's floor, above which
// the ring holds everything), or the log was reset (Hub.Reset: the log's ids went
// back and were rebased above a head; rooms are emptied, the hub's head becomes that
// head, and every live cursor moves there). The connection tells its client to
// reload its lists and keeps polling.
//
// # Concurrency
//
// Publish is called from one goroutine (the notifier's pipeline); Subscribe, Poll and
// Close from connection goroutines; Reset from any. Lock order: Hub.mu before room.mu.
// Publish holds Hub.mu shared; Subscribe, Reset and Close hold it exclusively, so
// each sees the head and the rooms between two Publish calls. Publish never waits for
// a connection: it appends to the room's ring and does a non-blocking send on each
// subscriber's one-slot wake channel.
//
// # Invariants
//
// Each message is encoded once (NewMessage) and the same bytes go to every connection;
// the ring is shared, so a connection costs a cursor, not a queue. A subscriber sees
// each of its account's events with id > its starting position exactly once, in id
// order, but for those an ErrResync says it skipped: Poll hands out messages strictly
// after the cursor and advances it. A cursor
// that falls behind the ring (a burst larger than the ring: catch-up after an outage,
// or a resume from far back) is served from the event log by ReplayFunc, so bursts
// lose nothing and disconnect nobody. A subscriber whose oldest undelivered message
// has waited longer than MaxLag is too slow: it is ended with ErrSlowConsumer, so a
// slow client can neither hold memory nor slow anyone else. The wait counts from the
// message's publishing or, if later, from when the subscription joined or last
// resynced: slowness is falling behind while served, never having been away, so a
// client resuming after a long absence is served what it missed. A message relayed
// from a client (Message.Origin) is never delivered, live or replayed, to the
// subscription of that origin: the sender does not get its own emit back.
package hub
