package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms accepted in Config.Algorithm. Exactly one is pinned per Verifier.
const (
	// AlgHS256 is HMAC-SHA256 with a shared secret (Config.Secret); the default.
	AlgHS256 = "HS256"

	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256 and an RSA public key of at
	// least 2048 bits, from Config.PublicKeyPEM or Config.JWKSURL.
	AlgRS256 = "RS256"

	// AlgES256 is ECDSA with P-256 and SHA-256, with a public key from
	// Config.PublicKeyPEM or Config.JWKSURL.
	AlgES256 = "ES256"
)

// DefaultAccountClaim is the claim that holds the account id unless configured
// otherwise.
const DefaultAccountClaim = "accountId"

// DefaultLeeway is the clock skew the notifier service forgives on nbf and
// iat; exp gets none.
const DefaultLeeway = 5 * time.Second

// DefaultMaxTokenBytes is the token size limit applied when
// Config.MaxTokenBytes is zero.
const DefaultMaxTokenBytes = 8 << 10

// Config configures a Verifier. The config package fills it from the auth.*
// keys; zero values are documented per field. Exactly one key source is set:
// Secret for HS256, PublicKeyPEM or JWKSURL for RS256 and ES256.
type Config struct {
	// Algorithm is the one signing algorithm accepted: AlgHS256 (also when
	// empty), AlgRS256 or AlgES256, spelled exactly so. A token whose alg
	// header says anything else is rejected with ErrTokenAlgorithm.
	Algorithm string

	// Secret is the HS256 shared secret. It is required for HS256 and must be
	// empty otherwise; use at least 32 random bytes (RFC 7518 section 3.2 asks
	// for a key as long as the hash). See ReadSecret.
	Secret []byte

	// PublicKeyPEM is one PEM block holding the RS256 or ES256 public key: a
	// PKIX "PUBLIC KEY", a "CERTIFICATE" (only its key is used: no chain,
	// expiry or usage checks), or for RS256 a PKCS #1 "RSA PUBLIC KEY". RSA
	// keys must have 2048 to 8192 bits, EC keys must be on P-256. The token's
	// kid is ignored. Mutually exclusive with JWKSURL.
	PublicKeyPEM []byte

	// JWKSURL is an https URL serving a JSON Web Key Set (RFC 7517); http is
	// accepted only for a loopback host. Keys are chosen by the token's kid and
	// cached (see JWKSRefresh and JWKSMinRefresh). Mutually exclusive with
	// PublicKeyPEM.
	JWKSURL string

	// JWKSRefresh is how old the cached key set may get before a Verify
	// refetches it. Zero means DefaultJWKSRefresh; negative is an error.
	JWKSRefresh time.Duration

	// JWKSMinRefresh is the least time between two fetches, whatever
	// triggers them (a stale set, a token with an unknown kid, a failed
	// fetch). It bounds what a flood of made-up kids can cost the issuer.
	// Zero means DefaultJWKSMinRefresh; negative or more than JWKSRefresh is
	// an error.
	JWKSMinRefresh time.Duration

	// HTTPClient fetches the JWKS. Nil means a client with a
	// DefaultJWKSTimeout timeout that follows at most 3 redirects, each to an
	// https (or loopback http) URL. A fetch is bounded by the client's
	// Timeout, or by DefaultJWKSTimeout if that is zero.
	HTTPClient *http.Client

	// Logger receives JWKS refresh results (failures at warn). Nil discards.
	// Nothing logged contains a token, a secret or the JWKS URL's query.
	Logger *slog.Logger

	// AccountClaim names the claim holding the account id, usually
	// DefaultAccountClaim. It must not be empty, exp, nbf or iat.
	AccountClaim string

	// RequireLowS refuses ES256 signatures whose S lies above n/2: of the two valid
	// signatures (R, S) and (R, n-S) of a token, only the low one is accepted, so a
	// token cannot be rewritten into another that verifies. Off by default: many
	// signers (Go's crypto/ecdsa and golang-jwt among them) emit high S half the time.
	RequireLowS bool
	// Leeway is the clock skew forgiven when nbf or iat lies in the future.
	// It does not apply to exp, which is strict. Zero means no leeway; the
	// notifier service always uses DefaultLeeway. Negative is an error.
	Leeway time.Duration

	// Issuer, when set, is the one iss a token may carry: needed when the keys are a
	// shared identity provider's (JWKSURL), which signs tokens for other services too.
	Issuer string

	// Audience, when set, must be one of the token's aud values.
	Audience string

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

// Verifier checks tokens against one pinned algorithm and its key source. It
// is safe for concurrent use; only its JWKS cache, if any, changes over time.
type Verifier struct {
	method  jwt.SigningMethod
	key     any        // []byte (HS256), *rsa.PublicKey or *ecdsa.PublicKey; nil with jwks
	jwks    *jwksCache // non-nil iff keys come from Config.JWKSURL
	algs    []string   // {method.Alg()}; read-only, shared by all parsers
	claim   string
	leeway  time.Duration
	maxSize int
	lowS    bool // Config.RequireLowS, for ES256

	issuer, audience string // Config.Issuer, Config.Audience; "" checks nothing
}

// NewVerifier validates cfg and returns a Verifier for cfg.Algorithm with its
// one key source. Key material is parsed and copied here, so later changes to
// cfg do not affect the Verifier; a JWKS is not fetched until the first Verify
// or Refresh. Errors name the offending field and never contain key material.
func NewVerifier(cfg Config) (*Verifier, error) {
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
	v := &Verifier{claim: cfg.AccountClaim, leeway: cfg.Leeway, maxSize: maxSize, lowS: cfg.RequireLowS,
		issuer: cfg.Issuer, audience: cfg.Audience}

	switch cfg.Algorithm {
	case "", AlgHS256:
		v.method = jwt.SigningMethodHS256
		switch {
		case len(cfg.Secret) == 0:
			return nil, errors.New("auth config: secret is empty")
		case len(cfg.PublicKeyPEM) > 0 || cfg.JWKSURL != "":
			return nil, errors.New("auth config: HS256 takes a secret only; public key and JWKS URL must be empty")
		}
		v.key = append([]byte(nil), cfg.Secret...)
	case AlgRS256, AlgES256:
		// The package's own method values, not the registry's: see keyFor.
		v.method = map[string]jwt.SigningMethod{AlgRS256: jwt.SigningMethodRS256, AlgES256: jwt.SigningMethodES256}[cfg.Algorithm]
		switch {
		case len(cfg.Secret) > 0:
			return nil, fmt.Errorf("auth config: %s takes a public key or a JWKS URL; secret must be empty", cfg.Algorithm)
		case len(cfg.PublicKeyPEM) > 0 && cfg.JWKSURL != "":
			return nil, fmt.Errorf("auth config: %s: set a public key or a JWKS URL, not both", cfg.Algorithm)
		case len(cfg.PublicKeyPEM) > 0:
			key, err := parsePublicKeyPEM(cfg.PublicKeyPEM, cfg.Algorithm)
			if err != nil {
				return nil, fmt.Errorf("auth config: %w", err)
			}
			v.key = key
		case cfg.JWKSURL != "":
			c, err := newJWKSCache(cfg)
			if err != nil {
				return nil, fmt.Errorf("auth config: %w", err)
			}
			v.jwks = c
		default:
			return nil, fmt.Errorf("auth config: %s needs a public key or a JWKS URL", cfg.Algorithm)
		}
	default:
		return nil, fmt.Errorf("auth config: algorithm %q is not one of %s, %s, %s", cfg.Algorithm, AlgHS256, AlgRS256, AlgES256)
	}
	v.algs = []string{v.method.Alg()}
	return v, nil
}

// Algorithm returns the pinned algorithm: AlgHS256, AlgRS256 or AlgES256.
func (v *Verifier) Algorithm() string { return v.method.Alg() }

// Refresh fetches the JWKS now, ignoring Config.JWKSMinRefresh, or waits for
// the fetch already in flight. Call it at startup to warm the cache and report
// a bad URL early; a failure is not fatal, as Verify retries lazily. Without a
// JWKS URL it does nothing. Unlike Verify, it returns a descriptive error for
// logs (the URL without its query, the status or cause), not a sentinel.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.jwks == nil {
		return nil
	}
	return v.jwks.fetch(ctx, true, true)
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

