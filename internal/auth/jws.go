package auth

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"strings"
)

// errDuplicateName is returned by checkObject for a member name repeated in
// one JSON object.
var errDuplicateName = errors.New("duplicate member name")

// errNotOneObject is returned by checkObject for anything but exactly one JSON
// object: invalid JSON, another type, or more than white space after it.
var errNotOneObject = errors.New("not exactly one JSON object")

// checkJWS applies the rules of RFC 7515 and RFC 7519 that golang-jwt leaves
// out, to a token precheck has let through: the header and the claims are each
// one JSON object with no member name twice at any depth (golang-jwt would keep
// the last one) and nothing but white space after it (golang-jwt ignores what
// follows the claims); the header has no crit, which names extensions the
// recipient must understand and this package understands none of (RFC 7515
// section 4.1.11), and no b64 other than true (RFC 7797: false means an
// unencoded payload). The header is judged before the payload is decoded.
func checkJWS(token string) error {
	hseg, rest, _ := strings.Cut(token, ".")
	pseg, _, _ := strings.Cut(rest, ".")

	header, err := decodeB64Segment(hseg)
	if err != nil {
		return ErrTokenMalformed
	}
	switch err := checkObject(header); {
	case errors.Is(err, errDuplicateName):
		return ErrTokenDuplicateHeader
	case err != nil:
		return ErrTokenMalformed
	}
	var params map[string]json.RawMessage // names are case-sensitive: no struct
	if err := json.Unmarshal(header, &params); err != nil {
		return ErrTokenMalformed // unreachable: checkObject accepted it
	}
	if b64, ok := params["b64"]; ok {
		switch string(b64) {
		case "true":
		case "false":
			return ErrTokenUnencodedPayload
		default:
			return ErrTokenMalformed
		}
	}
	if _, ok := params["crit"]; ok {
		return ErrTokenCritical
	}

	payload, err := decodeB64Segment(pseg)
	if err != nil {
		return ErrTokenMalformed
	}
	switch err := checkObject(payload); {
	case errors.Is(err, errDuplicateName):
		return ErrTokenDuplicateClaim
	case err != nil:
		return ErrTokenMalformed
	}
	return nil
}

// decodeB64Segment decodes a header or payload as golang-jwt does with
// WithStrictDecoding: base64url, no padding, no stray bits.
func decodeB64Segment(seg string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(seg)
}

// jsonFrame is an object or array open in checkObject.
type jsonFrame struct {
	names   map[string]struct{} // the object's member names so far; nil for an array
	wantKey bool                // an object's next token is a member name or '}'
}

// checkObject reads data as a stream of JSON tokens and returns
// errDuplicateName if an object repeats a member name (compared after
// unescaping, as a decoder would see them), or errNotOneObject unless data is
// exactly one object with at most white space around it. Objects nested at any
// depth, in objects or arrays, each have their own names.
func checkObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are not parsed, so 1e400 is no error here
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errNotOneObject
	}
	stack := []jsonFrame{{names: map[string]struct{}{}, wantKey: true}}
	for len(stack) > 0 {
		tok, err := dec.Token() // the decoder checks the grammar; only names are ours
		if err != nil {
			return errNotOneObject
		}
		top := &stack[len(stack)-1]
		if top.names != nil && top.wantKey {
			if name, ok := tok.(string); ok {
				if _, dup := top.names[name]; dup {
					return errDuplicateName
				}
				top.names[name] = struct{}{}
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonFrame{names: map[string]struct{}{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, jsonFrame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended (a scalar or a closed container): its object, if any,
		// expects a name next.
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].wantKey = true
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errNotOneObject
	}
	return nil
}

// highS reports whether sig, an ES256 signature R || S of 32 bytes each, has S
// above half the P-256 group order. (R, S) and (R, n - S) both verify, so a
// holder of one token could make another; only the low one is accepted.
// Signatures of another length are left to the signature check, which refuses
// them.
func highS(sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1) // n is odd: (n-1)/2
	return new(big.Int).SetBytes(sig[32:]).Cmp(half) > 0
}
