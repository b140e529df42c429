// Package auth verifies and mints the JWTs that WebSocket dashboards present
// to subscribe to one account's order events.
//
// Tokens are compact JWS tokens (header.payload.signature). The signing
// algorithm is pinned by configuration, never read from the token: today only
// HS256 with a shared secret (config key auth.jwt_secret). The token must carry
// an exp claim and an account claim (default "accountId", see [Config]) holding
// a positive integer, as a JSON number (42) or a numeric string ("42").
//
// # Lifecycle
//
// Build one [Verifier] at startup with [NewVerifier]; it validates its [Config]
// once and is immutable afterwards. To rotate the secret, build a new Verifier
// and swap the pointer; nothing in this package needs closing. [Mint] is a plain
// function used by the "token" command and by tests.
//
// # Concurrency
//
// A Verifier holds no mutable state: [Verifier.Verify] may be called from any
// number of goroutines at once. Each call builds its own golang-jwt parser,
// because the verification time is a per-call argument.
//
// # Invariants
//
//   - The accepted algorithm is exactly the configured one. alg "none", other
//     HMAC sizes, RS*/ES*/PS*, unknown or missing alg are rejected with
//     [ErrTokenAlgorithm] before any key is used, so a public key can never be
//     misused as an HMAC secret (HS/RS confusion).
//   - Tokens longer than Config.MaxTokenBytes, or holding a byte outside the
//     base64url alphabet and '.', or not made of three segments, are rejected
//     before any decoding.
//   - exp is required and strict: a token is expired from the second its exp
//     names, whatever the leeway. Config.Leeway only forgives nbf and iat in the
//     future (an issuer whose clock runs ahead of ours); it never extends a
//     token's life.
//   - Every error returned by Verify and TokenFromRequest is one of the ErrX
//     sentinels itself, unwrapped: its message is a short reason safe to show a
//     client in a 401 body and never contains the token or the secret.
//   - An accepted token always yields Claims.AccountID > 0.
package auth
