// Package contract declares, once for both transports and `notifier watch`, what the
// server puts on the wire besides the database's events: the names of its own events
// and the reasons it ends a connection or a socket, with their /ws close codes. The
// README's table of reasons is checked against Reasons.
package contract

// The notifier's own events.
const (
	// EventResync: the client missed events (its position is older than the log, or
	// the log lost events it was due); reload the lists. /ws: a frame
	// {"event":"notifier.resync"}; Socket.IO: an event with payload {}.
	EventResync = "notifier.resync"
	// EventDisconnect: Socket.IO only, right before the server ends a socket, with
	// {"reason":"<reason>"} (/ws says it in the close frame).
	EventDisconnect = "notifier.disconnect"
	// EventError: Socket.IO only, a relayed emit was refused, with {"code":…}.
	EventError = "notifier.error"
)

// Reasons the server ends a connection or socket with.
const (
	ReasonTokenExpired = "token expired"
	ReasonSlowConsumer = "slow consumer"
	ReasonShutdown     = "server shutting down"
	ReasonServerError  = "server error"
	ReasonClientFlood  = "too many client messages"
)

// /ws close codes of the reasons (RFC 6455 §7.4: 4000-4999 are the application's).
const (
	CloseShutdown     = 1001 // going away
	CloseClientFlood  = 1008 // policy violation
	CloseTokenExpired = 4001
	CloseSlowConsumer = 4008
	CloseServerError  = 4011
)

// Reason is one way the server ends a client, on each transport.
type Reason struct {
	Name     string // the reason as the client reads it
	WSClose  int    // the /ws close code
	SocketIO string // what a Socket.IO client sees
	Do       string // what the client should do
}

// Reasons lists every reason, in the README's order.
func Reasons() []Reason {
	return []Reason{
		{ReasonTokenExpired, CloseTokenExpired, "`notifier.disconnect`, then a server disconnect", "reconnect with a fresh token (and `since`, or let recovery resume)"},
		{ReasonSlowConsumer, CloseSlowConsumer, "`notifier.disconnect`, then a server disconnect", "reconnect and resume; the client fell more than `hub.max_lag` behind"},
		{ReasonShutdown, CloseShutdown, "`notifier.disconnect`, then the transport closes (the client reconnects by itself and recovers)", "reconnect, to another instance, and resume"},
		{ReasonServerError, CloseServerError, "the session closes (the client reconnects and recovers)", "reconnect and resume"},
		{ReasonClientFlood, CloseClientFlood, "the session closes (past `socketio.max_client_packets`)", "send less: the server reads only pings and a few messages"},
	}
}
