// Package decode turns what the listener read (a NOTIFY payload or an event-log row,
// both in the format of the SQL function notifier.payload) into a Change: which event,
// which row, which account. Event names are those of the rules installed in the
// database (notifier.rule_events); a Catalog gives each a Kind, a small number the hub
// filters on with a bit set. Pure functions over a Catalog; fuzzed.
package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is an event of a Catalog. The zero Kind is not an event.
type Kind uint8

// The built-in clinic events (triggers/clinic.yaml), at fixed Kinds in every Catalog.
const (
	AppointmentCreated Kind = iota + 1
	AppointmentUpdated
	AppointmentStatusChanged
	AppointmentCheckin
	AppointmentServing
	AppointmentFinished
	AppointmentDeleted
	DoctorCreated
	DoctorUpdated
	DoctorBusy
	DoctorDeleted
	numBuiltin
)

// MaxKinds is how many event names one process can know (a Set is 64 bits).
const MaxKinds = 63

var builtin = [numBuiltin]struct{ name, rule string }{
	AppointmentCreated:       {"appointments.created", "appointments"},
	AppointmentUpdated:       {"appointments.updated", "appointments"},
	AppointmentStatusChanged: {"appointments.status.changed", "appointments"},
	AppointmentCheckin:       {"appointments.checkin", "appointments"},
	AppointmentServing:       {"appointments.serving", "appointments"},
	AppointmentFinished:      {"appointments.finished", "appointments"},
	AppointmentDeleted:       {"appointments.deleted", "appointments"},
	DoctorCreated:            {"doctors.created", "doctors"},
	DoctorUpdated:            {"doctors.updated", "doctors"},
	DoctorBusy:               {"doctors.busy", "doctors"},
	DoctorDeleted:            {"doctors.deleted", "doctors"},
}

