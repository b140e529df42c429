package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeClock is the JWKS cache's clock in tests: time moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(testNow.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// jwksServer is a loopback JWKS endpoint whose answer the test controls.
type jwksServer struct {
	srv  *httptest.Server
	hits atomic.Int64 // requests received

	mu      sync.Mutex
	body    []byte
	status  int
	arrived chan struct{} // when non-nil, each request signals it, then waits for release
	release chan struct{}
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.setKeys(t, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.unhold) // runs before Close: a held request must not block it
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	arrived, release := s.arrived, s.release
	s.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	body, status := s.body, s.status
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// url returns the server's JWKS URL.
func (s *jwksServer) url() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *jwksServer) setKeys(t testing.TB, keys ...map[string]any) {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatalf("marshal jwks: %v", err)
	}
	s.set(b, http.StatusOK)
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

// hold makes requests wait until release is closed; each signals arrived first.
func (s *jwksServer) hold() (arrived <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrived, s.release = make(chan struct{}, 64), make(chan struct{})
	return s.arrived, s.unhold
}

func (s *jwksServer) unhold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		close(s.release)
		s.arrived, s.release = nil, nil
	}
}

// jwksBundle is a verifier on a JWKS server with a fake clock.
type jwksBundle struct {
	srv   *jwksServer
	v     *Verifier
	clock *fakeClock
	logs  *testLogger
}

const (
	testRefresh    = 10 * time.Minute
	testMinRefresh = 30 * time.Second
)

func setupJWKS(t *testing.T, alg string, keys ...map[string]any) *jwksBundle {
	t.Helper()
	srv := newJWKSServer(t, keys...)
	return setupJWKSOn(t, alg, srv, srv.url())
}

func setupJWKSOn(t *testing.T, alg string, srv *jwksServer, rawURL string) *jwksBundle {
	t.Helper()
	logger, logs := newTestLogger(t)
	client := srv.srv.Client()
	client.Timeout = 5 * time.Second
	v, err := NewVerifier(Config{
		Algorithm:      alg,
		JWKSURL:        rawURL,
		JWKSRefresh:    testRefresh,
		JWKSMinRefresh: testMinRefresh,
		HTTPClient:     client,
		Logger:         logger,
		AccountClaim:   DefaultAccountClaim,
		Leeway:         DefaultLeeway,
	})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	clock := newFakeClock()
	v.jwks.now = clock.Now
	return &jwksBundle{srv: srv, v: v, clock: clock, logs: logs}
}

// rs256Token signs valid claims with testRSAKeys()[i] under kid.
func rs256Token(t testing.TB, i int, kid any) string {
	t.Helper()
	return signKID(t, jwt.SigningMethodRS256, testRSAKeys()[i], kid, valid(nil))
}

func es256Token(t testing.TB, i int, kid any) string {
	t.Helper()
	return signKID(t, jwt.SigningMethodES256, testECKeys()[i], kid, valid(nil))
}

func rsaJWKs(kids ...string) []map[string]any {
	var out []map[string]any
	for i, kid := range kids {
		if kid != "-" {
			out = append(out, rsaJWK(kid, &testRSAKeys()[i].PublicKey))
		}
	}
	return out
}

// expect verifies token and checks the outcome.
func (b *jwksBundle) expect(t *testing.T, token string, wantErr error) {
	t.Helper()
	got, err := b.v.Verify(token, testNow)
	if !errors.Is(err, wantErr) {
		t.Fatalf("Verify error = %v, want %v", err, wantErr)
	}
	if err != nil {
		checkClientSafe(t, err, token)
		return
	}
	if got.AccountID != 42 {
		t.Fatalf("AccountID = %d, want 42", got.AccountID)
	}
}

func (b *jwksBundle) wantHits(t *testing.T, want int64) {
	t.Helper()
	if got := b.srv.hits.Load(); got != want {
		t.Fatalf("JWKS fetched %d times, want %d", got, want)
	}
}

