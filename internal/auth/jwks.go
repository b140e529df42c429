package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JWKS defaults and limits; see Config.
const (
	// DefaultJWKSRefresh is how long a fetched key set is used before it is
	// refetched, when Config.JWKSRefresh is zero.
	DefaultJWKSRefresh = 10 * time.Minute

	// DefaultJWKSMinRefresh is the least time between two JWKS fetches, when
	// Config.JWKSMinRefresh is zero.
	DefaultJWKSMinRefresh = 30 * time.Second

	// DefaultJWKSTimeout bounds one JWKS fetch when Config.HTTPClient is nil
	// or has no Timeout.
	DefaultJWKSTimeout = 10 * time.Second

	// MaxJWKSBytes bounds a JWKS response body; a larger one fails the fetch.
	MaxJWKSBytes = 1 << 20
)

// maxJWKSRedirects bounds the redirects the default client follows.
const maxJWKSRedirects = 3

// keySet is one successfully fetched JWKS, immutable once published.
type keySet struct {
	keys    map[string]any // kid ("" for a JWK without kid) -> *rsa.PublicKey or *ecdsa.PublicKey
	fetched time.Time
}

// fetchCall is one fetch in flight; done is closed once err is set.
type fetchCall struct {
	done chan struct{}
	err  error
}

// jwksCache holds the keys of one JWKS URL. It starts no goroutine: keys are
// fetched by the Verify that finds them stale or missing, one fetch at a time.
// The published set is read without locking; mu serialises fetch decisions.
type jwksCache struct {
	url        string // as configured, for requests
	logURL     string // without userinfo, query or fragment, for logs and errors
	alg        string // AlgRS256 or AlgES256
	client     *http.Client
	timeout    time.Duration
	refresh    time.Duration
	minRefresh time.Duration
	logger     *slog.Logger
	now        func() time.Time // time.Now; tests replace it before first use

	set atomic.Pointer[keySet] // nil until the first successful fetch

	mu          sync.Mutex
	lastAttempt time.Time  // start of the last fetch, successful or not; guarded by mu
	inflight    *fetchCall // guarded by mu
}

// newJWKSCache validates the JWKS fields of cfg and returns an empty cache.
func newJWKSCache(cfg Config) (*jwksCache, error) {
	u, err := checkJWKSURL(cfg.JWKSURL)
	if err != nil {
		return nil, err
	}
	c := &jwksCache{
		url:        cfg.JWKSURL,
		logURL:     redactURL(u),
		alg:        cfg.Algorithm,
		client:     cfg.HTTPClient,
		refresh:    cfg.JWKSRefresh,
		minRefresh: cfg.JWKSMinRefresh,
		logger:     cfg.Logger,
		now:        time.Now,
	}
	switch {
	case c.refresh < 0:
		return nil, fmt.Errorf("negative JWKS refresh %v", c.refresh)
	case c.refresh == 0:
		c.refresh = DefaultJWKSRefresh
	}
	switch {
	case c.minRefresh < 0:
		return nil, fmt.Errorf("negative JWKS min refresh %v", c.minRefresh)
	case c.minRefresh == 0:
		c.minRefresh = min(DefaultJWKSMinRefresh, c.refresh)
	case c.minRefresh > c.refresh:
		return nil, fmt.Errorf("JWKS min refresh %v is longer than JWKS refresh %v", c.minRefresh, c.refresh)
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: DefaultJWKSTimeout, CheckRedirect: checkJWKSRedirect}
	}
	c.timeout = c.client.Timeout
	if c.timeout <= 0 {
		c.timeout = DefaultJWKSTimeout
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// checkJWKSURL accepts an absolute https URL, or http for a loopback host:
// whoever can rewrite the key set can mint tokens, so it must not travel in
// clear over a network.
func checkJWKSURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("JWKS URL does not parse")
	}
	if u.Host == "" {
		return nil, errors.New("JWKS URL has no host")
	}
	if !secureURL(u) {
		return nil, fmt.Errorf("JWKS URL scheme must be https (http only for a loopback host), got %q", u.Scheme)
	}
	return u, nil
}

// secureURL reports whether u is https, or http to a loopback host.
func secureURL(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	default:
		return false
	}
}

// checkJWKSRedirect is the default client's redirect policy.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxJWKSRedirects {
		return fmt.Errorf("stopped after %d redirects", maxJWKSRedirects)
	}
	if !secureURL(req.URL) {
		return fmt.Errorf("refused redirect to a %q URL", req.URL.Scheme)
	}
	return nil
}

// redactURL drops what may hold a credential: userinfo, query and fragment.
func redactURL(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery, r.ForceQuery = "", false
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}

// errNotDue and errInFlight say why fetch did not fetch; key falls back to
// the cached set either way.
var (
	errNotDue   = errors.New("JWKS fetched less than the min refresh interval ago")
	errInFlight = errors.New("JWKS fetch in flight")
)

// key returns the key for kid. A fresh cached key is returned at once. A
// stale one triggers a fetch (if due), but is not held up by a fetch someone
// else started; an unknown kid waits for the fetch in flight or starts one if
// due. A failed fetch keeps the cached set.
func (c *jwksCache) key(ctx context.Context, kid string) (any, error) {
	set := c.set.Load()
	known := false
	if set != nil {
		var k any
		if k, known = set.keys[kid]; known && c.now().Sub(set.fetched) < c.refresh {
			return k, nil
		}
	}
	_ = c.fetch(ctx, !known, false) // the outcome is read from c.set below; the leader logged it
	set = c.set.Load()
	if set != nil {
		if k, ok := set.keys[kid]; ok {
			return k, nil
		}
	}
	if set == nil || ctx.Err() != nil {
		return nil, ErrKeysUnavailable
	}
	return nil, ErrUnknownKey
}

