package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Mint returns an HS256 token for accountID, signed with secret, carrying iat
// (now), exp (now+ttl) and accountClaim as a JSON number. Times have
// whole-second precision, so ttl must be at least one second. A zero now means
// time.Now(). Errors describe bad arguments and never contain the secret.
func Mint(secret []byte, accountClaim string, accountID int64, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: secret is empty")
	}
	if err := checkClaimName(accountClaim); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if accountID <= 0 {
		return "", fmt.Errorf("mint token: account id %d is not positive", accountID)
	}
	if ttl < time.Second {
		return "", fmt.Errorf("mint token: ttl %v is shorter than 1s", ttl)
	}
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.MapClaims{
		"iat":        jwt.NewNumericDate(now),
		"exp":        jwt.NewNumericDate(now.Add(ttl)),
		accountClaim: accountID,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}
