// Package ws serves GET /ws: a plain WebSocket that pushes one text frame per event,
// {"id":N,"event":"name","data":{...}}, to dashboards of the token's account.
//
// # Lifecycle
//
// A handshake on a connection over http.max_connections (connlimit.Limiter) is refused
// with 503 first. The handler authenticates the handshake (Authorization: Bearer,
// or ?access_token), parses ?since and ?events, checks the origin, subscribes to
// the account's room (a connection limit or a database error is still an HTTP
// answer then), upgrades, and runs a read pump and a write pump until the client
// goes, the token expires (close 4001), the client is too slow (close 4008),
// floods (1008: more messages and pings together than Config.MaxClientMessages a
// second), sends a message longer than Config.ReadLimit,
// fragments included (1009), or the server shuts down (close 1001). A resume from
// a position the log no longer holds, and events skipped mid-stream
// (hub.ErrResync: pruned under a replay, or the log was reset), are told with a
// {"event":"notifier.resync"} frame; the connection goes on.
//
// # Concurrency
//
// Two goroutines per connection, both started once the handshake is done (the
// handler then returns, so net/http's goroutine and the request are not held): a
// writer writes every data frame and ping (gorilla's one-writer rule); a reader
// discards client messages so that pongs
// and close frames are seen, and answers pings and floods with WriteControl, which
// gorilla allows beside the writer. The writer polls the subscription's cursor and
// waits on its wake channel; the hub never waits for it.
//
// # Invariants
//
// Nothing is sent before the token is verified, and only the token's account's events
// in the configured allowlist are sent. Frames are the hub's shared bytes, never
// re-encoded per connection.
package ws
