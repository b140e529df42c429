// Package decode turns what the listener read (a NOTIFY payload or an event-log row,
// both in the format of the SQL function notifier.payload) into a Change: which event,
// which row, which account. Pure functions; fuzzed.
package decode

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is an event the notifier knows. The zero Kind is not an event.
type Kind uint8

// The events, in the order of the bit each takes in a Set.
const (
	AppointmentCreated Kind = iota + 1
	AppointmentCheckin
	DoctorCreated
	numKinds
)

// Table is the application table whose row an event describes.
type Table uint8

// The application tables events come from.
const (
	Appointments Table = iota + 1
	Doctors
)

var names = [numKinds]string{
	AppointmentCreated: "appointments.created",
	AppointmentCheckin: "appointments.checkin",
	DoctorCreated:      "doctors.created",
}

// Kinds lists every event the notifier knows, in Kind order.
func Kinds() []Kind { return []Kind{AppointmentCreated, AppointmentCheckin, DoctorCreated} }

// String returns the event's wire name, as clients subscribe to it.
func (k Kind) String() string {
	if k == 0 || k >= numKinds {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return names[k]
}

// Table returns the table whose row the event carries.
func (k Kind) Table() Table {
	if k == DoctorCreated {
		return Doctors
	}
	return Appointments
}

// ParseKind returns the Kind named name.
func ParseKind(name string) (Kind, bool) {
	for k := AppointmentCreated; k < numKinds; k++ {
		if names[k] == name {
			return k, true
		}
	}
	return 0, false
}

// Set is a set of Kinds, one bit each; the zero Set is empty.
type Set uint32

// AllKinds is the Set of every known Kind.
const AllKinds Set = 1<<numKinds - 2

// Has reports whether k is in s.
func (s Set) Has(k Kind) bool { return s&(1<<k) != 0 }

// With returns s plus k.
func (s Set) With(k Kind) Set { return s | 1<<k }

// ErrUnknownEvent is returned for an event name the notifier does not know.
var ErrUnknownEvent = errors.New("unknown event")

// ParseSet parses event names into a Set; an unknown name is an error naming it.
func ParseSet(names []string) (Set, error) {
	var s Set
	for _, n := range names {
		k, ok := ParseKind(n)
		if !ok {
			return 0, fmt.Errorf("%w %q", ErrUnknownEvent, n)
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
// Every field is required; ids must be positive and the event known.
func Payload(p []byte) (Change, error) {
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
	k, ok := ParseKind(*w.Event)
	if !ok {
		return Change{}, fmt.Errorf("%w: %w %q", ErrPayload, ErrUnknownEvent, *w.Event)
	}
	return Change{ID: *w.ID, Kind: k, RowID: *w.Row, AccountID: *w.Account}, nil
}
