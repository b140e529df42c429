package socketio

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/ratelimit"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// inbound is what a transport hands the loop: a POST body (packets joined by
// \x1e), one WebSocket frame, or the end of a WebSocket's reader.
type inbound struct {
	conn    *wsConn // nil for a polling POST
	payload []byte
	binary  bool  // a WebSocket binary frame
	closed  error // the reader of conn ended with this error
}

// input is one entry of a session's input queue (session.enqueue): a polling GET,
// a WebSocket asking to upgrade, what a transport read, or a request to end the
// session. Exactly one of poll, probe, kill and in is set.
type input struct {
	poll  *pollRequest
	probe *wsConn
	kill  string // why the session must end
	in    inbound
	taken chan bool // a POST's, buffered: true once the loop takes it, false if it never will
}

// request is a request's input in the queue, with its arrival's stamp (arrival.go).
// Frames have none: an input stays small on the path of an upgraded session.
type request struct {
	input
	stamp uint64
}

// outPacket is one queued Engine.IO packet: raw bytes, or a hub message framed as
// an EVENT when it is written (the message's bytes are shared, never copied into
// the queue).
type outPacket struct {
	raw []byte
	msg *hub.Message
}

// socketState is the state of the Socket.IO socket on "/".
type socketState int

const (
	socketIdle       socketState = iota // no socket: awaiting CONNECT
	socketConnecting                    // the feeder is subscribing
	socketConnected
)

// connectResult is the feeder's subscription.
type connectResult struct {
	gen      int
	position int64  // the subscription's starting cursor
	pid      string // the pid to ack with: the recovering one, or a new one from position
	sub      *hub.Subscription
	resync   bool
	err      error
}

// fed is a batch from the feeder, or why it stopped; or, with hub.ErrResync, a batch
// followed by a gap.
type fed struct {
	gen  int
	msgs []*hub.Message
	err  error
}

// session is one Engine.IO session and the Socket.IO socket inside it. Its loop
// (run) owns every field below the channels; transports talk to it over them.
type session struct {
	hd     *Handler
	id     string // the Engine.IO sid: a secret of the session, never logged
	header string // bearer token of the handshake request; never logged
	wsOnly bool
	addr   string // the client address the per-address cap counts (addressKey)
	logger *slog.Logger

	// unauthenticated: the session counts as one without a connected socket.
	// Guarded by Handler.mu.
	unauthenticated bool

	// The input queue (order.go). Guarded by inMu.
	inMu     sync.Mutex
	frames   []input   // WebSocket frames and readers' ends, in the order read
	requests []request // requests' inputs, by stamp
	expected []uint64  // stamps of requests registered (expect) that have not enqueued
	inClosed bool      // the loop has ended: enqueue refuses

	ready    chan struct{} // buffered 1: the input queue may have something due
	results  chan connectResult
	feeds    chan fed
	relayed  chan relayResult
	done     chan struct{} // closed when the loop has ended
	upgraded atomic.Bool   // set by the loop on upgrade; polling is refused then
	getting  atomic.Bool   // a GET is in flight
	posting  atomic.Bool   // a POST is in flight
	authed   atomic.Bool   // the socket is connected: packets may be MaxPayload long

	// Owned by the loop.
	out          []outPacket
	scratch      []byte
	pending      *pollRequest
	ws           *wsConn
	probe        *wsConn
	probed       bool
	awaitingPong bool
	pingTimer    *time.Timer
	pongTimer    *time.Timer
	connectTimer *time.Timer
	upgradeTimer *time.Timer
	expiryTimer  *time.Timer
	graceTimer   *time.Timer
	orderTimer   *time.Timer     // ends a hold (order.go)
	orderWake    <-chan struct{} // closed when the unread connection a hold waits for settles
	holding      uint64          // the stamp of the request held back, 0 if none
	holdUntil    time.Time       // when it goes ahead regardless
	closing      string          // why the session ends; set once
	abrupt       bool            // drop the queue rather than flush it
	closeSent    bool            // polling: the close packet is queued
	connects     int
	budget       *ratelimit.Bucket // of client packets
	relayBudget  *relayBudget      // of relayed emits, nil when relay is off
	relayJobs    chan relayJob     // to the relay goroutine; nil until the first relay
	relayCancel  context.CancelFunc
	relays       sync.WaitGroup // the relay goroutine

	state   socketState
	claims  auth.Claims
	sid     string // public Socket.IO id
	pid     string
	refusal string // why the CONNECT's pid did not recover; "" if it had none or did
	sub     *hub.Subscription
	gen     int                 // feeder generation: what older feeders send is stale
	cancel  context.CancelFunc  // stops the current feeder
	want    chan []*hub.Message // asks the feeder for a batch (with a buffer to fill)
	wantOut bool                // a batch is asked for
	spare   []*hub.Message      // the last batch's buffer, for the next ask
	conns   sync.WaitGroup      // feeders
}

