package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	r := New()
	c := r.Counter("notifier_events_total", "Events published.")
	refused := r.Counter("notifier_connections_refused_total", "Refused handshakes.", "reason", "auth")
	limit := r.Counter("notifier_connections_refused_total", "Refused handshakes.", "reason", "limit")
	g := r.Gauge("notifier_connections", "Open connections.", "transport", "ws")
	r.GaugeFunc("notifier_ready", "1 when ready.", func() float64 { return 1 })
	c.Add(3)
	refused.Inc()
	limit.Add(2)
	g.Set(5)
	g.Add(-1)
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `# HELP notifier_events_total Events published.
# TYPE notifier_events_total counter
notifier_events_total 3
# HELP notifier_connections_refused_total Refused handshakes.
# TYPE notifier_connections_refused_total counter
notifier_connections_refused_total{reason="auth"} 1
notifier_connections_refused_total{reason="limit"} 2
# HELP notifier_connections Open connections.
# TYPE notifier_connections gauge
notifier_connections{transport="ws"} 4
# HELP notifier_ready 1 when ready.
# TYPE notifier_ready gauge
notifier_ready 1
`
	if got := rec.Body.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type = %q", ct)
	}
}

func TestNilRegistryHandsOutWorkingMetrics(t *testing.T) {
	t.Parallel()
	var r *Registry
	c := r.Counter("x", "x")
	c.Inc()
	g := r.Gauge("y", "y")
	g.Set(2)
	if c.Value() != 1 || g.Value() != 2 {
		t.Fatal("nil registry metrics do not count")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := New()
	c := r.Counter("c", "c")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Inc()
				_ = r.Write(&strings.Builder{})
			}
		}()
	}
	wg.Wait()
	if c.Value() != 8000 {
		t.Fatalf("count = %d", c.Value())
	}
}
