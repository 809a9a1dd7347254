package smart

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Limits on a JWK Set read from a client or a URL: far above any real one
// (an EHR publishes a handful of keys), small enough that a hostile
// document costs little to refuse.
const (
	MaxJWKSBytes = 256 << 10
	MaxJWKSKeys  = 64
)

// JWK is one public key of a JWK Set (RFC 7517) as SMART Backend Services
// uses it: RSA (n, e) or EC P-384 (crv, x, y), with its kid and,
// optionally, the one alg, use and key_ops it is meant for. Members this
// package does not use (x5c, x5t ...) are ignored when reading and not
// written.
type JWK struct {
	KeyType   string   `json:"kty"`
	KeyID     string   `json:"kid,omitempty"`
	Algorithm string   `json:"alg,omitempty"`
	Use       string   `json:"use,omitempty"`
	KeyOps    []string `json:"key_ops,omitempty"`
	N         string   `json:"n,omitempty"`
	E         string   `json:"e,omitempty"`
	Curve     string   `json:"crv,omitempty"`
	X         string   `json:"x,omitempty"`
	Y         string   `json:"y,omitempty"`

	key crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey, once decoded
}

// JWKS is a JWK Set. Keys holds the keys this package can verify with;
// Skipped the others found when reading one (RFC 7517 section 5: keys of
// an unknown type, or with members out of range, are ignored), each with
// the reason, so that "unknown kid" can say why a key that was there was
// not usable.
type JWKS struct {
	Keys    []JWK        `json:"keys"`
	Skipped []SkippedKey `json:"-"`
}

// SkippedKey is a key of a JWK Set that cannot be used, and why.
type SkippedKey struct {
	KeyID   string
	KeyType string
	Reason  string
}

// Errors of key lookup, for errors.Is.
var (
	ErrUnknownKeyID = errors.New("no key with this kid in the JWK Set")
	ErrKeyMismatch  = errors.New("the key cannot verify this algorithm")
)

