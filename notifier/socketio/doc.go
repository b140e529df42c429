// Package socketio serves /socket.io/: the Engine.IO v4 / Socket.IO v5 protocol that
// socket.io-client 4.x speaks, over the same hub as /ws, so that dashboards written
// against Socket.IO (io(url, {auth: {token}}), socket.on("appointments.created", …))
// work unchanged. Only the default namespace "/" exists, and events flow from the
// server to the client: EVENT packets `42["<name>",<data>,"<offset>"]`, one per hub
// message, where offset is the message's log id as a decimal string.
//
// Relay (seed 003, off unless Config.RelayEvents and Config.RelayFunc are set): a
// connected client's socket.emit(name, object) of a relayed event is appended to the
// event log by RelayFunc, for the other sockets of the token's account, on every
// instance, in log order with the database's events, and replayed on recovery like
// them; the sender's own socket (its socket id, the log row's origin) never gets it.
// An emit too large, over the socket's relay budget, whose first argument is not an
// object, or that the log refuses gets EventError with a code, and the socket goes
// on; an emit that asks for an ack is acked with {"ok":true,"id":<event id>} or the
// same error. Other client events stay ignored.
//
// # Lifecycle
//
// A handshake (a GET without sid, over polling or WebSocket) opens an Engine.IO
// session and starts its loop, unless it is refused with an HTTP error and the
// Engine.IO JSON body, before any upgrade: 503 on a connection over
// http.max_connections (Config.OverLimit), 503 past Config.MaxUnauthenticated
// sessions without a connected socket, 429 past Config.MaxUnauthenticatedPerAddress
// of them from the client's address, 503 at shutdown (an upgrade over the limit
// gets 503 too, and the client goes on polling). Polling sessions may upgrade to
// WebSocket (2probe, 3probe, a noop to the pending GET, 5). The client then sends
// CONNECT with its token in auth.token, else the handshake's Authorization: Bearer
// header counts.
// A refused token gets CONNECT_ERROR {"message":…,"data":{"code":…}}, which the
// client does not retry. An accepted one subscribes to the account's room and is
// acknowledged with a sid and a pid. A CONNECT holding a pid minted for the same
// account (and, when the client saw an event, its last offset; else the position
// the pid holds) recovers, on any instance that shares Config.RecoverySecret: the
// ack repeats the sid and pid, so the client sees socket.recovered === true, and
// the subscription then delivers what the client missed, from the hub's ring or
// the event log. (Node sends the missed events before the ack; the client accepts
// both orders, and acking first lets the replay stream from the log in pages.) A
// CONNECT whose pid cannot recover (minted with another key, as after a restart
// without a shared secret, or for another account; a malformed pid or offset; an
// offset the log no longer holds) gets a new sid and pid, so recovered === false,
// and EventResync before any event, so that clients that never look at
// socket.recovered still reload; the reason is logged, never the pid. A CONNECT
// without a pid is a fresh client and gets no EventResync. When the subscription
// reports hub.ErrResync later (the log lost events it was still due), EventResync
// is queued in order with the events and the socket goes on.
//
// A socket ends when its token expires or the hub drops it as a slow consumer
// (EventDisconnect with the reason, then DISCONNECT: the client does not come back
// by itself), when the client disconnects, or with its session. A session ends when
// the client closes it, its transport drops, it misses a pong for PingTimeout, it
// has no connected socket for ConnectTimeout, on a protocol error (a malformed or
// binary packet, an overlapping poll), when the client sends more than
// Config.MaxClientPackets packets a second (but for the pongs the heartbeat asks
// for) or a message over its payload limit, or at shutdown (hub.Close or Handler.Close:
// EventDisconnect, then the transport closes without DISCONNECT so that the client
// reconnects elsewhere and recovers). A WebSocket ended by a protocol error (a
// malformed or binary packet, a second CONNECT, too many CONNECTs) first gets a
// close frame without a status code, as the reference server sends (the client
// reports 1005); other ends but the shutdown just close the connection. A polling
// session whose client stopped polling is reaped by the heartbeat: its ping is
// never fetched, so no pong comes.
//
// # Concurrency
//
// Each session has one loop goroutine that owns its state and is the only writer
// of its transports; everything else talks to it over channels and one input
// queue, which applies a session's inputs in the order they arrived (arrival.go,
// order.go) rather than in the order net/http's goroutines reach it. A request is
// stamped when its connection was accepted (Handler.ConnContext, for the
// connection's first request) or else when it registers with its session at the top
// of ServeHTTP, before any body is read; the loop applies requests in stamp order,
// holding one back, at most arrivalWait, while a request stamped before it may still
// come (one registered with the session, or an accepted connection from the same
// client address that has not reached a session yet). So a GET sent before a POST
// carrying the close packet is pending when the session closes (and gets the noop)
// even when the POST's goroutine runs first. What requests bring goes into the
// queue in the request's goroutine as soon as it is read: a polling GET (with a
// reply channel it then waits on) once its headers are, a POST's body once it is
// whole (answered "ok" when the loop takes it), a WebSocket asking to upgrade once
// its handshake is done, each frame as its reader reads it, and a request's reason
// to end the session (an overlapping poll, a malformed POST), stamped when it is
// found. Frames are not stamped: a WebSocket's frames are taken in the order read,
// once the loop has taken the input that brought the WebSocket, before any queued
// request; and while a probe is open a request is applied only once the probe's
// reader has handed on every byte the kernel had received (on Linux over TCP
// without TLS: until the upgrade the reader reads the raw socket, and FIONREAD
// tells what waits), so a GET that arrives after the probe's 5 meets the upgraded
// session (and gets 400) even when the reader had not read the 5 yet. A WebSocket's
// reader reads ahead of the loop, up to maxReadAhead frames and payloadLimit bytes.
// What is queued when the loop ends is answered as a session already gone (400
// "Session ID unknown"). Without ConnContext every request is stamped at
// registration, which orders requests on different connections by when their
// goroutines ran; without Handler.Arrivals, a connection whose first request is for
// another route holds the same client's polling requests back up to arrivalWait.
// A connected socket has a feeder goroutine, the only caller of its subscription's
// Subscribe and Poll, which may block on the event log: the loop asks it for one
// batch at a time, when its transport can take one, so that the loop keeps
// answering polls and pings meanwhile. A session that relays has one relay goroutine, started at its first
// relayed emit: the loop hands it each accepted emit over a channel of
// Config.RelayBurst (full: EventError), and it calls RelayFunc for them in order, one
// at a time, each within Config.RelayTimeout, and hands results back; it never holds
// the loop. The loop waits for its feeders and, at its end, for the relay goroutine to
// relay what is queued, at most RelayTimeout more; Handler.Wait waits for loops,
// feeders and readers.
//
// Lock order: the package has three mutexes. Handler.mu guards the session map and
// the counts of sessions without a connected socket (in all and by address; the
// loop moves its session out of them at the ack and back at a leave);
// Handler.arrMu guards the accepted connections whose first request has not
// reached its session (arrival.go); session.inMu guards the session's input queue,
// its registered requests and its readers' counts of queued frames. All are
// leaves, never held together: nothing else is locked, no channel operation or hub
// call happens, while one is held. A request registers with its session (inMu)
// before it leaves the unread connections (arrMu), and a loop looks at them in the
// other order, so it sees the request in one or the other. The hub's own locks
// (Hub.mu before room.mu) are taken inside hub calls made by loops and feeders,
// which hold no lock of ours.
//
// # Invariants
//
//   - Nothing of the account is sent before its token is verified, and only the
//     token's account's events in Config.Events are sent.
//   - Every EVENT that carries a hub message ends with its offset, and a socket's
//     events are in log order without gaps or duplicates, across a recovery too
//     (the subscription's cursor guarantees it; the loop keeps one ordered queue
//     per session, which the upgrade hands from polling to the WebSocket). The
//     only gaps are those EventResync marks: events the log no longer holds, or
//     missed before a CONNECT whose recovery was refused.
//   - Memory per session is bounded: the loop asks for a batch (at most the hub's
//     BatchSize) only when its queue is empty and its transport can write (a
//     WebSocket, or a pending GET). What a client has not taken stays in the hub's
//     shared ring, and a client that falls MaxLag behind is ended by the hub
//     (hub.ErrSlowConsumer) rather than buffered. A packet and a POST are at most
//     Config.MaxPayload bytes, and at most maxUnauthenticatedPayload (what a CONNECT
//     needs) while the session has no connected socket; CONNECT attempts per
//     session are capped. Sessions without a connected socket are capped in
//     number and live at most ConnectTimeout, and every body must arrive within
//     the server's ReadTimeout: what a client without a token holds is bounded
//     in count, bytes and time.
//   - Event bytes are the hub's shared Message.Data: a WebSocket frame is written
//     from a per-kind prefix, the data and a small offset suffix, with no copy of
//     its own; a polling answer copies them once into its body.
//   - The Engine.IO sid is random and secret; the Socket.IO sid is derived from the
//     pid by HMAC and so never equals it. pids are HMAC-signed (nonce, position,
//     account); no token, sid or pid is ever logged.
//   - Client events and acks are ignored, but the emits of Config.RelayEvents by a
//     connected socket, which go to the log only through RelayFunc with the verified
//     token's account (never an account the payload names) and the socket's id;
//     binary packets close the session. What a socket may have pending for relay is
//     bounded (RelayBurst emits of RelayMaxBytes), and so is what it is told back:
//     one answer per emit, and emits over the relay budget count against
//     MaxClientPackets, which closes a flood.
package socketio