// newSession returns an unregistered session of hd; its log lines carry the
// handshake's request id (reqid) and the client's address.
func newSession(hd *Handler, header string, wsOnly bool, remote, requestID string) *session {
	s := &session{
		hd:           hd,
		id:           newEngineID(),
		header:       header,
		wsOnly:       wsOnly,
		addr:         addressKey(remote),
		logger:       hd.logger.With("request_id", requestID, "remote", remote),
		ready:        make(chan struct{}, 1),
		results:      make(chan connectResult),
		feeds:        make(chan fed),
		relayed:      make(chan relayResult),
		done:         make(chan struct{}),
		pingTimer:    stoppedTimer(),
		pongTimer:    stoppedTimer(),
		connectTimer: stoppedTimer(),
		upgradeTimer: stoppedTimer(),
		expiryTimer:  stoppedTimer(),
		graceTimer:   stoppedTimer(),
		orderTimer:   stoppedTimer(),
		budget:       ratelimit.New(hd.cfg.MaxClientPackets, time.Now()),
	}
	if len(hd.relay) > 0 {
		s.relayBudget = newRelayBudget(hd.cfg.RelayRate, hd.cfg.RelayBurst, time.Now())
	}
	return s
}

// payloadLimit is the most a client may send in one packet or POST now: a session
// without a connected socket has nothing to send but a CONNECT.
func (s *session) payloadLimit() int {
	if s.authed.Load() {
		return s.hd.cfg.MaxPayload
	}
	return min(s.hd.cfg.MaxPayload, maxUnauthenticatedPayload)
}

// spendOn counts p against the client's budget, but for the pong the loop awaits
// (the heartbeat is the server's to pace) and a message, which message counts once it
// knows what it carries (a relayed emit counts against the relay budget).
func (s *session) spendOn(p eioPacket) bool {
	if (p.Type == eioPong && s.awaitingPong) || p.Type == eioMessage {
		return true
	}
	return s.spend()
}

// spend counts one client packet or probe; past the budget it closes the session.
func (s *session) spend() bool {
	if s.budget.Take(time.Now()) {
		return true
	}
	s.close(reasonClientFlood, true)
	return false
}

// stoppedTimer returns a timer to Reset later. Since Go 1.23 a stopped timer's
// channel never delivers a stale value, so Stop and Reset need no draining.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// signal wakes the receiver of c, a channel of one buffered slot, unless it is
// already due to wake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// handle applies one input.
func (s *session) handle(x input) {
	switch {
	case x.poll != nil:
		s.attachPoll(x.poll)
	case x.probe != nil:
		s.attachProbe(x.probe)
	case x.kill != "":
		s.close(x.kill, x.kill != ReasonShutdown)
	default:
		if x.taken != nil {
			x.taken <- true
		}
		s.receive(x.in)
	}
}

// closeInputs makes enqueue refuse from now on and answers what the loop will
// never take: a GET and a POST as if the session were unknown already, a probe by
// closing it. A reader's frames need no answer: the reader stops at s.done.
func (s *session) closeInputs() {
	s.inMu.Lock()
	s.inClosed = true
	left := s.frames
	for _, r := range s.requests {
		left = append(left, r.input)
	}
	s.requests, s.frames, s.expected = nil, nil, nil
	s.inMu.Unlock()
	for _, x := range left {
		switch {
		case x.poll != nil:
			x.poll.resp <- pollResponse{status: http.StatusBadRequest, code: codeUnknownSID}
		case x.probe != nil:
			_ = x.probe.conn.Close()
		case x.taken != nil:
			x.taken <- false
		}
	}
}

