package auth_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/pgnotifier/notifier/internal/auth"
)

func ExampleVerifier_Verify() {
	secret := []byte("a 32-byte secret from auth.jwt_secret")
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	tok, err := auth.Mint(secret, auth.DefaultAccountClaim, 42, time.Hour, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := auth.NewVerifier(auth.Config{Secret: secret, AccountClaim: auth.DefaultAccountClaim, Leeway: auth.DefaultLeeway})
	if err != nil {
		fmt.Println(err)
		return
	}

	r := httptest.NewRequest("GET", "/ws?access_token="+tok, nil)
	raw, err := auth.TokenFromRequest(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := v.Verify(raw, now)
	fmt.Println(claims.AccountID, claims.ExpiresAt, err)

	_, err = v.Verify(raw, now.Add(time.Hour))
	fmt.Printf(`{"error":%q}`+"\n", err)
	// Output:
	// 42 2025-01-02 04:04:05 +0000 UTC <nil>
	// {"error":"token expired"}
}
