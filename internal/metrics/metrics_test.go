package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// page returns what /metrics serves.
func page(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

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
	got := page(t, r)
	for _, want := range []string{
		"# HELP notifier_events_total Events published.\n# TYPE notifier_events_total counter\nnotifier_events_total 3\n",
		"# TYPE notifier_connections_refused_total counter\nnotifier_connections_refused_total{reason=\"auth\"} 1\nnotifier_connections_refused_total{reason=\"limit\"} 2\n",
		"# TYPE notifier_connections gauge\nnotifier_connections{transport=\"ws\"} 4\n",
		"notifier_ready 1\n",
		"# TYPE notifier_build_info gauge\nnotifier_build_info{goversion=\"go",
		"\ngo_goroutines ",
		"\nprocess_resident_memory_bytes ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}

func TestHandlerServesTextFormat(t *testing.T) {
	t.Parallel()
	r := New()
	r.Counter("notifier_x_total", "X.").Inc()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type = %q", ct)
	}
	if !strings.Contains(rec.Body.String(), "\nnotifier_x_total 1\n") {
		t.Fatalf("body:\n%s", rec.Body.String())
	}
}

func TestSecondRegistrationSharesTheMetric(t *testing.T) {
	t.Parallel()
	r := New()
	a := r.Counter("notifier_x_total", "X.", "reason", "a")
	a.Add(2)
	if b := r.Counter("notifier_x_total", "X.", "reason", "a"); b != a {
		t.Fatal("a second registration made a second counter")
	}
	r.GaugeFunc("notifier_y", "Y.", func() float64 { return 1 })
	r.GaugeFunc("notifier_y", "Y.", func() float64 { return 7 })
	got := page(t, r)
	if !strings.Contains(got, "notifier_x_total{reason=\"a\"} 2\n") || !strings.Contains(got, "notifier_y 7\n") {
		t.Fatalf("page:\n%s", got)
	}
}

func TestMisuseIsAProgrammingError(t *testing.T) {
	t.Parallel()
	for name, register := range map[string]func(r *Registry){
		"odd labels": func(r *Registry) { r.Counter("notifier_x_total", "X.", "reason") },
		"two kinds":  func(r *Registry) { r.Counter("notifier_x", "X."); r.Gauge("notifier_x", "X.") },
		"help differs": func(r *Registry) {
			r.Counter("notifier_x_total", "X.", "a", "1")
			r.Counter("notifier_x_total", "Y.", "a", "2")
		},
		"labels differ": func(r *Registry) {
			r.Counter("notifier_x_total", "X.", "a", "1")
			r.Counter("notifier_x_total", "X.", "b", "1")
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			register(New())
		})
	}
}

func TestHistogram(t *testing.T) {
	t.Parallel()
	r := New()
	h := r.Histogram("notifier_lag_seconds", "Lag.", []float64{0.001, 0.01})
	h.Observe(0.0005)
	h.Observe(0.005)
	h.Observe(1)
	got := page(t, r)
	for _, want := range []string{
		"notifier_lag_seconds_bucket{le=\"0.001\"} 1\n",
		"notifier_lag_seconds_bucket{le=\"0.01\"} 2\n",
		"notifier_lag_seconds_bucket{le=\"+Inf\"} 3\n",
		"notifier_lag_seconds_count 3\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}

func TestIndexed(t *testing.T) {
	t.Parallel()
	r := New()
	x := r.Indexed("notifier_events_published_total", "Published.", "event", "transport", "ws")
	x.Add(3, "appointments.created", 2)
	x.Add(3, "appointments.created", 1)
	x.Add(5, "doctors.updated", 1)
	x.Add(64, "out.of.range", 1) // not counted
	got := page(t, r)
	for _, want := range []string{
		"notifier_events_published_total{event=\"appointments.created\",transport=\"ws\"} 3\n",
		"notifier_events_published_total{event=\"doctors.updated\",transport=\"ws\"} 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "out.of.range") {
		t.Errorf("index 64 counted:\n%s", got)
	}
}

func TestNilRegistryHandsOutWorkingMetrics(t *testing.T) {
	t.Parallel()
	var r *Registry
	c := r.Counter("x", "x")
	c.Inc()
	g := r.Gauge("y", "y")
	g.Set(2)
	r.GaugeFunc("z", "z", func() float64 { return 0 })
	r.Histogram("h", "h", []float64{1}).Observe(2)
	x := r.Indexed("i", "i", "event")
	x.Add(1, "a", 4)
	if c.Value() != 1 || g.Value() != 2 || x.at[1].Load().Value() != 4 {
		t.Fatal("nil registry metrics do not count")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := New()
	c := r.Counter("c", "c")
	x := r.Indexed("i", "i", "event")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				c.Inc()
				x.Add(2, "e", 1)
				_ = r.Write(&strings.Builder{})
			}
		})
	}
	wg.Wait()
	if c.Value() != 1600 || x.at[2].Load().Value() != 1600 {
		t.Fatalf("count = %d, %d", c.Value(), x.at[2].Load().Value())
	}
}
