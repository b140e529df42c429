package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pgnotifier/notifier/internal/ratelimit"
	"github.com/pgnotifier/notifier/notifier/contract"
)

// EventError is emitted to a client whose emit of a relayed event (Config.RelayEvents)
// was not relayed, with {"code":…,"event":…,"message":…}; the socket goes on. An emit
// that asked for an acknowledgement also gets the same object, with "ok":false, as its
// ack.
const EventError = contract.EventError

// Codes of EventError.
const (
	RelayTooLarge    = "relay_too_large"    // its arguments are over Config.RelayMaxBytes
	RelayRateLimited = "relay_rate_limited" // over Config.RelayRate, or too many still pending
	RelayNotObject   = "relay_not_object"   // its first argument is not a JSON object
	RelayFailed      = "relay_failed"       // the log refused it or could not be reached
)

// Defaults of the relay settings of Config.
const (
	DefaultRelayMaxBytes = 16 << 10
	DefaultRelayRate     = 10
	DefaultRelayTimeout  = 5 * time.Second
)

// reservedNames are the events socket.io-client raises itself: one relayed to a
// client would pass for its own connection's.
var reservedNames = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// CheckRelayName reports why name may not be relayed: it is one of the notifier's own
// events (notifier.*, which the server alone sends), or one the Socket.IO client
// reserves.
func CheckRelayName(name string) error {
	switch {
	case strings.HasPrefix(name, "notifier."):
		return fmt.Errorf("%q is a name of the notifier's own events (notifier.*)", name)
	case reservedNames[name]:
		return fmt.Errorf("%q is reserved by the Socket.IO client", name)
	}
	return nil
}

// RelayFunc appends a client's event to the event log for the other clients of
// account, and returns its id. account and subject are the sender's verified token's;
// origin is its socket's public id, which the hub never delivers the event back to
// (hub.Subscription.SetOrigin); data is the emit's first argument, a JSON object. It
// runs in a goroutine of the session, one call at a time per session, within
// Config.RelayTimeout.
type RelayFunc func(ctx context.Context, account int64, subject, origin, event string, data []byte) (int64, error)

// relayJob is an emit accepted for relaying, with who sent it, captured when it came.
type relayJob struct {
	logger  *slog.Logger
	gen     int   // the socket's generation: an ack goes only to the socket that asked
	ackID   int64 // -1: no ack asked for
	account int64
	subject string
	origin  string
	event   string
	data    []byte
}

// relayResult is what the relay goroutine reports back to the loop.
type relayResult struct {
	job relayJob
	id  int64
	err error
}

// relayBudget is a token bucket of rate tokens a second holding at most burst. A
// ratelimit.Bucket holds at most its rate, so this one holds burst tokens and is run on
// a clock slowed by rate/burst: it refills at rate a second in real time.
type relayBudget struct {
	b     *ratelimit.Bucket
	start time.Time
	scale float64
}

func newRelayBudget(rate, burst int, now time.Time) *relayBudget {
	return &relayBudget{b: ratelimit.New(burst, now), start: now, scale: float64(rate) / float64(burst)}
}

func (r *relayBudget) take(now time.Time) bool {
	return r.b.Take(r.start.Add(time.Duration(float64(now.Sub(r.start)) * r.scale)))
}

// relayable returns the event name of p when p is the emit of a relayed event by the
// connected socket, and where its arguments start in p.Data.
func (s *session) relayable(p sioPacket) (string, int, bool) {
	if len(s.hd.relay) == 0 || p.Type != sioEvent || p.Namespace != "/" || s.state != socketConnected || s.closing != "" {
		return "", 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(p.Data))
	if _, err := dec.Token(); err != nil { // '[', checked by the parser
		return "", 0, false
	}
	tok, err := dec.Token()
	name, ok := tok.(string)
	if err != nil || !ok || !s.hd.relay[name] {
		return "", 0, false
	}
	return name, int(dec.InputOffset()), true
}