// fetch loads the key set unless a fetch is in flight (then it waits for it if
// join, within ctx) or, unless force, the last one started less than
// minRefresh ago. The fetch runs in the calling goroutine, detached from ctx's
// cancellation because other callers may be waiting for it; it is bounded by
// c.timeout.
func (c *jwksCache) fetch(ctx context.Context, join, force bool) error {
	c.mu.Lock()
	if call := c.inflight; call != nil {
		c.mu.Unlock()
		if !join {
			return errInFlight
		}
		select {
		case <-call.done:
			return call.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := c.now()
	if !force && !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.minRefresh {
		c.mu.Unlock()
		return errNotDue
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	c.lastAttempt = now
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = c.load(context.WithoutCancel(ctx))
	return call.err
}

// load fetches, parses and publishes the key set, and logs the outcome.
func (c *jwksCache) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	keys, skipped, err := c.get(ctx)
	for _, s := range skipped {
		c.logger.DebugContext(ctx, "jwks key skipped", "jwks_url", c.logURL, "kid", s.kid, "reason", s.reason)
	}
	if err != nil {
		cached := 0
		if set := c.set.Load(); set != nil {
			cached = len(set.keys)
		}
		c.logger.WarnContext(ctx, "jwks refresh failed", "jwks_url", c.logURL, "cached_keys", cached, "error", err)
		return err
	}
	c.set.Store(&keySet{keys: keys, fetched: c.now()})
	c.logger.InfoContext(ctx, "jwks refreshed", "jwks_url", c.logURL, "keys", len(keys), "skipped", len(skipped))
	return nil
}

// get performs one bounded GET and parses the body.
func (c *jwksCache) get(ctx context.Context) (map[string]any, []skippedKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch jwks %s: %w", c.logURL, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL, query included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return nil, nil, fmt.Errorf("fetch jwks %s: timed out after %v", c.logURL, c.timeout)
			}
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("fetch jwks %s: %w", c.logURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch jwks %s: status %d", c.logURL, resp.StatusCode)
	}
	if resp.ContentLength > MaxJWKSBytes {
		return nil, nil, fmt.Errorf("fetch jwks %s: body of %d bytes exceeds %d", c.logURL, resp.ContentLength, MaxJWKSBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil, fmt.Errorf("fetch jwks %s: timed out after %v", c.logURL, c.timeout)
	case err != nil:
		return nil, nil, fmt.Errorf("fetch jwks %s: read body: %w", c.logURL, err)
	case len(body) > MaxJWKSBytes:
		return nil, nil, fmt.Errorf("fetch jwks %s: body exceeds %d bytes", c.logURL, MaxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(body, c.alg)
	if err != nil {
		return nil, skipped, fmt.Errorf("fetch jwks %s: %w", c.logURL, err)
	}
	return keys, skipped, nil
}

// skippedKey is a JWK left out of the set, and why.
type skippedKey struct {
	kid    string
	reason string
}

// jwk holds the members of a JSON Web Key (RFC 7517 section 4, RFC 7518
// section 6) that we read. Private members ("d", ...) are ignored.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// parseJWKS returns the keys of a JWK Set that can verify alg signatures,
// by kid. Keys of another type, curve, use or alg, and keys that fail to
// decode or are too weak, are skipped and reported; a later key with the kid
// of an accepted one is skipped too. It is an error if the document is not a
// JSON object with a "keys" array or if no key is usable, so that a broken
// response never replaces a working cached set.
func parseJWKS(data []byte, alg string) (map[string]any, []skippedKey, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse jwks: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`parse jwks: no "keys" array`)
	}
	keys := make(map[string]any)
	var skipped []skippedKey
	for i, raw := range *doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, skippedKey{reason: fmt.Sprintf("key %d: %v", i, err)})
			continue
		}
		pub, err := k.publicKey(alg)
		if err == nil {
			if _, dup := keys[k.Kid]; dup {
				err = errors.New("duplicate kid")
			}
		}
		if err != nil {
			skipped = append(skipped, skippedKey{kid: k.Kid, reason: err.Error()})
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("parse jwks: no usable %s key among %d", alg, len(*doc.Keys))
	}
	return keys, skipped, nil
}

// publicKey decodes k if it is meant for alg signatures.
func (k *jwk) publicKey(alg string) (any, error) {
	if kty := map[string]string{AlgRS256: "RSA", AlgES256: "EC"}[alg]; k.Kty != kty {
		return nil, fmt.Errorf("kty %q", k.Kty)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q", k.Use)
	}
	if k.Alg != "" && k.Alg != alg {
		return nil, fmt.Errorf("alg %q", k.Alg)
	}
	if k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify") {
		return nil, errors.New(`key_ops lacks "verify"`)
	}
	switch alg {
	case AlgRS256:
		n, err := decodeB64(k.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := decodeB64(k.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("e of %d bytes", len(e))
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if err := checkRSA(pub); err != nil {
			return nil, err
		}
		return pub, nil
	case AlgES256:
		if k.Crv != "P-256" {
			return nil, fmt.Errorf("crv %q", k.Crv)
		}
		x, err := decodeB64(k.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := decodeB64(k.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		// RFC 7518 section 6.2.1.2: x and y are the full 32 bytes.
		if len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("x, y of %d, %d bytes, want 32", len(x), len(y))
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("point: %w", err)
		}
		return pub, nil
	default:
		return nil, fmt.Errorf("algorithm %q takes no JWK", alg)
	}
}

// decodeB64 decodes base64url, tolerating the padding RFC 7515 omits.
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
