package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		claim string
		id    int64
		ttl   time.Duration
		now   time.Time
	}{
		{name: "default claim", claim: DefaultAccountClaim, id: 1, ttl: time.Hour, now: testNow},
		{name: "custom claim", claim: "acct", id: 77, ttl: time.Minute, now: testNow},
		{name: "max id", claim: DefaultAccountClaim, id: 1<<63 - 1, ttl: time.Hour, now: testNow},
		{name: "one second ttl, fractional now", claim: DefaultAccountClaim, id: 5, ttl: time.Second, now: testNow.Add(999 * time.Millisecond)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Mint(testSecret, tt.claim, tt.id, tt.ttl, tt.now)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			v := newTestVerifier(t, tt.claim)
			got, err := v.Verify(tok, tt.now)
			if err != nil {
				t.Fatalf("Verify minted token: %v", err)
			}
			if got.AccountID != tt.id {
				t.Errorf("AccountID = %d, want %d", got.AccountID, tt.id)
			}
			if want := tt.now.Add(tt.ttl).Truncate(time.Second); !got.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, want)
			}
			if _, err := v.Verify(tok, tt.now.Add(tt.ttl)); err != ErrTokenExpired { //nolint:errorlint // bare sentinel
				t.Errorf("Verify at now+ttl error = %v, want %v", err, ErrTokenExpired)
			}
		})
	}
}

func TestMintEncoding(t *testing.T) {
	t.Parallel()
	tok, err := Mint(testSecret, DefaultAccountClaim, 42, time.Hour, testNow)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}

	var header map[string]any
	decodeSegment(t, parts[0], &header)
	if header["alg"] != "HS256" {
		t.Errorf("alg = %v, want HS256", header["alg"])
	}

	var payload map[string]json.RawMessage
	decodeSegment(t, parts[1], &payload)
	want := map[string]string{
		"accountId": "42", // a JSON number, not "\"42\""
		"iat":       "1700000000",
		"exp":       "1700003600",
	}
	if len(payload) != len(want) {
		t.Errorf("payload has %d claims, want %d: %s", len(payload), len(want), payload)
	}
	for k, w := range want {
		if got := string(payload[k]); got != w {
			t.Errorf("claim %s = %s, want %s", k, got, w)
		}
	}
}

func decodeSegment(t *testing.T, seg string, dst any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		t.Fatalf("unmarshal segment: %v", err)
	}
}

func TestMintErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		secret []byte
		claim  string
		id     int64
		ttl    time.Duration
	}{
		{name: "empty secret", secret: nil, claim: DefaultAccountClaim, id: 1, ttl: time.Hour},
		{name: "empty claim", secret: testSecret, claim: "", id: 1, ttl: time.Hour},
		{name: "reserved claim", secret: testSecret, claim: "exp", id: 1, ttl: time.Hour},
		{name: "zero id", secret: testSecret, claim: DefaultAccountClaim, id: 0, ttl: time.Hour},
		{name: "negative id", secret: testSecret, claim: DefaultAccountClaim, id: -5, ttl: time.Hour},
		{name: "zero ttl", secret: testSecret, claim: DefaultAccountClaim, id: 1, ttl: 0},
		{name: "sub-second ttl", secret: testSecret, claim: DefaultAccountClaim, id: 1, ttl: 500 * time.Millisecond},
		{name: "negative ttl", secret: testSecret, claim: DefaultAccountClaim, id: 1, ttl: -time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Mint(tt.secret, tt.claim, tt.id, tt.ttl, testNow)
			if err == nil {
				t.Fatalf("Mint = %q, want error", tok)
			}
			if !strings.HasPrefix(err.Error(), "mint token: ") {
				t.Errorf("error %q lacks the operation prefix", err)
			}
			if strings.Contains(err.Error(), string(testSecret)) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}
