package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// Socket.IO dashboards (--side-transport socketio): Engine.IO 4 over WebSocket only,
// as a seeds' client with transports: ["websocket"] connects, the token in the
// CONNECT packet's auth. The tool does not answer the server's pings: a run ends
// well before ping_interval + ping_timeout (45 s by default).

// dialSocketIO opens one Socket.IO connection to addr and returns once its default
// namespace is connected.
func dialSocketIO(ctx context.Context, addr, token string) (*websocket.Conn, error) {
	conn, err := dialPath(ctx, addr, "/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	if err := connectSocketIO(ctx, conn, token); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// connectSocketIO reads the Engine.IO open packet, sends CONNECT with token and waits
// for the server's CONNECT.
func connectSocketIO(ctx context.Context, conn *websocket.Conn, token string) error {
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	_, open, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("socket.io open: %w", err)
	}
	if !bytes.HasPrefix(open, []byte("0{")) {
		return fmt.Errorf("socket.io open: got %.40q", open)
	}
	auth, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		return fmt.Errorf("socket.io connect: %w", err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, append([]byte("40"), auth...)); err != nil {
		return fmt.Errorf("socket.io connect: %w", err)
	}
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("socket.io connect: %w", err)
		}
		switch {
		case bytes.Equal(p, []byte("2")): // a ping before the answer
			if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return fmt.Errorf("socket.io pong: %w", err)
			}
		case bytes.HasPrefix(p, []byte("40")):
			return nil
		default:
			return fmt.Errorf("socket.io connect refused: %.200q", p)
		}
	}
}

// parseSocketIO reads the appointment's id and account from an EVENT packet,
// 42["<event>",{…}].
func parseSocketIO(frame []byte) (row, account int64, ok bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`42["`))
	if !ok {
		return 0, 0, false
	}
	i := bytes.IndexByte(rest, ',') // event names have no comma
	if i < 0 {
		return 0, 0, false
	}
	return rowAndAccount(rest[i:])
}
