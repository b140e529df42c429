package socketio

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Arrival order. A session's requests travel on different connections, and
// net/http serves each connection on its own goroutine, so the order in which those
// goroutines reach the session is not the order in which the requests arrived: a
// connection's goroutine is started by `go` in the accept loop, and the scheduler runs
// the newest such goroutine first, so of two connections accepted back to back the
// second is often read first (a GET and a POST carrying the close packet, sent
// together, had the close applied first three times in four). So the handler stamps
// what arrives from one counter (Handler.seq) as early as it can see it:
//
//   - ConnContext stamps each connection as the listener accepts it, in the accept
//     loop, which takes connections in the order the kernel completed them; the
//     connection's first request carries that stamp, if it comes within arrivalWait.
//     Until that request has reached its session, the connection is unread: a loop
//     holds back a request of a later stamp while an unread connection from the same
//     client address may still bring one of its own. ConnState ends that at once for
//     a connection that goes idle, is hijacked or closes first.
//   - Any other request is stamped when it registers with its session (expect), at
//     the top of ServeHTTP, before its body is read.
//
// A session loop applies its requests in stamp order, once every request of an
// earlier stamp has reached it (registered requests reach it when they enqueue: a
// GET at once, a POST once its body is read, a WebSocket once its handshake is
// done), and no earlier unread connection from its client's address is left; it
// waits for that at most arrivalWait, then goes on, and what comes later is applied
// when it comes. WebSocket frames are not stamped: a frame is applied as soon as the
// loop has taken the request that brought its WebSocket, before any request still
// queued, and a request is applied only once the reader of a probing WebSocket has
// caught up with what the kernel had received (caughtUp): a frame that was on the
// wire before a request was applied takes effect first. Without ConnContext, every
// request is stamped at registration, which orders requests by when their
// goroutines ran.

// arrivalWait bounds how long a session loop holds a request back for one that
// arrived before it but has not reached the session yet, and how long after its
// accept a connection's first request still carries the accept's stamp. The gap it
// covers is a goroutine's scheduling delay, a POST's body on the wire, or a
// WebSocket handshake: well under a millisecond on an idle server, a few on a busy
// one. A connection that carries no request (a browser's preconnect, a request for
// another route when Arrivals is not installed) costs the same client's polling
// requests at most this much.
const arrivalWait = 100 * time.Millisecond

type arrivalKey struct{}

// connArrival is an accepted connection as ConnContext stamped it.
type connArrival struct {
	stamp   uint64
	addr    string        // addressKey of the peer
	at      time.Time     // when it was accepted
	claimed atomic.Bool   // its first request has taken it
	settled chan struct{} // closed once its first request has reached its session, if any
}

// ConnContext is for the http.Server's ConnContext, chained after any other: it
// stamps each connection in the order the listener accepts it, so that its first
// request takes effect in arrival order even when another connection's goroutine
// reaches the session first. It is called in the accept loop, before the
// connection's goroutine starts.
func (hd *Handler) ConnContext(ctx context.Context, c net.Conn) context.Context {
	now := time.Now()
	a := &connArrival{addr: addressKey(c.RemoteAddr().String()), at: now, settled: make(chan struct{})}
	hd.arrMu.Lock()
	// Stamped under arrMu: a loop that reads unread after taking a stamp sees every
	// connection stamped before it.
	a.stamp = hd.seq.Add(1)
	if now.Sub(hd.swept) >= hd.arrivalWait {
		hd.sweepLocked(now)
	}
	hd.unread[a.addr] = append(hd.unread[a.addr], a)
	hd.byConn[c] = a
	hd.arrMu.Unlock()
	return context.WithValue(ctx, arrivalKey{}, a)
}

// ConnState is for the http.Server's ConnState, chained after any other: a
// connection that goes idle, is hijacked or closes before its first request has
// claimed its arrival (a load balancer's TCP check, a client that connects and
// leaves) settles it at once, rather than holding its address's polling requests
// back for arrivalWait.
func (hd *Handler) ConnState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateIdle, http.StateHijacked, http.StateClosed:
	default:
		return
	}
	hd.arrMu.Lock()
	a := hd.byConn[c]
	delete(hd.byConn, c)
	hd.arrMu.Unlock()
	if a != nil && a.claimed.CompareAndSwap(false, true) {
		hd.settle(a)
	}
}

// Arrivals wraps the server's whole handler, outside the routes: the first request
// of a connection that is not for Path is none of the sessions' business, and stops
// holding back the polling requests of its client at once rather than after
// arrivalWait. Requests for Path pass through; ServeHTTP settles them.
func (hd *Handler) Arrivals(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, Path) {
			hd.settle(hd.claim(r))
		}
		next.ServeHTTP(w, r)
	})
}

// claim returns the arrival of r's connection when r is its first request, and nil
// otherwise or without ConnContext. The caller settles it.
func (hd *Handler) claim(r *http.Request) *connArrival {
	a, _ := r.Context().Value(arrivalKey{}).(*connArrival)
	if a == nil || !a.claimed.CompareAndSwap(false, true) {
		return nil // a later request, or one of several streams of an HTTP/2 connection
	}
	return a
}

// settle ends a's time as unread: its first request has registered with its session,
// or it has none. Loops holding a request back for a wake up.
func (hd *Handler) settle(a *connArrival) {
	if a == nil {
		return
	}
	hd.arrMu.Lock()
	hd.dropUnreadLocked(a)
	hd.arrMu.Unlock()
	close(a.settled)
}

// earlierUnread returns an unread connection from addr stamped before stamp and
// accepted less than arrivalWait ago, if there is one.
func (hd *Handler) earlierUnread(addr string, stamp uint64, now time.Time) *connArrival {
	hd.arrMu.Lock()
	defer hd.arrMu.Unlock()
	for _, a := range hd.unread[addr] {
		if a.stamp < stamp && now.Sub(a.at) < hd.arrivalWait {
			return a
		}
	}
	return nil
}

func (hd *Handler) dropUnreadLocked(a *connArrival) {
	list := hd.unread[a.addr]
	if i := slices.Index(list, a); i >= 0 {
		list = slices.Delete(list, i, i+1) // clears the freed slot
	}
	if len(list) == 0 {
		delete(hd.unread, a.addr)
	} else {
		hd.unread[a.addr] = list
	}
}

// sweepLocked forgets the connections accepted arrivalWait ago or more that never
// brought a request: no loop waits for them any longer.
func (hd *Handler) sweepLocked(now time.Time) {
	hd.swept = now
	for addr, list := range hd.unread {
		kept := list[:0]
		for _, a := range list {
			if now.Sub(a.at) < hd.arrivalWait {
				kept = append(kept, a)
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(hd.unread, addr)
		} else {
			hd.unread[addr] = kept
		}
	}
}
