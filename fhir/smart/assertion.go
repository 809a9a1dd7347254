package smart

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Lifetimes of a client assertion. SMART allows exp at most five minutes
// ahead; a client asks for four, so that a server whose clock is behind
// the client's by up to a minute still accepts it.
const (
	MaxAssertionLifetime     = 5 * time.Minute
	DefaultAssertionLifetime = 4 * time.Minute
)

// The token request's fixed values (SMART Backend Services, RFC 7523).
const (
	GrantClientCredentials = "client_credentials"
	AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Assertion is what a client puts in its client assertion.
type Assertion struct {
	ClientID string // iss and sub
	TokenURL string // aud: the token endpoint the assertion is sent to
	// JKU, when set, goes into the header: the URL where the client's JWK
	// Set is published, as registered with the server (Epic requires one
	// for apps registered from 2026-02-23).
	JKU string
	// IssuedAt is iat; the zero value means time.Now().
	IssuedAt time.Time
	// Lifetime sets exp = iat + Lifetime; zero means
	// DefaultAssertionLifetime. Over MaxAssertionLifetime is an error.
	Lifetime time.Duration
	// ID is jti; empty means 128 random bits. Set it only in tests: a
	// server refuses a jti it has seen.
	ID string
}

// Sign builds and signs the client assertion: header alg (the key's),
// kid, typ=JWT and jku when given; claims iss = sub = ClientID, aud =
// TokenURL, iat, exp and a unique jti.
func (k *SigningKey) Sign(a Assertion) (string, error) {
	if a.ClientID == "" {
		return "", errors.New("smart: a client assertion needs the client id")
	}
	if u, err := url.Parse(a.TokenURL); err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("smart: a client assertion's aud must be the absolute token URL, not %q", a.TokenURL)
	}
	life := a.Lifetime
	if life == 0 {
		life = DefaultAssertionLifetime
	}
	if life < 0 || life > MaxAssertionLifetime {
		return "", fmt.Errorf("smart: assertion lifetime %s is outside (0, %s]", life, MaxAssertionLifetime)
	}
	iat := a.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	jti := a.ID
	if jti == "" {
		jti = NewID()
	}
	method := k.method()
	if method == nil {
		return "", fmt.Errorf("smart: key algorithm %q cannot sign a client assertion", k.alg)
	}
	// MapClaims, not RegisteredClaims: aud stays a single string (as SMART
	// shows it) without touching jwt.MarshalSingleStringAsArray, a global.
	t := jwt.NewWithClaims(method, jwt.MapClaims{
		"iss": a.ClientID,
		"sub": a.ClientID,
		"aud": a.TokenURL,
		"iat": iat.Unix(),
		"exp": iat.Add(life).Unix(),
		"jti": jti,
	})
	t.Header["kid"] = k.kid // golang-jwt never sets kid itself
	if a.JKU != "" {
		t.Header["jku"] = a.JKU
	}
	s, err := t.SignedString(k.signer)
	if err != nil {
		return "", fmt.Errorf("smart: signing the client assertion: %w", err)
	}
	return s, nil
}

// NewID returns 128 random bits, base64url: a jti, or any other id that
// must not repeat.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b[:])
}

// TokenRequestForm is the body of a token request with a client assertion
// (application/x-www-form-urlencoded).
func TokenRequestForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {GrantClientCredentials},
		"client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
}
