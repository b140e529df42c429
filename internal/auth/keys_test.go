package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test keys are generated once per test binary: RSA generation is slow.
var (
	testRSAKeys = sync.OnceValue(func() []*rsa.PrivateKey { return genRSA(3, 2048) })
	testECKeys  = sync.OnceValue(func() []*ecdsa.PrivateKey { return genEC(3, elliptic.P256()) })
)

func genRSA(n, bits int) []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, n)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err) // test setup only
		}
		keys[i] = k
	}
	return keys
}

func genEC(n int, c elliptic.Curve) []*ecdsa.PrivateKey {
	keys := make([]*ecdsa.PrivateKey, n)
	for i := range keys {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err) // test setup only
		}
		keys[i] = k
	}
	return keys
}

// signKID signs claims with method and key, setting the kid header unless kid
// is nil. ES256 signatures get a low S, as in sign.
func signKID(t testing.TB, method jwt.SigningMethod, key any, kid any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != nil {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	if method == jwt.SigningMethodES256 {
		s = withS(t, s, false)
	}
	return s
}

// pkixPEM encodes pub as a PKIX "PUBLIC KEY" block.
func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// certPEM wraps priv's public key in a self-signed certificate, already
// expired: Verify uses only the key, never the certificate's validity.
func certPEM(t testing.TB, priv any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(3600, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFixture writes data to a file in a fresh temp dir and reads it back,
// as the service does with auth.public_key_file.
func writeFixture(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write fixture: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK and ecJWK describe public keys as JWKs.
func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes()),
	}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes()
	if err != nil {
		panic(err) // test setup only
	}
	return map[string]any{
		"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
		"x": b64u(b[1:33]), "y": b64u(b[33:]),
	}
}

// testLogger logs through t.Log and keeps a copy for assertions.
type testLogger struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func newTestLogger(t testing.TB) (*slog.Logger, *testLogger) {
	l := &testLogger{t: t}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

func (l *testLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (l *testLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestVerifyPublicKeyPEM(t *testing.T) {
	t.Parallel()
	rk, ek := testRSAKeys(), testECKeys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk[0].PublicKey)})

	for _, tt := range []struct {
		name   string
		alg    string
		pem    []byte
		method jwt.SigningMethod
		signer any // the key pem holds
		other  any // another key of the same type
	}{
		{name: "RS256 PKIX", alg: AlgRS256, pem: pkixPEM(t, &rk[0].PublicKey), method: jwt.SigningMethodRS256, signer: rk[0], other: rk[1]},
		{name: "RS256 certificate", alg: AlgRS256, pem: certPEM(t, rk[0], &rk[0].PublicKey), method: jwt.SigningMethodRS256, signer: rk[0], other: rk[1]},
		{name: "RS256 PKCS1", alg: AlgRS256, pem: pkcs1, method: jwt.SigningMethodRS256, signer: rk[0], other: rk[1]},
		{name: "RS256 PEM with comment", alg: AlgRS256, pem: append([]byte("issuer key, 2025\n"), pkixPEM(t, &rk[0].PublicKey)...), method: jwt.SigningMethodRS256, signer: rk[0], other: rk[1]},
		{name: "ES256 PKIX", alg: AlgES256, pem: pkixPEM(t, &ek[0].PublicKey), method: jwt.SigningMethodES256, signer: ek[0], other: ek[1]},
		{name: "ES256 certificate", alg: AlgES256, pem: certPEM(t, ek[0], &ek[0].PublicKey), method: jwt.SigningMethodES256, signer: ek[0], other: ek[1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(Config{
				Algorithm:    tt.alg,
				PublicKeyPEM: writeFixture(t, "key.pem", tt.pem),
				AccountClaim: DefaultAccountClaim,
				Leeway:       DefaultLeeway,
			})
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			if v.Algorithm() != tt.alg {
				t.Errorf("Algorithm() = %s, want %s", v.Algorithm(), tt.alg)
			}
			for _, c := range []struct {
				name    string
				token   string
				wantErr error
			}{
				{name: "valid", token: sign(t, tt.method, tt.signer, valid(nil))},
				{name: "valid, any kid ignored", token: signKID(t, tt.method, tt.signer, "whatever", valid(nil))},
				{name: "other key", token: sign(t, tt.method, tt.other, valid(nil)), wantErr: ErrTokenSignature},
				{name: "expired", token: sign(t, tt.method, tt.signer, valid(map[string]any{"exp": testNow.Unix()})), wantErr: ErrTokenExpired},
				{name: "no account", token: sign(t, tt.method, tt.signer, valid(map[string]any{"accountId": nil})), wantErr: ErrAccountClaim},
			} {
				got, err := v.Verify(c.token, testNow)
				if !errors.Is(err, c.wantErr) {
					t.Errorf("%s: Verify error = %v, want %v", c.name, err, c.wantErr)
					continue
				}
				if err != nil {
					checkClientSafe(t, err, c.token)
					continue
				}
				if got.AccountID != 42 || !got.ExpiresAt.Equal(testNow.Add(time.Hour)) {
					t.Errorf("%s: Verify = %+v, want account 42 expiring at %v", c.name, got, testNow.Add(time.Hour))
				}
			}
		})
	}
}

// TestAlgorithmConfusion: the header never chooses the algorithm nor the key
// type, in either direction.
func TestAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	rk, ek := testRSAKeys(), testECKeys()
	rsaPEM := pkixPEM(t, &rk[0].PublicKey)
	ecPEM := pkixPEM(t, &ek[0].PublicKey)
	rsaDER, _ := pem.Decode(rsaPEM)
	payload := `{"accountId":42,"exp":1700003600}`

	rs256, err := NewVerifier(Config{Algorithm: AlgRS256, PublicKeyPEM: rsaPEM, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier RS256: %v", err)
	}
	es256, err := NewVerifier(Config{Algorithm: AlgES256, PublicKeyPEM: ecPEM, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier ES256: %v", err)
	}
	// HS256 verifier whose secret happens to be the RSA public key PEM, the
	// classic setup for the confusion attack in reverse.
	hs256PEM, err := NewVerifier(Config{Secret: rsaPEM, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier HS256: %v", err)
	}

	for _, tt := range []struct {
		name    string
		v       *Verifier
		token   string
		wantErr error
	}{
		// HS256 tokens keyed with public key bytes, against RS256 and ES256.
		{name: "RS256 vs HS256 keyed with RSA PEM", v: rs256, token: sign(t, jwt.SigningMethodHS256, rsaPEM, valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256 vs HS256 keyed with RSA DER", v: rs256, token: sign(t, jwt.SigningMethodHS256, rsaDER.Bytes, valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256 vs hand-built HS256 keyed with RSA PEM", v: rs256, token: handBuilt(`{"alg":"HS256","typ":"JWT"}`, payload, rsaPEM), wantErr: ErrTokenAlgorithm},
		{name: "ES256 vs HS256 keyed with EC PEM", v: es256, token: sign(t, jwt.SigningMethodHS256, ecPEM, valid(nil)), wantErr: ErrTokenAlgorithm},
		// The header claims the pinned alg but the signature is an HMAC under
		// the public key: the key is an *rsa.PublicKey, so it is just a bad
		// RSA signature.
		{name: "RS256 header, HMAC with RSA PEM", v: rs256, token: handBuilt(`{"alg":"RS256"}`, payload, rsaPEM), wantErr: ErrTokenSignature},
		{name: "ES256 header, HMAC with EC PEM", v: es256, token: handBuilt(`{"alg":"ES256"}`, payload, ecPEM), wantErr: ErrTokenSignature},
		// Asymmetric families crossed.
		{name: "RS256 vs ES256", v: rs256, token: sign(t, jwt.SigningMethodES256, ek[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "ES256 vs RS256", v: es256, token: sign(t, jwt.SigningMethodRS256, rk[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256 vs PS256", v: rs256, token: sign(t, jwt.SigningMethodPS256, rk[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256 vs RS512", v: rs256, token: sign(t, jwt.SigningMethodRS512, rk[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "ES256 vs ES384", v: es256, token: sign(t, jwt.SigningMethodES384, genEC(1, elliptic.P384())[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256 vs none", v: rs256, token: handBuilt(`{"alg":"none"}`, payload, nil), wantErr: ErrTokenAlgorithm},
		{name: "ES256 vs none", v: es256, token: handBuilt(`{"alg":"none"}`, payload, nil), wantErr: ErrTokenAlgorithm},
		// And the other way: the HS256 verifier refuses RS256 outright.
		{name: "HS256 vs RS256", v: hs256PEM, token: sign(t, jwt.SigningMethodRS256, rk[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "HS256 vs ES256", v: hs256PEM, token: sign(t, jwt.SigningMethodES256, ek[0], valid(nil)), wantErr: ErrTokenAlgorithm},
		// Sanity: the same verifiers accept their own.
		{name: "RS256 ok", v: rs256, token: sign(t, jwt.SigningMethodRS256, rk[0], valid(nil))},
		{name: "ES256 ok", v: es256, token: sign(t, jwt.SigningMethodES256, ek[0], valid(nil))},
		{name: "HS256 ok", v: hs256PEM, token: sign(t, jwt.SigningMethodHS256, rsaPEM, valid(nil))},
	} {
		_, err := tt.v.Verify(tt.token, testNow)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: Verify error = %v, want %v", tt.name, err, tt.wantErr)
		}
		if err != nil {
			checkClientSafe(t, err, tt.token)
		}
	}

	// The key handed to golang-jwt has the pinned type, whatever the token.
	for _, tt := range []struct {
		v    *Verifier
		want string
	}{{rs256, "*rsa.PublicKey"}, {es256, "*ecdsa.PublicKey"}, {hs256PEM, "[]uint8"}} {
		key, err := tt.v.keyFor(t.Context(), &jwt.Token{Method: tt.v.method, Header: map[string]any{}})
		if err != nil {
			t.Fatalf("keyFor %s: %v", tt.v.Algorithm(), err)
		}
		if got := typeName(key); got != tt.want {
			t.Errorf("keyFor %s returned %s, want %s", tt.v.Algorithm(), got, tt.want)
		}
		if _, err := tt.v.keyFor(t.Context(), &jwt.Token{Method: jwt.SigningMethodHS256, Header: map[string]any{}}); tt.v != hs256PEM && err == nil {
			t.Errorf("keyFor %s accepted an HS256 method", tt.v.Algorithm())
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *rsa.PublicKey:
		return "*rsa.PublicKey"
	case *ecdsa.PublicKey:
		return "*ecdsa.PublicKey"
	case []byte:
		return "[]uint8"
	default:
		return "other"
	}
}

func TestNewVerifierKeySources(t *testing.T) {
	t.Parallel()
	rk, ek := testRSAKeys(), testECKeys()
	rsaPEM := pkixPEM(t, &rk[0].PublicKey)
	ecPEM := pkixPEM(t, &ek[0].PublicKey)
	p384PEM := pkixPEM(t, &genEC(1, elliptic.P384())[0].PublicKey)
	rsa1024PEM := pkixPEM(t, &genRSA(1, 1024)[0].PublicKey)
	ecCert := certPEM(t, ek[0], &ek[0].PublicKey)
	privDER, err := x509.MarshalPKCS8PrivateKey(rk[0])
	if err != nil {
		t.Fatalf("marshal private key: %v", err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	rsaPrivPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk[0])})
	twoBlocks := append(append([]byte{}, rsaPEM...), rsaPEM...)
	const jwksURL = "https://issuer.example/.well-known/jwks.json"

	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means success
	}{
		{name: "HS256 default", cfg: Config{Secret: testSecret}},
		{name: "HS256 explicit", cfg: Config{Algorithm: AlgHS256, Secret: testSecret}},
		{name: "HS256 ignores JWKS timings", cfg: Config{Secret: testSecret, JWKSRefresh: time.Minute, JWKSMinRefresh: time.Second}},
		{name: "RS256 PEM", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: rsaPEM}},
		{name: "ES256 PEM", cfg: Config{Algorithm: AlgES256, PublicKeyPEM: ecPEM}},
		{name: "ES256 certificate", cfg: Config{Algorithm: AlgES256, PublicKeyPEM: ecCert}},
		{name: "RS256 JWKS https", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL}},
		{name: "ES256 JWKS https", cfg: Config{Algorithm: AlgES256, JWKSURL: jwksURL}},
		{name: "JWKS http loopback v4", cfg: Config{Algorithm: AlgRS256, JWKSURL: "http://127.0.0.1:8080/jwks"}},
		{name: "JWKS http loopback v6", cfg: Config{Algorithm: AlgRS256, JWKSURL: "http://[::1]:8080/jwks"}},
		{name: "JWKS http localhost", cfg: Config{Algorithm: AlgRS256, JWKSURL: "http://localhost/jwks"}},
		{name: "JWKS min refresh equals refresh", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL, JWKSRefresh: time.Minute, JWKSMinRefresh: time.Minute}},
		{name: "JWKS short refresh caps default min", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL, JWKSRefresh: 10 * time.Second}},

		{name: "unknown algorithm", cfg: Config{Algorithm: "PS256", PublicKeyPEM: rsaPEM}, wantErr: `algorithm "PS256" is not one of HS256, RS256, ES256`},
		{name: "lower-case algorithm", cfg: Config{Algorithm: "rs256", PublicKeyPEM: rsaPEM}, wantErr: "is not one of"},
		{name: "algorithm none", cfg: Config{Algorithm: "none", Secret: testSecret}, wantErr: "is not one of"},
		{name: "HS256 without secret", cfg: Config{}, wantErr: "secret is empty"},
		{name: "HS256 with public key", cfg: Config{Secret: testSecret, PublicKeyPEM: rsaPEM}, wantErr: "HS256 takes a secret only"},
		{name: "HS256 with JWKS", cfg: Config{Secret: testSecret, JWKSURL: jwksURL}, wantErr: "HS256 takes a secret only"},
		{name: "RS256 with secret", cfg: Config{Algorithm: AlgRS256, Secret: testSecret, PublicKeyPEM: rsaPEM}, wantErr: "secret must be empty"},
		{name: "RS256 with nothing", cfg: Config{Algorithm: AlgRS256}, wantErr: "RS256 needs a public key or a JWKS URL"},
		{name: "ES256 with both", cfg: Config{Algorithm: AlgES256, PublicKeyPEM: ecPEM, JWKSURL: jwksURL}, wantErr: "not both"},
		{name: "RS256 with EC key", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: ecPEM}, wantErr: "RS256 needs an RSA key, got an EC key on P-256"},
		{name: "ES256 with RSA key", cfg: Config{Algorithm: AlgES256, PublicKeyPEM: rsaPEM}, wantErr: "ES256 needs an EC P-256 key, got an RSA key"},
		{name: "ES256 with P-384", cfg: Config{Algorithm: AlgES256, PublicKeyPEM: p384PEM}, wantErr: "got curve P-384"},
		{name: "RS256 1024 bits", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: rsa1024PEM}, wantErr: "RSA key has 1024 bits, want 2048 to 8192"},
		{name: "PKCS8 private key", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: privPEM}, wantErr: `"PRIVATE KEY" is a private key`},
		{name: "PKCS1 private key", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: rsaPrivPEM}, wantErr: `"RSA PRIVATE KEY" is a private key`},
		{name: "two PEM blocks", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: twoBlocks}, wantErr: "more than one PEM block"},
		{name: "not PEM", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: []byte("ssh-rsa AAAA")}, wantErr: "no PEM block"},
		{name: "unsupported block", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PUBLIC KEY", Bytes: []byte{1}})}, wantErr: "unsupported PEM block"},
		{name: "corrupt PKIX", cfg: Config{Algorithm: AlgRS256, PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 1, 2}})}, wantErr: `parse "PUBLIC KEY" block`},
		{name: "JWKS plain http", cfg: Config{Algorithm: AlgRS256, JWKSURL: "http://issuer.example/jwks"}, wantErr: `scheme must be https (http only for a loopback host), got "http"`},
		{name: "JWKS ftp", cfg: Config{Algorithm: AlgRS256, JWKSURL: "ftp://issuer.example/jwks"}, wantErr: "scheme must be https"},
		{name: "JWKS relative", cfg: Config{Algorithm: AlgRS256, JWKSURL: "/jwks"}, wantErr: "JWKS URL has no host"},
		{name: "JWKS unparsable", cfg: Config{Algorithm: AlgRS256, JWKSURL: "https://[::1"}, wantErr: "JWKS URL does not parse"},
		{name: "JWKS negative refresh", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL, JWKSRefresh: -time.Second}, wantErr: "negative JWKS refresh"},
		{name: "JWKS negative min refresh", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL, JWKSMinRefresh: -time.Second}, wantErr: "negative JWKS min refresh"},
		{name: "JWKS min refresh above refresh", cfg: Config{Algorithm: AlgRS256, JWKSURL: jwksURL, JWKSRefresh: time.Minute, JWKSMinRefresh: 2 * time.Minute}, wantErr: "JWKS min refresh 2m0s is longer than JWKS refresh 1m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.AccountClaim = DefaultAccountClaim
			v, err := NewVerifier(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier succeeded, want error containing %q", tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.HasPrefix(msg, "auth config: ") {
				t.Errorf("error %q, want it to start with %q and contain %q", msg, "auth config: ", tt.wantErr)
			}
			// Never echo key material or secrets.
			if len(tt.cfg.Secret) > 0 && strings.Contains(msg, string(tt.cfg.Secret)) {
				t.Errorf("error %q contains the secret", msg)
			}
			if blk, _ := pem.Decode(tt.cfg.PublicKeyPEM); blk != nil && len(blk.Bytes) > 8 {
				if body := base64.StdEncoding.EncodeToString(blk.Bytes); strings.Contains(msg, body[:16]) {
					t.Errorf("error %q contains the PEM body", msg)
				}
			}
		})
	}
}

