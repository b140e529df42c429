package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Budgets of the end-to-end test's steps; generous because CI machines are shared.
const (
	browserBuildTimeout = 5 * time.Minute
	browserStartTimeout = 2 * time.Minute // initdb, pg_ctl, schema, service
	browserRunTimeout   = 3 * time.Minute
	browserStopTimeout  = time.Minute
)

// dashboardURL matches the line `notifier demo` prints for the dashboard.
var dashboardURL = regexp.MustCompile(`http://\S+/\?token=\S+`)

// TestDemoInBrowser builds the binary, runs `notifier demo` on a throwaway
// PostgreSQL with a busy simulated clinic, and drives the printed dashboard URL in
// Debian's headless Chromium (testdata/browser/dashboard.js): the page goes live
// over Socket.IO, every panel fills from real database writes, the check-in queue
// has no duplicate, a dropped connection is recovered, a bad token is an auth error.
// The screenshot lands in testdata/artifacts/dashboard.png.
func TestDemoInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs PostgreSQL and Chromium")
	}
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	browserDir := filepath.Join(root, "testdata", "browser")
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("playwright-core is not installed: run npm ci --prefix testdata/browser")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the dashboard test drives Chromium from Node.js (apt-get install nodejs)")
	}
	chromium := os.Getenv("NOTIFIER_TEST_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s: apt-get install chromium (or set NOTIFIER_TEST_CHROMIUM)", chromium)
	}
	artifacts := filepath.Join(root, "testdata", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildNotifier(t)

	started := time.Now()
	demo := startDemo(t, bin, "--http-addr", "127.0.0.1:0", "--rate", "20", "--log-format", "text")
	url := demo.waitFor(t, dashboardURL, browserStartTimeout)
	t.Logf("demo ready (PostgreSQL, schema, service): %s", time.Since(started).Round(time.Millisecond))
	base := url[:strings.Index(url, "/?token=")]
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Fatal("the demo does not serve Socket.IO at /socket.io/: route notifier/socketio in notifier/service.go")
	}

	started = time.Now()
	opts, _ := json.Marshal(map[string]any{
		"url":        url,
		"chromium":   chromium,
		"screenshot": filepath.Join(artifacts, "dashboard.png"),
		"authShot":   filepath.Join(artifacts, "dashboard-auth-error.png"),
		"timeoutMs":  60000,
		"min":        map[string]int{"appointments": 8, "queue": 4, "doctors": 2},
	})
	ctx, cancel := context.WithTimeout(t.Context(), browserRunTimeout)
	defer cancel()
	check := exec.CommandContext(ctx, node, filepath.Join(browserDir, "dashboard.js"), string(opts))
	check.Dir = browserDir
	var stdout, stderr bytes.Buffer
	check.Stdout, check.Stderr = &stdout, &stderr
	check.WaitDelay = 10 * time.Second
	if err := check.Run(); err != nil {
		t.Fatalf("dashboard check: %v\n%s%s\ndemo output:\n%s", err, stderr.String(), stdout.String(), demo.output())
	}
	t.Logf("browser (load, fill, drop and recover, bad token): %s", time.Since(started).Round(time.Millisecond))
	var seen map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &seen); err != nil {
		t.Fatalf("dashboard check output %q: %v", stdout.String(), err)
	}
	t.Logf("dashboard: %v", seen)
	t.Logf("screenshots: %s, %s", filepath.Join(artifacts, "dashboard.png"), filepath.Join(artifacts, "dashboard-auth-error.png"))

	started = time.Now()
	if code := demo.stop(t); code != 0 {
		t.Errorf("demo exited with status %d after SIGINT, want 0\n%s", code, demo.output())
	}
	if !strings.Contains(demo.output(), "throwaway PostgreSQL stopped and removed") {
		t.Errorf("demo did not say it removed its PostgreSQL:\n%s", demo.output())
	}
	t.Logf("demo stopped: %s", time.Since(started).Round(time.Millisecond))
}

// buildNotifier builds the binary into a temporary directory.
func buildNotifier(t *testing.T) string {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	started := time.Now()
	bin := filepath.Join(t.TempDir(), "notifier")
	ctx, cancel := context.WithTimeout(t.Context(), browserBuildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, gocmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("go build: %s", time.Since(started).Round(time.Millisecond))
	return bin
}

// demoProcess is a running `notifier demo`.
type demoProcess struct {
	cmd   *exec.Cmd
	lines chan string   // stdout, line by line; closed at EOF
	done  chan struct{} // closed when the process has exited
	code  int           // exit status, valid after done

	mu  sync.Mutex
	out bytes.Buffer // stdout and stderr, for failure messages
}

// startDemo starts the binary's demo without the caller's NOTIFIER_* settings, so
// that it runs its own PostgreSQL, and stops it (SIGINT) at the end of the test.
func startDemo(t *testing.T, bin string, args ...string) *demoProcess {
	t.Helper()
	d := &demoProcess{lines: make(chan string, 1024), done: make(chan struct{})}
	d.cmd = exec.Command(bin, append([]string{"demo"}, args...)...)
	d.cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(name, "NOTIFIER_") {
			d.cmd.Env = append(d.cmd.Env, kv)
		}
	}
	d.cmd.Stderr = lockedWriter{&d.mu, &d.out}
	pipe, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start demo: %v", err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default: // nobody waiting for lines any more
			}
		}
		close(d.lines)
		var exitErr *exec.ExitError
		if err := d.cmd.Wait(); errors.As(err, &exitErr) {
			d.code = exitErr.ExitCode()
		} else if err != nil {
			d.code = -1
		}
	}()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// waitFor returns the first match of re in the demo's output.
func (d *demoProcess) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				<-d.done
				t.Fatalf("demo exited (status %d) before printing %s:\n%s", d.code, re, d.output())
			}
			if m := re.FindString(line); m != "" {
				return m
			}
		case <-deadline:
			t.Fatalf("demo did not print %s within %s:\n%s", re, timeout, d.output())
		}
	}
}

// stop interrupts the demo as Ctrl-C would and returns its exit status; it kills it
// if it does not stop in time. Safe to call twice.
func (d *demoProcess) stop(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
		return d.code
	default:
	}
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Logf("interrupt demo: %v", err)
	}
	select {
	case <-d.done:
		return d.code
	case <-time.After(browserStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("demo did not stop within %s of SIGINT; killed (its PostgreSQL may be left running)", browserStopTimeout)
		return -1
	}
}

func (d *demoProcess) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
