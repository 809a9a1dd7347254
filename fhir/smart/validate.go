package smart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Field names what a token request or its client assertion got wrong: a
// header member, a claim, a form parameter, or the signature.
type Field string

// The fields a ValidationError can name.
const (
	FieldAssertion     Field = "client_assertion" // missing, too long, or not a compact JWS
	FieldAlg           Field = "alg"
	FieldTyp           Field = "typ"
	FieldKID           Field = "kid"
	FieldJKU           Field = "jku"
	FieldCrit          Field = "crit"
	FieldIss           Field = "iss" // also: no such client, or a disabled one
	FieldSub           Field = "sub"
	FieldAud           Field = "aud"
	FieldExp           Field = "exp"
	FieldNbf           Field = "nbf"
	FieldIat           Field = "iat"
	FieldJTI           Field = "jti" // missing, or replayed
	FieldSignature     Field = "signature"
	FieldGrantType     Field = "grant_type"
	FieldAssertionType Field = "client_assertion_type"
	FieldClientID      Field = "client_id"
	FieldScope         Field = "scope"
)

// ValidationError is a refused token request: which field failed and why.
// Reason never holds the assertion or a key. OAuthError gives the error
// code (RFC 6749 section 5.2) a token endpoint answers with.
type ValidationError struct {
	Field  Field
	Reason string
	Err    error // the cause, when there is one (for errors.Is)
}

func (e *ValidationError) Error() string {
	return "smart: token request refused: " + string(e.Field) + ": " + e.Reason
}

func (e *ValidationError) Unwrap() error { return e.Err }

// OAuthError is the RFC 6749 error code: unsupported_grant_type for a
// wrong grant_type, invalid_request for a malformed request,
// invalid_scope, and invalid_client for every failure to authenticate the
// client (as SMART Backend Services requires).
func (e *ValidationError) OAuthError() string {
	switch e.Field {
	case FieldGrantType:
		return "unsupported_grant_type"
	case FieldAssertionType, FieldClientID:
		return "invalid_request"
	case FieldScope:
		return "invalid_scope"
	}
	return "invalid_client"
}

func refuse(f Field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: f, Reason: fmt.Sprintf(format, args...)}
}

// Client is a client registered with a SMART token endpoint.
type Client struct {
	ID string
	// JWKS holds keys registered with the client; JWKSURL is where the
	// client publishes them. An assertion whose header has jku is checked
	// against JWKSURL only, and jku must equal it.
	JWKS     *JWKS
	JWKSURL  string
	Disabled bool
	// Scopes the client may be granted (see Scopes.Within).
	Scopes Scopes
}

// ErrUnknownClient is returned by a ClientRegistry for an id it does not
// know.
var ErrUnknownClient = errors.New("smart: no client registered with this id")

// ClientRegistry finds a registered client. It returns ErrUnknownClient
// (possibly wrapped) for an unknown id; any other error fails the request
// as a server error, not as the client's fault.
type ClientRegistry interface {
	Client(ctx context.Context, id string) (*Client, error)
}

// Clients is a ClientRegistry in a map, keyed by client id.
type Clients map[string]*Client

// Client implements ClientRegistry.
func (m Clients) Client(_ context.Context, id string) (*Client, error) {
	if c, ok := m[id]; ok {
		return c, nil
	}
	return nil, ErrUnknownClient
}

// JWKSFetcher gets the JWK Set a client publishes at url. A fetcher that
// caches (honouring Cache-Control) comes with the gateway's own token
// endpoint; until then a client with only a JWKSURL needs one supplied.
type JWKSFetcher interface {
	FetchJWKS(ctx context.Context, url string) (*JWKS, error)
}

// Defaults of a Validator.
const (
	DefaultLeeway     = 30 * time.Second
	MaxAssertionBytes = 16 << 10
	maxJTILength      = 255
)

// Validator checks token requests and client assertions as a SMART
// Backend Services token endpoint must. Its zero value is not usable:
// TokenURL and Clients are required; the rest have defaults.
type Validator struct {
	// TokenURL is this server's token endpoint: the only aud accepted.
	TokenURL string
	Clients  ClientRegistry
	// Fetcher gets a client's JWK Set from its JWKSURL; nil means clients
	// must have their keys registered in JWKS (and send no jku).
	Fetcher JWKSFetcher
	// Replay remembers jti values; nil means an in-memory cache, created on
	// first use, that forgets everything when the process ends. A server
	// that must refuse replays across restarts (and across replicas)
	// supplies a persistent one.
	Replay ReplayCache
	// Leeway allowed for clock skew on exp, nbf and iat; zero means
	// DefaultLeeway, a negative value none.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	once   sync.Once
	memory *MemoryReplayCache
}

