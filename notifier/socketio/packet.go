package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/pgnotifier/notifier/notifier/hub"
)

// Engine.IO v4 packet types: the first byte of every Engine.IO packet.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
)

// recordSeparator joins the packets of a polling payload.
const recordSeparator = '\x1e'

// Socket.IO v5 packet types: the first byte of an Engine.IO message's data.
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
	sioBinaryEvent  = '5'
	sioBinaryAck    = '6'
)

// Limits of the Socket.IO header fields; longer ones are malformed.
const (
	maxAckIDDigits      = 15 // stays below 2^53, what a JavaScript client can count to
	maxAttachmentDigits = 6
	maxNamespaceBytes   = 256
)

// Parse errors. errBinary is kept apart because a binary packet is well formed but
// unsupported: both close the session.
var (
	errMalformed = errors.New("malformed packet")
	errBinary    = errors.New("binary packets are not supported")
)

// eioPacket is one decoded Engine.IO packet; Data aliases the input.
type eioPacket struct {
	Type byte
	Data []byte
}

// parseEIOPacket decodes one text packet, as a WebSocket frame or one record of a
// polling payload carries it.
func parseEIOPacket(b []byte) (eioPacket, error) {
	if len(b) == 0 {
		return eioPacket{}, fmt.Errorf("%w: empty", errMalformed)
	}
	if b[0] == 'b' { // base64-encoded binary packet of a polling payload
		return eioPacket{}, errBinary
	}
	if b[0] < eioOpen || b[0] > eioNoop {
		return eioPacket{}, fmt.Errorf("%w: engine.io type %q", errMalformed, b[0])
	}
	return eioPacket{Type: b[0], Data: b[1:]}, nil
}

// eachEIOPacket calls fn with each packet of a polling payload, in order, and stops
// at the first error. It allocates nothing, so a large body of tiny packets costs no
// more memory than the body itself.
func eachEIOPacket(payload []byte, fn func(eioPacket) error) error {
	for {
		rec, rest, more := bytes.Cut(payload, []byte{recordSeparator})
		p, err := parseEIOPacket(rec)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if !more {
			return nil
		}
		payload = rest
	}
}

// checkEIOPayload validates every packet of a polling payload without acting on any.
func checkEIOPayload(payload []byte) error {
	return eachEIOPacket(payload, func(eioPacket) error { return nil })
}

// sioPacket is one decoded Socket.IO packet: <type>[<attachments>-][<nsp>,][<ack id>][<json>].
type sioPacket struct {
	Type        byte
	Attachments int
	Namespace   string // "/" when the packet names none
	AckID       int64  // -1 when absent
	Data        []byte // the JSON payload, empty when absent; aliases the input
}

// parseSIOPacket decodes the data of an Engine.IO message and checks its payload
// against its type as the reference parser does (socket.io-parser isPayloadValid).
func parseSIOPacket(b []byte) (sioPacket, error) {
	p := sioPacket{Namespace: "/", AckID: -1}
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty socket.io packet", errMalformed)
	}
	p.Type = b[0]
	if p.Type < sioConnect || p.Type > sioBinaryAck {
		return p, fmt.Errorf("%w: socket.io type %q", errMalformed, p.Type)
	}
	i := 1
	if p.Type == sioBinaryEvent || p.Type == sioBinaryAck {
		j := digits(b, i, maxAttachmentDigits+1)
		if j == i || j-i > maxAttachmentDigits || j >= len(b) || b[j] != '-' {
			return p, fmt.Errorf("%w: attachment count", errMalformed)
		}
		p.Attachments, _ = strconv.Atoi(string(b[i:j]))
		i = j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := bytes.IndexByte(b[i:], ',')
		end := len(b)
		if j >= 0 {
			end = i + j
		}
		nsp := b[i:end]
		if len(nsp) > maxNamespaceBytes || !printable(nsp) {
			return p, fmt.Errorf("%w: namespace", errMalformed)
		}
		p.Namespace = string(nsp)
		i = min(end+1, len(b))
	}
	if j := digits(b, i, maxAckIDDigits+1); j > i {
		if j-i > maxAckIDDigits {
			return p, fmt.Errorf("%w: ack id too long", errMalformed)
		}
		p.AckID, _ = strconv.ParseInt(string(b[i:j]), 10, 64)
		i = j
	}
	p.Data = b[i:]
	if len(p.Data) > 0 && !json.Valid(p.Data) {
		return p, fmt.Errorf("%w: payload is not JSON", errMalformed)
	}
	if !payloadValid(p.Type, p.Data) {
		return p, fmt.Errorf("%w: payload does not fit packet type %q", errMalformed, p.Type)
	}
	return p, nil
}

// digits returns the index of the first non-digit of b at or after i, looking at
// most limit bytes ahead.
func digits(b []byte, i, limit int) int {
	j := i
	for j < len(b) && j-i < limit && '0' <= b[j] && b[j] <= '9' {
		j++
	}
	return j
}

// printable reports whether b is valid UTF-8 without control characters: a namespace
// that is not is a malformed packet. (Which namespaces are echoed back in a
// CONNECT_ERROR is stricter still: see echoable.)
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// payloadValid applies the reference parser's per-type rules to valid JSON data.
func payloadValid(typ byte, data []byte) bool {
	first := firstByte(data)
	switch typ {
	case sioConnect:
		return len(data) == 0 || first == '{'
	case sioDisconnect:
		return len(data) == 0
	case sioConnectError:
		return first == '{' || first == '"'
	case sioEvent, sioBinaryEvent:
		return eventArray(data)
	case sioAck, sioBinaryAck:
		return first == '['
	}
	return false
}

// firstByte returns the first non-space byte of data, or 0.
func firstByte(data []byte) byte {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// eventArray reports whether data is a JSON array whose first element is a string
// or a number, the event name (or a numeric one).
func eventArray(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return false
	}
	switch tok, err := dec.Token(); tok.(type) {
	case string, json.Number:
		return err == nil
	}
	return false
}

// appendSIO appends an Engine.IO message carrying a Socket.IO packet of type typ for
// namespace nsp ("/" is left implicit) with the JSON payload data.
func appendSIO(dst []byte, typ byte, nsp string, data []byte) []byte {
	dst = append(dst, eioMessage, typ)
	if nsp != "/" && nsp != "" {
		dst = append(dst, nsp...)
		dst = append(dst, ',')
	}
	return append(dst, data...)
}

// eventPrefix returns `42["<name>",`, the start of every EVENT frame carrying name.
// Names are the decode package's plain ASCII wire names or our own constants, none
// of them reserved by the client (connect, disconnect, ...), so nothing is escaped.
func eventPrefix(name string) []byte {
	b := make([]byte, 0, len(name)+5)
	b = append(b, eioMessage, sioEvent, '[', '"')
	b = append(b, name...)
	return append(b, '"', ',')
}

// appendOffsetSuffix appends `,"<id>"]`, the end of an EVENT frame: the offset a
// recovering client sends back, always a JSON string.
func appendOffsetSuffix(dst []byte, id int64) []byte {
	dst = append(dst, ',', '"')
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '"', ']')
}

// eventData returns m's payload, or null when it has none, so a frame is always JSON.
func eventData(m *hub.Message) []byte {
	if len(m.Data) == 0 {
		return []byte("null")
	}
	return m.Data
}