// Verify checks token's size, shape (no crit, no b64 false, no duplicate member
// names, nothing after the claims), algorithm, signature (low S for ES256), exp
// (required, strict), nbf and iat (if present, with leeway) as of now, then
// extracts the account claim. A zero now means time.Now(). The returned error
// is always one of the package's sentinels, unwrapped (see ErrTokenMalformed
// and friends).
// With a JWKS URL it may wait for a key fetch; see VerifyContext. now only
// judges the token: the key cache ages by the wall clock.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	return v.VerifyContext(context.Background(), token, now)
}

// VerifyContext is Verify with a context that bounds waiting for a JWKS fetch
// (pass the request's, so a client that leaves stops waiting). The fetch
// itself is shared with other callers and is not cancelled with ctx; if ctx
// ends first the error is ErrKeysUnavailable. Without a JWKS URL ctx is unused.
func (v *Verifier) VerifyContext(ctx context.Context, token string, now time.Time) (Claims, error) {
	if err := v.precheck(token); err != nil {
		return Claims{}, err
	}
	if err := checkJWS(token); err != nil {
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
	tok, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		return Claims{}, v.classify(tok, err)
	}
	if v.lowS && v.method == jwt.SigningMethodES256 && highS(tok.Signature) {
		return Claims{}, ErrTokenSignatureHighS
	}

	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // unreachable: the parser required a valid exp
		return Claims{}, ErrTokenMalformed
	}
	if !now.Before(exp.Time) {
		return Claims{}, ErrTokenExpired
	}

	if v.issuer != "" {
		if iss, err := claims.GetIssuer(); err != nil || iss != v.issuer {
			return Claims{}, ErrTokenIssuer
		}
	}
	if v.audience != "" {
		aud, err := claims.GetAudience()
		if err != nil || !slices.Contains([]string(aud), v.audience) {
			return Claims{}, ErrTokenAudience
		}
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

// errMethodMismatch is returned by keyFor when the parsed method is not the
// pinned one; golang-jwt wraps it in jwt.ErrTokenUnverifiable.
var errMethodMismatch = errors.New("signing method mismatch")

// errKidType is returned by keyFor when the kid header is not a string.
var errKidType = errors.New("kid header is not a string")

// keyFor hands golang-jwt the key for t, which golang-jwt calls only once the
// alg header has matched WithValidMethods. Comparing the method values too
// guards against another package re-registering "RS256" in golang-jwt's
// global registry. The key's type follows the pinned method, never the token:
// []byte only for HS256, so a public key can never become an HMAC secret.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if t.Method != v.method {
		return nil, errMethodMismatch
	}
	if v.jwks == nil {
		return v.key, nil
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		if kid, ok = raw.(string); !ok {
			return nil, errKidType
		}
	}
	return v.jwks.key(ctx, kid)
}

// classify maps a golang-jwt error onto one sentinel. Order matters: a token
// can fail several checks and the client is told the most fundamental one.
func (v *Verifier) classify(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed), tok == nil:
		return ErrTokenMalformed
	case headerAlg(tok) != v.method.Alg():
		// WithValidMethods reports a foreign alg as ErrTokenSignatureInvalid.
		return ErrTokenAlgorithm
	case errors.Is(err, ErrUnknownKey):
		return ErrUnknownKey
	case errors.Is(err, ErrKeysUnavailable):
		return ErrKeysUnavailable
	case errors.Is(err, errKidType):
		return ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// A missing or unknown alg and errMethodMismatch come as unverifiable.
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