// run is the session's loop: the one goroutine that reads and writes its state and
// writes to its transports. It starts with the handshake's transport: a polling GET
// (g) or a WebSocket (c).
func (s *session) run(g *pollRequest, c *wsConn) {
	defer s.finish()
	cfg := s.hd.cfg
	open := s.hd.open.polling
	if c != nil {
		c.handled = true
		s.ws = c
		s.upgraded.Store(true)
		open = s.hd.open.websocket
	}
	s.pending = g
	s.queue(append(append(append([]byte(`0{"sid":"`), s.id...), `",`...), open...))
	s.pingTimer.Reset(cfg.PingInterval)
	s.connectTimer.Reset(cfg.ConnectTimeout)
	s.logger.Debug("session opened", "transport", s.transportName())
	for {
		s.flush()
		if s.closing != "" && (s.abrupt || len(s.out) == 0) {
			if s.abrupt || s.ws != nil || s.closeSent {
				return
			}
			// Polling: the close packet goes in an answer of its own. The client
			// hands events to the app a tick after parsing them; a close in the same
			// payload would disconnect the socket first and the event would be lost.
			s.out = append(s.out, outPacket{raw: []byte{eioClose}})
			s.closeSent = true
			continue
		}
		s.askFeeder()
		var subDone <-chan struct{}
		if s.sub != nil && s.closing == "" {
			subDone = s.sub.Done()
		}
		select {
		case <-s.ready:
			s.step()
		case <-s.orderWake:
			s.step()
		case <-s.orderTimer.C:
			s.step()
		case f := <-s.feeds:
			s.fedBatch(f)
		case <-subDone:
			s.subscriptionEnded(s.sub.Err())
		case res := <-s.results:
			s.connected(res)
		case r := <-s.relayed:
			s.relayDone(r)
		case <-s.pingTimer.C:
			s.queue([]byte{eioPing})
			s.awaitingPong = true
			s.pongTimer.Reset(cfg.PingTimeout)
		case <-s.pongTimer.C:
			s.close("ping timeout", true)
		case <-s.connectTimer.C:
			if s.state != socketConnected {
				s.close("connect timeout", true)
			}
		case <-s.upgradeTimer.C:
			s.dropProbe()
		case <-s.expiryTimer.C:
			if s.state == socketConnected {
				s.kick(ReasonTokenExpired)
			}
		case <-s.graceTimer.C:
			s.abrupt = true
		}
	}
}

func (s *session) transportName() string {
	if s.ws != nil {
		return "websocket"
	}
	return "polling"
}

// queue appends a raw Engine.IO packet.
func (s *session) queue(raw []byte) {
	if s.closing != "" {
		return
	}
	s.out = append(s.out, outPacket{raw: raw})
}

// flush writes the queue to the active transport: every packet as a frame over a
// WebSocket; all of them joined by \x1e in the answer to a pending GET. A GET
// pending while a probe is answered gets a noop so that the client can pause
// polling and finish the upgrade.
func (s *session) flush() {
	switch {
	case s.ws != nil:
		for i, p := range s.out {
			var err error
			if p.msg != nil {
				if err = s.writeEvent(p.msg); err == nil {
					s.hd.m.delivered.Add(uint8(p.msg.Kind), p.msg.Name, 1)
				}
			} else {
				err = writeWS(s.ws, s.hd.cfg.WriteWait, p.raw)
			}
			if err != nil {
				s.out = s.out[:0]
				s.close("transport error", true)
				return
			}
			s.out[i] = outPacket{}
		}
		s.out = s.out[:0]
		if s.pending != nil { // the GET left over from polling
			s.answer(pollResponse{body: []byte{eioNoop}})
		}
	case s.pending == nil:
	case len(s.out) > 0:
		s.answer(pollResponse{body: s.payload()})
	case s.probed:
		s.answer(pollResponse{body: []byte{eioNoop}})
	}
}