func TestNewVerifierJWKSDefaults(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{Algorithm: AlgRS256, JWKSURL: "https://issuer.example/jwks", AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	c := v.jwks
	if c.refresh != DefaultJWKSRefresh || c.minRefresh != DefaultJWKSMinRefresh || c.timeout != DefaultJWKSTimeout {
		t.Errorf("refresh, min refresh, timeout = %v, %v, %v; want %v, %v, %v",
			c.refresh, c.minRefresh, c.timeout, DefaultJWKSRefresh, DefaultJWKSMinRefresh, DefaultJWKSTimeout)
	}
	if c.client.Timeout != DefaultJWKSTimeout || c.client.CheckRedirect == nil {
		t.Errorf("default client = %+v, want a timeout and a redirect policy", c.client)
	}

	v, err = NewVerifier(Config{Algorithm: AlgRS256, JWKSURL: "https://issuer.example/jwks", JWKSRefresh: 10 * time.Second, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	if v.jwks.minRefresh != 10*time.Second {
		t.Errorf("min refresh = %v with a 10s refresh, want 10s", v.jwks.minRefresh)
	}
}

func BenchmarkVerifyPublicKey(b *testing.B) {
	for _, bb := range []struct {
		alg    string
		method jwt.SigningMethod
		priv   any
		pub    any
	}{
		{AlgRS256, jwt.SigningMethodRS256, testRSAKeys()[0], &testRSAKeys()[0].PublicKey},
		{AlgES256, jwt.SigningMethodES256, testECKeys()[0], &testECKeys()[0].PublicKey},
	} {
		b.Run(bb.alg, func(b *testing.B) {
			v, err := NewVerifier(Config{Algorithm: bb.alg, PublicKeyPEM: pkixPEM(b, bb.pub), AccountClaim: DefaultAccountClaim})
			if err != nil {
				b.Fatal(err)
			}
			tok := sign(b, bb.method, bb.priv, valid(nil))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
