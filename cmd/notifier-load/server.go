package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds how long a started service may take to become ready.
const readyTimeout = 20 * time.Second

// stopTimeout bounds a service's graceful shutdown after its stop signal; then it is
// killed.
const stopTimeout = 20 * time.Second

// server is a running service process: `notifier serve` or the peer.
type server struct {
	name    string // for messages: "notifier serve", "pg_eventserv"
	addr    string // 127.0.0.1:port
	pid     int
	logPath string
	stopSig os.Signal
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // valid once exited is closed
	http    *http.Client
}

// maxConnections is the http.max_connections the notifier gets: the default
// (10,000), or room for the largest number of clients a scenario opens at once, with
// a margin for probes.
func (e *env) maxConnections() int {
	o := e.opts
	return max(10000, max(o.idleConns, o.clients, o.floodClients, o.sideClients)+100)
}

// launchSpec says how to start one service process.
type launchSpec struct {
	name    string // for messages
	logName string // log file name in the work directory, without the attempt and .log
	stopSig os.Signal
	// command returns the command that serves on addr (127.0.0.1:port).
	command func(addr string) (*exec.Cmd, error)
	// ready returns nil once the process serves.
	ready func(ctx context.Context, s *server) error
}

// startServer runs `notifier serve` on a free loopback port against dbURL and waits
// until /readyz answers 200.
func (e *env) startServer(ctx context.Context, name, dbURL string) (*server, error) {
	return e.launch(ctx, launchSpec{
		name:    "notifier serve",
		logName: "notifier-" + name,
		stopSig: syscall.SIGTERM,
		command: func(addr string) (*exec.Cmd, error) {
			cmd := exec.Command(e.bin, "serve")
			cmd.Env = e.notifierEnv(dbURL, "NOTIFIER_HTTP_ADDR="+addr,
				"NOTIFIER_HTTP_MAX_CONNECTIONS="+strconv.Itoa(e.maxConnections()))
			return cmd, nil
		},
		ready: func(ctx context.Context, s *server) error {
			_, err := s.readyz(ctx)
			return err
		},
	})
}

// launch starts a service on a free loopback port and waits until it is ready,
// retrying on another port when the one picked was taken meanwhile.
func (e *env) launch(ctx context.Context, spec launchSpec) (*server, error) {
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		s, err := e.tryLaunch(ctx, spec, attempt)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func (e *env) tryLaunch(ctx context.Context, spec launchSpec, attempt int) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{
		name:    spec.name,
		addr:    fmt.Sprintf("127.0.0.1:%d", port),
		logPath: filepath.Join(e.tmp, fmt.Sprintf("%s-%d.log", spec.logName, attempt)),
		stopSig: spec.stopSig,
		exited:  make(chan struct{}),
		http:    &http.Client{Timeout: 5 * time.Second},
	}
	if s.cmd, err = spec.command(s.addr); err != nil {
		return nil, err
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// If the tool dies, the service goes with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	s.pid = s.cmd.Process.Pid
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	for {
		if err := spec.ready(ctx, s); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited: %v: %s", s.name, s.waitErr, s.logTail())
		case <-ctx.Done():
			s.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("%s: %w within %s: %s", s.name, errNotReady, readyTimeout, s.logTail())
		}
	}
}

// readyState is the body of a 200 /readyz.
type readyState struct {
	Head        int64 `json:"head"`
	Subscribers int64 `json:"subscribers"`
}

// readyz asks /readyz; an error unless it answers 200.
func (s *server) readyz(ctx context.Context) (readyState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/readyz", nil)
	if err != nil {
		return readyState{}, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return readyState{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readyState{}, fmt.Errorf("readyz: %s", resp.Status)
	}
	var st readyState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return readyState{}, fmt.Errorf("readyz: %w", err)
	}
	return st, nil
}

// awaitSubscribers waits until /readyz reports n subscribers, so that a scenario
// starts only once every client's subscription is in place.
func (s *server) awaitSubscribers(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last readyState
	for {
		st, err := s.readyz(ctx)
		if err == nil {
			if last = st; st.Subscribers == int64(n) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("notifier reports %d subscribers after %s, want %d", last.Subscribers, timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// goroutines reads go_goroutines from /metrics, when the notifier exposes it.
func (s *server) goroutines(ctx context.Context) (int, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n), err == nil
		}
	}
	return 0, false
}

// stop sends the stop signal and waits for a graceful exit (killing it after
// stopTimeout).
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("%s: %w: %s", s.name, s.waitErr, s.logTail())
		}
		return nil
	case <-time.After(stopTimeout):
		s.kill()
		return fmt.Errorf("%s did not stop within %s of %s; killed", s.name, stopTimeout, s.stopSig)
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// cpu returns the service's CPU time so far.
func (s *server) cpu() (time.Duration, error) { return procCPU(s.pid, false) }

// status returns the service's memory and threads.
func (s *server) status() (procStatus, error) { return readProcStatus(s.pid) }

// logTail returns the last lines of the service's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// freePort asks the kernel for a free loopback port. Another process may take it
// before the service binds it; launch then retries.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("pick a port: not a TCP address")
	}
	return addr.Port, nil
}

// stopServer stops srv, reporting a failure to stop as progress: the figures are
// already taken.
func (e *env) stopServer(srv *server) {
	if err := srv.stop(); err != nil {
		e.progress("%v", err)
	}
}

// serveAccount1 starts a notifier for one scenario and mints a token for account 1.
// Stop it with stopServer.
func (e *env) serveAccount1(ctx context.Context, name, dbURL string) (*server, string, error) {
	srv, err := e.startServer(ctx, name, dbURL)
	if err != nil {
		return nil, "", err
	}
	token, err := e.token(ctx, 1)
	if err != nil {
		e.stopServer(srv)
		return nil, "", err
	}
	return srv, token, nil
}
