package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// handSigned assembles b64(header).payloadSeg and signs it by hand with key:
// HMAC-SHA256 for []byte, RSASSA-PKCS1-v1_5 SHA-256 for an RSA key, ECDSA
// P-256 R || S with a low S for an EC key. payloadSeg goes on the wire as
// given, so that a test can put anything there.
func handSigned(t testing.TB, key any, header, payloadSeg string) string {
	t.Helper()
	unsigned := b64(header) + "." + payloadSeg
	digest := sha256.Sum256([]byte(unsigned))
	var sig []byte
	switch k := key.(type) {
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(unsigned))
		sig = m.Sum(nil)
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatalf("sign RS256: %v", err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatalf("sign ES256: %v", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return withS(t, unsigned+"."+b64u(sig), false)
	default:
		t.Fatalf("handSigned: key %T", key)
	}
	return unsigned + "." + b64u(sig)
}

// withS returns token with the S of its ES256 signature in the high form
// (above (n-1)/2) or the low one: n-S if it is not so already. Both verify.
func withS(t testing.TB, token string, high bool) string {
	t.Helper()
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature of %d bytes: %v", len(sig), err)
	}
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	s := new(big.Int).SetBytes(sig[32:])
	if (s.Cmp(half) > 0) != high {
		s.Sub(n, s)
	}
	s.FillBytes(sig[32:])
	return token[:i+1] + b64u(sig)
}

// jwsVerifiers returns a verifier and its signing key for each algorithm.
func jwsVerifiers(t *testing.T) map[string]struct {
	v   *Verifier
	key any
} {
	t.Helper()
	rk, ek := testRSAKeys()[0], testECKeys()[0]
	out := map[string]struct {
		v   *Verifier
		key any
	}{}
	for alg, c := range map[string]struct {
		cfg Config
		key any
	}{
		AlgHS256: {Config{Secret: testSecret}, testSecret},
		AlgRS256: {Config{Algorithm: AlgRS256, PublicKeyPEM: pkixPEM(t, &rk.PublicKey)}, rk},
		AlgES256: {Config{Algorithm: AlgES256, PublicKeyPEM: pkixPEM(t, &ek.PublicKey)}, ek},
	} {
		c.cfg.AccountClaim, c.cfg.Leeway = DefaultAccountClaim, DefaultLeeway
		v, err := NewVerifier(c.cfg)
		if err != nil {
			t.Fatalf("NewVerifier %s: %v", alg, err)
		}
		out[alg] = struct {
			v   *Verifier
			key any
		}{v, c.key}
	}
	return out
}

// validClaims is accepted at testNow: exp is an hour later.
const validClaims = `{"accountId":42,"exp":1700003600}`

