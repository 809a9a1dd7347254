package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// The two signing algorithms of SMART Backend Services: a client supports
// both, a server accepts no other.
const (
	RS384 = "RS384" // RSASSA-PKCS1-v1_5 with SHA-384
	ES384 = "ES384" // ECDSA on P-384 with SHA-384
)

// validMethods is what every parse of an assertion allows
// (jwt.WithValidMethods); a fresh slice each time, so nobody can widen it.
func validMethods() []string { return []string{RS384, ES384} }

// Key sizes. RSA keys are generated at 3072 bits (NIST SP 800-57's size
// for use beyond 2030); keys of at least 2048 bits, the floor of RFC 7518
// section 3.3, are accepted from others.
const (
	GeneratedRSABits = 3072
	MinRSABits       = 2048
)

// SigningKey is a client's private key for signing client assertions,
// with its algorithm and key id. The key id is the RFC 7638 thumbprint of
// the public key, so the same key always has the same kid and the public
// JWKS can be rebuilt from the private key alone.
type SigningKey struct {
	alg    string
	kid    string
	signer crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
	public JWK
}

// GenerateKey makes a new key for alg: RS384 an RSA 3072-bit key, ES384 a
// P-384 key.
func GenerateKey(alg string) (*SigningKey, error) {
	switch alg {
	case RS384:
		k, err := rsa.GenerateKey(rand.Reader, GeneratedRSABits)
		if err != nil {
			return nil, fmt.Errorf("smart: generating an RSA key: %w", err)
		}
		return NewSigningKey(k)
	case ES384:
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("smart: generating a P-384 key: %w", err)
		}
		return NewSigningKey(k)
	}
	return nil, fmt.Errorf("smart: cannot generate a key for algorithm %q: SMART Backend Services uses %s or %s", alg, RS384, ES384)
}

// NewSigningKey wraps an *rsa.PrivateKey (RS384, at least 2048 bits) or a
// P-384 *ecdsa.PrivateKey (ES384).
func NewSigningKey(priv crypto.Signer) (*SigningKey, error) {
	var pub JWK
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("smart: invalid RSA key: %w", err)
		}
		if err := checkRSAPublic(&k.PublicKey); err != nil {
			return nil, err
		}
		pub = rsaJWK(&k.PublicKey)
		pub.Algorithm = RS384
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("smart: an ECDSA key on %s cannot sign %s, which needs P-384", k.Curve.Params().Name, ES384)
		}
		var err error
		if pub, err = ecJWK(&k.PublicKey); err != nil {
			return nil, err
		}
		pub.Algorithm = ES384
	default:
		return nil, fmt.Errorf("smart: unsupported private key type %T: SMART Backend Services signs with RSA (%s) or P-384 (%s)", priv, RS384, ES384)
	}
	pub.Use = "sig"
	pub.KeyID = pub.Thumbprint()
	return &SigningKey{alg: pub.Algorithm, kid: pub.KeyID, signer: priv, public: pub}, nil
}

// Alg is RS384 or ES384.
func (k *SigningKey) Alg() string { return k.alg }

// method is the JWS method of k's algorithm, nil for none of ours.
func (k *SigningKey) method() jwt.SigningMethod {
	switch k.alg {
	case RS384:
		return jwt.SigningMethodRS384
	case ES384:
		return jwt.SigningMethodES384
	}
	return nil
}

// KeyID is the key's kid: its RFC 7638 thumbprint (SHA-256, base64url).
func (k *SigningKey) KeyID() string { return k.kid }

// Public is the public half as a JWK with kid, alg and use=sig.
func (k *SigningKey) Public() JWK { return k.public }

// PublicJWKS is the JWK Set holding just this key's public half, as a
// client publishes it or registers it with an EHR.
func (k *SigningKey) PublicJWKS() *JWKS { return &JWKS{Keys: []JWK{k.public}} }

// The key's material never reaches a log or an error message through fmt.
func (k *SigningKey) String() string   { return "SigningKey(" + k.alg + ", kid " + k.kid + ")" }
func (k *SigningKey) GoString() string { return k.String() }

// MarshalPEM encodes the private key as PKCS #8 ("PRIVATE KEY"), the form
// openssl and every JOSE library read.
func (k *SigningKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, fmt.Errorf("smart: encoding the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads one private key from PEM: PKCS #8 ("PRIVATE
// KEY"), PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"; an "EC
// PARAMETERS" block before it, as openssl ecparam writes, is skipped). Its
// algorithm follows from the key: RSA is RS384, P-384 is ES384. Encrypted
// keys, other curves and RSA keys under 2048 bits are refused, as is a
// file holding more than one private key (which one would be meant?).
func ParsePrivateKeyPEM(data []byte) (*SigningKey, error) {
	var found *pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "EC PARAMETERS", "PUBLIC KEY", "CERTIFICATE":
			continue
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("smart: the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)")
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if _, enc := b.Headers["Proc-Type"]; enc {
				return nil, errors.New("smart: the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)")
			}
			if found != nil {
				return nil, errors.New("smart: the PEM holds more than one private key; give one key per file")
			}
			found = b
		default:
			return nil, fmt.Errorf("smart: unexpected PEM block %q; want a PRIVATE KEY", b.Type)
		}
	}
	if found == nil {
		return nil, errors.New("smart: no PEM private key found")
	}
	var priv any
	var err error
	switch found.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(found.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("smart: reading the %s: %w", found.Type, err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("smart: unsupported private key type %T", priv)
	}
	return NewSigningKey(s)
}

func checkRSAPublic(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < MinRSABits {
		bits := 0
		if k.N != nil {
			bits = k.N.BitLen()
		}
		return fmt.Errorf("smart: an RSA key of %d bits is too small: at least %d are required", bits, MinRSABits)
	}
	if k.E < 3 || k.E%2 == 0 {
		return fmt.Errorf("smart: RSA public exponent %d is not valid", k.E)
	}
	return nil
}
