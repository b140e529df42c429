package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// contender is a service that turns the app's commits into WebSocket events: the
// notifier, or the peer it is compared with. It installs what it needs in the database
// and starts its process.
type contender interface {
	label() string
	// install puts its triggers on the database; uninstall removes them.
	install(ctx context.Context) error
	uninstall(ctx context.Context) error
	// start runs a fresh process that will serve dashboards of accounts 1..accounts.
	start(ctx context.Context, run string, accounts int) (service, error)
}

// service is a running contender.
type service interface {
	process() *server
	// open dials n dashboards, perAccount on each account from 1 on (connection i is on
	// account i/perAccount+1), and returns once the service has them all subscribed.
	open(ctx context.Context, n, perAccount int) ([]*websocket.Conn, error)
	// parse reads an appointment's id and account from one of the service's frames.
	parse(frame []byte) (row, account int64, ok bool)
	stop()
}

// subscribeTimeout bounds how long a service may take to have every dashboard
// subscribed once they are connected.
const subscribeTimeout = time.Minute

// notifierSide is the notifier on one database, its triggers installed by `notifier
// migrate up` and removed by `notifier migrate down`.
type notifierSide struct {
	e         *env
	dbURL     string
	transport string // "ws" or "socketio": what its dashboards connect with
}

func (n notifierSide) label() string { return "notifier" }

func (n notifierSide) install(ctx context.Context) error {
	_, err := n.e.notifierCmd(ctx, n.dbURL, "migrate", "up")
	return err
}

func (n notifierSide) uninstall(ctx context.Context) error {
	_, err := n.e.notifierCmd(ctx, n.dbURL, "migrate", "down")
	return err
}

func (n notifierSide) start(ctx context.Context, run string, accounts int) (service, error) {
	srv, err := n.e.startServer(ctx, run, n.dbURL)
	if err != nil {
		return nil, err
	}
	s := &notifierService{e: n.e, srv: srv, tokens: make([]string, accounts), socketIO: n.transport == "socketio"}
	for i := range s.tokens {
		if s.tokens[i], err = n.e.token(ctx, int64(i+1)); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// notifierService is a running `notifier serve` with a token per account.
type notifierService struct {
	e        *env
	srv      *server
	tokens   []string // account i+1's
	socketIO bool     // dashboards connect to /socket.io/, not /ws
}

func (s *notifierService) process() *server { return s.srv }

func (s *notifierService) open(ctx context.Context, n, perAccount int) ([]*websocket.Conn, error) {
	var conns []*websocket.Conn
	for i := 0; i*perAccount < n; i++ {
		if i >= len(s.tokens) {
			closeAll(conns)
			return nil, fmt.Errorf("open %d dashboards: no token for account %d", n, i+1)
		}
		dialOne := func(ctx context.Context) (*websocket.Conn, error) { return dial(ctx, s.srv.addr, s.tokens[i]) }
		if s.socketIO {
			dialOne = func(ctx context.Context) (*websocket.Conn, error) { return dialSocketIO(ctx, s.srv.addr, s.tokens[i]) }
		}
		cs, err := dialN(ctx, min(perAccount, n-i*perAccount), s.e.opts.dialParallel, dialOne)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("account %d: %w", i+1, err)
		}
		conns = append(conns, cs...)
	}
	if err := s.srv.awaitSubscribers(ctx, n, subscribeTimeout); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// parse reads data.id and data.accountId of an event frame (of an EVENT packet's
// payload over Socket.IO).
func (s *notifierService) parse(frame []byte) (row, account int64, ok bool) {
	if s.socketIO {
		return parseSocketIO(frame)
	}
	i := bytes.Index(frame, []byte(`"data":`))
	if i < 0 {
		return 0, 0, false
	}
	return rowAndAccount(frame[i:])
}

// rowAndAccount reads the first "id" and "accountId" of an event's payload: the
// appointment's own, which come before those of the rows joined into it.
func rowAndAccount(data []byte) (row, account int64, ok bool) {
	row, okRow := jsonInt(data, "id")
	account, okAccount := jsonInt(data, "accountId")
	return row, account, okRow && okAccount
}

func (s *notifierService) stop() { s.e.stopServer(s.srv) }