// TestVerifyHeaderRules: crit, b64 and duplicate names in the JOSE header, in
// tokens built by hand and correctly signed, for each algorithm. "ALG" stands
// for the verifier's algorithm.
func TestVerifyHeaderRules(t *testing.T) {
	t.Parallel()
	verifiers := jwsVerifiers(t)
	for _, tc := range []struct {
		name, header string
		payloadSeg   string // b64(validClaims) when empty
		wantErr      error
	}{
		{name: "plain", header: `{"alg":"ALG","typ":"JWT"}`},
		{name: "b64 true", header: `{"alg":"ALG","b64":true}`},
		{name: "names are case-sensitive", header: `{"alg":"ALG","Crit":["x"],"B64":false,"x":1}`},
		{name: "same names at other depths", header: `{"alg":"ALG","x":{"alg":"none","crit":[]},"y":[{"kid":1},{"kid":2}]}`},
		{name: "white space after", header: `{"alg":"ALG"}` + " \n"},

		{name: "crit unknown extension", header: `{"alg":"ALG","crit":["x"],"x":1}`, wantErr: ErrTokenCritical},
		{name: "crit registered name", header: `{"alg":"ALG","crit":["kid"],"kid":"k"}`, wantErr: ErrTokenCritical},
		{name: "crit empty", header: `{"alg":"ALG","crit":[]}`, wantErr: ErrTokenCritical},
		{name: "crit not an array", header: `{"alg":"ALG","crit":"x","x":1}`, wantErr: ErrTokenCritical},
		{name: "crit object", header: `{"alg":"ALG","crit":{"x":1},"x":1}`, wantErr: ErrTokenCritical},
		{name: "crit absent parameter", header: `{"alg":"ALG","crit":["x"]}`, wantErr: ErrTokenCritical},
		{name: "crit null", header: `{"alg":"ALG","crit":null}`, wantErr: ErrTokenCritical},

		{name: "b64 false", header: `{"alg":"ALG","b64":false}`, wantErr: ErrTokenUnencodedPayload},
		{name: "b64 false in crit", header: `{"alg":"ALG","b64":false,"crit":["b64"]}`, wantErr: ErrTokenUnencodedPayload},
		// RFC 7797 section 5: the payload goes as it is, here not even base64.
		{name: "b64 false, unencoded payload", header: `{"alg":"ALG","b64":false,"crit":["b64"]}`, payloadSeg: "hello", wantErr: ErrTokenUnencodedPayload},
		{name: "b64 string", header: `{"alg":"ALG","b64":"false"}`, wantErr: ErrTokenMalformed},
		{name: "b64 number", header: `{"alg":"ALG","b64":0}`, wantErr: ErrTokenMalformed},

		{name: "alg twice", header: `{"alg":"ALG","alg":"ALG"}`, wantErr: ErrTokenDuplicateHeader},
		{name: "alg none then pinned", header: `{"alg":"none","alg":"ALG"}`, wantErr: ErrTokenDuplicateHeader},
		{name: "kid twice", header: `{"alg":"ALG","kid":"a","kid":"b"}`, wantErr: ErrTokenDuplicateHeader},
		{name: "escaped duplicate", header: `{"alg":"ALG","\u0061lg":"ALG"}`, wantErr: ErrTokenDuplicateHeader},
		{name: "nested duplicate", header: `{"alg":"ALG","jwk":{"kty":"EC","kty":"RSA"}}`, wantErr: ErrTokenDuplicateHeader},
		{name: "duplicate in array element", header: `{"alg":"ALG","x":[1,{"a":1,"a":1}]}`, wantErr: ErrTokenDuplicateHeader},
		{name: "duplicate before crit", header: `{"alg":"ALG","crit":["x"],"x":1,"x":2}`, wantErr: ErrTokenDuplicateHeader},

		{name: "second object after", header: `{"alg":"ALG"}{}`, wantErr: ErrTokenMalformed},
		{name: "garbage after", header: `{"alg":"ALG"}x`, wantErr: ErrTokenMalformed},
	} {
		for alg, c := range verifiers {
			payloadSeg := tc.payloadSeg
			if payloadSeg == "" {
				payloadSeg = b64(validClaims)
			}
			token := handSigned(t, c.key, strings.ReplaceAll(tc.header, "ALG", alg), payloadSeg)
			got, err := c.v.Verify(token, testNow)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s %s: Verify error = %v, want %v", alg, tc.name, err, tc.wantErr)
				continue
			}
			if err != nil {
				checkClientSafe(t, err, token)
			} else if got.AccountID != 42 {
				t.Errorf("%s %s: AccountID = %d, want 42", alg, tc.name, got.AccountID)
			}
		}
	}
}

// TestVerifyClaimsRules: duplicate names in the claims, and anything after
// them, in tokens built by hand and correctly signed, for each algorithm.
func TestVerifyClaimsRules(t *testing.T) {
	t.Parallel()
	verifiers := jwsVerifiers(t)
	for _, tc := range []struct {
		name, payload string
		wantErr       error
	}{
		{name: "plain", payload: validClaims},
		{name: "white space around", payload: " \t" + validClaims + " \r\n"},
		{name: "same names at other depths", payload: `{"accountId":42,"exp":1700003600,"l":[{"a":1},{"a":2}],"o":{"exp":0,"accountId":1}}`},
		{name: "huge number elsewhere", payload: `{"accountId":42,"exp":1700003600,"n":1e400}`},

		{name: "account twice", payload: `{"accountId":42,"accountId":43,"exp":1700003600}`, wantErr: ErrTokenDuplicateClaim},
		{name: "expired exp then valid exp", payload: `{"accountId":42,"exp":1699999999,"exp":1700003600}`, wantErr: ErrTokenDuplicateClaim},
		{name: "escaped duplicate", payload: `{"accountId":42,"exp":1700003600,"\u0065xp":1700003600}`, wantErr: ErrTokenDuplicateClaim},
		{name: "nested duplicate", payload: `{"accountId":42,"exp":1700003600,"ctx":{"role":"a","role":"b"}}`, wantErr: ErrTokenDuplicateClaim},
		{name: "duplicate in array element", payload: `{"accountId":42,"exp":1700003600,"l":[[{"a":1,"a":2}]]}`, wantErr: ErrTokenDuplicateClaim},

		{name: "garbage after", payload: validClaims + "garbage", wantErr: ErrTokenMalformed},
		{name: "empty object after", payload: validClaims + "{}", wantErr: ErrTokenMalformed},
		{name: "second claims after", payload: validClaims + `{"accountId":43}`, wantErr: ErrTokenMalformed},
		{name: "empty objects", payload: `{}{}`, wantErr: ErrTokenMalformed},
		{name: "bracket after", payload: validClaims + "]", wantErr: ErrTokenMalformed},
		{name: "string after", payload: validClaims + `"x"`, wantErr: ErrTokenMalformed},
		{name: "NUL after", payload: validClaims + "\x00", wantErr: ErrTokenMalformed},
	} {
		for alg, c := range verifiers {
			token := handSigned(t, c.key, `{"alg":"`+alg+`"}`, b64(tc.payload))
			got, err := c.v.Verify(token, testNow)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s %s: Verify error = %v, want %v", alg, tc.name, err, tc.wantErr)
				continue
			}
			if err != nil {
				checkClientSafe(t, err, token)
			} else if got.AccountID != 42 {
				t.Errorf("%s %s: AccountID = %d, want 42", alg, tc.name, got.AccountID)
			}
		}
	}
}

