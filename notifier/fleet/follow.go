package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// ErrRefused is wrapped by Follow when the leader answered the stream request with an
// HTTP error: it does not lead (any more), or it refused the fleet key.
var ErrRefused = errors.New("leader refused the stream")

// FollowConfig configures Follow.
type FollowConfig struct {
	Key          []byte        // the fleet key
	PingInterval time.Duration // the leader's (LeaderConfig.PingInterval); default 10s
	DialTimeout  time.Duration // connect and handshake; default 5s
}

// Follow streams from the leader at base (its fleet.advertise_url) every record after
// after, calling handle for each in order, until ctx ends, the stream fails or handle
// returns an error. It returns why the stream ended.
func Follow(ctx context.Context, cfg FollowConfig, base string, after int64, handle func(Record) error) error {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	u, err := streamURL(base, after)
	if err != nil {
		return err
	}
	d := websocket.Dialer{HandshakeTimeout: cfg.DialTimeout, ReadBufferSize: 16 << 10, WriteBufferSize: 256}
	h := http.Header{"Authorization": {"Bearer " + token(cfg.Key, time.Now())}}
	dialCtx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	conn, resp, err := d.DialContext(dialCtx, u, h)
	cancel()
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%w: %s: %s", ErrRefused, base, resp.Status)
		}
		return fmt.Errorf("connect to leader %s: %w", base, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
		_ = conn.Close()
	})
	defer stop()

	// The leader pings every PingInterval: silence for three of them is a dead leader
	// (a SIGKILL'd process behind a proxy, a network partition).
	alive := func() error { return conn.SetReadDeadline(time.Now().Add(3 * cfg.PingInterval)) }
	_ = alive()
	conn.SetPingHandler(func(data string) error {
		_ = alive()
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cfg.PingInterval))
	})
	for {
		typ, b, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("stream from %s: %w", base, err)
		}
		_ = alive()
		if typ != websocket.BinaryMessage {
			return fmt.Errorf("stream from %s: %w: a text message", base, errMalformed)
		}
		rec, err := decode(b)
		if err != nil {
			return fmt.Errorf("stream from %s: %w", base, err)
		}
		if err := handle(rec); err != nil {
			return err
		}
	}
}

// Probe reports whether the leader at base serves a stream to this instance now: it
// opens one and closes it at the leader's first record (nil), or returns why not.
func Probe(ctx context.Context, cfg FollowConfig, base string) error {
	errUp := errors.New("the leader answered")
	err := Follow(ctx, cfg, base, math.MaxInt64, func(Record) error { return errUp })
	if errors.Is(err, errUp) {
		return nil
	}
	return err
}

// streamURL is base's stream endpoint, over WebSocket.
func streamURL(base string, after int64) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("leader url %q: %w", base, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("leader url %q: not http or https", base)
	}
	u.Path += StreamPath
	u.RawQuery = "after=" + strconv.FormatInt(after, 10)
	return u.String(), nil
}
