package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgnotifier/notifier/notifier/hub"
)

// The stream is one WebSocket binary message per record; its first byte says which.
const (
	recEvents byte = 'E' // events, in id order: count, then each event's fields
	recReset  byte = 'R' // the log was rebased: the follower's hub resets to Head
	recState  byte = 'S' // the leader is (or is no longer) delivering: ready byte, head
)

// Record is one decoded stream message.
type Record struct {
	Reset  bool    // the log was rebased (Head is the new head)
	State  bool    // a readiness change: Ready, as of Head
	Ready  bool    // with State: the leader is connected to the log and caught up
	Head   int64   // with Reset or State
	Events []Event // otherwise
}

// Event is one published event as the stream carries it: what hub.NewMessage needs.
type Event struct {
	ID, AccountID int64
	Name, Origin  string
	Partial       bool
	Data          []byte // aliases the record's buffer
}

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed fleet record")

// appendEvents encodes msgs as one record.
func appendEvents(dst []byte, msgs []*hub.Message) []byte {
	dst = append(dst, recEvents)
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for _, m := range msgs {
		dst = binary.AppendVarint(dst, m.ID)
		dst = binary.AppendVarint(dst, m.AccountID)
		dst = appendString(dst, m.Name)
		dst = appendString(dst, m.Origin)
		var flags byte
		if m.Partial {
			flags = 1
		}
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(len(m.Data)))
		dst = append(dst, m.Data...)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendReset(dst []byte, head int64) []byte {
	return binary.AppendVarint(append(dst, recReset), head)
}

func appendState(dst []byte, ready bool, head int64) []byte {
	b := byte(0)
	if ready {
		b = 1
	}
	return binary.AppendVarint(append(dst, recState, b), head)
}

// decode parses one record. Events' Data alias b.
func decode(b []byte) (Record, error) {
	if len(b) == 0 {
		return Record{}, fmt.Errorf("%w: empty", errMalformed)
	}
	r := reader{b: b[1:]}
	var rec Record
	switch b[0] {
	case recReset:
		rec.Reset, rec.Head = true, r.varint()
	case recState:
		rec.State = true
		rec.Ready = r.byte() == 1
		rec.Head = r.varint()
	case recEvents:
		n := r.uvarint()
		if n > uint64(len(r.b)) { // every event takes more than a byte
			return Record{}, fmt.Errorf("%w: %d events in %d bytes", errMalformed, n, len(r.b))
		}
		rec.Events = make([]Event, 0, n)
		for range n {
			var e Event
			e.ID = r.varint()
			e.AccountID = r.varint()
			e.Name = string(r.bytes())
			e.Origin = string(r.bytes())
			e.Partial = r.byte()&1 != 0
			e.Data = r.bytes()
			rec.Events = append(rec.Events, e)
		}
	default:
		return Record{}, fmt.Errorf("%w: type %q", errMalformed, b[0])
	}
	if r.err != nil {
		return Record{}, r.err
	}
	if len(r.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(r.b))
	}
	return rec, nil
}

// reader reads a record's fields; the first error sticks and later reads return zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", errMalformed, what)
	}
	r.b = nil
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("flags")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("field")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// tokenSkew is how far a follower's clock may be from its leader's.
const tokenSkew = time.Minute

// token is what a follower sends as its bearer token: the time, and a MAC over it
// with the fleet key. A token is good for tokenSkew either side of its time.
func token(key []byte, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return "v1." + ts + "." + hex.EncodeToString(tokenMAC(key, ts))
}

func tokenMAC(key []byte, ts string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("notifier fleet stream v1 "))
	mac.Write([]byte(ts))
	return mac.Sum(nil)
}

// errToken is wrapped by checkToken's errors.
var errToken = errors.New("fleet token refused")

// checkToken verifies a follower's token.
func checkToken(key []byte, tok string, now time.Time) error {
	rest, ok := strings.CutPrefix(tok, "v1.")
	ts, sum, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return fmt.Errorf("%w: not a v1 token", errToken)
	}
	got, err := hex.DecodeString(sum)
	if err != nil || !hmac.Equal(got, tokenMAC(key, ts)) {
		return fmt.Errorf("%w: bad MAC", errToken)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad time", errToken)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tokenSkew || d < -tokenSkew {
		return fmt.Errorf("%w: %s from now", errToken, d.Round(time.Second))
	}
	return nil
}