func TestJWKSVerify(t *testing.T) {
	t.Parallel()
	t.Run("RS256", func(t *testing.T) {
		t.Parallel()
		b := setupJWKS(t, AlgRS256, rsaJWKs("a", "b")...)
		b.wantHits(t, 0) // NewVerifier does not fetch
		for range 10 {
			b.expect(t, rs256Token(t, 0, "a"), nil)
			b.expect(t, rs256Token(t, 1, "b"), nil)
		}
		b.expect(t, rs256Token(t, 1, "a"), ErrTokenSignature) // key b under kid a
		b.expect(t, rs256Token(t, 2, "c"), ErrUnknownKey)
		b.expect(t, es256Token(t, 0, "a"), ErrTokenAlgorithm)
		b.expect(t, sign(t, jwt.SigningMethodHS256, []byte(b.srv.url()), valid(nil)), ErrTokenAlgorithm)
		b.wantHits(t, 1)
	})
	t.Run("ES256", func(t *testing.T) {
		t.Parallel()
		ek := testECKeys()
		b := setupJWKS(t, AlgES256, ecJWK("a", &ek[0].PublicKey), ecJWK("b", &ek[1].PublicKey), rsaJWK("r", &testRSAKeys()[0].PublicKey))
		b.expect(t, es256Token(t, 0, "a"), nil)
		b.expect(t, es256Token(t, 1, "b"), nil)
		b.expect(t, es256Token(t, 0, "b"), ErrTokenSignature)
		b.expect(t, rs256Token(t, 0, "r"), ErrTokenAlgorithm)
		b.expect(t, es256Token(t, 0, "r"), ErrUnknownKey) // the RSA JWK was skipped
		b.wantHits(t, 1)
	})
}

func TestJWKSKid(t *testing.T) {
	t.Parallel()
	rk := testRSAKeys()
	noKid := rsaJWK("", &rk[0].PublicKey)
	delete(noKid, "kid")

	t.Run("no kid matches a JWK without kid", func(t *testing.T) {
		t.Parallel()
		b := setupJWKS(t, AlgRS256, noKid, rsaJWK("b", &rk[1].PublicKey))
		b.expect(t, rs256Token(t, 0, nil), nil)
		b.expect(t, rs256Token(t, 1, nil), ErrTokenSignature)
		b.expect(t, rs256Token(t, 1, "b"), nil)
	})
	t.Run("no kid against kids only", func(t *testing.T) {
		t.Parallel()
		b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
		b.expect(t, rs256Token(t, 0, nil), ErrUnknownKey)
	})
	t.Run("kid not a string", func(t *testing.T) {
		t.Parallel()
		b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
		b.expect(t, rs256Token(t, 0, 7), ErrTokenMalformed)
		b.expect(t, rs256Token(t, 0, []string{"a"}), ErrTokenMalformed)
		b.wantHits(t, 0)
	})
}

// TestJWKSRotation follows an issuer rotating keys: a new kid is fetched on
// first sight (once the min interval allows), a withdrawn one is refused.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	rk := testRSAKeys()
	b := setupJWKS(t, AlgRS256, rsaJWK("k1", &rk[0].PublicKey))
	k1, k2, k3 := rs256Token(t, 0, "k1"), rs256Token(t, 1, "k2"), rs256Token(t, 2, "k3")

	b.expect(t, k1, nil)
	b.wantHits(t, 1)

	// The issuer publishes k2 and withdraws k1 right away.
	b.srv.setKeys(t, rsaJWK("k2", &rk[1].PublicKey))
	b.expect(t, k2, ErrUnknownKey) // fetched 0s ago: not yet
	b.wantHits(t, 1)
	b.clock.Add(testMinRefresh)
	b.expect(t, k2, nil) // refetched on the unknown kid
	b.wantHits(t, 2)
	b.expect(t, k1, ErrUnknownKey) // gone from the new set; refetch not due
	b.wantHits(t, 2)

	// Overlapping rotation: k3 is published beside k2, and found by the
	// periodic refresh before any k3 token shows up.
	b.srv.setKeys(t, rsaJWK("k2", &rk[1].PublicKey), rsaJWK("k3", &rk[2].PublicKey))
	b.clock.Add(testRefresh)
	b.expect(t, k2, nil) // stale: this call refreshes
	b.wantHits(t, 3)
	b.expect(t, k3, nil)
	b.expect(t, k2, nil)
	b.wantHits(t, 3)
}

