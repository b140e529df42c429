// Package watch follows a running notifier's GET /ws as a dashboard does and prints
// each event: one line (`15:04:05 appointments.checkin #123 João Silva with Dr. Victor
// 09:00`, `15:04:07 appointments.status.changed #124 João Silva: Check-in -> Em
// atendimento`; see Summary) or the frame's JSON. It is `notifier watch`, for DBAs and developers who want
// to see what the notifier sends without writing a client.
//
// # Lifecycle
//
// Run dials, reads until the connection ends, and dials again with ?since=<last event
// id> after a jittered, capped backoff, saying so on Config.Status; it returns nil when
// its context ends (after a close frame 1000). A token that expires (a 401 "token
// expired" at the handshake, or close 4001 on a live connection) is replaced through
// Config.TokenFunc when there is one, else Run returns ErrTokenExpired. Any other
// refusal of the handshake (a bad token, a bad request, a forbidden origin) is
// permanent and returned; an unreachable or overloaded server is retried forever.
//
// # Concurrency
//
// Run reads in its own goroutine; when its context ends, a context.AfterFunc sends
// the close frame and closes the connection (gorilla allows WriteControl and Close
// concurrently with reads). Out and Status are written from Run's goroutine only.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes and event names of the /ws contract that the watcher acts on.
const (
	closeTokenExpired = 4001
	closeSlowConsumer = 4008
	eventResync       = "notifier.resync"
	reasonExpired     = "token expired"
)

// ErrTokenExpired is returned by Run when the token expired and no fresh one can be
// had (Config.TokenFunc is nil or failed).
var ErrTokenExpired = errors.New("token expired")

// ErrRefused wraps a permanent refusal of the handshake: {"error":…} of a 400, 401
// or 403.
var ErrRefused = errors.New("refused by the notifier")

// Defaults of Config.
const (
	DefaultMinBackoff  = 250 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	DefaultIdleTimeout = 90 * time.Second // > the server's default ping interval (25s) with room
	writeWait          = time.Second
	readLimit          = 1 << 20
)

// Config configures Run.
type Config struct {
	URL       string                 // ws:// or wss:// URL of /ws; may carry ?events=
	Token     string                 // the token to start with; sent as Authorization: Bearer
	TokenFunc func() (string, error) // mints a fresh token when the current one expires; may be nil
	Since     int64                  // resume after this event id; 0 starts with live events
	JSON      bool                   // print each frame's JSON instead of a summary line

	Out    io.Writer // events, one line each
	Status io.Writer // connection notices (connected, lost, reconnected, resync); nil discards

	Dialer      *websocket.Dialer // nil: a dialer with a 10s handshake timeout
	MinBackoff  time.Duration     // first reconnect delay; default DefaultMinBackoff
	MaxBackoff  time.Duration     // cap of the doubling delay; default DefaultMaxBackoff
	IdleTimeout time.Duration     // a connection silent this long (no frame, no ping) is dead; default DefaultIdleTimeout
	NowFunc     func() time.Time  // clock of the printed times; default time.Now
}

// frame is one /ws text frame.
type frame struct {
	ID      int64           `json:"id"`
	Event   string          `json:"event"`
	Partial bool            `json:"partial"`
	Data    json.RawMessage `json:"data"`
}

// watcher is one Run.
type watcher struct {
	cfg   Config
	base  *url.URL
	token string
	last  int64 // id of the last event printed
}