// VerifiedAssertion is a client assertion that passed every check.
type VerifiedAssertion struct {
	Client   *Client
	KeyID    string
	Alg      string
	ID       string // jti
	IssuedAt time.Time
	Expiry   time.Time
}

// TokenRequest is a token request that passed every check: its client is
// authenticated and its scope parsed. Granting (Scope.Within the client's
// allowed scopes) is the caller's decision.
type TokenRequest struct {
	Assertion *VerifiedAssertion
	Scopes    Scopes
}

func (v *Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Validator) leeway() time.Duration {
	switch {
	case v.Leeway < 0:
		return 0
	case v.Leeway == 0:
		return DefaultLeeway
	}
	return v.Leeway
}

func (v *Validator) replay() ReplayCache {
	if v.Replay != nil {
		return v.Replay
	}
	v.once.Do(func() { v.memory = &MemoryReplayCache{Now: v.Now} })
	return v.memory
}

// ValidateTokenRequest checks a token request's form (the POST body, as
// url.Values) and then its client assertion. Each parameter may appear at
// most once (RFC 6749 section 3.2); grant_type must be
// client_credentials, client_assertion_type the JWT bearer type, scope
// present and well formed, client_id (optional) equal to the assertion's
// iss. Failures are *ValidationError.
func (v *Validator) ValidateTokenRequest(ctx context.Context, form url.Values) (*TokenRequest, error) {
	for _, name := range []Field{FieldGrantType, FieldAssertionType, FieldAssertion, FieldScope, FieldClientID} {
		if len(form[string(name)]) > 1 {
			return nil, refuse(name, "the parameter appears %d times; it may appear once", len(form[string(name)]))
		}
	}
	if g := form.Get("grant_type"); g != GrantClientCredentials {
		return nil, refuse(FieldGrantType, "%q is not supported: SMART Backend Services uses %q", clip(g), GrantClientCredentials)
	}
	if t := form.Get("client_assertion_type"); t != AssertionTypeJWTBearer {
		return nil, refuse(FieldAssertionType, "%q is not %q", clip(t), AssertionTypeJWTBearer)
	}
	if form.Get("client_assertion") == "" {
		return nil, refuse(FieldAssertion, "missing")
	}
	if strings.TrimSpace(form.Get("scope")) == "" {
		return nil, refuse(FieldScope, "missing: a backend service asks for system/ scopes")
	}
	scopes, err := ParseScopes(form.Get("scope"))
	if err != nil {
		return nil, &ValidationError{Field: FieldScope, Reason: strings.TrimPrefix(err.Error(), "smart: "), Err: err}
	}
	a, err := v.ValidateAssertion(ctx, form.Get("client_assertion"))
	if err != nil {
		return nil, err
	}
	if id, ok := form["client_id"]; ok && id[0] != a.Client.ID {
		return nil, refuse(FieldClientID, "%q is not the assertion's iss", clip(id[0]))
	}
	return &TokenRequest{Assertion: a, Scopes: scopes}, nil
}

