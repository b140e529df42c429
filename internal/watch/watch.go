// Package watch follows a running notifier's GET /ws as a dashboard does and prints
// each event: one line (`15:04:05 appointments.checkin #123 João Silva with Dr. Victor
// 09:00`, `15:04:07 appointments.status.changed #124 João Silva: Check-in -> Em
// atendimento`; see Summary) or the frame's JSON. It is `notifier watch`, for DBAs and developers who want
// to see what the notifier sends without writing a client.
//
// # Lifecycle
//
// With Config.Snapshot, Run first takes the snapshot lists (GET /v1/snapshot/{list}
// beside /ws, every page of each), prints them (ItemSummary lines under a header per
// list, or {"list":…,"item":…} lines), and follows from the smallest list's H, as a
// dashboard does (issue 12): no gap, and an event at or below the H of every list of
// its table (the list name's first part: "appointments.today" is of appointments) is
// in those lists already and not printed again.
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

	"github.com/pgnotifier/notifier/notifier/contract"
)

// Close codes and event names of the /ws contract that the watcher acts on.
const (
	closeTokenExpired = contract.CloseTokenExpired
	closeSlowConsumer = contract.CloseSlowConsumer
	eventResync       = contract.EventResync
	reasonExpired     = contract.ReasonTokenExpired
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
	Snapshot  bool                   // print the snapshot lists first, then follow from their smallest H (Since is ignored)
	Lists     []string               // with Snapshot: the lists to print; empty: every list GET /v1/snapshot names

	Out    io.Writer // events, one line each
	Status io.Writer // connection notices (connected, lost, reconnected, resync); nil discards

	Dialer      *websocket.Dialer // nil: a dialer with a 10s handshake timeout
	HTTPClient  *http.Client      // for the snapshot API; nil: a client with a 30s timeout
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
	cfg    Config
	base   *url.URL
	token  string
	last   int64            // id of the last event printed
	resume bool             // send ?since=last even when it is 0: it is a snapshot's H
	heads  map[string]int64 // by table: the smallest H of its lists printed; its events up to it are skipped
	minted bool             // the token is fresh from TokenFunc (a second "token expired" is final)
}

