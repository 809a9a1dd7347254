package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// External accepts access tokens of an external identity provider instead
// of the gateway's own: signed RS384 or ES384 by a key the provider
// publishes at JWKSURL (fetched as its Cache-Control says), with iss
// Issuer and aud Audience, not expired. The client the token names (its
// client_id claim, else azp, else sub) must be registered and enabled
// here: it gives the practice (tenant) and the Recipient, and the scopes
// granted are those of the token's scope claim the client may have.
type External struct {
	Issuer, Audience, JWKSURL string
	Store                     Store
	Fetcher                   smart.JWKSFetcher // nil: a Fetcher
	Now                       func() time.Time

	cache    externalCache
	verified atomic.Int64 // full verifications, for tests
	once     sync.Once
	clients  *clientStates
}

func (x *External) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// externalToken is what a verified external token says, cached per token
// until it expires: the signature and claims are checked once.
type externalToken struct {
	clientID, jti, kid, alg string
	asked                   smart.Scopes
	expiry                  time.Time
}

// Verify checks an external access token; errors wrap ErrUnauthorized.
// The signature and claims are verified once per token and the result
// cached until the token's exp; on every request, the token must still
// be unexpired, its signing key still published by the provider (the JWK
// Set as the Fetcher caches it, so a key the provider withdraws stops
// verifying when its cached set goes stale) and its client registered and
// enabled (looked up in the store, so disabling the client refuses its
// tokens at once).
func (x *External) Verify(ctx context.Context, token string) (*Principal, error) {
	if x.Fetcher == nil {
		x.Fetcher = &Fetcher{Now: x.Now}
	}
	now := x.now()
	t, ok := x.cache.get(token, now)
	if !ok {
		var err error
		if t, err = x.verify(ctx, token); err != nil {
			return nil, err
		}
		if !now.Before(t.expiry) {
			// The library's leeway is for iat and nbf (clock skew); a
			// token ends at its exp, cached or not.
			return nil, fmt.Errorf("%w: external token: expired at %s", ErrUnauthorized, t.expiry.UTC().Format(time.RFC3339))
		}
		x.cache.put(token, t, now)
	} else {
		set, err := x.Fetcher.FetchJWKS(ctx, x.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("%w: external token: the provider's keys: %w", ErrUnauthorized, err)
		}
		if _, err := set.Key(t.kid, t.alg); err != nil {
			x.cache.drop(token)
			return nil, fmt.Errorf("%w: external token: its signing key is no longer published: %w", ErrUnauthorized, err)
		}
	}
	x.once.Do(func() { x.clients = newClientStates(x.Store) })
	row, err := x.clients.get(ctx, t.clientID)
	switch {
	case errors.Is(err, ErrNoClient):
		return nil, fmt.Errorf("%w: external token for %q, not a registered client", ErrUnauthorized, t.clientID)
	case err != nil:
		return nil, err
	case row.Disabled:
		return nil, fmt.Errorf("%w: client %q is disabled", ErrUnauthorized, t.clientID)
	}
	allowed, err := smart.ParseScopes(row.Scopes)
	if err != nil {
		return nil, fmt.Errorf("auth: client %q: stored scopes: %w", row.ID, err)
	}
	return &Principal{ClientID: t.clientID, Tenant: row.Tenant, Recipient: row.Recipient, Scopes: t.asked.Within(allowed),
		TokenID: t.jti, Expiry: t.expiry}, nil
}

// verify checks the token's signature and claims.
func (x *External) verify(ctx context.Context, token string) (*externalToken, error) {
	x.verified.Add(1)
	claims := jwt.MapClaims{}
	var kid, alg string
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		alg = t.Method.Alg()
		set, err := x.Fetcher.FetchJWKS(ctx, x.JWKSURL)
		if err != nil {
			return nil, err
		}
		k, err := set.Key(kid, alg)
		if err != nil {
			return nil, err
		}
		return k.PublicKey(), nil
	}, jwt.WithValidMethods([]string{smart.RS384, smart.ES384}), jwt.WithIssuer(x.Issuer), jwt.WithAudience(x.Audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(x.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: external token: %w", ErrUnauthorized, err)
	}
	id := ""
	for _, c := range []string{"client_id", "azp", "sub"} {
		if s, _ := claims[c].(string); s != "" {
			id = s
			break
		}
	}
	scope, _ := claims["scope"].(string)
	asked, err := smart.ParseScopes(scope)
	if err != nil {
		return nil, fmt.Errorf("%w: external token scope: %w", ErrUnauthorized, err)
	}
	jti, _ := claims["jti"].(string)
	exp, _ := claims.GetExpirationTime()
	return &externalToken{clientID: id, jti: jti, kid: kid, alg: alg, asked: asked, expiry: exp.Time}, nil
}

// externalCache remembers verified external tokens until they expire.
type externalCache struct {
	mu sync.Mutex
	m  map[string]*externalToken
}

func (c *externalCache) get(tok string, now time.Time) (*externalToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[tok]
	if !ok || !now.Before(t.expiry) {
		return nil, false
	}
	return t, true
}

func (c *externalCache) put(tok string, t *externalToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*externalToken{}
	}
	if len(c.m) >= maxCachedTokens {
		for k, e := range c.m {
			if !now.Before(e.expiry) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedTokens {
			clear(c.m) // only costs a verification per token
		}
	}
	c.m[tok] = t
}

func (c *externalCache) drop(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, tok)
}

// Verifiers checks a token with the gateway, or with External when the
// token's (unverified) iss is the external issuer; each then verifies it
// in full.
type Verifiers struct {
	Gateway  *Gateway
	External *External
}

// Verify implements the server's Verifier.
func (v Verifiers) Verify(ctx context.Context, token string) (*Principal, error) {
	if v.External != nil && issuerOf(token) == v.External.Issuer {
		return v.External.Verify(ctx, token)
	}
	return v.Gateway.Verify(ctx, token)
}

// issuerOf peeks at a JWT's iss without verifying anything: it only picks
// which verifier checks the token.
func issuerOf(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Iss
}
