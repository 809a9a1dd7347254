package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kapbridge/kapbridge/fhir/smart"
)

// Paths of the authorization server, under the FHIR base URL.
const (
	TokenPath = "/auth/token"
	JWKSPath  = "/auth/jwks"
)

// Principal is who a request comes from: a client holding a verified access
// token.
type Principal struct {
	ClientID string
	Tenant   string
	Scopes   smart.Scopes
	TokenID  string // the access token's jti, for audit
	Expiry   time.Time
	// Recipient is the client's ClientRow.Recipient: "" for the
	// practice's own clients, a Practitioner reference for a prescriber's.
	Recipient string
}

// Gateway is the gateway's SMART Backend Services authorization server: a
// token endpoint (TokenHandler) for the clients of a Store, the JWK Set
// of its signing keys, its smart-configuration, and the check of an access
// token (Verify).
type Gateway struct {
	store    Store
	base     string
	keys     Keys
	now      func() time.Time
	lifetime time.Duration
	fetcher  smart.JWKSFetcher

	issuer  atomic.Pointer[smart.Issuer]
	cache   tokenCache
	clients *clientStates
}

// GatewayConfig configures NewGateway.
type GatewayConfig struct {
	Store Store
	// BaseURL is the FHIR API's public base URL: the iss and aud of access
	// tokens; the token endpoint is BaseURL+TokenPath, the only aud a
	// client assertion may carry.
	BaseURL string
	// Alg of the signing key made when the store has none (ES384 default).
	Alg string
	// Lifetime of an access token; default smart.DefaultTokenLifetime.
	Lifetime time.Duration
	// Fetcher gets JWK Sets published at a client's URL; nil: a Fetcher
	// caching as Cache-Control says.
	Fetcher smart.JWKSFetcher
	Now     func() time.Time
}

// NewGateway loads the signing keys (making one when the store has none).
func NewGateway(ctx context.Context, cfg GatewayConfig) (*Gateway, error) {
	if cfg.Store == nil || cfg.BaseURL == "" {
		return nil, errors.New("auth: a Gateway needs a Store and a BaseURL")
	}
	g := &Gateway{store: cfg.Store, base: strings.TrimRight(cfg.BaseURL, "/"), now: cfg.Now,
		lifetime: cfg.Lifetime, fetcher: cfg.Fetcher, clients: newClientStates(cfg.Store)}
	if g.now == nil {
		g.now = time.Now
	}
	if g.lifetime <= 0 {
		g.lifetime = smart.DefaultTokenLifetime
	}
	if g.fetcher == nil {
		g.fetcher = &Fetcher{Now: g.now}
	}
	g.keys = Keys{Store: cfg.Store, Alg: cfg.Alg, Now: g.now, VerifyGrace: 2 * g.lifetime}
	if err := g.Reload(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// Reload reads the signing keys again (after a rotation by another
// process).
func (g *Gateway) Reload(ctx context.Context) error {
	ks, err := g.keys.Load(ctx)
	if err != nil {
		return fmt.Errorf("auth: signing keys: %w", err)
	}
	g.issuer.Store(&smart.Issuer{Keys: ks, Name: g.base, Lifetime: g.lifetime, Now: g.now,
		Validator: &smart.Validator{TokenURL: g.TokenURL(), Clients: Registry{g.store}, Fetcher: g.fetcher,
			Replay: Replay{g.store}, Now: g.now}})
	return nil
}

// Rotate makes a new signing key; the old ones keep verifying the tokens
// they signed until those expire.
func (g *Gateway) Rotate(ctx context.Context) error {
	if _, err := g.keys.Rotate(ctx); err != nil {
		return err
	}
	return g.Reload(ctx)
}

// TokenURL is the token endpoint.
func (g *Gateway) TokenURL() string { return g.base + TokenPath }

// JWKS is the public JWK Set of the keys that verify access tokens.
func (g *Gateway) JWKS() *smart.JWKS {
	set := &smart.JWKS{}
	for _, k := range g.issuer.Load().Keys {
		set.Keys = append(set.Keys, k.Public())
	}
	return set
}

// Configuration is the /.well-known/smart-configuration document.
func (g *Gateway) Configuration() smart.Configuration {
	c := smart.BackendServicesConfiguration(g.TokenURL(), []string{"system/*.rs", "system/*.cruds", "system/AuditEvent.rs"})
	c.Issuer = g.base
	c.JWKSURI = g.base + JWKSPath
	return c
}

// TokenHandler is the token endpoint (POST, form body).
func (g *Gateway) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.issuer.Load().TokenHandler().ServeHTTP(w, r)
	})
}

// JWKSHandler serves JWKS.
func (g *Gateway) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(g.JWKS())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write(b)
	})
}

// ErrUnauthorized is wrapped by every refusal of Verify.
var ErrUnauthorized = errors.New("auth: the access token is not accepted")

// Verify checks an access token: signed by one of the gateway's keys,
// issued by and for this gateway, not expired, its client registered and
// enabled. The signature and claims of a token are checked once and the
// answer cached until the token expires; its client's state is checked
// against the store on every request (clientstate.go: the clients'
// generation, read once for all the requests waiting for it, and the row
// again when that has moved), so disabling a client refuses its tokens at
// once, whichever process disabled it (the CLI, or another replica on
// PostgreSQL). The error wraps ErrUnauthorized and says
// why, for the log; a caller is only told the token is invalid.
func (g *Gateway) Verify(ctx context.Context, token string) (*Principal, error) {
	now := g.now()
	p, ok := g.cache.get(token, now)
	if !ok {
		at, err := g.issuer.Load().Verify(token)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		p = &Principal{ClientID: at.ClientID, Scopes: at.Scopes, TokenID: at.ID, Expiry: at.Expiry}
		g.cache.put(token, p, now)
	}
	q := *p // cached Principals are shared: never changed
	if err := checkClient(ctx, g.clients, &q); err != nil {
		return nil, err
	}
	return &q, nil
}

// checkClient looks p's client up: refused when it is gone or disabled;
// otherwise p takes its current practice and recipient.
func checkClient(ctx context.Context, cs *clientStates, p *Principal) error {
	row, err := cs.get(ctx, p.ClientID)
	switch {
	case errors.Is(err, ErrNoClient):
		return fmt.Errorf("%w: client %q is no longer registered", ErrUnauthorized, p.ClientID)
	case err != nil:
		return err
	case row.Disabled:
		return fmt.Errorf("%w: client %q is disabled", ErrUnauthorized, p.ClientID)
	}
	p.Tenant, p.Recipient = row.Tenant, row.Recipient
	return nil
}

// tokenCache remembers verified tokens until they expire: the principal
// of the token, without its client's practice and recipient (looked up
// per request).
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*Principal
}

const maxCachedTokens = 100_000

func (c *tokenCache) get(tok string, now time.Time) (*Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[tok]
	if !ok || !now.Before(p.Expiry) {
		return nil, false
	}
	return p, true
}

func (c *tokenCache) put(tok string, p *Principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*Principal{}
	}
	if len(c.m) >= maxCachedTokens {
		for k, p := range c.m {
			if !now.Before(p.Expiry) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedTokens {
			clear(c.m) // only costs a verification per token
		}
	}
	c.m[tok] = p
}

// Issue answers a token request (the POST form) in the process, as the
// token endpoint would: the dev mode of `kapbridge serve` uses it to print
// a ready token.
func (g *Gateway) Issue(ctx context.Context, form url.Values) (*smart.TokenResponse, error) {
	return g.issuer.Load().Issue(ctx, form)
}
