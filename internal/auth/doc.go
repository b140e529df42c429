// Package auth verifies and mints the JWTs that WebSocket dashboards present
// to subscribe to one account's order events.
//
// Tokens are compact JWS tokens (header.payload.signature). The signing
// algorithm is pinned by configuration (Config.Algorithm), never read from
// the token, and each algorithm has exactly one key source:
//
//   - HS256 (the default): a shared secret, Config.Secret. [ReadSecret] reads
//     it from an environment value or a file.
//   - RS256 or ES256: a public key, either one PEM block (Config.PublicKeyPEM:
//     PKIX, certificate, or PKCS #1 for RSA; RSA of 2048 to 8192 bits, EC on
//     P-256) or a JSON Web Key Set URL (Config.JWKSURL) whose keys are chosen
//     by the token's kid header.
//
// The token must carry an exp claim and an account claim (default
// "accountId", see [Config]) holding a positive integer, as a JSON number (42)
// or a numeric string ("42"). [Mint] signs HS256 tokens only.
//
// # JWKS
//
// The key set is fetched lazily by the Verify call that needs it, not by a
// background goroutine: when the cached set is older than Config.JWKSRefresh,
// or the token's kid is not in it. Fetches are at least Config.JWKSMinRefresh
// apart, whatever triggers them, so tokens with made-up kids cost the issuer
// at most one request per interval; such tokens then fail with
// [ErrUnknownKey]. One fetch runs at a time: callers whose kid is cached keep
// using the cached key meanwhile, callers that need the new set wait for that
// one fetch (bounded by the HTTP client's timeout, and by their own context in
// [Verifier.VerifyContext]). A response must be 200, at most [MaxJWKSBytes],
// a JSON object with a "keys" array, and hold at least one usable key;
// otherwise the fetch fails, is logged at warn, and the cached set stays in
// use with no expiry until a fetch succeeds. Before the first successful
// fetch Verify fails with [ErrKeysUnavailable]. A successful fetch replaces
// the whole set, so a key the issuer withdrew is refused from then on.
//
// Why lazy rather than a Start/Stop refresher: a Verifier stays a value built
// once by [NewVerifier] with nothing to own, run or close, usable the same way
// for all three algorithms and in tests; a goroutine would need an owner to
// stop and wait for it, and would fetch even when nobody connects. The cost is
// that one request per JWKSRefresh period waits for a fetch (the one that
// finds the set stale; the others keep using the cached key). Call
// [Verifier.Refresh] at startup to warm the cache and report a bad URL early.
//
// Keys are used only if their kty matches the pinned algorithm (RSA for RS256,
// EC with crv P-256 for ES256), their use is absent or "sig", their alg is
// absent or the pinned one, and key_ops, if present, holds "verify". Symmetric
// ("oct") keys are never used. The JWKS URL must be https (http only for a
// loopback host), and the default client follows at most 3 redirects, each
// to such a URL: whoever can rewrite the key set can mint tokens.
//
// # Lifecycle
//
// Build one [Verifier] at startup with [NewVerifier]; it validates its [Config]
// once. Its only changing state is the JWKS cache. To rotate a secret or a
// pinned public key, build a new Verifier and swap the pointer; nothing in
// this package needs closing, and no goroutine outlives a call. [Mint] and
// [ReadSecret] are plain functions.
//
// # Concurrency
//
// [Verifier.Verify] may be called from any number of goroutines at once. Each
// call builds its own golang-jwt parser, because the verification time is a
// per-call argument. The JWKS cache publishes immutable key sets through an
// atomic pointer, read without locking; one mutex guards the fetch decision
// (the time of the last attempt and the fetch in flight) and is never held
// during a fetch. It is the only lock in the package.
//
// # Invariants
//
//   - The accepted algorithm is exactly the configured one. alg "none", other
//     HMAC sizes, RS*/ES*/PS* other than the pinned one, unknown or missing
//     alg are rejected with [ErrTokenAlgorithm] before any key is looked up.
//     The key's Go type follows the pinned algorithm: []byte only for HS256,
//     *rsa.PublicKey only for RS256, *ecdsa.PublicKey only for ES256, so a
//     public key can never be misused as an HMAC secret (HS/RS confusion).
//   - Tokens longer than Config.MaxTokenBytes, or holding a byte outside the
//     base64url alphabet and '.', or not made of three segments, are rejected
//     before any decoding.
//   - The JOSE header and the claims are each exactly one JSON object, with
//     no member name twice in any object at any depth (golang-jwt would keep
//     the last: [ErrTokenDuplicateHeader], [ErrTokenDuplicateClaim]) and
//     nothing but white space after it ([ErrTokenMalformed]). A crit header,
//     whatever its value, is refused ([ErrTokenCritical]): no extension is
//     understood. So is b64 false, an unencoded payload (RFC 7797,
//     [ErrTokenUnencodedPayload]). These are judged before the signature.
//   - ES256 signatures must have a low S (at most half the group order): the
//     high-S twin of a valid signature is refused with
//     [ErrTokenSignatureHighS], so a token cannot be rewritten into another
//     valid one.
//   - exp is required and strict: a token is expired from the second its exp
//     names, whatever the leeway. Config.Leeway only forgives nbf and iat in the
//     future (an issuer whose clock runs ahead of ours); it never extends a
//     token's life.
//   - Every error returned by Verify and TokenFromRequest is one of the ErrX
//     sentinels itself, unwrapped: its message is a short reason safe to show a
//     client in a 401 body and never contains the token or the secret.
//     NewVerifier, Refresh and ReadSecret errors are for operators' logs; they
//     name files and redacted URLs but never contain key material or secrets.
//   - An accepted token always yields Claims.AccountID > 0.
//   - Nothing is logged but JWKS fetch outcomes, with the URL stripped of
//     userinfo, query and fragment.
package auth