// Run watches until ctx ends (nil) or the notifier refuses for good (an error).
func Run(ctx context.Context, cfg Config) error {
	base, err := endpoint(cfg.URL)
	if err != nil {
		return err
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
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	w := &watcher{cfg: cfg, base: base, token: cfg.Token, last: cfg.Since}
	if w.token == "" {
		if w.token, err = cfg.TokenFunc(); err != nil {
			return fmt.Errorf("watch: mint a token: %w", err)
		}
	}
	if cfg.Snapshot {
		w.last = 0
		if err := w.snapshot(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
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
		if errors.Is(err, errResync) {
			if err := w.snapshot(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
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

// endpoint is the /ws URL raw names: ws(s)://host:port/ws as given, or the base URL
// the demo prints (http://host:port), which gets the scheme ws and the path /ws.
func endpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		switch u.Scheme {
		case "http":
			u.Scheme = "ws"
		case "https":
			u.Scheme = "wss"
		}
	}
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("watch: url %q: want ws://host:port/ws, wss://…, or the notifier's http(s)://host:port", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u, nil
}

// dial opens a connection resuming after w.last. A refused handshake is ErrRefused
// or ErrTokenExpired with the server's reason; 5xx and 429 are temporary.
func (w *watcher) dial(ctx context.Context) (*websocket.Conn, error) {
	u := *w.base
	q := u.Query()
	if w.last > 0 || w.resume {
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
	if resp.StatusCode < 400 {
		// An answer that is not an upgrade: a page, a redirect. Not a notifier's /ws;
		// retrying would never change that.
		return nil, fmt.Errorf("watch: %w: %s answered HTTP %d without upgrading: not a notifier's /ws endpoint", ErrRefused, u.Redacted(), resp.StatusCode)
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
		if w.handle(p) {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
			return errResync
		}
	}
}

// handle prints one frame; it reports a resync that calls for new snapshots.
func (w *watcher) handle(p []byte) (resnapshot bool) {
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		w.status("unreadable frame skipped: %v", err)
		return false
	}
	if f.Event == eventResync {
		if w.cfg.Snapshot {
			w.status("the notifier cannot resume after #%d (older than its log keeps): taking the snapshots again", w.last)
			return true
		}
		w.status("the notifier cannot resume after #%d (older than its log keeps, or another database): events were missed; showing live events from here", w.last)
	}
	if f.ID > 0 {
		w.last = f.ID
		if h, ok := w.heads[table(f.Event)]; ok && f.ID <= h {
			return false // every list of its table holds it already
		}
	}
	if w.cfg.JSON {
		fmt.Fprintf(w.cfg.Out, "%s\n", p)
		return false
	}
	if f.Event == eventResync {
		return false
	}
	fmt.Fprintf(w.cfg.Out, "%s %s\n", w.cfg.NowFunc().Format(time.TimeOnly), Summary(f.ID, f.Event, f.Partial, f.Data))
	return false
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

// snapshotPath is the snapshot API's path beside /ws.
const snapshotPath = "v1/snapshot"

// errResync ends a connection whose since the notifier could not serve, when the
// lists are to be taken again.
var errResync = errors.New("resync")

// list is one snapshot list, every page of it.
type list struct {
	name  string
	since int64
	items []json.RawMessage
}

// snapshot takes and prints the lists and sets where to follow from: the smallest H.
func (w *watcher) snapshot(ctx context.Context) error {
	names := w.cfg.Lists
	if len(names) == 0 {
		var index struct {
			Lists []struct {
				Name string `json:"name"`
			} `json:"lists"`
		}
		if err := w.getJSON(ctx, w.snapshotURL("", ""), &index); err != nil {
			return fmt.Errorf("watch: snapshot lists: %w", err)
		}
		for _, l := range index.Lists {
			names = append(names, l.Name)
		}
		if len(names) == 0 {
			return fmt.Errorf("watch: %w: the notifier has no snapshot lists", ErrRefused)
		}
	}
	lists := make([]list, 0, len(names))
	for _, name := range names {
		l, err := w.list(ctx, name)
		if err != nil {
			return fmt.Errorf("watch: snapshot %s: %w", name, err)
		}
		lists = append(lists, l)
	}
	w.heads = make(map[string]int64)
	since, most := lists[0].since, lists[0].since
	for _, l := range lists {
		since, most = min(since, l.since), max(most, l.since)
		t := table(l.name)
		if h, ok := w.heads[t]; !ok || l.since < h {
			w.heads[t] = l.since
		}
		w.printList(l)
	}
	w.last, w.resume = since, true
	if since == most {
		w.status("snapshot of %d lists as of event #%d; following from there", len(lists), since)
	} else {
		w.status("snapshot of %d lists as of events #%d..#%d; following from #%d", len(lists), since, most, since)
	}
	return nil
}

// list fetches every page of one list; a cursor that expires (410) starts it over,
// twice at most.
func (w *watcher) list(ctx context.Context, name string) (list, error) {
	for restarts := 0; ; restarts++ {
		l := list{name: name}
		cursor := ""
		for {
			var page struct {
				Since json.Number       `json:"since"`
				Items []json.RawMessage `json:"items"`
				Next  *string           `json:"next"`
			}
			err := w.getJSON(ctx, w.snapshotURL(name, cursor), &page)
			var he *httpError
			if errors.As(err, &he) && he.status == http.StatusGone && cursor != "" && restarts < 2 {
				w.status("the snapshot of %s expired while being read; taking it again", name)
				break
			}
			if err != nil {
				return list{}, err
			}
			since, err := strconv.ParseInt(page.Since.String(), 10, 64)
			if err != nil || since < 0 {
				return list{}, fmt.Errorf("since %q is not an event id", page.Since)
			}
			if cursor != "" && since != l.since {
				return list{}, fmt.Errorf("a page as of #%d in a snapshot as of #%d", since, l.since)
			}
			l.since = since
			l.items = append(l.items, page.Items...)
			if page.Next == nil || *page.Next == "" {
				return l, nil
			}
			cursor = *page.Next
		}
	}
}

// printList prints one list: a header and a line per item, or a JSON line per item.
func (w *watcher) printList(l list) {
	if w.cfg.JSON {
		name, _ := json.Marshal(l.name)
		for _, item := range l.items {
			fmt.Fprintf(w.cfg.Out, "{\"list\":%s,\"item\":%s}\n", name, item)
		}
		return
	}
	items := "items"
	if len(l.items) == 1 {
		items = "item"
	}
	fmt.Fprintf(w.cfg.Out, "%s: %d %s as of event #%d\n", l.name, len(l.items), items, l.since)
	for _, item := range l.items {
		fmt.Fprintf(w.cfg.Out, "  %s\n", ItemSummary(l.name, item))
	}
}

// snapshotURL is the snapshot API's URL beside /ws: the index, or a list's page.
func (w *watcher) snapshotURL(name, cursor string) string {
	u := *w.base
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	dir := u.Path[:strings.LastIndex(u.Path, "/")+1] // "/ws" -> "/", "/x/ws" -> "/x/"
	if dir == "" {
		dir = "/"
	}
	u.Path = dir + snapshotPath
	if name != "" {
		u.Path += "/" + name
	}
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	if cursor != "" {
		u.RawQuery = url.Values{"cursor": {cursor}}.Encode()
	}
	return u.String()
}

// httpError is a snapshot request the notifier refused: its status and reason.
type httpError struct {
	status int
	reason string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.reason) }

// getJSON GETs target with the token into v. A token that expires is minted again
// once; an unreachable or busy server (no answer, 5xx, 429) is asked again with
// backoff, after Retry-After when it sends one; any other refusal is ErrRefused with
// the server's reason.
func (w *watcher) getJSON(ctx context.Context, target string, v any) error {
	failures := 0
	for {
		err := w.get(ctx, target, v)
		var he *httpError
		switch {
		case err == nil:
			w.minted = false
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &he) && he.status == http.StatusUnauthorized && he.reason == reasonExpired:
			if w.minted || w.cfg.TokenFunc == nil {
				return ErrTokenExpired
			}
			if err := w.mint(); err != nil {
				return err
			}
			w.minted = true
			continue
		case errors.As(err, &he) && he.status < 500 && he.status != http.StatusTooManyRequests:
			if he.status == http.StatusGone {
				return err
			}
			return fmt.Errorf("%w: %s (HTTP %d)", ErrRefused, he.reason, he.status)
		}
		failures++
		wait := w.backoff(failures)
		var ra retryAfter
		if errors.As(err, &ra) && ra > 0 {
			wait = min(time.Duration(ra), time.Minute)
		}
		w.status("cannot take the snapshot (%s): %v; retrying in %s", target, err, wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// retryAfter is a busy server's Retry-After.
type retryAfter time.Duration

func (r retryAfter) Error() string { return "retry after " + time.Duration(r).String() }

// get makes one request.
func (w *watcher) get(ctx context.Context, target string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("Accept", "application/json")
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		return nil
	}
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	reason := body.Error
	if reason == "" {
		reason = resp.Status
	}
	he := &httpError{status: resp.StatusCode, reason: reason}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return errors.Join(he, retryAfter(time.Duration(s)*time.Second))
	}
	return he
}

// table is the table of an event or a list: its name's first part.
func table(name string) string {
	t, _, _ := strings.Cut(name, ".")
	return t
}

// ItemSummary is the line watch prints for an item of a snapshot list (indented
// under the list's header), by the list's table:
//
//	appointment 45: João Silva with Dr. Victor 2025-01-24 09:00 (Agendado)
//	doctor 7: Dr. X (2 procedures, busy)
//	row 9
func ItemSummary(listName string, item json.RawMessage) string {
	var d payload
	if err := json.Unmarshal(item, &d); err != nil {
		return "(unreadable item)"
	}
	id := strconv.FormatInt(d.ID, 10)
	switch table(listName) {
	case "appointments":
		return "appointment " + id + ": " + appointmentSummary(eventAppointmentUpdated, &d)
	case "doctors":
		return "doctor " + id + ": " + doctorSummary(eventDoctorUpdated, &d)
	}
	if d.Name != "" {
		return "row " + id + ": " + d.Name
	}
	return "row " + id
}
