package ws_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/ws"
)

// BenchmarkDeliver publishes one event at a time to n /ws clients on loopback and
// waits until every client has read it, as at a steady commit rate where each
// connection has one frame due per wake-up; ns/op is per event delivered to all n,
// the clients' reads included. Paced, it publishes at most one event a millisecond,
// so that the writers park between events as in production (where most of the cost
// of a wake-up is paid), and cpu-ns/op is the process's CPU time per event (user and
// system, the clients' included): compare it between builds, not ns/op.
func BenchmarkDeliver(b *testing.B) {
	for _, bc := range []struct {
		n     int
		paced bool
	}{{1, false}, {20, false}, {20, true}} {
		name := fmt.Sprint("clients=", bc.n)
		if bc.paced {
			name += "/paced"
		}
		n := bc.n
		b.Run(name, func(b *testing.B) {
			l := &memLog{}
			h := hub.New(hub.Config{ReplayFunc: l.replay, BoundsFunc: l.bounds}, 0)
			v, err := auth.NewVerifier(auth.Config{Secret: []byte(secret), AccountClaim: auth.DefaultAccountClaim})
			if err != nil {
				b.Fatal(err)
			}
			hd := ws.New(ws.Config{Events: decode.AllKinds}, h, v)
			srv := httptest.NewServer(hd)
			defer func() { h.Close(); hd.Wait(); srv.Close() }()
			tok, err := auth.Mint([]byte(secret), auth.DefaultAccountClaim, 1, time.Hour, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			got := make(chan struct{}, n)
			var wg sync.WaitGroup
			for range n {
				conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), http.Header{"Authorization": {"Bearer " + tok}})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if _, _, err := conn.ReadMessage(); err != nil {
							return
						}
						got <- struct{}{}
					}
				}()
			}
			for h.Subscribers() < int64(n) {
				time.Sleep(time.Millisecond)
			}
			data := []byte(`{"id":123,"date":"2025-01-23T00:00:00.000Z","startTime":"09:00","endTime":"09:15","notes":"Observações","accountId":1}`)
			var pace *time.Ticker
			if bc.paced {
				pace = time.NewTicker(time.Millisecond)
				defer pace.Stop()
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := range b.N {
				if pace != nil {
					<-pace.C
				}
				h.Publish([]*hub.Message{hub.NewMessage(enrich.Event{ID: int64(i + 1), Kind: decode.AppointmentCreated, AccountID: 1, Data: data})})
				for range n {
					<-got
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.StopTimer()
			h.Close()
			hd.Wait()
			wg.Wait()
		})
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
