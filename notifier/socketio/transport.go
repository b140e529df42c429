package socketio

import (
	"errors"
	"io"
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

// poll serves a polling GET: it hands itself to the loop and waits for packets.
func (s *session) poll(w http.ResponseWriter, r *http.Request) {
	if !s.getting.CompareAndSwap(false, true) {
		// The client never overlaps GETs: this is not our client, or a broken one.
		writeError(w, http.StatusBadRequest, codeBadRequest, "")
		s.kill("overlapping poll")
		return
	}
	g := newPollRequest()
	select {
	case s.gets <- g:
	case <-s.done:
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

// post serves a polling POST: packets joined by \x1e, answered with "ok" once the
// loop has taken them. The body is at most payloadLimit bytes, and must arrive
// within the server's ReadTimeout.
func (s *session) post(w http.ResponseWriter, r *http.Request) {
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
	select {
	case s.inbox <- inbound{payload: body}:
	case <-s.done:
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
	conn *websocket.Conn
	done chan struct{} // closed when the reader has ended
}

func newWSConn(conn *websocket.Conn) *wsConn {
	return &wsConn{conn: conn, done: make(chan struct{})}
}

// errClientFlood ends a WebSocket whose client sends more pings than
// Config.MaxClientPackets a second.
var errClientFlood = errors.New(reasonClientFlood)

// readWS forwards c's frames to the loop until c fails or the loop closes it. It
// owns c's read deadline, which it moves before each message; gorilla's upgrade
// cleared the one the HTTP server had set. WebSocket pings, which Engine.IO clients
// do not send, are answered and counted here, at the rate of packets.
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
		_ = c.conn.SetReadDeadline(time.Now().Add(idle))
		typ, data, err := s.readMessage(c)
		in := inbound{conn: c, payload: data, binary: typ == websocket.BinaryMessage}
		if err != nil {
			in = inbound{conn: c, closed: err}
		}
		select {
		case s.inbox <- in:
		case <-s.done:
			_ = c.conn.Close()
			return
		}
		if err != nil {
			return
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
