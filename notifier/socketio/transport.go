package socketio

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/ratelimit"
)

// pollRequest is a polling GET waiting for its session's loop to answer it.
type pollRequest struct {
	resp chan pollResponse // buffered: the loop never blocks on it
}

// pollResponse is what a GET answers: 200 with packets, or an error.
type pollResponse struct {
	body   []byte
	status int // 0 means 200
	code   int // Engine.IO error code when status is set
}

func newPollRequest() *pollRequest {
	return &pollRequest{resp: make(chan pollResponse, 1)}
}

// poll serves a polling GET, registered with stamp: it enqueues itself for the loop
// and waits for packets.
func (s *session) poll(w http.ResponseWriter, r *http.Request, stamp uint64) {
	if !s.getting.CompareAndSwap(false, true) {
		// The client never overlaps GETs: this is not our client, or a broken one. The
		// kill is stamped now, after the GET that holds the flag, which the loop then
		// answers with the close packet.
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		s.kill("overlapping poll")
		return
	}
	g := newPollRequest()
	if !s.enqueue(input{poll: g}, stamp) {
		s.getting.Store(false)
		writeError(w, http.StatusBadRequest, codeUnknownSID, "")
		return
	}
	s.awaitPoll(w, r, g)
}

// awaitPoll writes the loop's answer to g. A client that goes away first ends the
// session: whatever the loop hands over now would be lost ("poll connection closed
// prematurely"); the client recovers it from the log when it reconnects.
func (s *session) awaitPoll(w http.ResponseWriter, r *http.Request, g *pollRequest) {
	// The loop answers within a ping interval, or a ping timeout when the client
	// owes a pong: extend a server-wide WriteTimeout shorter than that for this
	// request (an error means the writer has no deadline to extend). The server's
	// ReadTimeout does not end the wait: net/http clears it once the request is read.
	cfg := s.hd.cfg
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(cfg.PingInterval + cfg.PingTimeout + cfg.WriteWait))
	var resp pollResponse
	select {
	case resp = <-g.resp:
	case <-r.Context().Done():
		s.kill("poll closed prematurely")
		return
	}
	// Clear the flag before writing: the client may poll again as soon as it has
	// the body, before this handler returns.
	s.getting.Store(false)
	if resp.status != 0 {
		writeError(w, resp.status, resp.code, "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff") // event data is never to be read as HTML
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.body)
}

// post serves a polling POST, registered with stamp: packets joined by \x1e,
// enqueued once read whole and answered with "ok" once the loop takes them. The body
// is at most payloadLimit bytes, and must arrive within the server's ReadTimeout.
func (s *session) post(w http.ResponseWriter, r *http.Request, stamp uint64) {
	limit := s.payloadLimit()
	if r.ContentLength > int64(limit) {
		writeError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "payload too large")
		return
	}
	if !s.posting.CompareAndSwap(false, true) {
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		s.kill("overlapping post")
		return
	}
	defer s.posting.Store(false)
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		s.kill("transport error")
		return
	}
	if len(body) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "payload too large")
		return
	}
	if err := checkEIOPayload(body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		s.kill(reasonFor(err))
		return
	}
	taken := make(chan bool, 1)
	if !s.enqueue(input{in: inbound{payload: body}, taken: taken}, stamp) || !<-taken {
		writeError(w, http.StatusBadRequest, codeUnknownSID, "")
		return
	}
	s.posting.Store(false)
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

// wsConn is a WebSocket of a session, the active transport or a probe. Only the
// session loop writes to it; its reader is the goroutine of the HTTP request.
type wsConn struct {
	conn    *websocket.Conn
	tracked *trackedConn  // what an upgrade's reader reads through; nil for a handshake's, or untrackable
	done    chan struct{} // closed when the reader has ended
	room    chan struct{} // buffered 1: the loop took a frame of this reader

	// Frames of this reader in the session's input queue, and their bytes.
	// Guarded by session.inMu.
	queued, queuedBytes int

	// handled: the loop has taken the input that brought c (the handshake, or the
	// probe, attached or refused), so its frames may be taken. Owned by the loop.
	handled bool
}

func newWSConn(conn *websocket.Conn) *wsConn {
	return &wsConn{conn: conn, done: make(chan struct{}), room: make(chan struct{}, 1)}
}

