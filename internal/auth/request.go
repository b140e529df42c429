package auth

import (
	"net/http"
	"strings"
)

// AccessTokenParam is the query parameter read by TokenFromRequest. Browsers
// cannot set headers on a WebSocket handshake, so dashboards pass the token
// here; never log request URLs verbatim.
const AccessTokenParam = "access_token"

// TokenFromRequest extracts a bearer token from r. It prefers an
// "Authorization: Bearer <token>" header (scheme matched case-insensitively)
// and otherwise reads the access_token query parameter. An Authorization
// header with another scheme or an empty token is ignored. It returns
// ErrNoToken when neither source yields a token. The token is not verified.
func TokenFromRequest(r *http.Request) (string, error) {
	if r == nil {
		return "", ErrNoToken
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if tok = strings.TrimSpace(tok); tok != "" {
				return tok, nil
			}
		}
	}
	if r.URL != nil {
		if tok := r.URL.Query().Get(AccessTokenParam); tok != "" {
			return tok, nil
		}
	}
	return "", ErrNoToken
}