// Run watches until ctx ends (nil) or the notifier refuses for good (an error).
func Run(ctx context.Context, cfg Config) error {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "ws" && base.Scheme != "wss") || base.Host == "" {
		return fmt.Errorf("watch: url %q: want ws://host:port/ws or wss://…", cfg.URL)
	}
	if cfg.Token == "" && cfg.TokenFunc == nil {
		return errors.New("watch: no token")
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Status == nil {
		cfg.Status = io.Discard
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	w := &watcher{cfg: cfg, base: base, token: cfg.Token, last: cfg.Since}
	if w.token == "" {
		if w.token, err = cfg.TokenFunc(); err != nil {
			return fmt.Errorf("watch: mint a token: %w", err)
		}
	}
	return w.run(ctx)
}

func (w *watcher) run(ctx context.Context) error {
	connected := false // once connected, later connections are reconnections
	failures := 0      // consecutive failed attempts, for the backoff
	minted := false    // the current token is fresh from TokenFunc
	for {
		conn, err := w.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrTokenExpired) {
				if minted || w.cfg.TokenFunc == nil {
					return err
				}
				if err := w.mint(); err != nil {
					return err
				}
				minted = true
				continue
			}
			if errors.Is(err, ErrRefused) {
				return err
			}
			failures++
			wait := w.backoff(failures)
			w.status("cannot connect to %s: %v; retrying in %s", w.base.Redacted(), err, wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		failures, minted = 0, false
		switch {
		case connected && w.last > 0:
			w.status("reconnected, resuming after #%d", w.last)
		case connected:
			w.status("reconnected")
		case w.last > 0:
			w.status("connected to %s, resuming after #%d", w.base.Redacted(), w.last)
		default:
			w.status("connected to %s, waiting for events", w.base.Redacted())
		}
		connected = true

		err = w.read(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		var ce *websocket.CloseError
		code := 0
		if errors.As(err, &ce) {
			code = ce.Code
		}
		switch code {
		case closeTokenExpired:
			if w.cfg.TokenFunc == nil {
				w.status("the token expired")
				return fmt.Errorf("watch: %w", ErrTokenExpired)
			}
			if err := w.mint(); err != nil {
				return err
			}
			minted = true
			continue // at once: nothing is wrong with the server
		case closeSlowConsumer:
			w.status("the notifier dropped this connection as too slow (close 4008)")
		case websocket.CloseGoingAway:
			w.status("the notifier is shutting down (close 1001)")
		default:
			w.status("connection lost: %v", err)
		}
		failures++
		wait := w.backoff(failures)
		w.status("reconnecting in %s", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// mint replaces the token through TokenFunc.
func (w *watcher) mint() error {
	tok, err := w.cfg.TokenFunc()
	if err != nil {
		return fmt.Errorf("watch: %w, and minting a fresh one failed: %v", ErrTokenExpired, err)
	}
	w.token = tok
	w.status("the token expired; minted a fresh one")
	return nil
}

// dial opens a connection resuming after w.last. A refused handshake is ErrRefused
// or ErrTokenExpired with the server's reason; 5xx and 429 are temporary.
func (w *watcher) dial(ctx context.Context) (*websocket.Conn, error) {
	u := *w.base
	q := u.Query()
	if w.last > 0 {
		q.Set("since", strconv.FormatInt(w.last, 10))
	}
	u.RawQuery = q.Encode()
	header := http.Header{"Authorization": {"Bearer " + w.token}}
	conn, resp, err := w.cfg.Dialer.DialContext(ctx, u.String(), header)
	if err == nil {
		return conn, nil
	}
	if resp == nil {
		return nil, err
	}
	var body struct {
		Error string `json:"error"`
	}
	if resp.Body != nil {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	}
	reason := body.Error
	if reason == "" {
		reason = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if reason == reasonExpired {
			return nil, fmt.Errorf("watch: %w", ErrTokenExpired)
		}
		return nil, fmt.Errorf("watch: %w: %s", ErrRefused, reason)
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound:
		return nil, fmt.Errorf("watch: %w: %s (HTTP %d)", ErrRefused, reason, resp.StatusCode)
	}
	return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, reason)
}

// read prints the connection's frames until it ends, and returns why it ended.
func (w *watcher) read(ctx context.Context, conn *websocket.Conn) error {
	stop := context.AfterFunc(ctx, func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
		_ = conn.Close()
	})
	defer stop()
	defer conn.Close()
	conn.SetReadLimit(readLimit)
	alive := func() { _ = conn.SetReadDeadline(time.Now().Add(w.cfg.IdleTimeout)) }
	alive()
	conn.SetPingHandler(func(data string) error {
		alive()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		alive()
		w.handle(p)
	}
}

// handle prints one frame.
func (w *watcher) handle(p []byte) {
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		w.status("unreadable frame skipped: %v", err)
		return
	}
	if f.Event == eventResync {
		w.status("the notifier cannot resume after #%d (older than its log keeps, or another database): events were missed; showing live events from here", w.last)
	}
	if f.ID > 0 {
		w.last = f.ID
	}
	if w.cfg.JSON {
		fmt.Fprintf(w.cfg.Out, "%s\n", p)
		return
	}
	if f.Event == eventResync {
		return
	}
	fmt.Fprintf(w.cfg.Out, "%s %s\n", w.cfg.NowFunc().Format(time.TimeOnly), Summary(f.ID, f.Event, f.Partial, f.Data))
}

// status writes one notice line.
func (w *watcher) status(format string, args ...any) {
	fmt.Fprintf(w.cfg.Status, "%s %s\n", w.cfg.NowFunc().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// backoff is the wait before attempt n (1, 2, ...): doubling from MinBackoff, capped
// at MaxBackoff, with ±20% jitter so that watchers of a restarted server spread out.
func (w *watcher) backoff(n int) time.Duration {
	d := w.cfg.MinBackoff << min(n-1, 20)
	if d <= 0 || d > w.cfg.MaxBackoff {
		d = w.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Event names the summary lines tell apart; other events of a table get that table's
// plain line.
const (
	eventAppointmentUpdated       = "appointments.updated"
	eventAppointmentStatusChanged = "appointments.status.changed"
	eventDoctorCreated            = "doctors.created"
	eventDoctorUpdated            = "doctors.updated"
	eventDoctorBusy               = "doctors.busy"
	eventDoctorDeleted            = "doctors.deleted"
)

// named is the part of a payload a summary reads: an id and a name.
type named struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// payload is what a summary reads of an appointment or a doctor.
type payload struct {
	named
	Date             string            `json:"date"`
	StartTime        string            `json:"startTime"`
	Patient          *named            `json:"patient"`
	Doctor           *named            `json:"doctor"`
	Status           *named            `json:"status"`
	PreviousStatus   *named            `json:"previousStatus"`
	IsBusy           bool              `json:"isBusy"`
	DoctorProcedures []json.RawMessage `json:"doctorProcedures"`
}

// Summary is the line watch prints for an event (after the time): the event, its id
// and what it is about:
//
//	appointments.created #123 João Silva with Dr. Victor 09:00
//	appointments.updated #124 João Silva with Dr. Victor 2025-01-24 10:00 (Agendado)
//	appointments.status.changed #125 João Silva: Agendado -> Check-in
//	doctors.created #7 Dr. X (2 procedures)
//	doctors.updated #8 Dr. X (2 procedures, busy)
//	doctors.busy #9 Dr. X is busy
//
// The other appointment events (checkin, serving, finished, deleted) read as created
// does; doctors.deleted is the doctor's name.
func Summary(id int64, event string, partial bool, data json.RawMessage) string {
	head := event + " #" + strconv.FormatInt(id, 10)
	var d payload
	if err := json.Unmarshal(data, &d); err != nil {
		return head
	}
	if partial {
		kind := "row"
		switch {
		case strings.HasPrefix(event, "appointments."):
			kind = "appointment"
		case strings.HasPrefix(event, "doctors."):
			kind = "doctor"
		}
		return fmt.Sprintf("%s %s %d (gone before it could be read)", head, kind, d.ID)
	}
	switch {
	case strings.HasPrefix(event, "appointments."):
		return head + " " + appointmentSummary(event, &d)
	case strings.HasPrefix(event, "doctors."):
		return head + " " + doctorSummary(event, &d)
	}
	return head
}

func appointmentSummary(event string, d *payload) string {
	patient := "(no patient)"
	if d.Patient != nil && d.Patient.Name != "" {
		patient = d.Patient.Name
	}
	if event == eventAppointmentStatusChanged {
		return patient + ": " + statusName(d.PreviousStatus) + " -> " + statusName(d.Status)
	}
	parts := []string{patient}
	if d.Doctor != nil && d.Doctor.Name != "" {
		parts = append(parts, "with", d.Doctor.Name)
	}
	if event == eventAppointmentUpdated && len(d.Date) >= len(time.DateOnly) {
		parts = append(parts, d.Date[:len(time.DateOnly)])
	}
	if d.StartTime != "" {
		parts = append(parts, d.StartTime)
	}
	if event == eventAppointmentUpdated && d.Status != nil {
		parts = append(parts, "("+statusName(d.Status)+")")
	}
	return strings.Join(parts, " ")
}

func doctorSummary(event string, d *payload) string {
	name := d.Name
	if name == "" {
		name = "(no name)"
	}
	n := len(d.DoctorProcedures)
	procedures := fmt.Sprintf("%d procedures", n)
	if n == 1 {
		procedures = "1 procedure"
	}
	switch event {
	case eventDoctorCreated:
		return name + " (" + procedures + ")"
	case eventDoctorUpdated:
		busy := "available"
		if d.IsBusy {
			busy = "busy"
		}
		return name + " (" + procedures + ", " + busy + ")"
	case eventDoctorBusy:
		return name + " is busy"
	case eventDoctorDeleted:
		return name
	}
	return name + " (" + procedures + ")"
}

// statusName is a status's name, "(none)" for a null one.
func statusName(s *named) string {
	switch {
	case s == nil:
		return "(none)"
	case s.Name == "":
		return fmt.Sprintf("status %d", s.ID)
	}
	return s.Name
}
