package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"os"
	"testing"
)

// TestParseJWKSFixture reads a key set shaped like real issuers' (signing and
// encryption RSA keys, P-256 and P-384 keys, a symmetric key) and keeps only
// what each algorithm may use.
func TestParseJWKSFixture(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/jwks/mixed.json")
	if err != nil {
		t.Fatal(err)
	}
	for alg, want := range map[string]string{AlgRS256: "rsa-sig-2025", AlgES256: "ec-p256-2025"} {
		keys, skipped, err := parseJWKS(data, alg)
		if err != nil {
			t.Fatalf("%s: parseJWKS: %v", alg, err)
		}
		if _, ok := keys[want]; !ok || len(keys) != 1 || len(skipped) != 4 {
			t.Errorf("%s: keys %v, skipped %+v; want only %s and 4 skipped", alg, keys, skipped, want)
		}
	}
}

// FuzzJWKS feeds arbitrary documents to the JWKS parser for both algorithms.
// It must never panic, and whatever it accepts must be a usable key of the
// pinned type.
func FuzzJWKS(f *testing.F) {
	rk, ek := testRSAKeys(), testECKeys()
	fixture, err := os.ReadFile("testdata/jwks/mixed.json")
	if err != nil {
		f.Fatal(err)
	}
	doc := func(keys ...any) []byte {
		b, err := json.Marshal(map[string]any{"keys": keys})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := doc(rsaJWK("r", &rk[0].PublicKey), ecJWK("e", &ek[0].PublicKey))
	for _, seed := range [][]byte{
		fixture,
		good,
		good[:len(good)/2], // split mid-key
		doc(),
		doc(map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
		doc(map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
		doc(map[string]any{"kty": "EC", "crv": "P-256", "x": "", "y": ""}),
		doc(map[string]any{"kty": "RSA", "kid": 1, "use": []int{}}),
		doc(rsaJWK("r", &rk[0].PublicKey), rsaJWK("r", &rk[1].PublicKey)),
		[]byte(`{"keys":null}`),
		[]byte(`{"keys":[null,1,"x",[],{}]}`),
		[]byte(`{"KEYS":[{"KTY":"RSA"}]}`),
		[]byte(`[]`),
		[]byte(``),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, alg := range []string{AlgRS256, AlgES256} {
			keys, _, err := parseJWKS(data, alg)
			if err != nil {
				if keys != nil {
					t.Fatalf("%s: keys %v returned with error %v", alg, keys, err)
				}
				continue
			}
			if len(keys) == 0 {
				t.Fatalf("%s: no keys and no error", alg)
			}
			for kid, k := range keys {
				switch k.(type) {
				case *rsa.PublicKey:
					if alg != AlgRS256 {
						t.Fatalf("%s: kid %q is an RSA key", alg, kid)
					}
				case *ecdsa.PublicKey:
					if alg != AlgES256 {
						t.Fatalf("%s: kid %q is an EC key", alg, kid)
					}
				default:
					t.Fatalf("%s: kid %q is a %T", alg, kid, k)
				}
				if err := checkKey(k, alg); err != nil {
					t.Fatalf("%s: kid %q accepted but %v", alg, kid, err)
				}
			}
		}
	})
}
