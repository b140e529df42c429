package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	testNow    = time.Unix(1_700_000_000, 0).UTC()
)

// sentinels lists every error Verify and TokenFromRequest may return.
var sentinels = []error{
	ErrNoToken, ErrTokenTooLarge, ErrTokenMalformed, ErrTokenAlgorithm,
	ErrTokenSignature, ErrUnknownKey, ErrKeysUnavailable, ErrTokenExpired,
	ErrTokenNotYetValid, ErrAccountClaim, ErrTokenDuplicateHeader,
	ErrTokenDuplicateClaim, ErrTokenCritical, ErrTokenUnencodedPayload,
	ErrTokenSignatureHighS, ErrTokenIssuer, ErrTokenAudience,
}

// sign builds a real token with golang-jwt; ES256 ones get a low S (see
// lowS), as Verify wants.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	if method == jwt.SigningMethodES256 {
		s = withS(t, s, false)
	}
	return s
}

// hs256 signs claims with testSecret.
func hs256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, testSecret, claims)
}

// valid returns claims that pass, with overrides applied; a nil override
// deletes the claim.
func valid(overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"accountId": 42,
		"iat":       testNow.Unix(),
		"exp":       testNow.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// b64 encodes a segment the JWS way.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// handBuilt assembles a token from a raw header and payload, HMAC-signing it
// with key when key is non-nil and leaving the signature empty otherwise.
func handBuilt(header, payload string, key []byte) string {
	unsigned := b64(header) + "." + b64(payload)
	if key == nil {
		return unsigned + "."
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func newTestVerifier(t testing.TB, claim string) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{Secret: testSecret, AccountClaim: claim, Leeway: DefaultLeeway})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate rsa key: %v", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	good := hs256(t, valid(nil))
	goodParts := strings.Split(good, ".")
	tampered := goodParts[0] + "." + b64(`{"accountId":43,"exp":1700003600}`) + "." + goodParts[2]
	validPayload := `{"accountId":42,"exp":1700003600}`

	tests := []struct {
		name    string
		claim   string // verifier's account claim; "" means DefaultAccountClaim
		token   string
		wantID  int64
		wantErr error
	}{
		// Accepted.
		{name: "number claim", token: good, wantID: 42},
		{name: "string claim", token: hs256(t, valid(map[string]any{"accountId": "42"})), wantID: 42},
		{name: "custom claim name", claim: "acct", token: hs256(t, valid(map[string]any{"accountId": nil, "acct": 7})), wantID: 7},
		{name: "sub as claim", claim: "sub", token: hs256(t, valid(map[string]any{"sub": "9"})), wantID: 9},
		{name: "max int64", token: hs256(t, valid(map[string]any{"accountId": json.Number("9223372036854775807")})), wantID: 1<<63 - 1},
		{name: "max int64 string", token: hs256(t, valid(map[string]any{"accountId": "9223372036854775807"})), wantID: 1<<63 - 1},
		{name: "no iat", token: hs256(t, valid(map[string]any{"iat": nil})), wantID: 42},
		{name: "nbf within leeway", token: hs256(t, valid(map[string]any{"nbf": testNow.Add(4 * time.Second).Unix()})), wantID: 42},
		{name: "iat within leeway", token: hs256(t, valid(map[string]any{"iat": testNow.Add(4 * time.Second).Unix()})), wantID: 42},
		{name: "exp one second ahead", token: hs256(t, valid(map[string]any{"exp": testNow.Add(time.Second).Unix()})), wantID: 42},
		{name: "hand built HS256", token: handBuilt(`{"alg":"HS256"}`, validPayload, testSecret), wantID: 42},

		// Time claims.
		{name: "expired", token: hs256(t, valid(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), wantErr: ErrTokenExpired},
		{name: "expired within leeway", token: hs256(t, valid(map[string]any{"exp": testNow.Add(-time.Second).Unix()})), wantErr: ErrTokenExpired},
		{name: "exp equals now", token: hs256(t, valid(map[string]any{"exp": testNow.Unix()})), wantErr: ErrTokenExpired},
		{name: "missing exp", token: hs256(t, valid(map[string]any{"exp": nil})), wantErr: ErrTokenMalformed},
		{name: "exp not a number", token: hs256(t, valid(map[string]any{"exp": "tomorrow"})), wantErr: ErrTokenMalformed},
		{name: "nbf in future", token: hs256(t, valid(map[string]any{"nbf": testNow.Add(time.Minute).Unix()})), wantErr: ErrTokenNotYetValid},
		{name: "iat in future", token: hs256(t, valid(map[string]any{"iat": testNow.Add(time.Minute).Unix()})), wantErr: ErrTokenNotYetValid},

		// Algorithm pinning.
		{name: "alg none", token: handBuilt(`{"alg":"none","typ":"JWT"}`, validPayload, nil), wantErr: ErrTokenAlgorithm},
		{name: "alg none via golang-jwt", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "alg missing", token: handBuilt(`{"typ":"JWT"}`, validPayload, testSecret), wantErr: ErrTokenAlgorithm},
		{name: "alg lower case", token: handBuilt(`{"alg":"hs256"}`, validPayload, testSecret), wantErr: ErrTokenAlgorithm},
		{name: "alg unknown", token: handBuilt(`{"alg":"XX999"}`, validPayload, testSecret), wantErr: ErrTokenAlgorithm},
		{name: "alg not a string", token: handBuilt(`{"alg":256}`, validPayload, testSecret), wantErr: ErrTokenAlgorithm},
		{name: "HS384", token: sign(t, jwt.SigningMethodHS384, testSecret, valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "HS512", token: sign(t, jwt.SigningMethodHS512, testSecret, valid(nil)), wantErr: ErrTokenAlgorithm},
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, rsaKey, valid(nil)), wantErr: ErrTokenAlgorithm},
		// alg says RS256 but the signature is HMAC-SHA256 under our own secret:
		// still refused, the header never picks the algorithm.
		{name: "RS256 header with HMAC signature", token: handBuilt(`{"alg":"RS256"}`, validPayload, testSecret), wantErr: ErrTokenAlgorithm},

		// Signature.
		{name: "HS256 keyed with RSA public key", token: sign(t, jwt.SigningMethodHS256, pubPEM, valid(nil)), wantErr: ErrTokenSignature},
		{name: "wrong secret", token: sign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes......"), valid(nil)), wantErr: ErrTokenSignature},
		{name: "tampered payload", token: tampered, wantErr: ErrTokenSignature},
		{name: "empty signature", token: goodParts[0] + "." + goodParts[1] + ".", wantErr: ErrTokenSignature},
		{name: "truncated signature", token: good[:len(good)-4], wantErr: ErrTokenSignature},

		// Shape.
		{name: "empty", token: "", wantErr: ErrNoToken},
		{name: "garbage", token: "not a token", wantErr: ErrTokenMalformed},
		{name: "one segment", token: "abc", wantErr: ErrTokenMalformed},
		{name: "two segments", token: goodParts[0] + "." + goodParts[1], wantErr: ErrTokenMalformed},
		{name: "four segments", token: good + ".abc", wantErr: ErrTokenMalformed},
		{name: "only dots", token: "..", wantErr: ErrTokenMalformed},
		{name: "bad base64 alphabet", token: "ab+c.de/f.gh=", wantErr: ErrTokenMalformed},
		{name: "bad base64 length", token: "a.b.c", wantErr: ErrTokenMalformed},
		{name: "header not JSON", token: b64("hello") + "." + goodParts[1] + "." + goodParts[2], wantErr: ErrTokenMalformed},
		{name: "header JSON array", token: b64("[]") + "." + goodParts[1] + "." + goodParts[2], wantErr: ErrTokenMalformed},
		{name: "payload not JSON", token: handBuilt(`{"alg":"HS256"}`, "hello", testSecret), wantErr: ErrTokenMalformed},
		{name: "payload JSON array", token: handBuilt(`{"alg":"HS256"}`, "[1]", testSecret), wantErr: ErrTokenMalformed},
		{name: "bearer prefix left in", token: "Bearer " + good, wantErr: ErrTokenMalformed},
		{name: "too large junk", token: strings.Repeat("a", DefaultMaxTokenBytes+1), wantErr: ErrTokenTooLarge},
		{name: "too large signed", token: hs256(t, valid(map[string]any{"pad": strings.Repeat("x", DefaultMaxTokenBytes)})), wantErr: ErrTokenTooLarge},

		// Account claim.
		{name: "account missing", token: hs256(t, valid(map[string]any{"accountId": nil})), wantErr: ErrAccountClaim},
		{name: "account under other name", claim: "acct", token: good, wantErr: ErrAccountClaim},
		{name: "account zero", token: hs256(t, valid(map[string]any{"accountId": 0})), wantErr: ErrAccountClaim},
		{name: "account zero string", token: hs256(t, valid(map[string]any{"accountId": "0"})), wantErr: ErrAccountClaim},
		{name: "account negative", token: hs256(t, valid(map[string]any{"accountId": -1})), wantErr: ErrAccountClaim},
		{name: "account negative string", token: hs256(t, valid(map[string]any{"accountId": "-1"})), wantErr: ErrAccountClaim},
		{name: "account float", token: hs256(t, valid(map[string]any{"accountId": 1.5})), wantErr: ErrAccountClaim},
		{name: "account float integral", token: hs256(t, valid(map[string]any{"accountId": json.Number("1.0")})), wantErr: ErrAccountClaim},
		{name: "account exponent", token: hs256(t, valid(map[string]any{"accountId": json.Number("1e3")})), wantErr: ErrAccountClaim},
		{name: "account abc", token: hs256(t, valid(map[string]any{"accountId": "abc"})), wantErr: ErrAccountClaim},
		{name: "account empty string", token: hs256(t, valid(map[string]any{"accountId": ""})), wantErr: ErrAccountClaim},
		{name: "account plus sign", token: hs256(t, valid(map[string]any{"accountId": "+1"})), wantErr: ErrAccountClaim},
		{name: "account leading zero", token: hs256(t, valid(map[string]any{"accountId": "01"})), wantErr: ErrAccountClaim},
		{name: "account spaces", token: hs256(t, valid(map[string]any{"accountId": " 1"})), wantErr: ErrAccountClaim},
		{name: "account overflow", token: hs256(t, valid(map[string]any{"accountId": json.Number("9223372036854775808")})), wantErr: ErrAccountClaim},
		{name: "account overflow string", token: hs256(t, valid(map[string]any{"accountId": "9223372036854775808"})), wantErr: ErrAccountClaim},
		{name: "account bool", token: hs256(t, valid(map[string]any{"accountId": true})), wantErr: ErrAccountClaim},
		{name: "account null", token: handBuilt(`{"alg":"HS256"}`, `{"accountId":null,"exp":1700003600}`, testSecret), wantErr: ErrAccountClaim},
		{name: "account object", token: hs256(t, valid(map[string]any{"accountId": map[string]any{"id": 1}})), wantErr: ErrAccountClaim},
		{name: "account array", token: hs256(t, valid(map[string]any{"accountId": []int{1}})), wantErr: ErrAccountClaim},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			claim := tt.claim
			if claim == "" {
				claim = DefaultAccountClaim
			}
			v := newTestVerifier(t, claim)

			got, err := v.Verify(tt.token, testNow)

			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				checkClientSafe(t, err, tt.token)
				if got != (Claims{}) {
					t.Errorf("Verify claims = %+v on error, want zero", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify error = %v, want nil", err)
			}
			if got.AccountID != tt.wantID {
				t.Errorf("AccountID = %d, want %d", got.AccountID, tt.wantID)
			}
			if got.ExpiresAt.IsZero() || !got.ExpiresAt.After(testNow) || got.ExpiresAt.Location() != time.UTC {
				t.Errorf("ExpiresAt = %v, want a UTC time after %v", got.ExpiresAt, testNow)
			}
		})
	}
}

// checkClientSafe asserts err is a bare sentinel that does not echo token.
func checkClientSafe(t testing.TB, err error, token string) {
	t.Helper()
	found := false
	for _, s := range sentinels {
		if err == s { //nolint:errorlint // bare sentinels are the contract
			found = true
		}
	}
	if !found {
		t.Errorf("error %q is not a bare sentinel", err)
	}
	if len(token) > 3 && strings.Contains(err.Error(), token) {
		t.Errorf("error %q contains the token", err)
	}
}

func TestVerifyExpiresAt(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, DefaultAccountClaim)
	exp := testNow.Add(90 * time.Second)

	got, err := v.Verify(hs256(t, valid(map[string]any{"exp": exp.Unix()})), testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !got.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, exp)
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	tok := hs256(t, valid(map[string]any{
		"nbf": testNow.Add(3 * time.Second).Unix(),
		"exp": testNow.Add(-time.Second).Unix(), // expired by one second
	}))
	notYet := hs256(t, valid(map[string]any{"nbf": testNow.Add(3 * time.Second).Unix()}))

	for _, leeway := range []time.Duration{0, time.Second, DefaultLeeway, time.Hour} {
		v, err := NewVerifier(Config{Secret: testSecret, AccountClaim: DefaultAccountClaim, Leeway: leeway})
		if err != nil {
			t.Fatalf("NewVerifier: %v", err)
		}
		// exp is strict whatever the leeway.
		if _, err := v.Verify(tok, testNow); !errors.Is(err, ErrTokenExpired) {
			t.Errorf("leeway %v: expired token error = %v, want %v", leeway, err, ErrTokenExpired)
		}
		// nbf 3s ahead passes only with at least 3s of leeway.
		_, err = v.Verify(notYet, testNow)
		if leeway >= 3*time.Second && err != nil {
			t.Errorf("leeway %v: nbf +3s error = %v, want nil", leeway, err)
		}
		if leeway < 3*time.Second && !errors.Is(err, ErrTokenNotYetValid) {
			t.Errorf("leeway %v: nbf +3s error = %v, want %v", leeway, err, ErrTokenNotYetValid)
		}
	}
}

