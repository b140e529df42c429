package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to Verify twice: as given (almost always
// rejected at the signature), and re-signed with the test secret so that
// arbitrary headers and claims reach claim validation.
func FuzzVerify(f *testing.F) {
	good := hs256(f, valid(nil))
	goodParts := strings.Split(good, ".")
	for _, seed := range []string{
		good,
		hs256(f, valid(map[string]any{"accountId": "42"})),
		hs256(f, valid(map[string]any{"accountId": 1.5})),
		hs256(f, valid(map[string]any{"accountId": "9223372036854775808"})),
		hs256(f, valid(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})),
		hs256(f, valid(map[string]any{"nbf": testNow.Add(time.Hour).Unix()})),
		hs256(f, valid(map[string]any{"exp": nil})),
		sign(f, jwt.SigningMethodHS512, testSecret, valid(nil)),
		sign(f, jwt.SigningMethodRS256, testRSAKeys()[0], valid(nil)),
		sign(f, jwt.SigningMethodES256, testECKeys()[0], valid(nil)),
		signKID(f, jwt.SigningMethodHS256, testSecret, "k1", valid(nil)),
		signKID(f, jwt.SigningMethodHS256, testSecret, 7, valid(nil)),
		handBuilt(`{"alg":"HS256","kid":"../../etc/passwd"}`, `{"accountId":1,"exp":1700003600}`, testSecret),
		handBuilt(`{"alg":"none"}`, `{"accountId":1,"exp":1700003600}`, nil),
		handBuilt(`{"alg":"HS256"}`, `{"accountId":1,"exp":1e400}`, testSecret),
		handBuilt(`{"alg":"HS256"}`, `{"accountId":1,"exp":-1e400,"nbf":"x"}`, testSecret),
		handBuilt(`{"alg":"HS256"}`, `{"accountId":00,"exp":1700003600}`, testSecret),
		handBuilt(`{"alg":"HS256","crit":["x"],"x":1}`, `{"accountId":1,"exp":1700003600}`, testSecret),
		handBuilt(`{"alg":"HS256","b64":false,"crit":["b64"]}`, `{"accountId":1,"exp":1700003600}`, testSecret),
		handBuilt(`{"alg":"none","alg":"HS256"}`, `{"accountId":1,"exp":1700003600}`, testSecret),
		handBuilt(`{"alg":"HS256"}`, `{"accountId":1,"accountId":2,"exp":1700003600,"o":{"a":[{"a":1}]}}`, testSecret),
		handBuilt(`{"alg":"HS256"}`, `{"accountId":1,"exp":1700003600}{"accountId":2}`, testSecret),
		withS(f, sign(f, jwt.SigningMethodES256, testECKeys()[0], valid(nil)), true),
		goodParts[0] + "." + goodParts[1],  // split: missing signature
		goodParts[0] + ".." + goodParts[2], // split: missing payload
		good[:len(good)/2],                 // truncated mid-payload
		good + "." + goodParts[2],          // extra segment
		strings.Replace(good, goodParts[1][:4], "!!!!", 1),
		"", ".", "..", "...", "a.b.c", "garbage",
	} {
		f.Add(seed)
	}

	v, err := NewVerifier(Config{Secret: testSecret, AccountClaim: DefaultAccountClaim, Leeway: DefaultLeeway})
	if err != nil {
		f.Fatalf("NewVerifier: %v", err)
	}

	f.Fuzz(func(t *testing.T, token string) {
		check := func(tok string) {
			claims, err := v.Verify(tok, testNow)
			if err != nil {
				checkClientSafe(t, err, tok)
				return
			}
			if claims.AccountID <= 0 {
				t.Fatalf("accepted %q with AccountID %d", tok, claims.AccountID)
			}
			if !claims.ExpiresAt.After(testNow) {
				t.Fatalf("accepted %q expiring at %v, not after %v", tok, claims.ExpiresAt, testNow)
			}
		}
		check(token)

		// Re-sign header.payload with the secret, whatever they contain.
		if parts := strings.Split(token, "."); len(parts) == 3 {
			m := hmac.New(sha256.New, testSecret)
			m.Write([]byte(parts[0] + "." + parts[1]))
			check(parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
		}
	})
}
