package socketio_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

// BenchmarkFanOutWebSocket publishes one seed-sized event per op to one account
// with n WebSocket sockets and waits until every socket has read it: hub fan-out,
// framing and the write, end to end over loopback.
func BenchmarkFanOutWebSocket(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			bd := setup(b, func(c *socketio.Config, _ *hub.Config) { c.Logger = nil })
			tok := token(b, 1, time.Hour)
			var wg sync.WaitGroup
			counts := make(chan int, n)
			target := make(chan int, n)
			for range n {
				w := bd.openWS(b)
				w.connect(tok)
				wg.Add(1)
				go func(conn *websocket.Conn) {
					defer wg.Done()
					_ = conn.SetReadDeadline(time.Time{}) // openWS set one
					want := <-target
					got := 0
					for got < want {
						_, msg, err := conn.ReadMessage()
						if err != nil {
							break
						}
						if msg[0] == '4' {
							got++
						}
					}
					counts <- got
				}(w.conn)
			}
			for range n {
				target <- b.N
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				bd.log.publish(1, decode.AppointmentCreated, seedAppointment)
			}
			wg.Wait()
			b.StopTimer()
			for range n {
				if got := <-counts; got != b.N {
					b.Fatalf("a socket read %d events, want %d", got, b.N)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkClientFrames sends one noop per op from a client to its session and
// waits for the session to take them all (a close packet last): the read path of a
// WebSocket opened by a handshake, and of one upgraded from polling, whose reader
// watched the socket while it probed (arrival.go).
func BenchmarkClientFrames(b *testing.B) {
	for _, via := range []string{"handshake", "upgrade"} {
		b.Run("via="+via, func(b *testing.B) {
			bd := setup(b, func(c *socketio.Config, _ *hub.Config) {
				c.Logger = nil
				c.MaxClientPackets = 1 << 30
			})
			var conn *websocket.Conn
			if via == "handshake" {
				conn = bd.openWS(b).conn
			} else {
				p := bd.openPolling(b)
				c, _, err := bd.dialWS(b, p.sid, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				w := &wsSession{t: b, conn: c}
				w.send("2probe")
				if got := w.read(); got != "3probe" {
					b.Fatalf("probe answered %q", got)
				}
				w.send("5")
				conn = c
			}
			noop, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte("6"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := conn.WritePreparedMessage(noop); err != nil {
					b.Fatal(err)
				}
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte("1")); err != nil {
				b.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					break // the session took the close: every noop before it was read
				}
			}
			b.StopTimer()
		})
	}
}
