package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// demoDatabaseURL matches the database URL in the psql line `notifier demo` prints.
var demoDatabaseURL = regexp.MustCompile(`postgres://[^' ]+`)

// TestDemoInBrowser builds the binary, runs `notifier demo` on a throwaway
// PostgreSQL with a busy simulated clinic, and drives the printed dashboard URL in
// Debian's headless Chromium (testdata/browser/dashboard.js). Rows committed before
// the page opens (today's appointments, two check-ins, a doctor) are listed as soon as
// its snapshots load, while its Socket.IO connection is held back; rows changed
// between the snapshots and the connection show once, in their latest state. The page
// goes live over Socket.IO, every panel fills from real database writes, the check-in
// queue has no duplicate; then the test writes as the clinic app does (clinicWrite,
// asked for by the script) and the page follows each change: a booking checked in,
// served and finished, others checked in then finished or sent back, rescheduled,
// deleted; today's list joined, left and rejoined by a reschedule; a doctor hired,
// updated, busy and free, deleted; a status recoloured. A dropped
// connection is recovered with every change kept, a bad token is an auth error (the
// header never reads live), a reload reconnects with the tab's token and after sign-out
// asks for one; the page speaks English under en-US and Portuguese under pt-BR, with
// 24-hour times in both. The screenshot lands in testdata/artifacts/dashboard.png.
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
	db := connectDB(t, demo.waitFor(t, demoDatabaseURL, browserStartTimeout))
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
	seen, stderr, err := runDashboard(ctx, db, exec.CommandContext(ctx, node, filepath.Join(browserDir, "dashboard.js"), string(opts)), browserDir)
	if err != nil {
		t.Fatalf("dashboard check: %v\n%s\ndemo output:\n%s", err, stderr, demo.output())
	}
	t.Logf("browser (load, fill, follow the clinic's changes, drop and recover, bad token, reload and sign-out, pt-BR): %s", time.Since(started).Round(time.Millisecond))
	t.Logf("dashboard: %v", seen)
	t.Logf("screenshots: %s, %s", filepath.Join(artifacts, "dashboard.png"), filepath.Join(artifacts, "dashboard-auth-error.png"))

	started = time.Now()
	if err := db.Close(t.Context()); err != nil {
		t.Errorf("close the database connection: %v", err)
	}
	if code := demo.stop(t); code != 0 {
		t.Errorf("demo exited with status %d after SIGINT, want 0\n%s", code, demo.output())
	}
	if !strings.Contains(demo.output(), "throwaway PostgreSQL stopped and removed") {
		t.Errorf("demo did not say it removed its PostgreSQL:\n%s", demo.output())
	}
	t.Logf("demo stopped: %s", time.Since(started).Round(time.Millisecond))
}