// payload joins the queue into a polling body and empties the queue.
func (s *session) payload() []byte {
	n := 0
	for _, p := range s.out {
		if p.msg != nil {
			n += len(s.hd.prefix(p.msg)) + len(eventData(p.msg)) + 24
		} else {
			n += len(p.raw)
		}
		n++
	}
	b := make([]byte, 0, n)
	for i, p := range s.out {
		if i > 0 {
			b = append(b, recordSeparator)
		}
		if p.msg != nil {
			b = s.appendEvent(b, p.msg)
			s.hd.m.delivered.Add(uint8(p.msg.Kind), p.msg.Name, 1) // handed to the GET's answer
		} else {
			b = append(b, p.raw...)
		}
		s.out[i] = outPacket{}
	}
	s.out = s.out[:0]
	return b
}

// appendEvent appends m as `42["<name>",<data>,"<offset>"]`.
func (s *session) appendEvent(b []byte, m *hub.Message) []byte {
	b = append(b, s.hd.prefix(m)...)
	b = append(b, eventData(m)...)
	return appendOffsetSuffix(b, m.ID)
}

// writeEvent writes m as one WebSocket frame straight from the shared bytes.
func (s *session) writeEvent(m *hub.Message) error {
	s.scratch = appendOffsetSuffix(s.scratch[:0], m.ID)
	return writeWS(s.ws, s.hd.cfg.WriteWait, s.hd.prefix(m), eventData(m), s.scratch)
}

// answer completes the pending GET.
func (s *session) answer(r pollResponse) {
	s.pending.resp <- r
	s.pending = nil
}

// attachPoll takes a polling GET as the pending one.
func (s *session) attachPoll(g *pollRequest) {
	switch {
	case s.ws != nil: // raced with the upgrade
		g.resp <- pollResponse{status: http.StatusBadRequest, code: codeBadRequest}
	case s.pending != nil: // the handler's flag rules this out; be safe anyway
		g.resp <- pollResponse{status: http.StatusBadRequest, code: codeBadRequest}
		s.close("overlapping poll", true)
	default:
		s.pending = g
	}
}

// attachProbe takes a WebSocket that wants to become the transport.
func (s *session) attachProbe(c *wsConn) {
	c.handled = true // its frames may be taken now, if only to be dropped
	if s.wsOnly || s.ws != nil || s.probe != nil || s.closing != "" || !s.spend() {
		_ = c.conn.Close()
		return
	}
	s.probe = c
	s.probed = false
	s.upgradeTimer.Reset(s.hd.cfg.UpgradeTimeout)
}

// dropProbe closes the probing WebSocket; polling goes on.
func (s *session) dropProbe() {
	if s.probe != nil {
		s.probe.unwatch()
		_ = s.probe.conn.Close()
	}
	s.probe = nil
	s.probed = false
	s.upgradeTimer.Stop()
}

