package notifier_test

import (
	"context"
	"net"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFlood: events committed as fast as Postgres takes them, in multi-row
// transactions, while many clients are connected and one has stopped reading: every
// reading client gets every event once and in order, and the stalled one is dropped
// without slowing them. (The 100,000-event, 1,000-client version, with memory figures,
// is `notifier-load`; see docs/reliability.md.)
func TestFlood(t *testing.T) {
	t.Parallel()
	const clients, txs, perTx = 10, 250, 20 // 5,000 events, 50,000 deliveries
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.WS.WriteWait = time.Second }
	})
	var readers []*wsClient
	for range clients {
		readers = append(readers, b.dial(t, 1, nil))
	}
	// A client that completes the handshake and then never reads a byte.
	u := "ws" + b.base[len("http"):] + "/ws?access_token=" + url.QueryEscape(token(t, 1, time.Hour))
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // small, so the server's writes block soon
		}
		return c, err
	}}
	stalled, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if n := b.svc.Hub().Subscribers(); n != clients+1 {
		t.Fatalf("subscribers = %d", n)
	}

	var peak uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	for range txs {
		// 2 KB of notes each: 10 MB in all, more than the kernel buffers of a stalled
		// socket absorb (4 MB here), so its writes block.
		b.exec(t, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
SELECT now(), '09:00', '09:15', repeat('x', 2000), 1, 1, 1, 1 FROM generate_series(1, $1)`, perTx)
	}
	committed := time.Since(start)
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i, c := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := int64(0)
			for n := range txs * perTx {
				select {
				case f, ok := <-c.frames:
					if !ok {
						errs <- "client " + itoa(int64(i)) + " disconnected after " + itoa(int64(n)) + " events"
						return
					}
					if f.ID <= prev {
						errs <- "client " + itoa(int64(i)) + " out of order"
						return
					}
					prev = f.ID
				case <-time.After(waitTimeout):
					errs <- "client " + itoa(int64(i)) + " stuck after " + itoa(int64(n)) + " events"
					return
				}
			}
		}()
	}
	wg.Wait()
	delivered := time.Since(start)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	deadline := time.Now().Add(waitTimeout)
	for b.svc.Hub().Subscribers() != clients {
		if time.Now().After(deadline) {
			t.Fatalf("stalled client still subscribed (%d subscribers)", b.svc.Hub().Subscribers())
		}
		time.Sleep(10 * time.Millisecond) // a counter, not a signal
	}
	close(stop)
	sampler.Wait()
	t.Logf("%d events committed in %s, delivered to %d clients in %s (%.0f deliveries/s, race detector on); stalled client dropped; peak heap in use %d MiB (server and clients in one process)",
		txs*perTx, committed.Round(time.Millisecond), clients, delivered.Round(time.Millisecond),
		float64(txs*perTx*clients)/delivered.Seconds(), peak>>20)
}