// runDashboard runs the dashboard script and carries out the writes it asks for, one
// JSON line each on its stdout ({"ask":"book",...}), answering each on its stdin
// ({"id":N} or {"error":"..."}) once committed; it returns what the script's last
// line ({"done":{...}}) reports, and its stderr.
func runDashboard(ctx context.Context, db *pgx.Conn, check *exec.Cmd, dir string) (map[string]any, string, error) {
	check.Dir = dir
	var stderr bytes.Buffer
	check.Stderr = &stderr
	check.WaitDelay = 10 * time.Second
	stdin, err := check.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := check.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := check.Start(); err != nil {
		return nil, "", err
	}
	var done map[string]any
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var msg struct {
			clinicAsk
			Done map[string]any `json:"done"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil || (msg.Ask == "" && msg.Done == nil) {
			lines = append(lines, sc.Text()) // not for us: keep it for the failure message
			continue
		}
		if msg.Done != nil {
			done = msg.Done
			continue
		}
		reply := map[string]any{}
		if id, err := clinicWrite(ctx, db, msg.clinicAsk); err != nil {
			reply["error"] = fmt.Sprintf("%s: %v", msg.Ask, err)
		} else {
			reply["id"] = id
		}
		b, _ := json.Marshal(reply)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			break // the script ended; Wait says why
		}
	}
	stdin.Close()
	err = check.Wait()
	out := stderr.String() + strings.Join(lines, "\n")
	if err == nil && done == nil {
		err = errors.New("the script ended without its result line")
	}
	return done, out, err
}

// clinicAsk is a write the dashboard script asks for.
type clinicAsk struct {
	Ask    string `json:"ask"`
	ID     int64  `json:"id"`     // the appointment or doctor
	Status string `json:"status"` // a status name (book: the new appointment's; default Agendado)
	Days   int    `json:"days"`   // the appointment's date, in days from today
	Start  string `json:"start"`  // "HH:MM"
	End    string `json:"end"`
	Name   string `json:"name"`
	Phone  string `json:"phone"`
	Busy   bool   `json:"busy"`
	Color  string `json:"color"`
}

// clinicWrite makes one write of account 1 as the clinic app does, in plain SQL, and
// returns the id of the row it wrote. The simulator touches only today's appointments
// that are Agendado, Check-in or Em atendimento (it moves them along), and only
// doctors it hired; so the test's appointments are either days ahead (the check-in
// queue lists them while they are Check-in) or today's in a status the simulator
// leaves alone (Finalizado, Cancelado), and its doctors are its own.
func clinicWrite(ctx context.Context, db *pgx.Conn, a clinicAsk) (int64, error) {
	const utcNow = `now() AT TIME ZONE 'UTC'`
	const utcToday = `(now() AT TIME ZONE 'UTC')::date` // the day of the list appointments.today
	update := func(sql string, args ...any) (int64, error) {
		tag, err := db.Exec(ctx, sql, args...)
		if err == nil && tag.RowsAffected() == 0 {
			err = errors.New("no row changed")
		}
		return a.ID, err
	}
	switch a.Ask {
	case "book": // one appointment of João Silva with Dr. Victor, and its procedure; Agendado unless Status says
		var id int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `INSERT INTO appointments (date, "startTime", "endTime", notes, "doctorId", "patientId", "statusId", "accountId")
VALUES (`+utcToday+` + $1::int, $2, $3, 'booked by the browser test', 1, 1, (SELECT id FROM statuses WHERE name = coalesce(nullif($4, ''), 'Agendado')), 1) RETURNING id`,
				a.Days, a.Start, a.End, a.Status).Scan(&id)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO appointment_procedures ("appointmentId", "procedureId") VALUES ($1, 1)`, id)
			return err
		})
		return id, err
	case "status":
		return update(`UPDATE appointments SET "statusId" = (SELECT id FROM statuses WHERE name = $2), "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID, a.Status)
	case "reschedule":
		return update(`UPDATE appointments SET date = `+utcToday+` + $2::int, "startTime" = $3, "endTime" = $4, "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID, a.Days, a.Start, a.End)
	case "cancel": // the app's soft delete
		return update(`UPDATE appointments SET "deletedAt" = `+utcNow+`, "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID)
	case "delete": // a hard delete, links first
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM appointment_procedures WHERE "appointmentId" = $1`, a.ID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM appointments WHERE id = $1`, a.ID)
			return err
		})
		return a.ID, err
	case "hire": // a doctor with two procedures, linked in the same transaction
		var id int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `INSERT INTO doctors (name, crm, email, phone, "accountId") VALUES ($1, '99999', 'teste@example.com', '(81) 90000-0000', 1) RETURNING id`, a.Name).Scan(&id)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO doctor_procedures ("doctorId", "procedureId") VALUES ($1, 1), ($1, 2)`, id)
			return err
		})
		return id, err
	case "phone":
		return update(`UPDATE doctors SET phone = $2, "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID, a.Phone)
	case "busy":
		return update(`UPDATE doctors SET "isBusy" = $2, "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID, a.Busy)
	case "fire": // the app's soft delete
		return update(`UPDATE doctors SET "deletedAt" = `+utcNow+`, "updatedAt" = `+utcNow+` WHERE id = $1`, a.ID)
	case "color":
		return update(`UPDATE statuses SET color = $2 WHERE name = $1`, a.Status, a.Color)
	}
	return 0, fmt.Errorf("unknown write %q", a.Ask)
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
