package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// dialer opens dashboard connections. Small buffers: the tool holds thousands.
var dialer = websocket.Dialer{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   4096,
	WriteBufferSize:  256,
}

// dial opens one /ws connection with token in the Authorization header, as the seeds
// send it.
func dial(ctx context.Context, addr, token string) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return dialPath(ctx, addr, "/ws", h)
}

// dialPath opens one WebSocket connection to path on addr.
func dialPath(ctx context.Context, addr, path string, h http.Header) (*websocket.Conn, error) {
	conn, resp, err := dialer.DialContext(ctx, "ws://"+addr+path, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", path, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return conn, nil
}

// dialMany opens n /ws connections, parallel at a time.
func dialMany(ctx context.Context, addr, token string, n, parallel int) ([]*websocket.Conn, error) {
	return dialN(ctx, n, parallel, func(ctx context.Context) (*websocket.Conn, error) { return dial(ctx, addr, token) })
}

// dialN opens n connections with dialOne, parallel at a time; on error it closes those
// it opened.
func dialN(ctx context.Context, n, parallel int, dialOne func(context.Context) (*websocket.Conn, error)) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i := range conns {
		g.Go(func() error {
			c, err := dialOne(gctx)
			conns[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// closeAll closes conns (nil entries allowed) without a close handshake: the
// notifier's read pump sees the end at once.
func closeAll(conns []*websocket.Conn) {
	var wg sync.WaitGroup
	for i := range conns {
		if conns[i] == nil {
			continue
		}
		wg.Go(func() { _ = conns[i].Close() })
	}
	wg.Wait()
}

// frameFunc receives one event frame: the event id, the row id (data.id), the frame's
// size and when it was read, as time since base.
type frameFunc func(eventID, rowID int64, size int, at time.Duration)

// readFrames reads text frames from conn until it ends, calling fn for each event
// frame. It returns the close code the server sent (0 if none) and the error that
// ended the read.
func readFrames(conn *websocket.Conn, base time.Time, fn frameFunc) (int, error) {
	return readTexts(conn, base, func(b []byte, at time.Duration) {
		eventID, ok := leadingInt(b, `{"id":`)
		if !ok {
			return // not an event (notifier.resync)
		}
		rowID, _ := intAfter(b, `"data":{"id":`)
		fn(eventID, rowID, len(b), at)
	})
}

// readTexts reads frames from conn until it ends, calling fn with each text frame
// (valid during the call only) and when it was read, as time since base. It returns
// the close code the server sent (0 if none) and the error that ended the read.
func readTexts(conn *websocket.Conn, base time.Time, fn func(b []byte, at time.Duration)) (int, error) {
	var buf bytes.Buffer
	for {
		typ, r, err := conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, err
			}
			return 0, err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return 0, err
		}
		at := time.Since(base)
		if typ == websocket.TextMessage {
			fn(buf.Bytes(), at)
		}
	}
}

// jsonInt returns the integer value of the first "key" in the JSON text b, with any
// spacing around the colon (PostgreSQL's json_build_object writes " : ").
func jsonInt(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(`"`+key+`"`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+len(key)+2:], " \t\n\r")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return 0, false
	}
	return parseInt(bytes.TrimLeft(rest, " \t\n\r"))
}

// leadingInt parses the integer right after prefix at the start of b.
func leadingInt(b []byte, prefix string) (int64, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		return 0, false
	}
	return parseInt(rest)
}

// intAfter parses the integer right after the first occurrence of key in b.
func intAfter(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	return parseInt(b[i+len(key):])
}

// parseInt parses the leading decimal digits of b.
func parseInt(b []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, i > 0
}
