package auth

import "errors"

// Sentinel errors. Verify and TokenFromRequest return these values themselves,
// not wrapped, so err.Error() is exactly the short reason below and can be sent
// to a client as {"error":"<reason>"}. Callers compare with errors.Is.
var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("missing token")

	// ErrTokenTooLarge means the token is longer than Config.MaxTokenBytes;
	// it was rejected without being decoded.
	ErrTokenTooLarge = errors.New("token too large")

	// ErrTokenMalformed means the token is not a well-formed JWS with the
	// claims we require: bad characters, wrong segment count, invalid base64
	// or JSON, a header or claims segment that is not exactly one JSON object
	// (anything but white space after it, as in {"exp":1}{}), a kid header
	// that is not a string, a b64 header that is not a boolean, or an
	// exp/nbf/iat that is missing (exp) or not a number.
	ErrTokenMalformed = errors.New("malformed token")

	// ErrTokenDuplicateHeader means a member name appears twice in one object
	// of the JOSE header, at any depth (RFC 7515 section 4: names are unique).
	ErrTokenDuplicateHeader = errors.New("duplicate header parameter")

	// ErrTokenDuplicateClaim means a member name appears twice in one object
	// of the claims, at any depth (RFC 7519 section 4: names are unique).
	ErrTokenDuplicateClaim = errors.New("duplicate claim")

	// ErrTokenCritical means the header has a crit parameter. It lists
	// extensions the recipient must understand (RFC 7515 section 4.1.11) and
	// Verify understands none, so any crit is refused, including an empty
	// one, one that is not an array, or one naming an absent parameter.
	ErrTokenCritical = errors.New("unsupported critical header")

	// ErrTokenUnencodedPayload means the header has b64 false: an unencoded
	// payload (RFC 7797), which Verify does not support.
	ErrTokenUnencodedPayload = errors.New("unencoded payload not supported")

	// ErrTokenAlgorithm means the token's alg header is not the configured
	// algorithm (this includes "none", a missing alg and unknown ones).
	ErrTokenAlgorithm = errors.New("unexpected signing algorithm")

	// ErrTokenSignature means the signature does not match the key.
	ErrTokenSignature = errors.New("invalid signature")

	// ErrTokenSignatureHighS means an ES256 signature that matches the key
	// has S above half the P-256 group order. (R, S) and (R, n-S) are both
	// valid, so whoever holds a token could make a second, different one from
	// it; only the low-S form is accepted. Issuers must normalise S to n-S
	// when it is high: many ECDSA signers do not.
	ErrTokenSignatureHighS = errors.New("non-canonical signature (high S)")

	// ErrUnknownKey means keys come from a JWKS URL and none of them has the
	// token's kid, even after a refetch (or a refetch was not allowed yet, see
	// Config.JWKSMinRefresh). A token without kid matches only a JWK without
	// kid.
	ErrUnknownKey = errors.New("unknown signing key")

	// ErrKeysUnavailable means keys come from a JWKS URL and no key set has
	// been fetched successfully yet (the URL is unreachable, answers with an
	// error, or serves no usable key), or VerifyContext's context ended while
	// it waited for a fetch. Cached keys are kept when a later refresh fails,
	// so otherwise this is only seen before the first good fetch. It is the
	// server's fault, not the client's; a caller may answer 503 instead of 401.
	ErrKeysUnavailable = errors.New("signing keys unavailable")

	// ErrTokenExpired means the token's exp is at or before the current time.
	ErrTokenExpired = errors.New("token expired")

	// ErrTokenNotYetValid means the token's nbf or iat is later than the
	// current time plus Config.Leeway.
	ErrTokenNotYetValid = errors.New("token not valid yet")

	// ErrAccountClaim means the account claim is missing, is not an integer
	// in canonical decimal form, is not positive, or overflows int64.
	ErrAccountClaim = errors.New("missing or invalid account claim")

	// ErrTokenIssuer means Config.Issuer is set and the token's iss is not it.
	ErrTokenIssuer = errors.New("token from another issuer")

	// ErrTokenAudience means Config.Audience is set and is not among the token's aud.
	ErrTokenAudience = errors.New("token for another audience")
)
