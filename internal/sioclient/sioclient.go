// Package sioclient runs the real npm socket.io-client, through Node, against a
// server under test: end-to-end tests connect with it as the dashboards do and
// watch what the client itself reports (events, connect, connect_error, disconnect,
// recovered).
//
// It runs testdata/sioclient/client.js (under the module root, found by walking up
// to go.mod), whose socket.io-client is pinned by package-lock.json; run `npm ci` in
// testdata/sioclient first. Each Client is one Node process; t.Cleanup ends it.
//
// The client writes one JSON line per thing it saw; a reader goroutine turns them
// into values on the channels of Client, in order, so tests wait on signals
// (Next, WaitEvent, ...) rather than sleeping.
package sioclient

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TokenIn says where the client carries its token.
type TokenIn string

// Token placements.
const (
	// InAuth puts the token in the CONNECT packet: io(url, {auth: {token}}), as the
	// seeds do and as browsers must.
	InAuth TokenIn = "auth"
	// InHeader sends Authorization: Bearer on every HTTP request (extraHeaders),
	// which Node's client can do and browsers only on polling.
	InHeader TokenIn = "header"
	// Nowhere sends no token.
	Nowhere TokenIn = "none"
)

// DefaultTimeout bounds each wait of the helpers.
const DefaultTimeout = 15 * time.Second

// Options configure a client.
type Options struct {
	URL        string   // the server's base URL, e.g. an httptest.Server's URL
	Path       string   // default "/socket.io/"
	Token      string   // the JWT
	TokenIn    TokenIn  // default InAuth
	Transports []string // nil: the client's default, polling then the upgrade to websocket
	Events     []string // event names to register seed-style handlers for
	Since      any      // auth.since (an event id, as a number or a string); nil sends none

	// Reconnection settings; nil or zero leaves the client's defaults (reconnect,
	// 1 s delay up to 5 s, forever).
	Reconnection         *bool
	ReconnectionDelay    time.Duration
	ReconnectionDelayMax time.Duration
	ReconnectionAttempts int

	Timeout time.Duration // bound of every Wait helper; default DefaultTimeout
}

// Event is an event the client's handler received.
type Event struct {
	Name   string
	Data   json.RawMessage
	Offset string // the trailing offset argument, "" when there was none
}

// Connect is a connect of the socket, the first or a reconnection.
type Connect struct {
	ID        string // socket.id
	Recovered bool   // socket.recovered: the server restored the session
	Transport string // the engine's transport at connect: "polling" or "websocket"
}

// ConnectError is a connect_error.
type ConnectError struct {
	Message string          // err.message
	Data    json.RawMessage // err.data, null when absent
	Active  bool            // socket.active: false means the client will not retry
}

// Disconnect is a disconnect.
type Disconnect struct {
	Reason string // e.g. "io server disconnect", "transport close", "forced close"
	Active bool   // false means the client will not reconnect by itself
}

// Ack is the server's acknowledgement of an EmitAck.
type Ack struct {
	Seq  int             // EmitAck's return value
	Data json.RawMessage // the ack's arguments, a JSON array
}

// Upgrade is the engine switching transport.
type Upgrade struct {
	Transport string
}

// Client is a running Node socket.io-client. Things the client saw are delivered
// on C in the order it saw them, as Event, Connect, ConnectError, Disconnect or
// Upgrade values. Use C or the Wait helpers, not both; a Client is used by one
// goroutine.
type Client struct {
	C <-chan any

	t       testing.TB
	timeout time.Duration
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex    // serializes stdin writes
	skipped []Upgrade     // upgrades the Wait helpers passed over, for WaitUpgrade
	seq     int           // of the last EmitAck
	quit    chan struct{} // closed by stop: the reader drops what nobody waits for
	done    chan struct{} // closed when the reader has ended
}

