package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultAccountClaim is the claim that holds the account id unless configured
// otherwise.
const DefaultAccountClaim = "accountId"

// DefaultLeeway is the clock skew forgiven on nbf and iat by default.
const DefaultLeeway = 5 * time.Second

// DefaultMaxTokenBytes is the token size limit applied when
// Config.MaxTokenBytes is zero.
const DefaultMaxTokenBytes = 8 << 10

// Config configures a Verifier. The config package fills it from the auth.*
// keys; zero values are documented per field.
type Config struct {
	// Secret is the HS256 shared secret. It must not be empty; use at least
	// 32 random bytes (RFC 7518 section 3.2 asks for a key as long as the hash).
	Secret []byte

	// AccountClaim names the claim holding the account id, usually
	// DefaultAccountClaim. It must not be empty, exp, nbf or iat.
	AccountClaim string

	// Leeway is the clock skew forgiven when nbf or iat lies in the future.
	// It does not apply to exp, which is strict. Zero means no leeway; the
	// config package's default is DefaultLeeway. Negative is an error.
	Leeway time.Duration

	// MaxTokenBytes bounds the token length checked before any decoding.
	// Zero means DefaultMaxTokenBytes; negative is an error.
	MaxTokenBytes int
}

// Claims is what a verified token grants.
type Claims struct {
	// AccountID is the account whose events the bearer may receive; always > 0.
	AccountID int64

	// ExpiresAt is the token's exp, in UTC, with whole-second precision. A
	// connection should be closed once it passes.
	ExpiresAt time.Time
}

// Verifier checks tokens against one pinned algorithm and key. It is immutable
// and safe for concurrent use.
type Verifier struct {
	// method and key are kept generic so that RS256/ES256 with a public key
	// can be added by choosing them from configuration in NewVerifier.
	method  jwt.SigningMethod
	key     any
	algs    []string // {method.Alg()}; read-only, shared by all parsers
	claim   string
	leeway  time.Duration
	maxSize int
}

// NewVerifier validates cfg and returns a Verifier for HS256 tokens signed with
// cfg.Secret. The secret is copied, so later changes to cfg do not affect it.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("auth config: secret is empty")
	}
	if err := checkClaimName(cfg.AccountClaim); err != nil {
		return nil, fmt.Errorf("auth config: %w", err)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth config: negative leeway %v", cfg.Leeway)
	}
	maxSize := cfg.MaxTokenBytes
	switch {
	case maxSize < 0:
		return nil, fmt.Errorf("auth config: negative max token bytes %d", maxSize)
	case maxSize == 0:
		maxSize = DefaultMaxTokenBytes
	}
	method := jwt.SigningMethodHS256
	return &Verifier{
		method:  method,
		key:     append([]byte(nil), cfg.Secret...),
		algs:    []string{method.Alg()},
		claim:   cfg.AccountClaim,
		leeway:  cfg.Leeway,
		maxSize: maxSize,
	}, nil
}

// checkClaimName rejects account claim names that cannot work: empty, or a
// time claim that Mint sets and Verify reads with a meaning of its own.
func checkClaimName(name string) error {
	switch name {
	case "":
		return errors.New("account claim name is empty")
	case "exp", "nbf", "iat":
		return fmt.Errorf("account claim name %q is a registered time claim", name)
	}
	return nil
}

// Verify checks token's size, shape, algorithm, signature, exp (required,
// strict), nbf and iat (if present, with leeway) as of now, then extracts the
// account claim. A zero now means time.Now(). The returned error is always one
// of the package's sentinels, unwrapped (see ErrTokenMalformed and friends).
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if err := v.precheck(token); err != nil {
		return Claims{}, err
	}
	if now.IsZero() {
		now = time.Now()
	}

	// golang-jwt applies one leeway to exp, nbf and iat alike. We give it our
	// leeway so that nbf and iat are forgiven, then re-check exp strictly below.
	p := jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithJSONNumber(), // keeps large account ids exact
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	claims := jwt.MapClaims{}
	tok, err := p.ParseWithClaims(token, claims, v.keyFunc)
	if err != nil {
		return Claims{}, v.classify(tok, err)
	}

	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // unreachable: the parser required a valid exp
		return Claims{}, ErrTokenMalformed
	}
	if !now.Before(exp.Time) {
		return Claims{}, ErrTokenExpired
	}

	id, ok := parseAccountID(claims[v.claim])
	if !ok {
		return Claims{}, ErrAccountClaim
	}
	return Claims{AccountID: id, ExpiresAt: exp.UTC()}, nil
}

// precheck rejects empty, oversized and obviously malformed tokens without
// decoding anything. An empty signature segment is let through so that an
// unsigned alg "none" token is reported as ErrTokenAlgorithm.
func (v *Verifier) precheck(token string) error {
	if token == "" {
		return ErrNoToken
	}
	if len(token) > v.maxSize {
		return ErrTokenTooLarge
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return ErrTokenMalformed
		}
	}
	if dots != 2 {
		return ErrTokenMalformed
	}
	return nil
}

// errMethodMismatch is returned by keyFunc when the parsed method is not the
// pinned one; golang-jwt wraps it in jwt.ErrTokenUnverifiable.
var errMethodMismatch = errors.New("signing method mismatch")

// keyFunc hands golang-jwt the pinned key. WithValidMethods already compared
// the alg names; comparing the method values too guards against another
// package re-registering "HS256" in golang-jwt's global registry.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method != v.method {
		return nil, errMethodMismatch
	}
	return v.key, nil
}

// classify maps a golang-jwt error onto one sentinel. Order matters: a token
// can fail several checks and the client is told the most fundamental one.
func (v *Verifier) classify(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed), tok == nil:
		return ErrTokenMalformed
	case headerAlg(tok) != v.method.Alg(), errors.Is(err, jwt.ErrTokenUnverifiable):
		// WithValidMethods reports a foreign alg as ErrTokenSignatureInvalid;
		// a missing or unknown alg and keyFunc errors come as unverifiable.
		return ErrTokenAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrTokenSignature
	case errors.Is(err, jwt.ErrInvalidType), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	default:
		return ErrTokenMalformed
	}
}

// headerAlg returns the token's alg header, or "" if absent or not a string.
func headerAlg(tok *jwt.Token) string {
	alg, _ := tok.Header["alg"].(string)
	return alg
}

// parseAccountID accepts a JSON number or a string holding a positive integer
// in canonical decimal form (no sign, no leading zero, no fraction or
// exponent) that fits int64.
func parseAccountID(v any) (int64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	default:
		return 0, false
	}
	if s == "" || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // only overflow is left
		return 0, false
	}
	return id, true
}