// TestDefaultLeeway pins what docs/security.md states: 5 s are forgiven on nbf
// and iat, none on exp.
func TestDefaultLeeway(t *testing.T) {
	t.Parallel()
	if DefaultLeeway != 5*time.Second {
		t.Fatalf("DefaultLeeway = %v, docs/security.md says 5 s", DefaultLeeway)
	}
	v := newTestVerifier(t, DefaultAccountClaim) // Leeway: DefaultLeeway
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	for _, tc := range []struct {
		name    string
		claims  map[string]any
		wantErr error
	}{
		{"nbf 5s ahead", map[string]any{"nbf": at(5 * time.Second)}, nil},
		{"nbf 6s ahead", map[string]any{"nbf": at(6 * time.Second)}, ErrTokenNotYetValid},
		{"iat 5s ahead", map[string]any{"iat": at(5 * time.Second)}, nil},
		{"iat 6s ahead", map[string]any{"iat": at(6 * time.Second)}, ErrTokenNotYetValid},
		{"exp 1s ahead", map[string]any{"exp": at(time.Second)}, nil},
		{"exp now", map[string]any{"exp": at(0)}, ErrTokenExpired},
		{"exp 1s ago", map[string]any{"exp": at(-time.Second)}, ErrTokenExpired},
		{"exp 5s ago", map[string]any{"exp": at(-5 * time.Second)}, ErrTokenExpired},
	} {
		if _, err := v.Verify(hs256(t, valid(tc.claims)), testNow); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: Verify error = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestVerifyMaxTokenBytes(t *testing.T) {
	t.Parallel()
	tok := hs256(t, valid(nil))

	for _, tt := range []struct {
		max     int
		wantErr error
	}{
		{max: len(tok), wantErr: nil},
		{max: len(tok) - 1, wantErr: ErrTokenTooLarge},
		{max: 0, wantErr: nil}, // default 8 KiB
	} {
		v, err := NewVerifier(Config{Secret: testSecret, AccountClaim: DefaultAccountClaim, MaxTokenBytes: tt.max})
		if err != nil {
			t.Fatalf("NewVerifier: %v", err)
		}
		if _, err := v.Verify(tok, testNow); !errors.Is(err, tt.wantErr) {
			t.Errorf("max %d: Verify error = %v, want %v", tt.max, err, tt.wantErr)
		}
	}
}

func TestVerifyZeroNowUsesClock(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, DefaultAccountClaim)
	// Valid at testNow (2023) but long expired by the wall clock.
	if _, err := v.Verify(hs256(t, valid(nil)), time.Time{}); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("Verify with zero now error = %v, want %v", err, ErrTokenExpired)
	}
}