// ValidateAssertion checks a client assertion field by field: the header
// (alg RS384 or ES384, typ JWT, kid, jku, no crit), the claims (iss = sub =
// a registered, enabled client; aud = TokenURL; exp present, not past and
// at most five minutes ahead; nbf and iat not in the future; jti present),
// then the signature with the key the kid picks (through golang-jwt with
// WithValidMethods), and last that the jti was not used before. The first
// failure is returned as a *ValidationError naming its field; errors of
// the registry or the fetcher that are not the client's fault are
// returned as they are.
func (v *Validator) ValidateAssertion(ctx context.Context, assertion string) (*VerifiedAssertion, error) {
	if v.TokenURL == "" || v.Clients == nil {
		return nil, errors.New("smart: Validator needs TokenURL and Clients")
	}
	if len(assertion) > MaxAssertionBytes {
		return nil, refuse(FieldAssertion, "%d bytes, over the limit of %d", len(assertion), MaxAssertionBytes)
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return nil, refuse(FieldAssertion, "not a JWS in compact form (three base64url parts separated by dots)")
	}
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, refuse(FieldAssertion, "the header is not base64url JSON: %v", err)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, refuse(FieldAssertion, "the claims are not base64url JSON: %v", err)
	}

	// Header.
	alg, _ := header["alg"].(string)
	if alg != RS384 && alg != ES384 {
		return nil, refuse(FieldAlg, "%s is not accepted: SMART Backend Services allows %s and %s", describe(header["alg"]), RS384, ES384)
	}
	if typ, ok := header["typ"].(string); !ok || !strings.EqualFold(typ, "JWT") {
		return nil, refuse(FieldTyp, "%s, want JWT", describe(header["typ"]))
	}
	if _, ok := header["crit"]; ok {
		return nil, refuse(FieldCrit, "critical header extensions are not supported")
	}
	kid, _ := header["kid"].(string)
	if kid == "" {
		return nil, refuse(FieldKID, "%s: the header must name the signing key by its kid", describe(header["kid"]))
	}
	jku, hasJKU := header["jku"]
	jkuURL, _ := jku.(string)
	if hasJKU && jkuURL == "" {
		return nil, refuse(FieldJKU, "%s is not a URL", describe(jku))
	}

	// Claims that identify the client.
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, refuse(FieldIss, "missing: iss must be the client id")
	}
	if sub, _ := claims["sub"].(string); sub != iss {
		return nil, refuse(FieldSub, "%s is not the iss (sub must equal iss, the client id)", describe(claims["sub"]))
	}
	client, err := v.Clients.Client(ctx, iss)
	if errors.Is(err, ErrUnknownClient) {
		return nil, &ValidationError{Field: FieldIss, Reason: fmt.Sprintf("%q is not a registered client", clip(iss)), Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("smart: looking up client %q: %w", clip(iss), err)
	}
	if client.Disabled {
		return nil, refuse(FieldIss, "client %q is disabled", clip(iss))
	}

	// Timing and audience, checked here for a precise error; golang-jwt
	// checks them again with the signature.
	now := v.now()
	leeway := v.leeway()
	if err := checkAudience(claims["aud"], v.TokenURL); err != nil {
		return nil, err
	}
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, refuse(FieldExp, "%v", err)
	case !ok:
		return nil, refuse(FieldExp, "missing: an assertion must expire")
	case !now.Before(exp.Add(leeway)):
		return nil, refuse(FieldExp, "expired at %s (now %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case exp.After(now.Add(MaxAssertionLifetime + leeway)):
		return nil, refuse(FieldExp, "%s is more than %s ahead", exp.UTC().Format(time.RFC3339), MaxAssertionLifetime)
	}
	for _, c := range []Field{FieldNbf, FieldIat} {
		t, ok, err := numericDate(claims, string(c))
		if err != nil {
			return nil, refuse(c, "%v", err)
		}
		if ok && t.After(now.Add(leeway)) {
			return nil, refuse(c, "%s is in the future (now %s)", t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return nil, refuse(FieldJTI, "missing: every assertion needs a unique jti")
	}
	if len(jti) > maxJTILength {
		return nil, refuse(FieldJTI, "%d characters, over the limit of %d", len(jti), maxJTILength)
	}

	// The key.
	key, err := v.key(ctx, client, kid, alg, jkuURL, hasJKU)
	if err != nil {
		return nil, err
	}

	// The signature, and the registered claims again, by golang-jwt.
	var rc jwt.RegisteredClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods(validMethods()),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(v.TokenURL),
		jwt.WithIssuer(client.ID),
		jwt.WithSubject(client.ID),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err = parser.ParseWithClaims(assertion, &rc, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != alg {
			return nil, fmt.Errorf("alg changed between checks")
		}
		return key.PublicKey(), nil
	})
	if err != nil {
		return nil, jwtError(err)
	}

	// Replay, last: only a verified assertion may take a place in the cache.
	if err := v.replay().Remember(ctx, client.ID+"\x00"+jti, exp.Add(leeway)); err != nil {
		if errors.Is(err, ErrReplayed) {
			return nil, &ValidationError{Field: FieldJTI, Reason: "this jti was already used: every assertion must be new", Err: err}
		}
		return nil, fmt.Errorf("smart: replay cache: %w", err)
	}
	iat, _, _ := numericDate(claims, "iat")
	return &VerifiedAssertion{Client: client, KeyID: kid, Alg: alg, ID: jti, IssuedAt: iat, Expiry: exp}, nil
}

// key finds the verification key: with jku, in the JWK Set published at
// the client's registered JWKSURL (jku must equal it); without, in the
// registered JWKS, then at JWKSURL when the kid is not there.
func (v *Validator) key(ctx context.Context, c *Client, kid, alg, jku string, hasJKU bool) (*JWK, error) {
	fetch := func() (*JWKS, error) {
		if v.Fetcher == nil {
			return nil, fmt.Errorf("smart: client %q publishes its keys at a URL and no JWKSFetcher is configured", c.ID)
		}
		set, err := v.Fetcher.FetchJWKS(ctx, c.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("smart: fetching the JWK Set of client %q: %w", c.ID, err)
		}
		return set, nil
	}
	lookup := func(set *JWKS) (*JWK, error) {
		k, err := set.Key(kid, alg)
		switch {
		case errors.Is(err, ErrKeyMismatch):
			return nil, &ValidationError{Field: FieldAlg, Reason: err.Error(), Err: err}
		case err != nil:
			return nil, &ValidationError{Field: FieldKID, Reason: err.Error() + " registered for this client", Err: err}
		}
		return k, nil
	}
	if hasJKU {
		if c.JWKSURL == "" {
			return nil, refuse(FieldJKU, "the client has no registered JWK Set URL, so jku cannot be used")
		}
		if jku != c.JWKSURL {
			return nil, refuse(FieldJKU, "%q is not the client's registered JWK Set URL", clip(jku))
		}
		set, err := fetch()
		if err != nil {
			return nil, err
		}
		return lookup(set)
	}
	if c.JWKS != nil {
		k, err := lookup(c.JWKS)
		var ve *ValidationError
		if err == nil || c.JWKSURL == "" || v.Fetcher == nil || !errors.As(err, &ve) || ve.Field != FieldKID {
			return k, err
		}
	}
	if c.JWKSURL == "" {
		return nil, refuse(FieldKID, "kid %q: the client has no registered keys", clip(kid))
	}
	set, err := fetch()
	if err != nil {
		return nil, err
	}
	return lookup(set)
}

// jwtError maps what golang-jwt refused to the field at fault. The checks
// before it catch nearly everything; what reaches here is mostly a bad
// signature.
func jwtError(err error) *ValidationError {
	ve := func(f Field, reason string) *ValidationError {
		return &ValidationError{Field: f, Reason: reason, Err: err}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ve(FieldAssertion, "malformed: "+err.Error())
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ve(FieldSignature, "does not verify with the key named by kid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return ve(FieldExp, "expired")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ve(FieldAud, "not this server's token URL")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ve(FieldIss, "not the client id")
	case errors.Is(err, jwt.ErrTokenInvalidSubject):
		return ve(FieldSub, "not the client id")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ve(FieldNbf, "in the future")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ve(FieldIat, "in the future")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ve(FieldAssertion, "a required claim is missing: "+err.Error())
	}
	return ve(FieldAssertion, "refused: "+err.Error())
}

func checkAudience(aud any, want string) *ValidationError {
	switch a := aud.(type) {
	case string:
		if a == want {
			return nil
		}
		return refuse(FieldAud, "%q is not this server's token URL %q", clip(a), want)
	case []any:
		// RFC 7523 allows several audiences; one of them must be ours.
		for _, x := range a {
			if s, _ := x.(string); s == want {
				return nil
			}
		}
		return refuse(FieldAud, "none of the %d audiences is this server's token URL %q", len(a), want)
	case nil:
		return refuse(FieldAud, "missing: aud must be this server's token URL %q", want)
	}
	return refuse(FieldAud, "%s is not a string", describe(aud))
}

// numericDate reads a NumericDate claim (RFC 7519: seconds since the
// epoch, a JSON number).
func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		return time.Time{}, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%s is not a number of seconds", describe(raw))
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("%s is out of range", clip(n.String()))
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func decodeSegment(seg string, into *map[string]any) error {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if *into == nil {
		return errors.New("not a JSON object")
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// describe names a header or claim value in a refusal without echoing
// more than a short prefix of it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "missing"
	case string:
		return fmt.Sprintf("%q", clip(x))
	case json.Number:
		return clip(x.String())
	case bool:
		return fmt.Sprint(x)
	case []any:
		return "a JSON array"
	}
	return "a JSON object"
}