// TestJWKSMinRefresh counts fetches under a flood of unknown kids and
// under an issuer that keeps failing.
func TestJWKSMinRefresh(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	b.expect(t, rs256Token(t, 0, "a"), nil)
	b.wantHits(t, 1)

	unknown := make([]string, 20)
	for i := range unknown {
		unknown[i] = rs256Token(t, 0, fmt.Sprintf("made-up-%d", i))
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, tok := range unknown {
			wg.Go(func() {
				if _, err := b.v.Verify(tok, testNow); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Verify made-up kid error = %v, want %v", err, ErrUnknownKey)
				}
			})
		}
		wg.Wait()
	}

	flood()
	b.wantHits(t, 1)
	b.clock.Add(testMinRefresh - time.Nanosecond)
	flood()
	b.wantHits(t, 1)
	b.clock.Add(time.Nanosecond)
	flood() // exactly one of these refetches
	b.wantHits(t, 2)
	flood()
	b.wantHits(t, 2)

	// The issuer fails: a stale set is retried at most once per min interval,
	// and its keys stay in use meanwhile.
	b.srv.set([]byte("oops"), http.StatusInternalServerError)
	b.clock.Add(testRefresh)
	for range 20 {
		b.expect(t, rs256Token(t, 0, "a"), nil)
	}
	b.wantHits(t, 3)
	flood()
	b.wantHits(t, 3)
	b.clock.Add(testMinRefresh)
	b.expect(t, rs256Token(t, 0, "a"), nil)
	b.wantHits(t, 4)
}

// TestJWKSServerDown: with a warm cache, an issuer answering errors or not
// answering at all does not stop verification.
func TestJWKSServerDown(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	tok := rs256Token(t, 0, "a")
	b.expect(t, tok, nil)

	b.srv.set([]byte(`{"error":"maintenance"}`), http.StatusServiceUnavailable)
	b.clock.Add(testRefresh)
	b.expect(t, tok, nil)
	b.wantHits(t, 2)
	if logs := b.logs.String(); !strings.Contains(logs, "level=WARN msg=\"jwks refresh failed\"") || !strings.Contains(logs, "status 503") || !strings.Contains(logs, "cached_keys=1") {
		t.Errorf("logs lack a warning for the failed refresh:\n%s", logs)
	}

	b.srv.srv.Close() // connection refused from now on
	b.clock.Add(testRefresh)
	b.expect(t, tok, nil)
	b.expect(t, rs256Token(t, 1, "new"), ErrUnknownKey)
	if err := b.v.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "fetch jwks "+b.srv.url()+": ") {
		t.Errorf("Refresh error = %v, want a fetch error naming the URL", err)
	}
	b.expect(t, tok, nil)
}

// TestJWKSColdStartDown: no key was ever fetched, so nothing verifies.
func TestJWKSColdStartDown(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	b.srv.set(nil, http.StatusNotFound)
	tok := rs256Token(t, 0, "a")

	b.expect(t, tok, ErrKeysUnavailable)
	b.expect(t, tok, ErrKeysUnavailable) // not retried within the min interval
	b.wantHits(t, 1)

	b.srv.setKeys(t, rsaJWKs("a")...)
	b.expect(t, tok, ErrKeysUnavailable)
	b.clock.Add(testMinRefresh)
	b.expect(t, tok, nil)
	b.wantHits(t, 2)

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		b := setupJWKSOn(t, AlgRS256, newJWKSServer(t), "http://"+addr+"/jwks")
		b.expect(t, tok, ErrKeysUnavailable)
		err = b.v.Refresh(t.Context())
		if err == nil || !strings.Contains(err.Error(), "connect") {
			t.Errorf("Refresh error = %v, want a connection error", err)
		}
	})
}

func TestJWKSRefresh(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	for range 3 { // Refresh ignores the min interval
		if err := b.v.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
	}
	b.wantHits(t, 3)
	b.expect(t, rs256Token(t, 0, "a"), nil)
	b.wantHits(t, 3)

	hs := newTestVerifier(t, DefaultAccountClaim)
	if err := hs.Refresh(t.Context()); err != nil {
		t.Errorf("Refresh without JWKS = %v, want nil", err)
	}
}

