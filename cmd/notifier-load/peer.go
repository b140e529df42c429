package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

// peerChannelPrefix names the peer's channels: one per account, prefix + account id.
const peerChannelPrefix = "load_account_"

// peerTriggerSQL is the peer's whole setup: NOTIFY the row's id and account on its
// account's channel, per row, from the app's transaction.
const peerTriggerSQL = `CREATE FUNCTION load_peer_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('` + peerChannelPrefix + `' || NEW."accountId", json_build_object('id', NEW.id, 'accountId', NEW."accountId")::text);
    RETURN NULL;
END $$;
CREATE TRIGGER load_peer_notify AFTER INSERT ON appointments FOR EACH ROW WHEN (NEW."accountId" IS NOT NULL) EXECUTE FUNCTION load_peer_notify()`

// peerDropSQL removes peerTriggerSQL's objects.
const peerDropSQL = `DROP TRIGGER IF EXISTS load_peer_notify ON appointments;
DROP FUNCTION IF EXISTS load_peer_notify()`

// listenTimeout bounds how long the peer may take to LISTEN on a channel once its
// first dashboard is connected.
const listenTimeout = 10 * time.Second

// peerSide is pg_eventserv (Crunchy Data): NOTIFY payloads relayed verbatim to the
// WebSockets of /listen/<channel>, no authentication, no log, no enrichment.
type peerSide struct {
	e     *env
	bin   string
	dbURL string
}

func (p peerSide) label() string { return "pg_eventserv" }

func (p peerSide) install(ctx context.Context) error {
	if err := execSQL(ctx, p.dbURL, peerTriggerSQL); err != nil {
		return fmt.Errorf("install the peer's trigger: %w", err)
	}
	return nil
}

func (p peerSide) uninstall(ctx context.Context) error {
	if err := execSQL(ctx, p.dbURL, peerDropSQL); err != nil {
		return fmt.Errorf("drop the peer's trigger: %w", err)
	}
	return nil
}

// start runs pg_eventserv with a configuration file that binds it to 127.0.0.1 and
// sizes its pool above the channel count: each channel's listener holds a pooled
// connection for good, and one more is needed for the pool to serve at all.
func (p peerSide) start(ctx context.Context, run string, accounts int) (service, error) {
	check, err := connect(ctx, p.dbURL)
	if err != nil {
		return nil, err
	}
	srv, err := p.e.launch(ctx, launchSpec{
		name:    "pg_eventserv",
		logName: "peer-" + run,
		stopSig: os.Interrupt, // it shuts down on SIGINT only
		command: func(addr string) (*exec.Cmd, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("peer address: %w", err)
			}
			conf := filepath.Join(p.e.tmp, "peer-"+run+".toml")
			text := fmt.Sprintf("HttpHost = \"127.0.0.1\"\nHttpPort = %s\nDbPoolMaxConns = %d\nChannels = [\"%s*\"]\n",
				port, accounts+1, peerChannelPrefix)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				return nil, fmt.Errorf("write the peer's configuration: %w", err)
			}
			cmd := exec.Command(p.bin, "--config", conf)
			cmd.Env = peerEnv(p.dbURL)
			return cmd, nil
		},
		ready: func(ctx context.Context, s *server) error { return s.getOK(ctx, "/") },
	})
	if err != nil {
		check.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &peerService{e: p.e, srv: srv, check: check}, nil
}

// peerEnv is the tool's environment without the peer's settings (ES_*, DATABASE_URL),
// plus the database.
func peerEnv(dbURL string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ES_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			out = append(out, kv)
		}
	}
	return append(out, "DATABASE_URL="+dbURL)
}

// peerService is a running pg_eventserv.
type peerService struct {
	e     *env
	srv   *server
	check *pgx.Conn // sees the peer's LISTENs in pg_stat_activity
}

func (s *peerService) process() *server { return s.srv }

// open dials each account's first dashboard alone and waits for the peer's LISTEN on
// that channel before dialling the rest: pg_eventserv checks for a channel's listener
// without its lock, so concurrent first dashboards of a channel would race on its map
// and could start two listeners (each event sent twice).
func (s *peerService) open(ctx context.Context, n, perAccount int) ([]*websocket.Conn, error) {
	var conns []*websocket.Conn
	for i := 0; i*perAccount < n; i++ {
		channel := fmt.Sprint(peerChannelPrefix, i+1)
		dialOne := func(ctx context.Context) (*websocket.Conn, error) {
			return dialPath(ctx, s.srv.addr, "/listen/"+channel, nil)
		}
		first, err := dialOne(ctx)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, first)
		if err := s.awaitListen(ctx, channel); err != nil {
			closeAll(conns)
			return nil, err
		}
		rest, err := dialN(ctx, min(perAccount, n-i*perAccount)-1, s.e.opts.dialParallel, dialOne)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("channel %s: %w", channel, err)
		}
		conns = append(conns, rest...)
	}
	return conns, nil
}

// awaitListen waits until one of the peer's connections has run LISTEN on channel.
func (s *peerService) awaitListen(ctx context.Context, channel string) error {
	listen := "LISTEN " + pgx.Identifier{channel}.Sanitize() // as pg_eventserv sends it
	deadline := time.Now().Add(listenTimeout)
	for {
		var n int
		err := s.check.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`, listen).Scan(&n)
		if err != nil {
			return fmt.Errorf("read pg_stat_activity: %w", err)
		}
		switch {
		case n == 1:
			return nil
		case n > 1:
			return fmt.Errorf("pg_eventserv listens %d times on %s", n, channel)
		case time.Now().After(deadline):
			return fmt.Errorf("pg_eventserv does not LISTEN on %s within %s: %s", channel, listenTimeout, s.srv.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.srv.exited:
			return fmt.Errorf("pg_eventserv exited: %v: %s", s.srv.waitErr, s.srv.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// parse reads the trigger's payload, {"id" : 1, "accountId" : 2}.
func (s *peerService) parse(frame []byte) (row, account int64, ok bool) {
	row, okRow := jsonInt(frame, "id")
	account, okAccount := jsonInt(frame, "accountId")
	return row, account, okRow && okAccount
}

func (s *peerService) stop() {
	s.e.stopServer(s.srv)
	s.check.Close(context.Background())
}

// getOK is nil when GET path answers 200.
func (s *server) getOK(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// peerVersion asks the peer binary for its version.
func peerVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	return strings.TrimSpace(out.String()), nil
}
