// Package metrics keeps the notifier's counters, gauges and histograms and serves
// them at /metrics with prometheus/client_golang, beside the standard Go runtime and
// process collectors and notifier_build_info.
//
// Counters and gauges are plain atomics that the registry reads at scrape time
// (client_golang's CounterFunc and GaugeFunc): the hot paths pay one atomic add and
// tests read values back directly.
//
// # Concurrency
//
// Every metric is safe from any goroutine. Registration happens at start-up.
//
// # Invariants
//
// A nil *Registry hands out working, unregistered metrics, so components need no
// "if metrics != nil" on their hot paths. Registering a series (name and labels) a
// second time returns the first one's metric, so a counter never restarts.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/pgnotifier/notifier/internal/buildinfo"
)

// Counter only goes up.
type Counter struct{ v atomic.Int64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n (n >= 0).
func (c *Counter) Add(n int64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() int64 { return c.v.Load() }

// Gauge goes up and down.
type Gauge struct{ v atomic.Int64 }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n, which may be negative.
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Value returns the value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// Histogram counts observations into buckets.
type Histogram struct{ h prometheus.Histogram }

// Observe records v (seconds for durations).
func (h *Histogram) Observe(v float64) { h.h.Observe(v) }

// LatencyBuckets returns histogram bounds in seconds for database round trips and
// delivery lag: a millisecond is the norm, seconds mean trouble.
func LatencyBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

// Registry holds the process's metrics.
type Registry struct {
	reg *prometheus.Registry

	mu     sync.Mutex
	series map[string]any // name and rendered labels -> *Counter, *Gauge, *gaugeFunc or *Histogram
}

// New returns a Registry with the Go runtime and process collectors and
// notifier_build_info.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), series: map[string]any{}}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Read()
	r.GaugeFunc("notifier_build_info", "Always 1; the labels say which build runs.", func() float64 { return 1 },
		"version", bi.Version, "revision", bi.Revision, "goversion", bi.GoVersion)
	return r
}

// Counter registers and returns a counter; labels are key, value pairs.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	c := &Counter{}
	return register(r, name, labels, c, func() prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constLabels(labels)},
			func() float64 { return float64(c.Value()) })
	})
}

// Gauge registers and returns a gauge; labels are key, value pairs.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	g := &Gauge{}
	return register(r, name, labels, g, func() prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels(labels)},
			func() float64 { return float64(g.Value()) })
	})
}

// gaugeFunc holds a GaugeFunc's function, which a second registration replaces.
type gaugeFunc struct {
	f atomic.Pointer[func() float64]
}

// GaugeFunc registers a gauge read from f at scrape time.
func (r *Registry) GaugeFunc(name, help string, f func() float64, labels ...string) {
	g := &gaugeFunc{}
	got := register(r, name, labels, g, func() prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels(labels)},
			func() float64 { return (*g.f.Load())() })
	})
	got.f.Store(&f)
}

// Histogram registers and returns a histogram with the given bucket upper bounds;
// labels are key, value pairs.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	h := &Histogram{h: prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: constLabels(labels)})}
	return register(r, name, labels, h, func() prometheus.Collector { return h.h })
}

// register returns the metric already registered as name and labels, or registers
// collector() and returns m. On a nil Registry it returns m unregistered.
func register[M any](r *Registry, name string, labels []string, m *M, collector func() prometheus.Collector) *M {
	if len(labels)%2 != 0 {
		panic("metrics: labels must be key, value pairs") // a programming error at start-up
	}
	if r == nil {
		return m
	}
	key := seriesKey(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	if got, ok := r.series[key]; ok {
		if same, ok := got.(*M); ok {
			return same
		}
		panic(fmt.Sprintf("metrics: %s registered as two kinds", key))
	}
	if err := r.reg.Register(collector()); err != nil {
		panic(fmt.Sprintf("metrics: %s: %v", key, err)) // a programming error at start-up: help or label names differ
	}
	r.series[key] = m
	return m
}

func constLabels(kv []string) prometheus.Labels {
	if len(kv) == 0 {
		return nil
	}
	l := make(prometheus.Labels, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

func seriesKey(name string, kv []string) string {
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"\x00"+kv[i+1])
	}
	sort.Strings(pairs)
	key := name
	for _, p := range pairs {
		key += "\x01" + p
	}
	return key
}

// Indexed is a counter family with one label whose values are named by small
// integers (event kinds, below 64) at first use: the hot path indexes an array.
type Indexed struct {
	r                 *Registry
	name, help, label string
	labels            []string // the labels every counter of the family carries
	mu                sync.Mutex
	at                [64]atomic.Pointer[Counter]
}

// Indexed returns a counter family labelled label, and labels (key, value pairs) on
// every counter; see Indexed.
func (r *Registry) Indexed(name, help, label string, labels ...string) *Indexed {
	return &Indexed{r: r, name: name, help: help, label: label, labels: labels}
}

// Add adds n to the counter of index i, labelled value; every call for one index must
// name the same value. An index of 64 or more is not counted.
func (x *Indexed) Add(i uint8, value string, n int64) {
	if i >= 64 {
		return
	}
	c := x.at[i].Load()
	if c == nil {
		x.mu.Lock()
		if c = x.at[i].Load(); c == nil {
			c = x.r.Counter(x.name, x.help, append([]string{x.label, value}, x.labels...)...)
			x.at[i].Store(c)
		}
		x.mu.Unlock()
	}
	c.Add(n)
}

// Write writes every metric in the Prometheus text format.
func (r *Registry) Write(w io.Writer) error {
	families, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("encoding metric %s: %w", f.GetName(), err)
		}
	}
	return nil
}

// Handler serves the registry, in the format the scraper asks for.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}