// TestVerifyHighS: with RequireLowS, of the two valid ES256 signatures (R, S) and
// (R, n-S), only the low one is accepted, whoever built it; without it (the default),
// both are, as common signers emit either.
func TestVerifyHighS(t *testing.T) {
	t.Parallel()
	c := jwsVerifiers(t)[AlgES256]
	lenient := c.v
	strict, err := NewVerifier(Config{Algorithm: AlgES256, PublicKeyPEM: pkixPEM(t, &c.key.(*ecdsa.PrivateKey).PublicKey),
		AccountClaim: DefaultAccountClaim, Leeway: DefaultLeeway, RequireLowS: true})
	if err != nil {
		t.Fatal(err)
	}
	c.v = strict
	low := handSigned(t, c.key, `{"alg":"ES256"}`, b64(validClaims))
	byLib := sign(t, jwt.SigningMethodES256, c.key, valid(nil))
	for _, tc := range []struct {
		name    string
		token   string
		wantErr error
	}{
		{name: "low S", token: low},
		{name: "high S", token: withS(t, low, true), wantErr: ErrTokenSignatureHighS},
		{name: "golang-jwt, low S", token: withS(t, byLib, false)},
		{name: "golang-jwt, high S", token: withS(t, byLib, true), wantErr: ErrTokenSignatureHighS},
		// A high S that does not verify is just a bad signature.
		{name: "high S, other payload", token: b64(`{"alg":"ES256"}`) + "." + b64(`{"accountId":43,"exp":1700003600}`) + withS(t, low, true)[strings.LastIndexByte(low, '.'):], wantErr: ErrTokenSignature},
	} {
		_, err := c.v.Verify(tc.token, testNow)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: Verify error = %v, want %v", tc.name, err, tc.wantErr)
		}
		if err != nil {
			checkClientSafe(t, err, tc.token)
		}
		if tc.wantErr == ErrTokenSignatureHighS {
			if _, err := lenient.Verify(tc.token, testNow); err != nil {
				t.Errorf("%s: refused by default: %v", tc.name, err)
			}
		}
	}
}

// TestHighS pins the bound: S is high above (n-1)/2, n being odd.
func TestHighS(t *testing.T) {
	t.Parallel()
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	sig := func(s *big.Int) []byte {
		b := make([]byte, 64)
		b[0] = 1 // R
		s.FillBytes(b[32:])
		return b
	}
	one := big.NewInt(1)
	for _, tc := range []struct {
		name string
		sig  []byte
		want bool
	}{
		{"1", sig(one), false},
		{"(n-1)/2", sig(half), false},
		{"(n+1)/2", sig(new(big.Int).Add(half, one)), true},
		{"n-1", sig(new(big.Int).Sub(n, one)), true},
		{"63 bytes", sig(new(big.Int).Sub(n, one))[1:], false},
		{"65 bytes", append(sig(new(big.Int).Sub(n, one)), 0), false},
	} {
		if got := highS(tc.sig); got != tc.want {
			t.Errorf("highS(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCheckObject exercises the streaming check on its own.
func TestCheckObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{}`, nil},
		{` {"a":1} `, nil},
		{`{"a":{"a":{"a":[{"a":1},{"a":2}]}},"b":[[],{}],"c":"a"}`, nil},
		{`{"a":"b","b":"a"}`, nil}, // a value equal to a later name is no name
		{`{"a":[{"b":1}],"b":2}`, nil},
		{`{"a":1,"a":1}`, errDuplicateName},
		{`{"a":{"b":1,"c":{},"b":2}}`, errDuplicateName},
		{`{"a":[1,[2,{"x":1,"x":1}]]}`, errDuplicateName},
		{`{"\u00e9":1,"é":2}`, errDuplicateName},
		{``, errNotOneObject},
		{` `, errNotOneObject},
		{`[]`, errNotOneObject},
		{`null`, errNotOneObject},
		{`"{}"`, errNotOneObject},
		{`{`, errNotOneObject},
		{`{"a":1`, errNotOneObject},
		{`{"a":1,}`, errNotOneObject},
		{`{}{}`, errNotOneObject},
		{`{} {}`, errNotOneObject},
		{`{}x`, errNotOneObject},
		{`{}]`, errNotOneObject},
		{`{}1`, errNotOneObject},
	} {
		if got := checkObject([]byte(tc.in)); !errors.Is(got, tc.want) {
			t.Errorf("checkObject(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
