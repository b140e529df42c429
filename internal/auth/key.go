package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// RSA modulus bounds. 2048 bits is the floor of RFC 7518 section 3.3; the
// ceiling only keeps a hostile or broken key set from making every
// verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// parsePublicKeyPEM decodes the one PEM block of data and returns the key it
// holds if it suits alg. Errors describe the block, never its bytes.
func parsePublicKeyPEM(data []byte, alg string) (any, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("public key: no PEM block found")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("public key: more than one PEM block; give exactly one public key or certificate")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("public key: PEM block %q is a private key; configure the public key only", block.Type)
		}
		return nil, fmt.Errorf("public key: unsupported PEM block %q (want PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("public key: parse %q block: %w", block.Type, err)
	}
	if err := checkKey(pub, alg); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return pub, nil
}

// checkKey reports whether pub can verify alg signatures: an RSA key of
// minRSABits to maxRSABits for RS256, a P-256 key for ES256.
func checkKey(pub any, alg string) error {
	switch alg {
	case AlgRS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA key, got %s", alg, keyKind(pub))
		}
		return checkRSA(k)
	case AlgES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an EC P-256 key, got %s", alg, keyKind(pub))
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%s needs an EC P-256 key, got curve %s", alg, k.Curve.Params().Name)
		}
		return nil
	default:
		return fmt.Errorf("algorithm %q takes no public key", alg)
	}
}

// checkRSA bounds the modulus size and the public exponent.
func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.Sign() <= 0 {
		return errors.New("RSA key has no modulus")
	}
	if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return fmt.Errorf("RSA key has %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	if k.E < 3 || k.E > 1<<31-1 || k.E%2 == 0 {
		return fmt.Errorf("RSA key has an invalid public exponent %d", k.E)
	}
	return nil
}

// keyKind names a public key's type for error messages.
func keyKind(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "an RSA key"
	case *ecdsa.PublicKey:
		return "an EC key on " + k.Curve.Params().Name
	default:
		return fmt.Sprintf("a %T", pub)
	}
}