func TestNewVerifier(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "ok", cfg: Config{Secret: testSecret, AccountClaim: "accountId"}},
		{name: "one byte secret", cfg: Config{Secret: []byte("x"), AccountClaim: "accountId"}},
		{name: "nil secret", cfg: Config{AccountClaim: "accountId"}, wantErr: true},
		{name: "empty secret", cfg: Config{Secret: []byte{}, AccountClaim: "accountId"}, wantErr: true},
		{name: "empty claim", cfg: Config{Secret: testSecret}, wantErr: true},
		{name: "claim exp", cfg: Config{Secret: testSecret, AccountClaim: "exp"}, wantErr: true},
		{name: "claim nbf", cfg: Config{Secret: testSecret, AccountClaim: "nbf"}, wantErr: true},
		{name: "claim iat", cfg: Config{Secret: testSecret, AccountClaim: "iat"}, wantErr: true},
		{name: "negative leeway", cfg: Config{Secret: testSecret, AccountClaim: "accountId", Leeway: -time.Second}, wantErr: true},
		{name: "negative max bytes", cfg: Config{Secret: testSecret, AccountClaim: "accountId", MaxTokenBytes: -1}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewVerifier succeeded, want error")
				}
				if len(tt.cfg.Secret) > 0 && strings.Contains(err.Error(), string(tt.cfg.Secret)) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil || v == nil {
				t.Fatalf("NewVerifier = %v, %v; want a verifier", v, err)
			}
		})
	}
}

