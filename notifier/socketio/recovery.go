package socketio

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Sizes of the identifiers. A pid is <nonce>.<position>.<mac>: 16 + 1 + up to 19 +
// 1 + 22 characters.
const (
	nonceBytes    = 12 // 16 base64url characters
	macBytes      = 16 // 22 base64url characters: 128 bits against forgery
	socketIDBytes = 15 // 20 base64url characters, as long as Node's ids
	engineIDBytes = 15
	maxPIDLen     = 64
	maxOffsetLen  = 19 // digits of the largest int64
)

// Domain separators for the HMACs. The key is usually the JWT secret: a JWT's
// signing input is base64url and dots only, so an input holding a NUL byte can never
// be one, and no MAC computed here doubles as a token signature (or the reverse).
const (
	pidDomain = "notifier.socketio.pid\x00"
	sidDomain = "notifier.socketio.sid\x00"
)

var b64 = base64.RawURLEncoding

// recovery mints and checks the private session ids (pid) of connection state
// recovery. It holds only its key: any instance with the same key accepts the pids
// of any other, without shared memory.
type recovery struct {
	key []byte
}

// newPID returns a pid for account's socket whose first event follows position.
func (r recovery) newPID(account, position int64) string {
	nonce := make([]byte, nonceBytes)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+)
	n := b64.EncodeToString(nonce)
	pos := strconv.FormatInt(position, 10)
	return n + "." + pos + "." + r.mac(n, pos, account)
}

// Why a CONNECT that carries a pid does not recover. The messages are logged as the
// reason; none of them holds the pid.
var (
	errPIDNotString    = errors.New("pid is not a string")
	errPIDMalformed    = errors.New("malformed pid")
	errPIDUnverified   = errors.New("pid not minted with this key for this account")
	errOffsetMalformed = errors.New("malformed offset")
)

// carriesPID reports whether a CONNECT's pid field asks for recovery: any value but
// none or null, so that a pid of the wrong type is refused (and told EventResync)
// rather than taken for a fresh client.
func carriesPID(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// resume checks a recovering CONNECT of account: it returns its pid and the position
// to resume after, the offset of the last event the client saw or, without one, the
// position the pid holds. The error says why recovery is refused.
func (r recovery) resume(a connectAuth, account int64) (pid string, since int64, err error) {
	pid, ok := jsonString(a.PID)
	if !ok {
		return "", 0, errPIDNotString
	}
	since, err = r.verifyPID(pid, account)
	if err != nil {
		return "", 0, err
	}
	if len(a.Offset) == 0 {
		return pid, since, nil // the client saw no event
	}
	off, ok := jsonString(a.Offset)
	if ok {
		since, ok = parseOffset(off)
	}
	if !ok {
		return "", 0, errOffsetMalformed
	}
	return pid, since, nil
}

// verifyPID returns the position inside pid when pid was minted with r's key for
// account. A pid of another account or key, a forged or truncated one, is refused.
func (r recovery) verifyPID(pid string, account int64) (int64, error) {
	if len(pid) > maxPIDLen {
		return 0, errPIDMalformed
	}
	n, rest, ok1 := strings.Cut(pid, ".")
	pos, mac, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(n) != b64.EncodedLen(nonceBytes) || len(mac) != b64.EncodedLen(macBytes) {
		return 0, errPIDMalformed
	}
	position, ok := parseOffset(pos)
	if !ok {
		return 0, errPIDMalformed
	}
	if !hmac.Equal([]byte(mac), []byte(r.mac(n, pos, account))) {
		return 0, errPIDUnverified
	}
	return position, nil
}

func (r recovery) mac(nonce, position string, account int64) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(pidDomain))
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write([]byte(position))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, account, 10))
	return b64.EncodeToString(m.Sum(nil)[:macBytes])
}

// socketID derives the public Socket.IO id from pid, so that a recovered socket gets
// the same id on any instance. It reveals nothing of the pid.
func (r recovery) socketID(pid string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(sidDomain))
	m.Write([]byte(pid))
	return b64.EncodeToString(m.Sum(nil)[:socketIDBytes])
}

// newEngineID returns a random Engine.IO session id. It is unrelated to any socket
// id, which is derived from a pid instead.
func newEngineID() string {
	b := make([]byte, engineIDBytes)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// parseOffset parses an event offset (or a pid's position): a non-negative int64
// in canonical decimal form.
func parseOffset(s string) (int64, bool) {
	if s == "" || len(s) > maxOffsetLen || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
