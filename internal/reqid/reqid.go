// Package reqid gives every HTTP request an id that its log lines carry ("request_id")
// and its response names (X-Request-Id), so an operator can follow one connection
// through the logs and a client's report to its lines.
//
// A request that arrives with a plausible X-Request-Id (a proxy's, such as nginx's
// $request_id: 1 to 64 of A-Z a-z 0-9 . _ -) keeps it; any other gets a random one.
// A client can therefore choose the id of its own requests' lines, and nothing else.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Header is the request and response header that carries the id.
const Header = "X-Request-Id"

type key struct{}

// Handler sets the id of each request before next sees it.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(Header)
		if !plausible(id) {
			id = newID()
		}
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, id)))
	})
}

// From returns the id Handler gave ctx's request, "" outside one.
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// UpgradeHeader returns the header a WebSocket upgrade's answer needs to name ctx's
// request id (the upgrader writes its own answer, not the ResponseWriter's headers);
// nil outside a request.
func UpgradeHeader(ctx context.Context) http.Header {
	if id := From(ctx); id != "" {
		return http.Header{Header: {id}}
	}
	return nil
}

func plausible(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
