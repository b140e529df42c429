package notifier_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// TestConnectionLimits: past http.max_connections_per_account the handshake gets 429,
// past http.max_connections 503, each with a JSON reason and a metric.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.HTTP.MaxConnections, c.HTTP.MaxConnectionsPerAccount = 3, 2 }
	})
	b.dial(t, 1, nil)
	b.dial(t, 1, nil)
	_, resp, err := b.tryDial(t, token(t, 1, time.Hour), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third of account 1: %v %s, want 429", err, respBody(resp))
	}
	b.dial(t, 2, nil)
	_, resp, err = b.tryDial(t, token(t, 3, time.Hour), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth overall: %v %s, want 503", err, respBody(resp))
	}
	m := b.metrics(t)
	for _, want := range []string{
		`notifier_connections_refused_total{reason="account_limit",transport="ws"} 1`,
		`notifier_connections_refused_total{reason="limit",transport="ws"} 1`,
		`notifier_connections{transport="ws"} 3`,
		`notifier_hub_subscribers 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

// TestAllowedOrigins: with http.allowed_origins set, a browser from elsewhere gets 403.
func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.HTTP.AllowedOrigins = []string{"https://clinic.example"} }
	})
	u := "ws" + b.base[len("http"):] + "/ws?access_token=" + url.QueryEscape(token(t, 1, time.Hour))
	for origin, want := range map[string]int{"https://clinic.example": 101, "https://evil.example": 403, "": 101} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(u, h)
		if conn != nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %q: %v %s, want %d", origin, err, respBody(resp), want)
		}
	}
}

// TestClientFlood: a client that floods the push-only socket is closed with 1008;
// an oversized client message with 1009.
func TestClientFlood(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.WS.MaxClientMessages = 5; c.WS.ReadLimit = 256 }
	})
	flood := b.dial(t, 1, nil)
	for i := 0; i < 100; i++ {
		if err := flood.conn.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			break // closed under us: fine
		}
	}
	if ce := flood.closeErr(t); ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("flood close = %d %q, want 1008", ce.Code, ce.Text)
	}
	big := b.dial(t, 1, nil)
	_ = big.conn.WriteMessage(websocket.BinaryMessage, make([]byte, 4096))
	if ce := big.closeErr(t); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized close = %d %q, want 1009", ce.Code, ce.Text)
	}
	// A few keep-alives are fine.
	calm := b.dial(t, 1, nil)
	_ = calm.conn.WriteMessage(websocket.TextMessage, []byte("ping"))
	id := b.insertAppointment(t, 1)
	if f := calm.next(t); f.rowID(t) != id {
		t.Fatalf("got %s", f.raw)
	}
}

// TestTLS: with http.tls_cert and http.tls_key the notifier serves wss:// itself.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t)
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.HTTP.TLSCert, c.HTTP.TLSKey = cert, key }
	})
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a test's self-signed certificate
	u := "wss" + b.base[len("http"):] + "/ws?access_token=" + url.QueryEscape(token(t, 1, time.Hour))
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("wss: %v %s", err, respBody(resp))
	}
	defer conn.Close()
	id := b.insertAppointment(t, 1)
	_, p, err := conn.ReadMessage()
	if err != nil || !strings.Contains(string(p), `"appointments.created"`) || !strings.Contains(string(p), `"id":`+itoa(id)+`,`) {
		t.Fatalf("read %s, %v", p, err)
	}
}

func (b *testBundle) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(b.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// TestRS256PublicKey: with auth.algorithm RS256 and a public key file, RS256 tokens of
// the issuer connect and HS256 tokens (even signed with the public key) are refused.
func TestRS256PublicKey(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	file := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(file, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(o *setupOpts) {
		o.mutate = func(c *configT) { c.Auth.Algorithm, c.Auth.JWTSecret, c.Auth.PublicKeyFile = "RS256", "", file }
	})
	claims := jwt.MapClaims{"accountId": 1, "exp": time.Now().Add(time.Hour).Unix()}
	rs, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, resp, err := b.tryDial(t, rs, nil)
	if err != nil {
		t.Fatalf("RS256 token: %v %s", err, respBody(resp))
	}
	id := b.insertAppointment(t, 1)
	if f := c.next(t); f.rowID(t) != id {
		t.Fatalf("got %s", f.raw)
	}
	confused, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"hs256 signed with the public key": confused, "hs256 with the old secret": token(t, 1, time.Hour)} {
		if _, resp, err := b.tryDial(t, tok, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v %s, want 401", name, err, respBody(resp))
		}
	}
}
