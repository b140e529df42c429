package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// connectAuth is the CONNECT payload: the client's auth option, plus pid and offset
// when it tries to recover. Fields are raw so that a wrong type refuses or ignores
// that field instead of failing the whole packet.
type connectAuth struct {
	Token  json.RawMessage `json:"token"`
	PID    json.RawMessage `json:"pid"`
	Offset json.RawMessage `json:"offset"`
	Since  json.RawMessage `json:"since"` // an event id (number or numeric string): resume after it, as /ws?since
}

// parseSince reads auth.since: absent is -1 (live); else a non-negative event id,
// as a JSON number or a string of digits.
func parseSince(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, true
	}
	text := string(raw)
	if s, ok := jsonString(raw); ok {
		text = s
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// jsonString returns raw as a Go string when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Pre-encoded Socket.IO packets.
var (
	invalidNamespace = []byte(`{"message":"Invalid namespace"}`)
	resyncData       = []byte(`{}]`)
)

// message handles a Socket.IO packet carried by an Engine.IO message.
func (s *session) message(data []byte) {
	p, err := parseSIOPacket(data)
	if err != nil {
		s.close("parse error", true)
		return
	}
	name, argsAt, relay := s.relayable(p)
	if !relay && !s.spend() {
		return
	}
	switch {
	case p.Type == sioBinaryEvent || p.Type == sioBinaryAck:
		s.close("binary packet", true)
		return
	case p.Type == sioConnectError: // only servers send it
		s.close("parse error", true)
		return
	case p.Namespace != "/":
		// Only "/" exists. Packets for other namespaces are ignored; a CONNECT gets
		// the error the client shows for an unknown namespace, which names it, so
		// only a namespace that needs no escaping is echoed (see echoable). A CONNECT
		// to any other goes unanswered, as its packets do.
		if p.Type == sioConnect && s.countConnect() && echoable(p.Namespace) {
			s.queue(appendSIO(nil, sioConnectError, p.Namespace, invalidNamespace))
		}
		return
	}
	switch p.Type {
	case sioConnect:
		if s.state != socketIdle {
			s.close("duplicate connect", true)
			return
		}
		if s.countConnect() {
			s.connect(p.Data)
		}
	case sioDisconnect:
		if s.state != socketIdle {
			s.logger.Debug("socket disconnected", "reason", "client disconnect")
			s.leave()
		}
	case sioEvent, sioAck:
		if relay {
			s.clientEvent(p, name, argsAt)
		}
		// Other client events and acks are dropped; their ack ids go unanswered:
		// answering would let a client grow our queue at will. (A relayed emit's ack
		// is paced by the relay budget.)
	}
}

// echoable reports whether the client-chosen namespace nsp may be sent back as
// it is: made only of what a URL path carries unescaped (RFC 3986 pchar and "/"),
// less ' and & (and the comma, which ends a namespace): letters, digits and
// -._~!$()*+;=:@%/. A packet header has no escaping, so <, >, quotes,
// backslashes, control characters and non-ASCII never reach a response.
func echoable(nsp string) bool {
	for i := 0; i < len(nsp); i++ {
		switch c := nsp[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/-._~!$()*+;=:@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// countConnect counts a CONNECT; too many close the session (a client sends one per
// Engine.IO session, a fresh session when it connects again).
func (s *session) countConnect() bool {
	s.connects++
	if s.connects > maxConnectAttempts {
		s.close("too many connects", true)
		return false
	}
	return true
}

// connect authenticates a CONNECT and starts the socket's feeder, which joins the
// account's room: from the client's offset when the packet holds a pid minted for
// the same account, live otherwise. A pid that cannot recover is remembered as
// refused, for connected to answer with EventResync.
func (s *session) connect(data []byte) {
	var a connectAuth
	if len(data) > 0 {
		_ = json.Unmarshal(data, &a) // an object, checked by the parser
	}
	token, ok := jsonString(a.Token)
	if !ok || token == "" {
		token = s.header
	}
	claims, err := s.hd.verifier.Verify(token, s.hd.cfg.NowFunc())
	if err != nil {
		s.logger.Debug("connect refused", "reason", err.Error())
		if errors.Is(err, auth.ErrKeysUnavailable) {
			s.hd.m.refused[refusedUnavailable].Inc()
		} else {
			s.hd.m.refused[refusedAuth].Inc()
		}
		b, _ := json.Marshal(connectError{Message: err.Error(), Data: connectErrorData{Code: errorCode(err)}})
		s.queue(appendSIO(nil, sioConnectError, "/", b))
		return
	}
	since, ok := parseSince(a.Since)
	if !ok {
		s.hd.m.refused[refusedAuth].Inc()
		b, _ := json.Marshal(connectError{Message: "auth.since must be a non-negative event id", Data: connectErrorData{Code: "bad_since"}})
		s.queue(appendSIO(nil, sioConnectError, "/", b))
		return
	}
	s.claims = claims
	s.logger = s.logger.With("account_id", claims.AccountID)
	s.pid, s.refusal = "", ""
	if carriesPID(a.PID) {
		since = -1
		pid, position, err := s.hd.rec.resume(a, claims.AccountID)
		if err != nil {
			s.refusal = err.Error()
		} else {
			s.pid, since = pid, position
		}
	}
	s.state = socketConnecting
	s.gen++
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.want = make(chan []*hub.Message, 1)
	s.wantOut = false
	s.conns.Add(1)
	go func(gen int, account int64, pid string, want <-chan []*hub.Message) {
		defer s.conns.Done()
		s.feed(ctx, gen, account, since, pid, want)
	}(s.gen, claims.AccountID, s.pid, s.want)
}

type connectError struct {
	Message string           `json:"message"`
	Data    connectErrorData `json:"data"`
}

type connectErrorData struct {
	Code string `json:"code"`
}

// feed runs in the socket's feeder goroutine, the only caller of the
// subscription's Poll, which may read the log: it subscribes, picks the pid the
// socket is acked with (pid, the recovering one, unless the subscription could not
// resume from it; else a new one) and so its socket id, which the subscription skips
// the relayed events of, reports the result, then hands the loop one batch each time
// the loop asks for one (want). A Poll error ends it, but for hub.ErrResync, which
// it hands over like a batch. It never touches the session's fields.
func (s *session) feed(ctx context.Context, gen int, account, since int64, pid string, want <-chan []*hub.Message) {
	sub, resync, err := s.hd.hub.Subscribe(ctx, account, s.hd.cfg.Events, since)
	res := connectResult{gen: gen, sub: sub, resync: resync, err: err}
	if sub != nil {
		res.position = sub.Cursor() // the first event this socket gets follows it
		if pid == "" || resync {
			pid = s.hd.rec.newPID(account, res.position)
		}
		res.pid = pid
		sub.SetOrigin(s.hd.rec.socketID(pid))
	}
	select {
	case s.results <- res:
	case <-ctx.Done():
		if sub != nil {
			sub.Close()
		}
		return
	}
	if err != nil {
		return
	}
	var buf []*hub.Message
	select {
	case buf = <-want:
	case <-ctx.Done():
		return
	}
	for {
		batch, err := sub.Poll(ctx, buf)
		if err == nil && len(batch) == 0 {
			select {
			case <-sub.Wake(): // also when the subscription ends: Poll reports why
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case s.feeds <- fed{gen: gen, msgs: batch, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil && !errors.Is(err, hub.ErrResync) {
			return
		}
		// ErrResync leaves the subscription live. While nothing more is due, wait for
		// the hub before the loop's next ask: the loop then asks without waking this
		// goroutine, and a burst costs two wake-ups (this one, the loop), not three.
		if !sub.Due() {
			select {
			case <-sub.Wake():
			case <-ctx.Done():
				return
			}
		}
		select {
		case buf = <-want:
		case <-ctx.Done():
			return
		}
	}
}

// connected finishes a CONNECT with the feeder's subscription.
func (s *session) connected(res connectResult) {
	if res.gen != s.gen || s.state != socketConnecting || s.closing != "" {
		if res.sub != nil {
			res.sub.Close()
		}
		return
	}
	if res.err != nil {
		s.subscribeFailed(res.err)
		return
	}
	s.sub = res.sub
	if s.pid != "" && res.resync {
		s.refusal = "offset outside the log"
	}
	switch {
	case s.refusal != "":
		// Not recovered: the pid could not be verified, or the log no longer reaches
		// back to the offset. A new pid tells the client so (recovered === false), and
		// EventResync, before any event, tells it that it missed some: clients that
		// never look at socket.recovered reload all the same.
		s.ack(res.pid) // a new one
		s.logger.Info("socket recovery refused", "reason", s.refusal)
		s.queueResync()
	case s.pid != "":
		// Recovered: the same sid and pid (the client sees recovered === true), then
		// what it missed, replayed by the subscription from its offset.
		s.ack(res.pid) // s.pid
		s.logger.Debug("socket recovered")
	default:
		s.ack(res.pid) // a new one
	}
}

// fedBatch takes a batch from the feeder.
func (s *session) fedBatch(f fed) {
	if f.gen != s.gen || s.state != socketConnected {
		return
	}
	s.wantOut = false
	for i, m := range f.msgs {
		if s.hd.cfg.Events.Has(m.Kind) { // always, as the hub filters by Config.Events
			s.out = append(s.out, outPacket{msg: m})
		}
		f.msgs[i] = nil
	}
	s.spare = f.msgs[:0]
	switch {
	case f.err == nil:
	case errors.Is(f.err, hub.ErrResync):
		// The subscription skipped events the log no longer holds and goes on: the
		// client reloads, in order after the events before the gap.
		s.logger.Info("socket resync", "reason", f.err.Error())
		s.queueResync()
	default:
		s.subscriptionEnded(f.err)
	}
}

// queueResync queues `42["notifier.resync",{}]`.
func (s *session) queueResync() {
	s.queue(append(eventPrefix(EventResync), resyncData...))
}

// subscribeFailed ends a CONNECT the hub could not serve. The transport is closed
// without a DISCONNECT, so the client reconnects and tries again.
func (s *session) subscribeFailed(err error) {
	s.leave()
	if errors.Is(err, hub.ErrShutdown) {
		s.close(ReasonShutdown, false)
		return
	}
	if errors.Is(err, hub.ErrConnectionLimit) || errors.Is(err, hub.ErrAccountConnectionLimit) {
		// A refusal the client can read in connect_error, like a bad token.
		s.logger.Warn("connect refused", "reason", err.Error())
		if errors.Is(err, hub.ErrConnectionLimit) {
			s.hd.m.refused[refusedLimit].Inc()
		} else {
			s.hd.m.refused[refusedAccountLimit].Inc()
		}
		b, _ := json.Marshal(connectError{Message: err.Error(), Data: connectErrorData{Code: errorCode(err)}})
		s.queue(appendSIO(nil, sioConnectError, "/", b))
		return
	}
	s.logger.Error("subscribe", "error", err)
	s.close("subscribe failed", true)
}

// ack acknowledges the CONNECT: `40{"sid":…,"pid":…}`, and starts the token's clock.
func (s *session) ack(pid string) {
	s.pid = pid
	s.sid = s.hd.rec.socketID(pid)
	b, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}{s.sid, s.pid})
	s.queue(appendSIO(nil, sioConnect, "/", b))
	s.state = socketConnected
	s.authed.Store(true)
	s.hd.setAuthenticated(s, true)
	s.connectTimer.Stop()
	s.expiryTimer.Reset(s.claims.ExpiresAt.Sub(s.hd.cfg.NowFunc()))
	s.logger = s.logger.With("socket_id", s.sid)
	s.logger.Debug("socket connected", "transport", s.transportName())
}

// askFeeder asks the feeder for the next batch when the transport can take it:
// the hub's ring holds what is due meanwhile, and a client that falls MaxLag
// behind is ended by the hub.
func (s *session) askFeeder() {
	if s.state != socketConnected || s.closing != "" || s.wantOut || len(s.out) > 0 || (s.ws == nil && s.pending == nil) {
		return
	}
	s.want <- s.spare // never blocks: the feeder took the last one before it answered
	s.spare = nil
	s.wantOut = true
}

// subscriptionEnded handles the end of the subscription, or a failed Poll.
func (s *session) subscriptionEnded(err error) {
	switch {
	case errors.Is(err, hub.ErrSlowConsumer):
		s.kick(ReasonSlowConsumer)
	case errors.Is(err, hub.ErrShutdown):
		s.close(ReasonShutdown, false)
	case errors.Is(err, hub.ErrClosed):
		s.leave()
	default: // the log could not be read: the client reconnects and resumes
		s.logger.Error("deliver", "error", err)
		s.close(contract.ReasonServerError, true)
	}
}

// kick ends the socket from the server side: EventDisconnect with the reason, then
// DISCONNECT, which the client does not retry. The Engine.IO session stays for the
// client to close.
func (s *session) kick(reason string) {
	s.logger.Info("socket disconnected", "reason", reason)
	s.hd.m.closed[reason].Inc()
	s.leave()
	s.queueDisconnectEvent(reason)
	s.queue(appendSIO(nil, sioDisconnect, "/", nil))
}

// leave drops the socket and its feeder; the session waits for another CONNECT or
// its close, counted as unauthenticated again.
func (s *session) leave() {
	if s.state == socketConnected {
		s.authed.Store(false)
		s.hd.setAuthenticated(s, false)
	}
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.sub != nil {
		s.sub.Close()
		s.sub = nil
	}
	s.gen++ // what the old feeder still sends is stale
	s.want = nil
	s.wantOut = false
	s.state = socketIdle
	s.expiryTimer.Stop()
	s.connectTimer.Reset(s.hd.cfg.ConnectTimeout)
}

// queueDisconnectEvent queues `42["notifier.disconnect",{"reason":…}]`.
func (s *session) queueDisconnectEvent(reason string) {
	b, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{reason})
	b = append(append(eventPrefix(EventDisconnect), b...), ']')
	s.queue(b)
}
