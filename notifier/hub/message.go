package hub

import (
	"strconv"
	"time"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
)

// Message is an event encoded once for every connection of its account. A Message
// belongs to one Hub: Publish stamps it.
type Message struct {
	ID        int64
	Kind      decode.Kind
	Name      string // the event's wire name
	AccountID int64
	Data      []byte // the event's payload object
	Partial   bool   // Data holds only what the log knows (enrich.Event.Partial)
	Frame     []byte // {"id":N,"event":"name","data":{...}}: one /ws text frame
	Origin    string // the connection that sent a relayed event (enrich.Event.Origin); "" for the database's

	published time.Time // when Publish took it; zero for messages replayed from the log
}

// NewMessage encodes ev.
func NewMessage(ev enrich.Event) *Message {
	name := ev.Name
	if name == "" {
		name = ev.Kind.String()
	}
	f := make([]byte, 0, len(ev.Data)+len(name)+48)
	f = append(f, `{"id":`...)
	f = strconv.AppendInt(f, ev.ID, 10)
	f = append(f, `,"event":"`...)
	f = append(f, name...) // event names are plain ASCII, nothing to escape
	f = append(f, `",`...)
	if ev.Partial {
		f = append(f, `"partial":true,`...)
	}
	f = append(f, `"data":`...)
	at := len(f)
	f = append(f, ev.Data...)
	f = append(f, '}')
	// Data is the payload's bytes inside the frame, not a second copy: a message
	// kept for replays and lagging clients costs its payload once.
	data := f[at : at+len(ev.Data) : at+len(ev.Data)]
	return &Message{ID: ev.ID, Kind: ev.Kind, Name: name, AccountID: ev.AccountID, Data: data, Partial: ev.Partial, Frame: f, Origin: ev.Origin}
}
