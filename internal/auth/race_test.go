package auth

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestVerifyConcurrent shares one Verifier between goroutines; run with -race.
func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, DefaultAccountClaim)
	cases := []struct {
		token   string
		wantID  int64
		wantErr error
	}{
		{token: hs256(t, valid(nil)), wantID: 42},
		{token: hs256(t, valid(map[string]any{"accountId": "7"})), wantID: 7},
		{token: hs256(t, valid(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), wantErr: ErrTokenExpired},
		{token: hs256(t, valid(map[string]any{"accountId": 0})), wantErr: ErrAccountClaim},
		{token: "garbage", wantErr: ErrTokenMalformed},
	}

	const goroutines, iterations = 32, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				c := cases[(g+i)%len(cases)]
				got, err := v.Verify(c.token, testNow)
				if !errors.Is(err, c.wantErr) || got.AccountID != c.wantID {
					t.Errorf("goroutine %d: Verify = %d, %v; want %d, %v", g, got.AccountID, err, c.wantID, c.wantErr)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkVerify(b *testing.B) {
	v := newTestVerifier(b, DefaultAccountClaim)
	tok := hs256(b, valid(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