// String returns a built-in event's wire name; other Kinds have theirs in a Catalog.
func (k Kind) String() string {
	if k == 0 || k >= numBuiltin {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return builtin[k].name
}

// Set is a set of Kinds, one bit each; the zero Set is empty.
type Set uint64

// AllKinds is the Set of every Kind a Catalog can hold.
const AllKinds Set = ^Set(0) &^ 1

// Has reports whether k is in s.
func (s Set) Has(k Kind) bool { return k < 64 && s&(1<<k) != 0 }

// With returns s plus k.
func (s Set) With(k Kind) Set { return s | 1<<k }

// ErrUnknownEvent is returned for an event name the Catalog does not know.
var ErrUnknownEvent = errors.New("unknown event")

// ErrCatalogFull is returned by Catalog.Add beyond MaxKinds names.
var ErrCatalogFull = fmt.Errorf("more than %d event names", MaxKinds)

// Catalog names the events of a deployment: the built-in clinic events, then every
// event the database's rules install or the service relays, in the order first added.
// It only grows: a Kind names one event for the life of the process. Safe for
// concurrent use; reads take no lock.
type Catalog struct {
	mu   sync.Mutex // serialises Add
	snap atomic.Pointer[catalogSnap]
}

type catalogSnap struct {
	names []string // by Kind
	rules []string // by Kind: the rule emitting it, "" if none
	kinds map[string]Kind
}

// NewCatalog returns a Catalog holding the built-in events.
func NewCatalog() *Catalog {
	s := &catalogSnap{names: make([]string, numBuiltin), rules: make([]string, numBuiltin), kinds: map[string]Kind{}}
	for k := AppointmentCreated; k < numBuiltin; k++ {
		s.names[k], s.rules[k] = builtin[k].name, builtin[k].rule
		s.kinds[builtin[k].name] = k
	}
	c := &Catalog{}
	c.snap.Store(s)
	return c
}

// Add gives name a Kind, or returns the one it has; rule is the rule that emits it
// now ("" for none: a relayed event).
func (c *Catalog) Add(name, rule string) (Kind, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	if k, ok := old.kinds[name]; ok && old.rules[k] == rule {
		return k, nil
	}
	s := &catalogSnap{names: old.names, rules: append([]string(nil), old.rules...), kinds: old.kinds}
	k, ok := old.kinds[name]
	if !ok {
		if len(old.names) > MaxKinds {
			return 0, fmt.Errorf("event %q: %w", name, ErrCatalogFull)
		}
		k = Kind(len(old.names))
		s.names = append(append([]string(nil), old.names...), name)
		s.rules = append(s.rules, rule)
		s.kinds = make(map[string]Kind, len(old.kinds)+1)
		for n, v := range old.kinds {
			s.kinds[n] = v
		}
		s.kinds[name] = k
	}
	s.rules[k] = rule
	c.snap.Store(s)
	return k, nil
}

// Kind returns the Kind of the event named name.
func (c *Catalog) Kind(name string) (Kind, bool) {
	k, ok := c.snap.Load().kinds[name]
	return k, ok
}

// Name returns k's wire name, as clients subscribe to it.
func (c *Catalog) Name(k Kind) string {
	s := c.snap.Load()
	if k == 0 || int(k) >= len(s.names) {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return s.names[k]
}

// Rule returns the rule that emits k ("" for none).
func (c *Catalog) Rule(k Kind) string {
	s := c.snap.Load()
	if int(k) >= len(s.rules) {
		return ""
	}
	return s.rules[k]
}

// Kinds lists every Kind the Catalog holds, in Kind order.
func (c *Catalog) Kinds() []Kind {
	n := len(c.snap.Load().names)
	out := make([]Kind, 0, n-1)
	for k := Kind(1); int(k) < n; k++ {
		out = append(out, k)
	}
	return out
}

// Names lists every event name the Catalog holds, in Kind order.
func (c *Catalog) Names() []string { return append([]string(nil), c.snap.Load().names[1:]...) }

// ParseSet parses event names into a Set; an unknown name is an error naming it.
func (c *Catalog) ParseSet(names []string) (Set, error) {
	var s Set
	for _, n := range names {
		k, ok := c.Kind(n)
		if !ok {
			return 0, fmt.Errorf("%w %q (known: %s)", ErrUnknownEvent, n, strings.Join(c.Names(), ", "))
		}
		s = s.With(k)
	}
	return s, nil
}

// Change is one committed event: the log position, what happened, to which row of
// which account.
type Change struct {
	ID        int64 // position in notifier.events: unique, in commit order
	Kind      Kind
	RowID     int64
	AccountID int64
}

// ErrPayload is wrapped by every error Payload returns.
var ErrPayload = errors.New("invalid payload")

type wire struct {
	ID      *int64  `json:"id"`
	Event   *string `json:"event"`
	Row     *int64  `json:"row"`
	Account *int64  `json:"account"`
}

// Payload decodes one payload of the form {"id":1,"event":"appointments.created","row":2,"account":3}.
// Every field is required; ids must be positive and the event in the Catalog (an
// unknown one wraps ErrUnknownEvent too).
func (c *Catalog) Payload(p []byte) (Change, error) {
	if ch, ok := c.canonical(p); ok {
		return ch, nil
	}
	return c.payloadJSON(p)
}

// canonical decodes p when it is exactly what notifier.payload() writes, with a known
// event of plain ASCII and positive ids without leading zeros: the one form the log
// and the triggers produce, read without encoding/json's reflection. ok is false for
// anything else, which payloadJSON then decodes (or refuses) as before.
func (c *Catalog) canonical(p []byte) (ch Change, ok bool) {
	rest, ok := cutPrefix(p, `{"id":`)
	if !ok {
		return Change{}, false
	}
	if ch.ID, rest, ok = positive(rest); !ok {
		return Change{}, false
	}
	if rest, ok = cutPrefix(rest, `,"event":"`); !ok {
		return Change{}, false
	}
	end := 0
	for end < len(rest) && rest[end] != '"' {
		if b := rest[end]; b < 0x20 || b >= 0x7f || b == '\\' {
			return Change{}, false // escapes and other bytes encoding/json rewrites
		}
		end++
	}
	if end == len(rest) {
		return Change{}, false
	}
	if ch.Kind, ok = c.Kind(string(rest[:end])); !ok {
		return Change{}, false
	}
	if rest, ok = cutPrefix(rest[end:], `","row":`); !ok {
		return Change{}, false
	}
	if ch.RowID, rest, ok = positive(rest); !ok {
		return Change{}, false
	}
	if rest, ok = cutPrefix(rest, `,"account":`); !ok {
		return Change{}, false
	}
	if ch.AccountID, rest, ok = positive(rest); !ok {
		return Change{}, false
	}
	if string(rest) != "}" {
		return Change{}, false
	}
	return ch, true
}

func cutPrefix(p []byte, prefix string) ([]byte, bool) {
	if len(p) < len(prefix) || string(p[:len(prefix)]) != prefix {
		return nil, false
	}
	return p[len(prefix):], true
}

// positive reads the decimal integer at the start of p, in 1..MaxInt64 and without a
// leading zero, and returns what follows it.
func positive(p []byte) (n int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		d := int64(p[i] - '0')
		if i == 0 && d == 0 || n > (math.MaxInt64-d)/10 {
			return 0, nil, false
		}
		n = n*10 + d
	}
	return n, p[i:], i > 0
}

// payloadJSON is Payload for any input: encoding/json, then the checks.
func (c *Catalog) payloadJSON(p []byte) (Change, error) {
	var w wire
	if err := json.Unmarshal(p, &w); err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	switch {
	case w.ID == nil || *w.ID <= 0:
		return Change{}, fmt.Errorf("%w: id missing or not positive", ErrPayload)
	case w.Event == nil:
		return Change{}, fmt.Errorf("%w: event missing", ErrPayload)
	case w.Row == nil || *w.Row <= 0:
		return Change{}, fmt.Errorf("%w: row missing or not positive", ErrPayload)
	case w.Account == nil || *w.Account <= 0:
		return Change{}, fmt.Errorf("%w: account missing or not positive", ErrPayload)
	}
	k, ok := c.Kind(*w.Event)
	if !ok {
		return Change{}, fmt.Errorf("%w: %w %q", ErrPayload, ErrUnknownEvent, *w.Event)
	}
	return Change{ID: *w.ID, Kind: k, RowID: *w.Row, AccountID: *w.Account}, nil
}