// clientEvent handles the emit of a relayed event: it is checked, counted against the
// socket's relay budget (what is over it counts against the session's packet budget
// instead, which ends a flood as usual), and queued for the relay goroutine.
func (s *session) clientEvent(p sioPacket, name string, argsAt int) {
	// `,<args>]` or `]`: the arguments' JSON is what lies between.
	args := bytes.TrimSpace(p.Data[argsAt:])
	args = bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSuffix(args, []byte("]")), []byte(",")))
	if len(args) > s.hd.cfg.RelayMaxBytes {
		if s.spend() {
			s.relayError(p.AckID, RelayTooLarge, name, fmt.Sprintf("the arguments are %d bytes, over the limit of %d", len(args), s.hd.cfg.RelayMaxBytes))
		}
		return
	}
	var all []json.RawMessage // copies: p.Data aliases the transport's buffer
	_ = json.Unmarshal(p.Data, &all)
	if len(all) < 2 || firstByte(all[1]) != '{' {
		if s.spend() {
			s.relayError(p.AckID, RelayNotObject, name, "the first argument must be a JSON object")
		}
		return
	}
	if !s.relayBudget.take(time.Now()) {
		if s.spend() {
			s.relayError(p.AckID, RelayRateLimited, name, fmt.Sprintf("over %d relayed events a second", s.hd.cfg.RelayRate))
		}
		return
	}
	if s.relayJobs == nil {
		s.startRelaying()
	}
	// auth.Claims carries no subject claim (yet): relayedBy.sub is "".
	job := relayJob{logger: s.logger, gen: s.gen, ackID: p.AckID, account: s.claims.AccountID, subject: "", origin: s.sid, event: name, data: all[1]}
	select {
	case s.relayJobs <- job:
	default:
		s.relayError(p.AckID, RelayRateLimited, name, "too many relayed events pending")
	}
}

// startRelaying starts the session's relay goroutine: it calls RelayFunc for each job,
// in order, one at a time, and reports errors and acks to the loop. It outlives the
// loop by at most Config.RelayTimeout to finish what the client sent (finish).
func (s *session) startRelaying() {
	jobs := make(chan relayJob, s.hd.cfg.RelayBurst)
	ctx, cancel := context.WithCancel(context.Background())
	s.relayJobs, s.relayCancel = jobs, cancel
	s.relays.Add(1)
	go func() {
		defer s.relays.Done()
		for j := range jobs {
			id, err := s.relayOne(ctx, j)
			if err != nil {
				j.logger.Warn("relay failed", "event", j.event, "error", err)
			} else if j.ackID < 0 {
				continue // nothing to tell
			}
			select {
			case s.relayed <- relayResult{job: j, id: id, err: err}:
			case <-s.done: // the session ended: no one to tell
			}
		}
	}()
}

// errRelayTimeout names a RelayFunc call that took longer than Config.RelayTimeout.
var errRelayTimeout = errors.New("relay timed out")

func (s *session) relayOne(ctx context.Context, j relayJob) (int64, error) {
	timeout := s.hd.cfg.RelayTimeout
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %v", errRelayTimeout, timeout))
	defer cancel()
	id, err := s.hd.cfg.RelayFunc(ctx, j.account, j.subject, j.origin, j.event, j.data)
	if err != nil && ctx.Err() != nil {
		return 0, fmt.Errorf("relay %s: %w", j.event, context.Cause(ctx))
	}
	if err != nil {
		return 0, fmt.Errorf("relay %s: %w", j.event, err)
	}
	return id, nil
}

// relayDone tells the socket that sent a job how it went, if it is still connected.
func (s *session) relayDone(r relayResult) {
	if r.job.gen != s.gen || s.state != socketConnected {
		return
	}
	if r.err != nil {
		s.relayError(r.job.ackID, RelayFailed, r.job.event, "the event could not be relayed")
		return
	}
	b := strconv.AppendInt([]byte(`[{"ok":true,"id":`), r.id, 10)
	s.queueAck(r.job.ackID, append(b, "}]"...))
}

// relayError queues EventError with code, and the same object as the ack when the
// emit asked for one.
func (s *session) relayError(ackID int64, code, event, message string) {
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Event   string `json:"event"`
		Message string `json:"message"`
	}{code, event, message})
	s.queue(append(append(eventPrefix(EventError), b...), ']'))
	if ackID >= 0 {
		a := append([]byte(`[{"ok":false,`), b[1:]...)
		s.queueAck(ackID, append(a, ']'))
	}
}

// queueAck queues `43<ackID><data>`.
func (s *session) queueAck(ackID int64, data []byte) {
	b := strconv.AppendInt([]byte{eioMessage, sioAck}, ackID, 10)
	s.queue(append(b, data...))
}

// stopRelaying ends the relay goroutine once it has relayed what is queued, or after
// Config.RelayTimeout; the loop has ended.
func (s *session) stopRelaying() {
	if s.relayJobs == nil {
		return
	}
	close(s.relayJobs)
	t := time.AfterFunc(s.hd.cfg.RelayTimeout, s.relayCancel)
	s.relays.Wait()
	t.Stop()
	s.relayCancel()
}