// line is one line of client.js output.
type line struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Recovered bool            `json:"recovered"`
	Transport string          `json:"transport"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	Active    bool            `json:"active"`
	Reason    string          `json:"reason"`
	Name      string          `json:"name"`
	Offset    *string         `json:"offset"`
	Seq       int             `json:"seq"`
}

// ScriptDir returns testdata/sioclient under the module root of the working
// directory.
func ScriptDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "sioclient"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// installed checks that npm ci ran in dir.
func installed(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err != nil {
		return fmt.Errorf("socket.io-client is not installed: run npm ci in testdata/sioclient (%w)", err)
	}
	return nil
}

// Start runs a client with opts. It fails t (never skips) when Node or the npm
// packages are missing.
func Start(t testing.TB, opts Options) *Client {
	t.Helper()
	dir, err := ScriptDir()
	if err != nil {
		t.Fatalf("sioclient: %v", err)
	}
	if err := installed(dir); err != nil {
		t.Fatalf("sioclient: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("sioclient: node is not installed: %v", err)
	}
	arg, err := json.Marshal(scriptOptions(opts))
	if err != nil {
		t.Fatalf("sioclient: %v", err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "client.js"), string(arg))
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("sioclient: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("sioclient: %v", err)
	}
	cmd.Stderr = &logWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("sioclient: start node: %v", err)
	}
	c := make(chan any, 1024)
	cl := &Client{C: c, t: t, timeout: opts.Timeout, cmd: cmd, stdin: stdin, quit: make(chan struct{}), done: make(chan struct{})}
	if cl.timeout <= 0 {
		cl.timeout = DefaultTimeout
	}
	go cl.read(stdout, c)
	t.Cleanup(cl.stop)
	return cl
}

func scriptOptions(o Options) map[string]any {
	m := map[string]any{
		"url":     o.URL,
		"token":   o.Token,
		"tokenIn": string(o.TokenIn),
		"events":  o.Events,
	}
	if o.TokenIn == "" {
		m["tokenIn"] = string(InAuth)
	}
	if o.Path != "" {
		m["path"] = o.Path
	}
	if o.Since != nil {
		m["since"] = o.Since
	}
	if o.Transports != nil {
		m["transports"] = o.Transports
	}
	if o.Reconnection != nil {
		m["reconnection"] = *o.Reconnection
	}
	if o.ReconnectionDelay > 0 {
		m["reconnectionDelay"] = o.ReconnectionDelay.Milliseconds()
	}
	if o.ReconnectionDelayMax > 0 {
		m["reconnectionDelayMax"] = o.ReconnectionDelayMax.Milliseconds()
	}
	if o.ReconnectionAttempts > 0 {
		m["reconnectionAttempts"] = o.ReconnectionAttempts
	}
	return m
}

// read turns output lines into values until the process ends, then closes c.
func (cl *Client) read(r io.Reader, c chan<- any) {
	defer close(cl.done)
	defer close(c)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			cl.t.Logf("sioclient: unexpected output %q", sc.Text())
			continue
		}
		var v any
		switch l.Type {
		case "event":
			e := Event{Name: l.Name, Data: l.Data}
			if l.Offset != nil {
				e.Offset = *l.Offset
			}
			v = e
		case "connect":
			v = Connect{ID: l.ID, Recovered: l.Recovered, Transport: l.Transport}
		case "connect_error":
			v = ConnectError{Message: l.Message, Data: l.Data, Active: l.Active}
		case "disconnect":
			v = Disconnect{Reason: l.Reason, Active: l.Active}
		case "upgrade":
			v = Upgrade{Transport: l.Transport}
		case "ack":
			v = Ack{Seq: l.Seq, Data: l.Data}
		default:
			continue
		}
		select {
		case c <- v:
		case <-cl.quit:
			return
		}
	}
}

// stop ends the process and waits for it and the reader.
func (cl *Client) stop() {
	close(cl.quit)
	_ = cl.cmd.Process.Kill()
	_ = cl.cmd.Wait()
	<-cl.done
}

// command writes one command line to the client.
func (cl *Client) command(cmd string) {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, err := io.WriteString(cl.stdin, cmd+"\n"); err != nil {
		cl.t.Fatalf("sioclient: %s: %v", cmd, err)
	}
}

// Disconnect calls socket.disconnect().
func (cl *Client) Disconnect() { cl.t.Helper(); cl.command("disconnect") }

// Connect calls socket.connect().
func (cl *Client) Connect() { cl.t.Helper(); cl.command("connect") }

// CloseEngine calls socket.io.engine.close(): the transport drops as on a network
// failure, and the client reconnects (with recovery) as its options say.
func (cl *Client) CloseEngine() { cl.t.Helper(); cl.command("close") }

// Emit calls socket.emit(event, ...args), as the seeds send updates.
func (cl *Client) Emit(event string, args ...any) {
	cl.t.Helper()
	cl.emit(event, args, false)
}

// EmitAck calls socket.emit(event, ...args, callback) and returns the number the
// Ack that the callback reports carries.
func (cl *Client) EmitAck(event string, args ...any) int {
	cl.t.Helper()
	cl.seq++
	cl.emit(event, args, true)
	return cl.seq
}

func (cl *Client) emit(event string, args []any, ack bool) {
	cl.t.Helper()
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(map[string]any{"event": event, "args": args, "ack": ack, "seq": cl.seq})
	if err != nil {
		cl.t.Fatalf("sioclient: emit %s: %v", event, err)
	}
	cl.command("emit " + string(b))
}

// WaitAck returns the next ack, failing t on anything else but an upgrade.
func (cl *Client) WaitAck() Ack { cl.t.Helper(); return wait[Ack](cl, "ack") }

// Next returns the next thing the client saw, failing t after the timeout or if
// the process ended.
func (cl *Client) Next() any {
	cl.t.Helper()
	t := time.NewTimer(cl.timeout)
	defer t.Stop()
	select {
	case v, ok := <-cl.C:
		if !ok {
			cl.t.Fatal("sioclient: the client process ended")
		}
		return v
	case <-t.C:
		cl.t.Fatalf("sioclient: nothing from the client within %v", cl.timeout)
		return nil
	}
}

// wait returns the next value of type T, passing over upgrades.
func wait[T any](cl *Client, what string) T {
	cl.t.Helper()
	for {
		switch v := cl.Next().(type) {
		case T:
			return v
		case Upgrade:
			// Transport changes are incidental to what a test waits for; WaitUpgrade
			// still sees them.
			cl.skipped = append(cl.skipped, v)
		default:
			cl.t.Fatalf("sioclient: waiting for %s, got %T %+v", what, v, v)
		}
	}
}

// WaitConnect returns the next connect, failing t on anything else but an upgrade.
func (cl *Client) WaitConnect() Connect { cl.t.Helper(); return wait[Connect](cl, "connect") }

// WaitReconnect returns the next connect, passing over upgrades and the connect_errors
// the client retries by itself (Active: the server was down or restarting meanwhile);
// a connect_error it gives up on fails t.
func (cl *Client) WaitReconnect() Connect {
	cl.t.Helper()
	for {
		switch v := cl.Next().(type) {
		case Connect:
			return v
		case Upgrade:
			cl.skipped = append(cl.skipped, v)
		case ConnectError:
			if !v.Active {
				cl.t.Fatalf("sioclient: waiting for a reconnect, got a final connect_error %+v", v)
			}
		default:
			cl.t.Fatalf("sioclient: waiting for a reconnect, got %T %+v", v, v)
		}
	}
}

// WaitConnectError returns the next connect_error, failing t on anything else but
// an upgrade.
func (cl *Client) WaitConnectError() ConnectError {
	cl.t.Helper()
	return wait[ConnectError](cl, "connect_error")
}

// WaitDisconnect returns the next disconnect, failing t on anything else but an
// upgrade.
func (cl *Client) WaitDisconnect() Disconnect {
	cl.t.Helper()
	return wait[Disconnect](cl, "disconnect")
}

// WaitEvent returns the next event, failing t on anything else but an upgrade.
func (cl *Client) WaitEvent() Event { cl.t.Helper(); return wait[Event](cl, "event") }

// WaitUpgrade returns the first upgrade a Wait helper passed over, or else the next
// thing the client saw, which must be an upgrade.
func (cl *Client) WaitUpgrade() Upgrade {
	cl.t.Helper()
	if len(cl.skipped) > 0 {
		u := cl.skipped[0]
		cl.skipped = cl.skipped[1:]
		return u
	}
	v := cl.Next()
	u, ok := v.(Upgrade)
	if !ok {
		cl.t.Fatalf("sioclient: waiting for upgrade, got %T %+v", v, v)
	}
	return u
}

// String describes an event for test failures.
func (e Event) String() string {
	return fmt.Sprintf("%s %s (offset %q)", e.Name, e.Data, e.Offset)
}

// logWriter sends the client's stderr to the test log, line by line.
type logWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.t.Logf("sioclient stderr: %s", w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
