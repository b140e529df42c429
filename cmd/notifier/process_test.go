package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/internal/sioclient"
)

var (
	buildOnce sync.Once
	binDir    string // removed by TestMain after the tests
	builtBin  string
	buildErr  error
)

// binary builds the notifier once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "notifier-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		builtBin = filepath.Join(dir, "notifier")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// process is a `notifier serve` child process.
type process struct {
	cmd  *exec.Cmd
	addr string
	done chan error
	logs *strings.Builder
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve starts `notifier serve` on addr and waits until /readyz says 200.
func serve(t *testing.T, dbURL, addr string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), "serve")
	cmd.Env = append(os.Environ(),
		"NOTIFIER_DATABASE_URL="+dbURL,
		"NOTIFIER_AUTH_JWT_SECRET="+secret,
		"NOTIFIER_HTTP_ADDR="+addr,
		"NOTIFIER_HTTP_SHUTDOWN_TIMEOUT=5s",
		"NOTIFIER_LOGGING_FORMAT=text",
	)
	p := &process{cmd: cmd, addr: addr, done: make(chan error, 1), logs: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("notifier output:\n%s", p.logs)
		}
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("notifier exited before ready: %v\n%s", err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifier not ready:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond) // /readyz is a polled endpoint by design
	}
}

func migratedDatabase(t *testing.T) string {
	t.Helper()
	dbURL := pgtest.Database(t)
	mustCLI(t, "migrate", "up", "--database-url", dbURL)
	return dbURL
}

func insertAppointment(t *testing.T, dbURL string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var id int64
	if err := conn.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "accountId") VALUES (now(), '09:00', '09:15', 1) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

type wsFrame struct {
	ID    int64  `json:"id"`
	Event string `json:"event"`
	Data  struct {
		ID int64 `json:"id"`
	} `json:"data"`
}

func dialWS(t *testing.T, addr string, query string) *websocket.Conn {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), "accountId", 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?access_token="+url.QueryEscape(tok)+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFrame(t *testing.T, conn *websocket.Conn) wsFrame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, p, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f wsFrame
	if err := json.Unmarshal(p, &f); err != nil {
		t.Fatalf("frame %s: %v", p, err)
	}
	return f
}

// TestSIGTERM: on SIGTERM the notifier closes every connection with 1001 and exits 0.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	dbURL := migratedDatabase(t)
	p := serve(t, dbURL, freeAddr(t))
	conns := []*websocket.Conn{dialWS(t, p.addr, ""), dialWS(t, p.addr, "")}
	id := insertAppointment(t, dbURL)
	for _, c := range conns {
		if f := readFrame(t, c); f.Data.ID != id {
			t.Fatalf("got %+v", f)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("connection %d ended with %v, want close 1001", i, err)
		}
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs)
		}
	case <-time.After(waitTimeout):
		t.Fatal("notifier did not exit after SIGTERM")
	}
}

// TestSIGKILLAndRestart: the notifier is killed outright; what commits while it is
// down reaches a /ws client that resumes with ?since and a Socket.IO client that
// recovers by itself, each exactly once and in order, from the restarted process.
func TestSIGKILLAndRestart(t *testing.T) {
	t.Parallel()
	dbURL := migratedDatabase(t)
	addr := freeAddr(t)
	p := serve(t, dbURL, addr)
	ws := dialWS(t, addr, "")
	tok, _ := auth.Mint([]byte(secret), "accountId", 1, time.Hour, time.Now())
	sio := sioclient.Start(t, sioclient.Options{URL: "http://" + addr, Token: tok, Events: []string{"appointments.created"},
		Transports: []string{"websocket"}, ReconnectionDelay: 200 * time.Millisecond, ReconnectionDelayMax: 500 * time.Millisecond})
	sio.WaitConnect()

	var last int64
	for range 3 {
		id := insertAppointment(t, dbURL)
		f := readFrame(t, ws)
		if f.Data.ID != id {
			t.Fatalf("got %+v, want appointment %d", f, id)
		}
		last = f.ID
		if e := sio.WaitEvent(); !strings.Contains(string(e.Data), fmt.Sprintf(`"id":%d,`, id)) {
			t.Fatalf("socket.io got %s", e)
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	sio.WaitDisconnect()

	var missed []int64
	for range 5 {
		missed = append(missed, insertAppointment(t, dbURL))
	}
	serve(t, dbURL, addr)
	if cn := sio.WaitReconnect(); !cn.Recovered { // its retries while the server was down may fail first
		t.Fatalf("socket.io reconnect not recovered: %+v", cn)
	}
	ws2 := dialWS(t, addr, fmt.Sprintf("&since=%d", last))
	live := insertAppointment(t, dbURL)
	for _, want := range append(missed, live) {
		if f := readFrame(t, ws2); f.Data.ID != want {
			t.Fatalf("/ws resumed with %+v, want appointment %d", f, want)
		}
		if e := sio.WaitEvent(); !strings.Contains(string(e.Data), fmt.Sprintf(`"id":%d,`, want)) {
			t.Fatalf("socket.io got %s, want appointment %d", e, want)
		}
	}
}
