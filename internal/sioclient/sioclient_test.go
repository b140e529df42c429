package sioclient

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/notifier/decode"
	"github.com/pgnotifier/notifier/notifier/enrich"
	"github.com/pgnotifier/notifier/notifier/hub"
	"github.com/pgnotifier/notifier/notifier/socketio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestScriptDir(t *testing.T) {
	dir, err := ScriptDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"client.js", "package.json", "package-lock.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if err := installed(dir); err != nil {
		t.Fatal(err)
	}
	err = installed(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "run npm ci in testdata/sioclient") {
		t.Fatalf("missing node_modules: %v", err)
	}
}

const secret = "sioclient-test-secret-0123456789abcdef"

// TestClient drives the helper against the real server: every notification kind
// and every command.
func TestClient(t *testing.T) {
	var (
		mu   sync.Mutex
		msgs []*hub.Message // the log
	)
	h := hub.New(hub.Config{
		ReplayFunc: func(_ context.Context, account, after, through int64, _ int) ([]*hub.Message, int64, error) {
			mu.Lock()
			defer mu.Unlock()
			var out []*hub.Message
			for _, m := range msgs[after:min(through, int64(len(msgs)))] {
				if m.AccountID == account {
					out = append(out, m)
				}
			}
			return out, through, nil
		},
		BoundsFunc: func(context.Context) (int64, int64, error) {
			mu.Lock()
			defer mu.Unlock()
			return 0, int64(len(msgs)), nil
		},
	}, 0)
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(secret), AccountClaim: auth.DefaultAccountClaim})
	if err != nil {
		t.Fatal(err)
	}
	hd := socketio.New(socketio.Config{Events: decode.AllKinds, RecoverySecret: []byte(secret)}, h, v)
	srv := httptest.NewServer(hd)
	t.Cleanup(func() { hd.Close(); h.Close(); srv.Close(); hd.Wait() })
	publish := func(data string) string {
		mu.Lock()
		id := int64(len(msgs) + 1)
		m := hub.NewMessage(enrich.Event{ID: id, Kind: decode.AppointmentCreated, AccountID: 1, Data: []byte(data)})
		msgs = append(msgs, m)
		mu.Unlock()
		h.Publish([]*hub.Message{m})
		return strconv.FormatInt(id, 10)
	}
	tok, err := auth.Mint([]byte(secret), auth.DefaultAccountClaim, 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	c := Start(t, Options{URL: srv.URL, Token: tok, Events: []string{"appointments.created"},
		ReconnectionDelay: 50 * time.Millisecond, ReconnectionDelayMax: 100 * time.Millisecond})
	first := c.WaitConnect()
	if first.ID == "" || first.Recovered {
		t.Fatalf("connect = %+v", first)
	}
	if u := c.WaitUpgrade(); u.Transport != "websocket" {
		t.Fatalf("upgrade = %+v", u)
	}
	off := publish(`{"id":1}`)
	if e := c.WaitEvent(); e.Name != "appointments.created" || string(e.Data) != `{"id":1}` || e.Offset != off {
		t.Fatalf("event = %v", e)
	}
	c.CloseEngine()
	if d := c.WaitDisconnect(); d.Reason != "forced close" || !d.Active {
		t.Fatalf("disconnect = %+v", d)
	}
	if again := c.WaitConnect(); !again.Recovered || again.ID != first.ID {
		t.Fatalf("reconnect = %+v", again)
	}
	c.Disconnect()
	if d := c.WaitDisconnect(); d.Reason != "io client disconnect" || d.Active {
		t.Fatalf("disconnect = %+v", d)
	}
	c.Connect()
	c.WaitConnect()

	bad := Start(t, Options{URL: srv.URL, Token: "nope", Transports: []string{"websocket"}})
	if e := bad.WaitConnectError(); e.Message != "malformed token" || string(e.Data) != `{"code":"invalid_token"}` || e.Active {
		t.Fatalf("connect_error = %+v", e)
	}
}
