package hub

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
)

// BenchmarkFanOut publishes one message at a time to a room of n subscribers, each
// polled by its own goroutine as a connection's writer would; ns/op is per message
// delivered to all n. A subscriber that falls behind the ring catches up from the log,
// as in production.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint("subscribers=", n), func(b *testing.B) {
			data := []byte(`{"id":123,"date":"2025-01-23T00:00:00.000Z","startTime":"09:00","endTime":"09:15","notes":"Observações","accountId":1}`)
			msgs := make([]*Message, b.N)
			for i := range msgs {
				msgs[i] = NewMessage(enrich.Event{ID: int64(i + 1), Kind: decode.AppointmentCreated, AccountID: 1, Data: data})
			}
			// The log holds msgs, message i at index i-1.
			replay := func(_ context.Context, _, after, through int64, limit int) ([]*Message, int64, error) {
				end := min(after+int64(limit), through)
				return msgs[after:end], end, nil
			}
			bounds := func(context.Context) (int64, int64, error) { return 0, int64(b.N), nil }
			h := New(Config{ReplayBuffer: 4096, ReplayFunc: replay, BoundsFunc: bounds}, 0)
			defer h.Close()
			var wg sync.WaitGroup
			for range n {
				s, _, _ := h.Subscribe(context.Background(), 1, decode.AllKinds, -1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var batch []*Message
					got := 0
					for got < b.N {
						var err error
						batch, err = s.Poll(context.Background(), batch[:0])
						if err != nil {
							b.Error(err)
							return
						}
						got += len(batch)
						if len(batch) == 0 {
							<-s.Wake()
						}
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, m := range msgs {
				h.Publish([]*Message{m})
			}
			wg.Wait()
		})
	}
}

// BenchmarkNewMessage is the once-per-event encoding cost.
func BenchmarkNewMessage(b *testing.B) {
	ev := enrich.Event{ID: 123456, Kind: decode.AppointmentCreated, AccountID: 1, Data: make([]byte, 900)}
	b.ReportAllocs()
	for b.Loop() {
		NewMessage(ev)
	}
}