// receive handles what a transport read.
func (s *session) receive(in inbound) {
	if s.closing != "" {
		return
	}
	if in.conn != nil && in.conn != s.ws {
		if in.conn == s.probe {
			s.receiveProbe(in)
		}
		return // a probe dropped earlier
	}
	if in.conn == nil && s.ws != nil {
		return // a POST that raced with the upgrade
	}
	switch {
	case errors.Is(in.closed, errClientFlood):
		s.close(reasonClientFlood, true)
		return
	case errors.Is(in.closed, errTooBig), errors.Is(in.closed, websocket.ErrReadLimit):
		s.close(reasonTooBig, true)
		return
	case in.closed != nil:
		s.close("transport close", true)
		return
	case in.binary:
		s.close("binary packet", true)
		return
	}
	if in.conn != nil { // one packet per WebSocket frame, never joined
		p, err := parseEIOPacket(in.payload)
		if err != nil {
			s.close(reasonFor(err), true)
			return
		}
		if s.spendOn(p) {
			s.packet(p)
		}
		return
	}
	err := eachEIOPacket(in.payload, func(p eioPacket) error {
		if !s.spendOn(p) {
			return errStop
		}
		s.packet(p)
		if s.closing != "" {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		s.close(reasonFor(err), true)
	}
}

var errStop = errors.New("stop")

// receiveProbe runs the upgrade: "2probe", answered "3probe", then "5". Anything
// else drops the probe and polling goes on.
func (s *session) receiveProbe(in inbound) {
	switch {
	case in.closed != nil || in.binary:
	case !s.probed && string(in.payload) == "2probe":
		if writeWS(s.probe, s.hd.cfg.WriteWait, []byte("3probe")) == nil {
			s.probed = true
			return
		}
	case s.probed && string(in.payload) == string(eioUpgrade):
		s.unhold() // a request held back for the probe's frames meets the upgrade
		s.probe.untrack()
		s.ws = s.probe
		s.probe = nil
		s.probed = false
		s.upgradeTimer.Stop()
		s.upgraded.Store(true)
		s.logger.Debug("upgraded", "transport", "websocket")
		return // flush answers the pending GET with a noop and drains the queue
	}
	s.dropProbe()
}

// packet handles one Engine.IO packet from the active transport.
func (s *session) packet(p eioPacket) {
	switch p.Type {
	case eioClose:
		s.close("client close", true)
	case eioPong:
		if s.awaitingPong {
			s.awaitingPong = false
			s.pongTimer.Stop()
			s.pingTimer.Reset(s.hd.cfg.PingInterval)
		}
	case eioMessage:
		s.message(p.Data)
	case eioNoop:
	default: // open, ping (v3 direction), upgrade outside a probe
		s.close("parse error", true)
	}
}

// close ends the session. Abrupt closes drop the queue; otherwise (shutdown) a
// connected socket is told why and the queue is flushed within closeGrace.
func (s *session) close(reason string, abrupt bool) {
	if s.closing != "" {
		return
	}
	s.hd.m.closed[reason].Inc()
	if !abrupt && s.state != socketConnected {
		abrupt = true // nothing to tell: a pending GET gets the close packet, as always
	}
	if !abrupt {
		s.queueDisconnectEvent(reason)
		s.graceTimer.Reset(closeGrace)
	}
	s.closing = reason
	s.abrupt = abrupt
	if abrupt {
		clear(s.out)
		s.out = s.out[:0]
	}
}

// finish releases everything the session holds once its loop ends.
func (s *session) finish() {
	s.hd.remove(s)
	if s.sub != nil {
		s.sub.Close()
		s.sub = nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.pending != nil {
		body := []byte{eioClose}
		if s.closing == "client close" {
			body = []byte{eioNoop} // as Node answers the GET pending at a client's close
		}
		s.answer(pollResponse{body: body})
	}
	if s.probe != nil {
		_ = s.probe.conn.Close()
	}
	s.closeInputs()
	close(s.done) // readers stop forwarding and close their connections
	if s.ws != nil {
		switch s.closing {
		case ReasonShutdown: // going away: say so
			s.closeWS(websocket.FormatCloseMessage(websocket.CloseGoingAway, ReasonShutdown))
		case "parse error", "binary packet", "duplicate connect", "too many connects":
			// The client broke the protocol: a close frame without a status code, as
			// the reference server (engine.io over ws) sends, rather than a bare
			// TCP close, which the client reports as 1006.
			s.closeWS(websocket.FormatCloseMessage(websocket.CloseNoStatusReceived, ""))
		}
		_ = s.ws.conn.Close()
	}
	s.conns.Wait()
	s.stopRelaying()
	for _, t := range []*time.Timer{s.pingTimer, s.pongTimer, s.connectTimer, s.upgradeTimer, s.expiryTimer, s.graceTimer, s.orderTimer} {
		t.Stop()
	}
	s.logger.Debug("session closed", "reason", s.closing)
}

// closeWS sends the close frame msg over the WebSocket and gives the peer a moment
// to answer it, so that closing the connection next does not reset it before the
// peer has read the frame.
func (s *session) closeWS(msg []byte) {
	if s.ws.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(s.hd.cfg.WriteWait)) != nil {
		return
	}
	t := time.NewTimer(closeWait)
	select {
	case <-s.ws.done:
	case <-t.C:
	}
	t.Stop()
}