// privateMembers are JWK members that only a private or symmetric key has
// (RFC 7518 sections 6.2.2, 6.3.2, 6.4.1). A "public" JWK Set holding one
// has leaked a secret: the whole set is refused rather than used.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// ParseJWKS reads a public JWK Set. It fails when data is not a JSON
// object with a "keys" array, is over MaxJWKSBytes or MaxJWKSKeys, or holds
// private key material; keys it cannot use are listed in Skipped.
func ParseJWKS(data []byte) (*JWKS, error) {
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("smart: JWK Set of %d bytes is over the limit of %d", len(data), MaxJWKSBytes)
	}
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("smart: JWK Set is not a JSON object with a keys array: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`smart: JWK Set has no "keys" array`)
	}
	if len(*doc.Keys) > MaxJWKSKeys {
		return nil, fmt.Errorf("smart: JWK Set has %d keys, over the limit of %d", len(*doc.Keys), MaxJWKSKeys)
	}
	set := &JWKS{Keys: []JWK{}}
	for i, raw := range *doc.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, fmt.Errorf("smart: JWK Set keys[%d] is not a JSON object: %w", i, err)
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, fmt.Errorf("smart: JWK Set keys[%d] holds private key material (%q): a JWK Set given to others must hold public keys only", i, m)
			}
		}
		var k JWK
		if err := json.Unmarshal(raw, &k); err != nil {
			set.Skipped = append(set.Skipped, SkippedKey{Reason: "members of the wrong JSON type: " + err.Error()})
			continue
		}
		if err := k.decode(); err != nil {
			set.Skipped = append(set.Skipped, SkippedKey{KeyID: k.KeyID, KeyType: k.KeyType, Reason: err.Error()})
			continue
		}
		if k.KeyID == "" {
			set.Skipped = append(set.Skipped, SkippedKey{KeyType: k.KeyType, Reason: "no kid: a client assertion names its key by kid"})
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// Key returns the key whose kid is kid and that can verify alg. It fails
// with ErrUnknownKeyID (no such kid, or only unusable keys with it: the
// error says why), ErrKeyMismatch (the key is for another algorithm or
// use), or an error when two usable keys share the kid.
func (s *JWKS) Key(kid, alg string) (*JWK, error) {
	if s == nil {
		return nil, fmt.Errorf("kid %q: %w (no keys registered)", kid, ErrUnknownKeyID)
	}
	var match *JWK
	var mismatch error
	for i := range s.Keys {
		k := &s.Keys[i]
		if k.KeyID != kid {
			continue
		}
		if err := k.Supports(alg); err != nil {
			mismatch = err
			continue
		}
		if match != nil {
			return nil, fmt.Errorf("kid %q: two keys of the JWK Set share it and both verify %s", kid, alg)
		}
		match = k
	}
	if match != nil {
		return match, nil
	}
	if mismatch != nil {
		return nil, fmt.Errorf("kid %q: %w", kid, mismatch)
	}
	for _, sk := range s.Skipped {
		if sk.KeyID == kid {
			return nil, fmt.Errorf("kid %q: %w (a key with it is there but unusable: %s)", kid, ErrUnknownKeyID, sk.Reason)
		}
	}
	return nil, fmt.Errorf("kid %q: %w", kid, ErrUnknownKeyID)
}

// PublicKey is the decoded key: *rsa.PublicKey or *ecdsa.PublicKey (nil
// for a JWK neither read by ParseJWKS nor made by a SigningKey).
func (k *JWK) PublicKey() crypto.PublicKey { return k.key }

// Supports says whether the key may verify alg (RS384 or ES384): its type
// (and curve) must fit, and its alg, use and key_ops, when given, must
// allow it. The error says what does not fit and wraps ErrKeyMismatch.
func (k *JWK) Supports(alg string) error {
	switch alg {
	case RS384:
		if k.KeyType != "RSA" {
			return fmt.Errorf("%w: %s needs an RSA key, this one is %q", ErrKeyMismatch, alg, k.KeyType)
		}
	case ES384:
		if k.KeyType != "EC" || k.Curve != "P-384" {
			return fmt.Errorf("%w: %s needs an EC P-384 key, this one is %s", ErrKeyMismatch, alg, strings.TrimSpace(k.KeyType+" "+k.Curve))
		}
	default:
		return fmt.Errorf("%w: algorithm %q is not %s or %s", ErrKeyMismatch, alg, RS384, ES384)
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return fmt.Errorf("%w: the key is registered for alg %q, not %s", ErrKeyMismatch, k.Algorithm, alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("%w: the key's use is %q, not sig", ErrKeyMismatch, k.Use)
	}
	if len(k.KeyOps) > 0 && !slices.Contains(k.KeyOps, "verify") {
		return fmt.Errorf("%w: the key's key_ops %v do not include verify", ErrKeyMismatch, k.KeyOps)
	}
	return nil
}

// Thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// public members in lexicographic order, base64url without padding. It is
// computed from the decoded key, so leading zero octets some encoders put
// in n do not change it.
func (k *JWK) Thumbprint() string {
	var canon string
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		c := rsaJWK(pub)
		canon = `{"e":"` + c.E + `","kty":"RSA","n":"` + c.N + `"}`
	case *ecdsa.PublicKey:
		c, err := ecJWK(pub)
		if err != nil {
			return ""
		}
		canon = `{"crv":"` + c.Curve + `","kty":"EC","x":"` + c.X + `","y":"` + c.Y + `"}`
	default:
		return ""
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

var b64 = base64.RawURLEncoding

// decode checks the key's members and sets k.key.
func (k *JWK) decode() error {
	switch k.KeyType {
	case "RSA":
		n, err := b64.DecodeString(k.N)
		if err != nil || len(n) == 0 {
			return errors.New(`RSA key with a missing or malformed "n"`)
		}
		e, err := b64.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return errors.New(`RSA key with a missing or malformed "e"`)
		}
		eb := new(big.Int).SetBytes(e)
		if !eb.IsInt64() || eb.Int64() > 1<<31-1 {
			return errors.New(`RSA key with an exponent out of range`)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eb.Int64())}
		if err := checkRSAPublic(pub); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "smart: "))
		}
		k.key = pub
	case "EC":
		if k.Curve != "P-384" {
			return fmt.Errorf("EC key on curve %q: only P-384 (%s) is accepted", k.Curve, ES384)
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 48 || len(y) != 48 {
			return errors.New(`EC P-384 key whose "x" or "y" is not 48 octets of base64url`)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), slices.Concat([]byte{4}, x, y))
		if err != nil {
			return fmt.Errorf("EC P-384 key that is not a point on the curve: %v", err)
		}
		k.key = pub
	case "":
		return errors.New(`no "kty"`)
	default:
		return fmt.Errorf("key type %q: only RSA and EC are used by SMART Backend Services", k.KeyType)
	}
	if k.Algorithm != "" && k.Algorithm != RS384 && k.Algorithm != ES384 {
		return fmt.Errorf("alg %q: only %s and %s are accepted", k.Algorithm, RS384, ES384)
	}
	return nil
}

func rsaJWK(pub *rsa.PublicKey) JWK {
	e := big.NewInt(int64(pub.E)).Bytes()
	return JWK{KeyType: "RSA", N: b64.EncodeToString(pub.N.Bytes()), E: b64.EncodeToString(e), key: pub}
}

func ecJWK(pub *ecdsa.PublicKey) (JWK, error) {
	raw, err := pub.Bytes() // 0x04 || x || y, each coordinate full length
	if err != nil || len(raw) != 97 {
		return JWK{}, errors.New("smart: the EC key is not a valid P-384 public key")
	}
	return JWK{KeyType: "EC", Curve: "P-384", X: b64.EncodeToString(raw[1:49]), Y: b64.EncodeToString(raw[49:]), key: pub}, nil
}

// MarshalJSON writes {"keys": [...]}, never null, with the usable keys only.
func (s JWKS) MarshalJSON() ([]byte, error) {
	keys := s.Keys
	if keys == nil {
		keys = []JWK{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Keys []JWK `json:"keys"`
	}{keys}); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
