package metrics

// The families every transport (/ws, Socket.IO) shares, labelled by transport, so one
// query covers both and their help texts cannot drift apart.

// Connections registers the gauge of transport's open, authenticated connections.
func (r *Registry) Connections(transport string) *Gauge {
	return r.Gauge("notifier_connections", "Open authenticated connections (a /ws WebSocket, a connected Socket.IO socket), by transport.", "transport", transport)
}

// Refused registers the counter of transport's handshakes refused for reason.
func (r *Registry) Refused(transport, reason string) *Counter {
	return r.Counter("notifier_connections_refused_total", "Refused handshakes (and Socket.IO CONNECTs), by transport and reason.", "transport", transport, "reason", reason)
}

// Closed registers the counter of transport's connections the server ended for reason.
func (r *Registry) Closed(transport, reason string) *Counter {
	return r.Counter("notifier_connections_closed_total", "Connections the server ended, by transport and reason.", "transport", transport, "reason", reason)
}

// Delivered registers the counters of events transport wrote to its connections, by
// event name (see Indexed).
func (r *Registry) Delivered(transport string) *Indexed {
	return r.Indexed("notifier_events_delivered_total", "Events written to connections, by event name and transport.", "event", "transport", transport)
}
