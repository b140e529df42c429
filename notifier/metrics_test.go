package notifier_test

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the /metrics page at base.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", base, resp.StatusCode, body)
	}
	return string(body)
}

// seriesValue returns series' value on page, and whether page has it.
func seriesValue(page, series string) (float64, bool) {
	for line := range strings.Lines(page) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// waitSeries scrapes base until series reaches at least want: counters are added just
// after the write a client sees.
func waitSeries(t *testing.T, base, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		page := scrape(t, base)
		if v, ok := seriesValue(page, series); ok && v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %v:\n%s", series, want, page)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetrics: with http.internal_addr, /metrics moves there (the public address
// answers 404, the probes answer on both); one event shows in the counters by event
// name and transport, in the lag, enrichment and log-read histograms, beside the Go,
// process and build families.
func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.HTTP.InternalAddr = "127.0.0.1:0" }
	})
	internal := "http://" + b.svc.InternalAddr().String()
	resp, err := http.Get(b.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics with http.internal_addr set: %d, want 404", resp.StatusCode)
	}
	for _, base := range []string{b.base, internal} {
		for _, probe := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(base + probe)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s%s: %d", base, probe, resp.StatusCode)
			}
		}
	}

	c := b.dial(t, 1, nil)
	sio := b.sio(t, 1, nil)
	sio.WaitConnect()
	b.insertAppointment(t, 1)
	if f := c.next(t); f.Event != "appointments.created" {
		t.Fatalf("got %s, want appointments.created", f.Event)
	}
	if e := sio.WaitEvent(); e.Name != "appointments.created" {
		t.Fatalf("Socket.IO got %s, want appointments.created", e)
	}
	waitSeries(t, internal, `notifier_events_delivered_total{event="appointments.created",transport="ws"}`, 1)
	waitSeries(t, internal, `notifier_events_delivered_total{event="appointments.created",transport="socketio"}`, 1)
	page := scrape(t, internal)
	for series, want := range map[string]float64{
		`notifier_events_published_total{event="appointments.created"}`: 1,
		`notifier_connections{transport="ws"}`:                          1,
		`notifier_connections{transport="socketio"}`:                    1,
		`notifier_event_lag_seconds_count`:                              1,
		`notifier_enrich_batch_events_count`:                            1,
		`notifier_enrich_batch_events_sum`:                              1,
		`notifier_enrich_duration_seconds_count`:                        1,
		`notifier_listener_ready`:                                       1,
	} {
		if got, ok := seriesValue(page, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got, ok := seriesValue(page, "notifier_log_read_duration_seconds_count"); !ok || got < 1 {
		t.Errorf("notifier_log_read_duration_seconds_count = %v, want at least 1", got)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "\nnotifier_build_info{goversion=\"go"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in:\n%s", want, page)
		}
	}
}

// TestReadmeMetrics: the README's metrics table names every notifier_* family the code
// registers, and nothing else.
func TestReadmeMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "<!-- metrics: begin -->")
	table, _, ok2 := strings.Cut(table, "<!-- metrics: end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no metrics table between its markers")
	}
	var listed []string
	for line := range strings.Lines(table) {
		if name, ok := strings.CutPrefix(line, "| `notifier_"); ok {
			name, _, _ = strings.Cut(name, "`")
			listed = append(listed, "notifier_"+name)
		}
	}
	registration := regexp.MustCompile(`\.(?:Counter|Gauge|GaugeFunc|Histogram|Indexed)\("(notifier_[a-z_]+)"`)
	var registered []string
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range registration.FindAllSubmatch(src, -1) {
			registered = append(registered, string(m[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(listed)
	slices.Sort(registered)
	registered = slices.Compact(registered)
	if !slices.Equal(listed, registered) {
		t.Errorf("README.md's metrics table lists\n%v\nthe code registers\n%v", listed, registered)
	}
}