func TestNewVerifierCopiesSecret(t *testing.T) {
	t.Parallel()
	secret := append([]byte(nil), testSecret...)
	v, err := NewVerifier(Config{Secret: secret, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	secret[0] ^= 0xff
	if _, err := v.Verify(hs256(t, valid(nil)), testNow); err != nil {
		t.Errorf("Verify after caller mutated its secret: %v", err)
	}
}

// TestIssuerAudience: with Issuer and Audience set, a token of another issuer or
// audience (or with none) is refused; without them, neither is looked at.
func TestIssuerAudience(t *testing.T) {
	t.Parallel()
	strict, err := NewVerifier(Config{Secret: testSecret, AccountClaim: DefaultAccountClaim, Issuer: "https://id.example", Audience: "notifier"})
	if err != nil {
		t.Fatal(err)
	}
	lax, err := NewVerifier(Config{Secret: testSecret, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   error
	}{
		{"both right", map[string]any{"iss": "https://id.example", "aud": "notifier"}, nil},
		{"aud among several", map[string]any{"iss": "https://id.example", "aud": []any{"billing", "notifier"}}, nil},
		{"other issuer", map[string]any{"iss": "https://evil.example", "aud": "notifier"}, ErrTokenIssuer},
		{"no issuer", map[string]any{"aud": "notifier"}, ErrTokenIssuer},
		{"other audience", map[string]any{"iss": "https://id.example", "aud": "billing"}, ErrTokenAudience},
		{"no audience", map[string]any{"iss": "https://id.example"}, ErrTokenAudience},
	} {
		tok := hs256(t, valid(tc.claims))
		if _, err := strict.Verify(tok, testNow); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
		if _, err := lax.Verify(tok, testNow); err != nil {
			t.Errorf("%s: without Issuer and Audience, Verify = %v", tc.name, err)
		}
	}
}