// caughtUp reports whether c's reader has enqueued every frame that reached the
// server so far: it has ended, or it waits on an empty socket. Without tracking it
// cannot tell, and says yes. The loop calls it.
func (c *wsConn) caughtUp() bool {
	select {
	case <-c.done:
		return true
	default:
	}
	return c.tracked == nil || c.tracked.caughtUp()
}

func (c *wsConn) unwatch() {
	if c.tracked != nil {
		c.tracked.unwatch()
	}
}

// untrack: c is the transport now; its reads need no tracking.
func (c *wsConn) untrack() {
	if c.tracked != nil {
		c.tracked.untrack()
	}
}

// trackingWriter hands the upgrader the hijacked connection wrapped by trackConn.
type trackingWriter struct {
	http.ResponseWriter
	ready   chan struct{}
	tracked *trackedConn // set by Hijack when the connection can be tracked
}

func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if t := trackConn(c, w.ready); t != nil {
		w.tracked = t
		return t, brw, nil
	}
	return c, brw, nil
}

// errClientFlood ends a WebSocket whose client sends more pings than
// Config.MaxClientPackets a second.
var errClientFlood = errors.New(reasonClientFlood)

// readWS enqueues c's frames for the loop as it reads them, until c fails or the
// loop ends. It reads ahead of the loop, so that a frame read takes effect before
// any request still queued (order.go), but waits while maxReadAhead frames or
// payloadLimit bytes of c wait for the loop. It owns c's read deadline, which it moves before
// each message; gorilla's upgrade cleared the one the HTTP server had set.
// WebSocket pings, which Engine.IO clients do not send, are answered and counted
// here, at the rate of packets.
func (s *session) readWS(c *wsConn) {
	defer close(c.done)
	cfg := s.hd.cfg
	pings := ratelimit.New(cfg.MaxClientPackets, time.Now())
	c.conn.SetPingHandler(func(data string) error {
		if !pings.Take(time.Now()) {
			return errClientFlood
		}
		// A failed pong means a failing connection, which the next read reports.
		_ = c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cfg.WriteWait))
		return nil
	})
	// The client answers every ping and pings come every PingInterval: a connection
	// silent for longer than interval plus timeout is dead, probing or not.
	idle := cfg.PingInterval + cfg.PingTimeout
	c.conn.SetReadLimit(int64(cfg.MaxPayload))
	for {
		if !s.awaitRoom(c) {
			_ = c.conn.Close()
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(idle))
		typ, data, err := s.readMessage(c)
		in := inbound{conn: c, payload: data, binary: typ == websocket.BinaryMessage}
		if err != nil {
			in = inbound{conn: c, closed: err}
		}
		if !s.enqueue(input{in: in}, 0) {
			_ = c.conn.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

// awaitRoom waits until c's reader may read another frame: fewer than maxReadAhead
// of its frames, and fewer than payloadLimit bytes of them, wait for the loop.
// False when the loop has ended.
func (s *session) awaitRoom(c *wsConn) bool {
	for {
		s.inMu.Lock()
		full := c.queued >= maxReadAhead || c.queuedBytes >= s.payloadLimit()
		s.inMu.Unlock()
		if !full {
			return true
		}
		select {
		case <-c.room:
		case <-s.done:
			return false
		}
	}
}

// errTooBig ends a WebSocket whose client sent a message over the payload limit.
var errTooBig = errors.New(reasonTooBig)

// readMessage reads c's next message, at most payloadLimit bytes, as it is when the
// message begins: a session that has acked its CONNECT already takes MaxPayload.
func (s *session) readMessage(c *wsConn) (int, []byte, error) {
	typ, r, err := c.conn.NextReader()
	if err != nil {
		return typ, nil, err
	}
	limit := s.payloadLimit()
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err == nil && len(data) > limit {
		err = errTooBig
	}
	return typ, data, err
}

// writeWS writes one frame made of parts, within the write deadline.
func writeWS(c *wsConn, wait time.Duration, parts ...[]byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	w, err := c.conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// reasonFor names a parse error for the logs.
func reasonFor(err error) string {
	if errors.Is(err, errBinary) {
		return "binary packet"
	}
	return "parse error"
}
