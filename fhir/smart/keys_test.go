package smart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
)

// Test keys are generated once per test binary: an RSA 3072 key takes up
// to a second or two on a shared machine.
var (
	keysOnce           sync.Once
	testRSA, testEC    *SigningKey
	testRSA2, testEC2  *SigningKey // other keys, never registered
	testRSA2048Private *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if testRSA, err = GenerateKey(RS384); err != nil {
			panic(err)
		}
		if testEC, err = GenerateKey(ES384); err != nil {
			panic(err)
		}
		if testEC2, err = GenerateKey(ES384); err != nil {
			panic(err)
		}
		if testRSA2048Private, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if testRSA2, err = NewSigningKey(testRSA2048Private); err != nil {
			panic(err)
		}
	})
}

func TestGenerateKeyRoundTrip(t *testing.T) {
	testKeys(t)
	for _, k := range []*SigningKey{testRSA, testEC} {
		t.Run(k.Alg(), func(t *testing.T) {
			switch k.Alg() {
			case RS384:
				if bits := k.signer.(*rsa.PrivateKey).N.BitLen(); bits != GeneratedRSABits {
					t.Fatalf("RSA key of %d bits, want %d", bits, GeneratedRSABits)
				}
			case ES384:
				if c := k.signer.(*ecdsa.PrivateKey).Curve; c != elliptic.P384() {
					t.Fatalf("curve %s, want P-384", c.Params().Name)
				}
			}
			pemBytes, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n") {
				t.Fatalf("PEM does not start with a PKCS #8 block: %.40q", pemBytes)
			}
			back, err := ParsePrivateKeyPEM(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			if back.KeyID() != k.KeyID() || back.Alg() != k.Alg() {
				t.Fatalf("read back %s, want %s", back, k)
			}
			// The public JWKS, through JSON and back, finds the key by kid.
			data, err := json.Marshal(k.PublicJWKS())
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), `"d"`) {
				t.Fatalf("public JWKS holds private material: %s", data)
			}
			set, err := ParseJWKS(data)
			if err != nil {
				t.Fatal(err)
			}
			jwk, err := set.Key(k.KeyID(), k.Alg())
			if err != nil {
				t.Fatal(err)
			}
			if jwk.Thumbprint() != k.KeyID() || jwk.Algorithm != k.Alg() || jwk.Use != "sig" {
				t.Fatalf("JWK %+v: thumbprint %s, want kid %s alg %s use sig", jwk, jwk.Thumbprint(), k.KeyID(), k.Alg())
			}
			// The key's String and GoString never show key material.
			for _, s := range []string{k.String(), k.GoString()} {
				if !strings.Contains(s, k.KeyID()) || len(s) > 100 {
					t.Fatalf("String() = %q", s)
				}
			}
		})
	}
}

func TestGenerateKeyRefusesOtherAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "HS256", "none", ""} {
		if _, err := GenerateKey(alg); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", alg)
		}
	}
}

// TestThumbprintRFC7638 checks the thumbprint against the worked example
// of RFC 7638 section 3.1.
func TestThumbprintRFC7638(t *testing.T) {
	set, err := ParseJWKS([]byte(`{"keys":[{"kty":"RSA","kid":"2011-04-29","alg":"RS384",
	"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	"e":"AQAB"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys %v, skipped %v", set.Keys, set.Skipped)
	}
	if got, want := set.Keys[0].Thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	testKeys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSA2048Private)})
	ecDER, err := x509.MarshalECPrivateKey(testEC.signer.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes the curve first.
	sec1 := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 43, 129, 4, 0, 34}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKCS8PrivateKey(p256)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa1024DER, _ := x509.MarshalPKCS8PrivateKey(rsa1024)
	rsaPEM, _ := testRSA.MarshalPEM()
	ecPEM, _ := testEC.MarshalPEM()

	for _, tc := range []struct {
		name    string
		pem     []byte
		wantKID string
		wantErr string
	}{
		{"PKCS #8 RSA", rsaPEM, testRSA.KeyID(), ""},
		{"PKCS #8 EC", ecPEM, testEC.KeyID(), ""},
		{"PKCS #1 RSA", pkcs1, testRSA2.KeyID(), ""},
		{"SEC 1 EC after EC PARAMETERS", sec1, testEC.KeyID(), ""},
		{"P-256", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p256DER}), "", "P-384"},
		{"RSA 1024", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsa1024DER}), "", "too small"},
		{"encrypted PKCS #8", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "", "encrypted"},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), "", "encrypted"},
		{"two keys", append(append([]byte{}, rsaPEM...), ecPEM...), "", "more than one"},
		{"no key", []byte("not a key"), "", "no PEM private key"},
		{"garbage in a block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), "", "reading the PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tc.pem)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyID() != tc.wantKID {
				t.Fatalf("kid %s, want %s", k.KeyID(), tc.wantKID)
			}
		})
	}
}
