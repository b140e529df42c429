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
	conn, resp, err := dialer.DialContext(ctx, "ws://"+addr+"/ws", h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial /ws: %w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial /ws: %w", err)
	}
	return conn, nil
}

// dialMany opens n connections, parallel at a time.
func dialMany(ctx context.Context, addr, token string, n, parallel int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i := range conns {
		g.Go(func() error {
			c, err := dial(gctx, addr, token)
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
		if typ != websocket.TextMessage {
			continue
		}
		b := buf.Bytes()
		eventID, ok := leadingInt(b, `{"id":`)
		if !ok {
			continue // not an event (notifier.resync)
		}
		rowID, _ := intAfter(b, `"data":{"id":`)
		fn(eventID, rowID, len(b), at)
	}
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
