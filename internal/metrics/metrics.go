// Package metrics keeps the notifier's counters and gauges and serves them in the
// Prometheus text exposition format at /metrics, without a client library.
//
// # Concurrency
//
// Counters and gauges are atomics, safe from any goroutine. Registration happens at
// start-up; Write takes a snapshot under a read lock.
//
// # Invariants
//
// A nil *Registry hands out working, unregistered metrics, so components need no
// "if metrics != nil" on their hot paths.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

type series struct {
	labels string // rendered {k="v",...} or ""
	value  func() float64
}

type family struct {
	name, help, kind string
	series           []series
}

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.RWMutex
	families map[string]*family
	order    []string
}

// New returns an empty Registry.
func New() *Registry { return &Registry{families: map[string]*family{}} }

// Counter registers and returns a counter; labels are key, value pairs.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	c := &Counter{}
	r.add(name, help, "counter", labels, func() float64 { return float64(c.Value()) })
	return c
}

// Gauge registers and returns a gauge; labels are key, value pairs.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	g := &Gauge{}
	r.add(name, help, "gauge", labels, func() float64 { return float64(g.Value()) })
	return g
}

// GaugeFunc registers a gauge read from f at scrape time.
func (r *Registry) GaugeFunc(name, help string, f func() float64, labels ...string) {
	r.add(name, help, "gauge", labels, f)
}

func (r *Registry) add(name, help, kind string, labels []string, value func() float64) {
	if r == nil {
		return
	}
	if len(labels)%2 != 0 {
		panic("metrics: labels must be key, value pairs") // a programming error at start-up
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.families[name]
	if f == nil {
		f = &family{name: name, help: help, kind: kind}
		r.families[name] = f
		r.order = append(r.order, name)
	}
	f.series = append(f.series, series{labels: renderLabels(labels), value: value})
}

func renderLabels(kv []string) string {
	if len(kv) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"="+strconv.Quote(kv[i+1]))
	}
	sort.Strings(pairs)
	return "{" + strings.Join(pairs, ",") + "}"
}

// Write writes every metric in the text exposition format.
func (r *Registry) Write(w io.Writer) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var b strings.Builder
	for _, name := range r.order {
		f := r.families[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		for _, s := range f.series {
			v := s.value()
			b.WriteString(f.name)
			b.WriteString(s.labels)
			b.WriteByte(' ')
			if v == math.Trunc(v) && math.Abs(v) < 1e15 {
				b.WriteString(strconv.FormatInt(int64(v), 10))
			} else {
				b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = r.Write(w)
	})
}
