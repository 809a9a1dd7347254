package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the server side of SMART Backend Services: a token endpoint
// that checks a client's token request (Validator) and grants it an access
// token, and the check of that token on every later request (Verify).
// Access tokens are JWTs signed with Keys[0]; every key in Keys verifies,
// so a key is rotated by putting the new one first and keeping the old
// one until the tokens it signed have expired. Being self-contained, a
// token issued by one replica is accepted by every replica with the same
// keys. The EHR sandbox uses it; the gateway's own authorization will.
type Issuer struct {
	Validator *Validator
	Keys      []*SigningKey
	// Name is the iss and aud of the access tokens: the base URL of the
	// API they open.
	Name string
	// Lifetime of an access token; default DefaultTokenLifetime.
	Lifetime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultTokenLifetime is five minutes, as SMART recommends for backend
// services (no refresh tokens: a client asks again).
const DefaultTokenLifetime = 5 * time.Minute

// AccessToken is what a verified access token grants.
type AccessToken struct {
	ClientID string
	Scopes   Scopes
	ID       string // jti, for audit
	Expiry   time.Time
}

func (is *Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

func (is *Issuer) lifetime() time.Duration {
	if is.Lifetime > 0 {
		return is.Lifetime
	}
	return DefaultTokenLifetime
}

// Issue checks a token request (the POST form) and returns the token
// response. The scopes granted are those asked for that the client's
// registered scopes allow (Scopes.Within); asking for nothing it may have
// is an invalid_scope refusal. Refusals are *ValidationError.
func (is *Issuer) Issue(ctx context.Context, form url.Values) (*TokenResponse, error) {
	if is.Validator == nil || len(is.Keys) == 0 || is.Name == "" {
		return nil, errors.New("smart: Issuer needs a Validator, a key and a Name")
	}
	req, err := is.Validator.ValidateTokenRequest(ctx, form)
	if err != nil {
		return nil, err
	}
	return is.Grant(req.Assertion.Client, req.Scopes)
}

// Grant issues client an access token for the requested scopes its
// registration allows, once the caller has authenticated the client by
// other means than an assertion (a sandbox's client_secret_basic);
// asking for nothing it may have is an invalid_scope refusal.
func (is *Issuer) Grant(client *Client, requested Scopes) (*TokenResponse, error) {
	if len(is.Keys) == 0 || is.Name == "" || client == nil {
		return nil, errors.New("smart: Grant needs a key, a Name and a client")
	}
	granted := requested.Within(client.Scopes)
	if len(granted.Resources) == 0 {
		return nil, refuse(FieldScope, "none of %q is allowed for client %q", clip(requested.String()), clip(client.ID))
	}
	now := is.now()
	exp := now.Add(is.lifetime())
	key := is.Keys[0]
	if key.method() == nil {
		return nil, fmt.Errorf("smart: key algorithm %q cannot sign an access token", key.Alg())
	}
	tok := jwt.NewWithClaims(key.method(), jwt.MapClaims{
		"iss": is.Name, "aud": is.Name, "sub": client.ID, "client_id": client.ID,
		"scope": granted.String(), "iat": now.Unix(), "exp": exp.Unix(), "jti": NewID(),
	})
	tok.Header["kid"] = key.KeyID()
	signed, err := tok.SignedString(key.signer)
	if err != nil {
		return nil, fmt.Errorf("smart: sign access token: %w", err)
	}
	return &TokenResponse{AccessToken: signed, TokenType: "bearer", ExpiresIn: int64(is.lifetime() / time.Second), Scope: granted.String()}, nil
}

// ErrInvalidToken is wrapped by Verify for any token it does not accept.
var ErrInvalidToken = errors.New("smart: invalid access token")

// Verify checks an access token this Issuer (or one with the same keys)
// issued: signature by one of Keys (RS384 or ES384 only), iss and aud
// equal to Name, not expired. The error wraps ErrInvalidToken and says
// why, for the log; a client is only told the token is invalid.
func (is *Issuer) Verify(token string) (*AccessToken, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range is.Keys {
			if k.KeyID() == kid {
				if k.Alg() != t.Method.Alg() {
					return nil, fmt.Errorf("key %s is for %s, not %s", kid, k.Alg(), t.Method.Alg())
				}
				pub := k.Public()
				return pub.PublicKey(), nil
			}
		}
		return nil, fmt.Errorf("no key with kid %q", kid)
	}, jwt.WithValidMethods(validMethods()), jwt.WithIssuer(is.Name), jwt.WithAudience(is.Name),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(is.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	client, _ := claims["client_id"].(string)
	scope, _ := claims["scope"].(string)
	jti, _ := claims["jti"].(string)
	scopes, err := ParseScopes(scope)
	if err != nil || client == "" {
		return nil, fmt.Errorf("%w: claims client_id %q, scope %q", ErrInvalidToken, clip(client), clip(scope))
	}
	exp, _ := claims.GetExpirationTime()
	return &AccessToken{ClientID: client, Scopes: scopes, ID: jti, Expiry: exp.Time}, nil
}

// TokenHandler is the token endpoint: POST with an
// application/x-www-form-urlencoded body. It answers the token response,
// or an RFC 6749 error (400 invalid_request/invalid_scope/
// unsupported_grant_type, 401 invalid_client) naming the field, never a
// stack of the validator's internals; Cache-Control: no-store either way.
func (is *Issuer) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeTokenError(w, http.StatusMethodNotAllowed, &TokenError{Code: "invalid_request", Description: "the token endpoint takes POST"})
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			writeTokenError(w, http.StatusBadRequest, &TokenError{Code: "invalid_request", Description: "the body must be application/x-www-form-urlencoded"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeTokenError(w, http.StatusBadRequest, &TokenError{Code: "invalid_request", Description: "the form could not be read"})
			return
		}
		resp, err := is.Issue(r.Context(), r.PostForm)
		var ve *ValidationError
		switch {
		case errors.As(err, &ve):
			status := http.StatusBadRequest
			if ve.OAuthError() == "invalid_client" {
				status = http.StatusUnauthorized
			}
			writeTokenError(w, status, &TokenError{Code: ve.OAuthError(), Description: ve.Error()})
			return
		case err != nil:
			writeTokenError(w, http.StatusInternalServerError, &TokenError{Code: "server_error", Description: "the token could not be issued"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

func writeTokenError(w http.ResponseWriter, status int, e *TokenError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// BearerToken returns the token of an "Authorization: Bearer ..." header,
// or "" when there is none.
func BearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
