package notifier_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestIsolationUnderLoad: many accounts written concurrently; each client receives its
// own account's events, all of them, and nothing else, including on resume with a
// since that points at another account's event.
func TestIsolationUnderLoad(t *testing.T) {
	t.Parallel()
	const accounts, perAccount = 6, 60
	b := setup(t)
	clients := map[int64][]*wsClient{}
	for a := int64(1); a <= accounts; a++ {
		clients[a] = []*wsClient{b.dial(t, a, nil), b.dial(t, a, url.Values{"events": {"appointments.created"}})}
	}
	var wg sync.WaitGroup
	for a := int64(1); a <= accounts; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perAccount {
				if _, err := b.db.Exec(context.Background(), `INSERT INTO appointments (date, "startTime", "endTime", "accountId") VALUES (now(), '09:00', '09:15', $1)`, a); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	firstOf := map[int64]int64{} // account -> its first event id
	for a, cs := range clients {
		for _, c := range cs {
			for range perAccount {
				f := c.next(t)
				if acc := f.object(t)["accountId"]; acc != float64(a) {
					t.Fatalf("client of account %d got %s", a, f.raw)
				}
				if _, ok := firstOf[a]; !ok {
					firstOf[a] = f.ID
				}
			}
		}
	}
	// Resume account 1 from a position that is account 2's first event: only account
	// 1's events after it come back.
	var want int
	if err := b.db.QueryRow(t.Context(), `SELECT count(*) FROM notifier.events WHERE account_id = 1 AND id > $1`, firstOf[2]).Scan(&want); err != nil {
		t.Fatal(err)
	}
	r := b.dial(t, 1, url.Values{"since": {strconv.FormatInt(firstOf[2], 10)}})
	for range want {
		if f := r.next(t); f.object(t)["accountId"] != float64(1) || f.ID <= firstOf[2] {
			t.Fatalf("resume got %s", f.raw)
		}
	}
	b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", "accountId") VALUES (now(), '09:00', '09:15', 2)`)
	sentinel := b.insertAppointment(t, 1)
	if f := r.next(t); f.rowID(t) != sentinel {
		t.Fatalf("after the replay got %s, want account 1's appointment %d", f.raw, sentinel)
	}
	t.Logf("%d accounts x %d events, 2 clients each, no leak; resume from another account's id replayed %d", accounts, perAccount, want)
}

// TestSlowHandshakes: connections that open and never finish their request (slowloris,
// half-open sockets) are closed after http.handshake_timeout, and real clients are
// served meanwhile.
func TestSlowHandshakes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) { o.mutate = func(c *configT) { c.HTTP.HandshakeTimeout = time.Second } })
	addr := b.base[len("http://"):]
	const n = 200
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		if i%2 == 0 { // half of them trickle a partial request line
			_, _ = fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\n")
		}
		conns = append(conns, c)
	}
	c := b.dial(t, 1, nil) // served despite the idle sockets
	id := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != id {
		t.Fatalf("got %s", f.raw)
	}
	buf := make([]byte, 512)
	for i, c := range conns { // the server may answer 408 first, then it closes
		_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection %d still open after %s", i, waitTimeout)
				}
				break
			}
		}
	}
}
