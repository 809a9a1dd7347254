package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
}

func (x *External) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// Verify checks an external access token; errors wrap ErrUnauthorized.
func (x *External) Verify(ctx context.Context, token string) (*Principal, error) {
	if x.Fetcher == nil {
		x.Fetcher = &Fetcher{Now: x.Now}
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		set, err := x.Fetcher.FetchJWKS(ctx, x.JWKSURL)
		if err != nil {
			return nil, err
		}
		k, err := set.Key(kid, t.Method.Alg())
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
	row, err := x.Store.AuthClient(ctx, id)
	switch {
	case errors.Is(err, ErrNoClient):
		return nil, fmt.Errorf("%w: external token for %q, not a registered client", ErrUnauthorized, id)
	case err != nil:
		return nil, err
	case row.Disabled:
		return nil, fmt.Errorf("%w: client %q is disabled", ErrUnauthorized, id)
	}
	client, err := ClientOf(row)
	if err != nil {
		return nil, err
	}
	scope, _ := claims["scope"].(string)
	asked, err := smart.ParseScopes(scope)
	if err != nil {
		return nil, fmt.Errorf("%w: external token scope: %w", ErrUnauthorized, err)
	}
	jti, _ := claims["jti"].(string)
	exp, _ := claims.GetExpirationTime()
	return &Principal{ClientID: id, Tenant: row.Tenant, Recipient: row.Recipient, Scopes: asked.Within(client.Scopes),
		TokenID: jti, Expiry: exp.Time}, nil
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