func TestJWKSResponseLimits(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(map[string]any{"keys": rsaJWKs("a")})
	if err != nil {
		t.Fatal(err)
	}
	pad := func(n int) []byte { // valid JSON of exactly n bytes
		return append(append([]byte{}, good...), strings.Repeat(" ", n-len(good))...)
	}
	for _, tt := range []struct {
		name    string
		body    []byte
		chunked bool
		status  int
		wantErr string // from Refresh; "" means success
	}{
		{name: "at limit", body: pad(MaxJWKSBytes)},
		{name: "over limit", body: pad(MaxJWKSBytes + 1), wantErr: "body of 1048577 bytes exceeds 1048576"},
		{name: "over limit chunked", body: pad(MaxJWKSBytes + 1), chunked: true, wantErr: "body exceeds 1048576 bytes"},
		{name: "huge chunked", body: pad(8 * MaxJWKSBytes), chunked: true, wantErr: "body exceeds 1048576 bytes"},
		{name: "status 500", body: good, status: http.StatusInternalServerError, wantErr: "status 500"},
		{name: "status 204", status: http.StatusNoContent, wantErr: "status 204"},
		{name: "not JSON", body: []byte("<html>"), wantErr: "parse jwks: invalid character"},
		{name: "empty body", body: nil, wantErr: "parse jwks: unexpected end of JSON input"},
		{name: "JSON array", body: []byte(`[]`), wantErr: "parse jwks: json: cannot unmarshal array"},
		{name: "no keys", body: []byte(`{"kid":"a"}`), wantErr: `parse jwks: no "keys" array`},
		{name: "keys null", body: []byte(`{"keys":null}`), wantErr: `parse jwks: no "keys" array`},
		{name: "keys not an array", body: []byte(`{"keys":{}}`), wantErr: "parse jwks: json: cannot unmarshal object"},
		{name: "empty keys", body: []byte(`{"keys":[]}`), wantErr: "no usable RS256 key among 0"},
		{name: "trailing garbage", body: append(append([]byte{}, good...), "x"...), wantErr: "parse jwks: invalid character 'x' after top-level value"},
		{name: "only unusable keys", body: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`), wantErr: "no usable RS256 key among 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(tt.body)))
				}
				w.WriteHeader(status)
				for b := tt.body; len(b) > 0; {
					n := min(len(b), 64<<10)
					if _, err := w.Write(b[:n]); err != nil {
						return // the client stopped reading
					}
					w.(http.Flusher).Flush()
					b = b[n:]
				}
			}))
			t.Cleanup(srv.Close)
			logger, _ := newTestLogger(t)
			v, err := NewVerifier(Config{Algorithm: AlgRS256, JWKSURL: srv.URL, HTTPClient: srv.Client(), Logger: logger, AccountClaim: DefaultAccountClaim})
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			err = v.Refresh(t.Context())
			_, verr := v.Verify(rs256Token(t, 0, "a"), testNow)
			if tt.wantErr == "" {
				if err != nil || verr != nil {
					t.Fatalf("Refresh, Verify = %v, %v; want nil, nil", err, verr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Refresh error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(verr, ErrKeysUnavailable) {
				t.Errorf("Verify error = %v, want %v", verr, ErrKeysUnavailable)
			}
		})
	}
}

// TestJWKSBadResponseKeepsCache: a broken answer never replaces good keys.
func TestJWKSBadResponseKeepsCache(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	tok := rs256Token(t, 0, "a")
	b.expect(t, tok, nil)
	for i, body := range []string{`{"keys":[]}`, `{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}`, `not json`, strings.Repeat(" ", MaxJWKSBytes+1)} {
		b.srv.set([]byte(body), http.StatusOK)
		b.clock.Add(testRefresh)
		b.expect(t, tok, nil)
		b.wantHits(t, int64(i)+2)
	}
}

// TestJWKSConcurrentRefresh runs Verify from many goroutines while a refresh
// is held in flight at the server; run with -race. Callers with a cached kid
// go on with the stale key without waiting; callers with the new kid wait for
// that one fetch; exactly one fetch happens.
func TestJWKSConcurrentRefresh(t *testing.T) {
	t.Parallel()
	rk := testRSAKeys()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	oldTok, newTok := rs256Token(t, 0, "a"), rs256Token(t, 1, "b")
	b.expect(t, oldTok, nil)
	b.wantHits(t, 1)

	b.srv.setKeys(t, rsaJWK("a", &rk[0].PublicKey), rsaJWK("b", &rk[1].PublicKey))
	arrived, release := b.srv.hold()
	b.clock.Add(testRefresh) // the set is stale now

	leader := make(chan error, 1)
	go func() {
		_, err := b.v.Verify(oldTok, testNow)
		leader <- err
	}()
	waitOrTimeout(t, arrived, "the refresh to reach the server")

	// Stale-key callers finish while the fetch is still held.
	var stale sync.WaitGroup
	for range 32 {
		stale.Go(func() {
			for range 20 {
				if _, err := b.v.Verify(oldTok, testNow); err != nil {
					t.Errorf("Verify cached kid during refresh: %v", err)
					return
				}
			}
		})
	}
	staleDone := make(chan struct{})
	go func() { stale.Wait(); close(staleDone) }()
	waitOrTimeout(t, staleDone, "cached-kid verifications during the refresh")

	// New-kid callers wait for the fetch in flight.
	var waiters sync.WaitGroup
	for range 16 {
		waiters.Go(func() {
			if _, err := b.v.Verify(newTok, testNow); err != nil {
				t.Errorf("Verify new kid after refresh: %v", err)
			}
		})
	}
	release()
	waitersDone := make(chan struct{})
	go func() { waiters.Wait(); close(waitersDone) }()
	waitOrTimeout(t, waitersDone, "new-kid verifications")
	select {
	case err := <-leader:
		if err != nil {
			t.Errorf("leader Verify: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the leader")
	}
	b.wantHits(t, 2)
}

// TestJWKSContextEnds: a caller waiting for someone else's fetch leaves when
// its context ends; the fetch goes on for the others.
func TestJWKSContextEnds(t *testing.T) {
	t.Parallel()
	b := setupJWKS(t, AlgRS256, rsaJWKs("a")...)
	tok := rs256Token(t, 0, "a")
	arrived, release := b.srv.hold()

	leader := make(chan error, 1)
	go func() {
		_, err := b.v.Verify(tok, testNow)
		leader <- err
	}()
	waitOrTimeout(t, arrived, "the first fetch to reach the server")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.v.VerifyContext(ctx, tok, testNow); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("VerifyContext with ended context = %v, want %v", err, ErrKeysUnavailable)
	}
	release()
	if err := <-leader; err != nil {
		t.Errorf("leader Verify: %v", err)
	}
	b.wantHits(t, 1)
}

func TestJWKSTimeout(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, rsaJWKs("a")...)
	srv.hold() // never released until cleanup
	client := srv.srv.Client()
	client.Timeout = 50 * time.Millisecond
	v, err := NewVerifier(Config{Algorithm: AlgRS256, JWKSURL: srv.url(), HTTPClient: client, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	err = v.Refresh(t.Context())
	if err == nil || !strings.Contains(err.Error(), "timed out after 50ms") {
		t.Errorf("Refresh error = %v, want a named timeout", err)
	}
	if _, err := v.Verify(rs256Token(t, 0, "a"), testNow); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("Verify error = %v, want %v", err, ErrKeysUnavailable)
	}
}

// TestJWKSRedactsURL: userinfo and query never reach logs or errors.
func TestJWKSRedactsURL(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	srv.set(nil, http.StatusForbidden)
	u, err := url.Parse(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("client", "hunter2")
	u.RawQuery = "api_key=s3cr3t"
	b := setupJWKSOn(t, AlgRS256, srv, u.String())

	err = b.v.Refresh(t.Context())
	if err == nil {
		t.Fatal("Refresh succeeded, want status 403")
	}
	b.expect(t, rs256Token(t, 0, "a"), ErrKeysUnavailable)
	for _, where := range []string{err.Error(), b.logs.String()} {
		if strings.Contains(where, "hunter2") || strings.Contains(where, "s3cr3t") {
			t.Errorf("credential leaked: %s", where)
		}
		if !strings.Contains(where, srv.url()) {
			t.Errorf("%q does not name the redacted URL %s", where, srv.url())
		}
	}
}

func TestJWKSRedirectPolicy(t *testing.T) {
	t.Parallel()
	mustReq := func(raw string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	via := func(n int) []*http.Request { return make([]*http.Request, n) }
	for _, tt := range []struct {
		to   string
		via  int
		want bool // allowed
	}{
		{to: "https://cdn.example/jwks", via: 1, want: true},
		{to: "http://127.0.0.1:9/jwks", via: 1, want: true},
		{to: "http://cdn.example/jwks", via: 1},
		{to: "http://169.254.169.254/latest/meta-data", via: 1},
		{to: "https://cdn.example/jwks", via: maxJWKSRedirects},
	} {
		err := checkJWKSRedirect(mustReq(tt.to), via(tt.via))
		if (err == nil) != tt.want {
			t.Errorf("redirect to %s after %d: err = %v, want allowed %v", tt.to, tt.via, err, tt.want)
		}
	}

	// End to end with the default client: a loopback redirect is followed.
	srv := newJWKSServer(t, rsaJWKs("a")...)
	redirect := httptest.NewServer(http.RedirectHandler(srv.url(), http.StatusFound))
	t.Cleanup(redirect.Close)
	v, err := NewVerifier(Config{Algorithm: AlgRS256, JWKSURL: redirect.URL, AccountClaim: DefaultAccountClaim})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	if _, err := v.Verify(rs256Token(t, 0, "a"), testNow); err != nil {
		t.Errorf("Verify through a redirect: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	rk, ek := testRSAKeys(), testECKeys()
	r0, r1 := rsaJWK("r0", &rk[0].PublicKey), rsaJWK("r1", &rk[1].PublicKey)
	e0 := ecJWK("e0", &ek[0].PublicKey)
	small := rsaJWK("small", &genRSA(1, 1024)[0].PublicKey)
	p384 := ecJWK("p384", &ek[1].PublicKey)
	p384["crv"] = "P-384"
	with := func(k map[string]any, kv ...any) map[string]any {
		c := make(map[string]any, len(k))
		for name, v := range k {
			c[name] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	offCurve := with(e0, "kid", "off", "y", e0["x"])

	for _, tt := range []struct {
		name     string
		alg      string
		keys     []any
		wantKids []string // accepted, in any order
		wantSkip []string // substrings of skip reasons, in order
	}{
		{name: "rsa", alg: AlgRS256, keys: []any{r0, r1}, wantKids: []string{"r0", "r1"}},
		{name: "ec", alg: AlgES256, keys: []any{e0, r0}, wantKids: []string{"e0"}, wantSkip: []string{`kty "RSA"`}},
		{name: "minimal members", alg: AlgRS256, keys: []any{with(r0, "use", nil, "alg", nil)}, wantKids: []string{"r0"}},
		{name: "padded base64", alg: AlgRS256, keys: []any{with(r0, "e", "AQAB==")}, wantKids: []string{"r0"}},
		{name: "key_ops verify", alg: AlgRS256, keys: []any{with(r0, "key_ops", []string{"verify"})}, wantKids: []string{"r0"}},
		{name: "extra members", alg: AlgRS256, keys: []any{with(r0, "x5c", []string{"MII..."}, "x5t", "abc")}, wantKids: []string{"r0"}},
		{name: "skips", alg: AlgRS256, keys: []any{
			r0,
			with(r1, "use", "enc"),
			with(r1, "alg", "RS512"),
			with(r1, "alg", "RSA-OAEP"),
			with(r1, "key_ops", []string{"encrypt"}),
			map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
			small,
			with(r1, "n", "!!"),
			with(r1, "e", ""),
			with(r1, "e", "AAEAAQA"), // 5 bytes
			with(r1, "e", "AQ"),      // 1
			with(r1, "e", "AAE"),     // ... leading zero, value 1
			with(r1, "e", "Aw"),      // 3: ok but duplicate kid below
			with(r0, "kid", "r0"),
			map[string]any{"kty": 5},
			"not an object",
		}, wantKids: []string{"r0", "r1"}, wantSkip: []string{
			`use "enc"`, `alg "RS512"`, `alg "RSA-OAEP"`, `key_ops lacks "verify"`, `kty "oct"`,
			"RSA key has 1024 bits", "n: illegal base64", "e of 0 bytes", "e of 5 bytes",
			"invalid public exponent 1", "invalid public exponent 1", "duplicate kid",
			"cannot unmarshal number", "cannot unmarshal string",
		}},
		{name: "ec skips", alg: AlgES256, keys: []any{
			e0,
			p384,
			offCurve,
			with(e0, "kid", "short", "x", b64u(make([]byte, 31))),
			with(e0, "kid", "nox", "x", nil),
			with(e0, "kid", "infinity", "x", b64u(make([]byte, 32)), "y", b64u(make([]byte, 32))),
		}, wantKids: []string{"e0"}, wantSkip: []string{
			`crv "P-384"`, "point: ", "x, y of 31, 32 bytes", "x, y of 0, 32 bytes", "point: ",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := json.Marshal(map[string]any{"keys": tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			keys, skipped, err := parseJWKS(data, tt.alg)
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if len(keys) != len(tt.wantKids) {
				t.Errorf("got %d keys, want %v", len(keys), tt.wantKids)
			}
			for _, kid := range tt.wantKids {
				if err := checkKey(keys[kid], tt.alg); err != nil {
					t.Errorf("key %q: %v", kid, err)
				}
			}
			if len(skipped) != len(tt.wantSkip) {
				t.Fatalf("skipped %+v, want %d: %q", skipped, len(tt.wantSkip), tt.wantSkip)
			}
			for i, want := range tt.wantSkip {
				if !strings.Contains(skipped[i].reason, want) {
					t.Errorf("skip %d = %+v, want reason containing %q", i, skipped[i], want)
				}
			}
		})
	}
}

// waitOrTimeout waits for ch with a generous bound.
func waitOrTimeout[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
