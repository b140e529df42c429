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
	// or JSON, or an exp/nbf/iat that is missing (exp) or not a number.
	ErrTokenMalformed = errors.New("malformed token")

	// ErrTokenAlgorithm means the token's alg header is not the configured
	// algorithm (this includes "none", a missing alg and unknown ones).
	ErrTokenAlgorithm = errors.New("unexpected signing algorithm")

	// ErrTokenSignature means the signature does not match the key.
	ErrTokenSignature = errors.New("invalid signature")

	// ErrTokenExpired means the token's exp is at or before the current time.
	ErrTokenExpired = errors.New("token expired")

	// ErrTokenNotYetValid means the token's nbf or iat is later than the
	// current time plus Config.Leeway.
	ErrTokenNotYetValid = errors.New("token not valid yet")

	// ErrAccountClaim means the account claim is missing, is not an integer
	// in canonical decimal form, is not positive, or overflows int64.
	ErrAccountClaim = errors.New("missing or invalid account claim")
)
