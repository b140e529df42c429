package notifier_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/pgtest"
	"github.com/pgnotifier/notifier/notifier"
)

const testSecret = "test-secret-0123456789abcdef0123456789"

// waitTimeout bounds every wait on a signal; generous because CI machines are shared.
const waitTimeout = 20 * time.Second

// testBundle is one notifier on a database of its own.
type testBundle struct {
	dbURL  string
	db     *pgxpool.Pool // for the test's own writes, as the clinic app would
	svc    *notifier.Service
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan error
	mutate func(*config.Config)
}

// restart stops the notifier and starts a new one on the same address and database,
// as a deploy or a crash-and-restart would.
func (b *testBundle) restart(t *testing.T) {
	t.Helper()
	b.stop(t)
	b.start(t, b.mutate)
}

type setupOpts struct {
	dbURL  string
	mutate func(*config.Config)
}

func setup(t *testing.T, opts ...func(*setupOpts)) *testBundle {
	t.Helper()
	var o setupOpts
	for _, f := range opts {
		f(&o)
	}
	if o.dbURL == "" {
		o.dbURL = pgtest.Database(t)
	}
	b := &testBundle{dbURL: o.dbURL}
	pool, err := pgxpool.New(t.Context(), o.dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	b.db = pool
	b.start(t, o.mutate)
	return b
}

func testConfig(t *testing.T, dbURL string) config.Config {
	t.Helper()
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Database.URL = dbURL
	cfg.Auth.JWTSecret = testSecret
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	return cfg
}

// start runs a notifier on the bundle's database and waits until it is ready.
func (b *testBundle) start(t *testing.T, mutate func(*config.Config)) {
	t.Helper()
	cfg := testConfig(t, b.dbURL)
	if mutate != nil {
		mutate(&cfg)
	}
	addr := "127.0.0.1:0"
	if b.base != "" { // a restart keeps the address clients reconnect to
		addr = b.base[len("http://"):]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := notifier.New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})), ln)
	if err != nil {
		t.Fatalf("notifier.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.svc, b.cancel, b.done = svc, cancel, make(chan error, 1)
	go func() { b.done <- svc.Run(ctx) }()
	select {
	case <-svc.Started():
	case err := <-b.done:
		t.Fatalf("notifier stopped before it was ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("notifier not ready in time")
	}
	b.base = "http://" + ln.Addr().String()
	b.mutate = mutate
	t.Cleanup(func() { b.stop(t) })
}

// stop shuts the notifier down and checks it exits cleanly; safe to call twice.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("notifier.Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Error("notifier did not stop in time")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func token(t *testing.T, account int64, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), "accountId", account, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// frame is one message a client received.
type frame struct {
	ID      int64           `json:"id"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
	Partial bool            `json:"partial"`
	raw     []byte
}

// wsClient is a real WebSocket client whose reads go to a channel.
type wsClient struct {
	conn   *websocket.Conn
	frames chan frame
	closed chan error // the read error that ended the client (a *websocket.CloseError on close)
}

func (b *testBundle) dial(t *testing.T, account int64, query url.Values) *wsClient {
	t.Helper()
	c, resp, err := b.tryDial(t, token(t, account, time.Hour), query)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, respBody(resp))
	}
	return c
}

func (b *testBundle) tryDial(t *testing.T, tok string, query url.Values) (*wsClient, *http.Response, error) {
	t.Helper()
	u := "ws" + b.base[len("http"):] + "/ws"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	conn, resp, err := websocket.DefaultDialer.DialContext(t.Context(), u, h)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{conn: conn, frames: make(chan frame, 100000), closed: make(chan error, 1)}
	go func() {
		for {
			_, p, err := conn.ReadMessage()
			if err != nil {
				c.closed <- err
				close(c.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(p, &f); err != nil {
				c.closed <- fmt.Errorf("bad frame %q: %w", p, err)
				close(c.frames)
				return
			}
			f.raw = p
			c.frames <- f
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return c, resp, nil
}

func respBody(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b)
}

// next returns the next frame, failing the test if none comes in time.
func (c *wsClient) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection ended: %v", <-c.closed)
		}
		return f
	case <-time.After(waitTimeout):
		t.Fatal("no frame in time")
	}
	return frame{}
}

// nextN returns the next n frames.
func (c *wsClient) nextN(t *testing.T, n int) []frame {
	t.Helper()
	out := make([]frame, 0, n)
	for range n {
		out = append(out, c.next(t))
	}
	return out
}

// closeErr waits for the server to end the connection and returns its close error.
func (c *wsClient) closeErr(t *testing.T) *websocket.CloseError {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case f, ok := <-c.frames:
			if ok {
				t.Logf("frame before close: %s", f.raw)
				continue
			}
			err := <-c.closed
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
			return ce
		case <-deadline:
			t.Fatal("connection not closed in time")
			return nil
		}
	}
}

// exec runs SQL as the clinic app would.
func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// insertAppointment inserts one appointment (its own transaction) and returns its id.
func (b *testBundle) insertAppointment(t *testing.T, account int64) int64 {
	t.Helper()
	var id int64
	doctor, patient := 1, 1
	if account == 2 {
		doctor, patient = 3, 4
	}
	err := b.db.QueryRow(t.Context(), `INSERT INTO appointments (date, "startTime", "endTime", "doctorId", "patientId", "statusId", "accountId")
VALUES ('2025-01-23', '09:00', '09:15', $1, $2, 1, $3) RETURNING id`, doctor, patient, account).Scan(&id)
	if err != nil {
		t.Fatalf("insert appointment: %v", err)
	}
	return id
}

func (f frame) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(f.Data, &m); err != nil {
		t.Fatalf("data %s: %v", f.Data, err)
	}
	return m
}

func (f frame) rowID(t *testing.T) int64 {
	t.Helper()
	id, ok := f.object(t)["id"].(float64)
	if !ok {
		t.Fatalf("data without id: %s", f.Data)
	}
	return int64(id)
}

// configT shortens config.Config in test option literals.
type configT = config.Config

func pgtestDatabase(t *testing.T) string { return pgtest.Database(t) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key to files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
