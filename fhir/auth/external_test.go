package auth_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/fhir/memstore"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

func privateOf(t *testing.T, k *smart.SigningKey) any {
	p, _ := k.MarshalPEM()
	b, _ := pem.Decode(p)
	priv, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestExternalIssuer: tokens of an external identity provider are taken
// when signed by its published key for this audience, for a registered
// client, with the client's scopes as the upper bound.
func TestExternalIssuer(t *testing.T) {
	key, _ := smart.GenerateKey(smart.ES384)
	set, _ := json.Marshal(key.PublicJWKS())
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(set) }))
	defer idp.Close()
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "app", Tenant: "acme", JWKSURL: "https://unused.example/jwks", Scopes: "system/Observation.rs"})
	gw, err := auth.NewGateway(ctx, auth.GatewayConfig{Store: st, BaseURL: "https://gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	ext := &auth.External{Issuer: "https://idp.example", Audience: "https://gw.example", JWKSURL: idp.URL, Store: st}
	v := auth.Verifiers{Gateway: gw, External: ext}
	now := time.Now()
	sign := func(m jwt.SigningMethod, k any, mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": "https://idp.example", "aud": "https://gw.example", "client_id": "app",
			"scope": "system/Observation.rs system/Patient.rs", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()}
		if mod != nil {
			mod(c)
		}
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = key.KeyID()
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	priv := privateOf(t, key)
	p, err := v.Verify(ctx, sign(jwt.SigningMethodES384, priv, nil))
	if err != nil || p.ClientID != "app" || p.Tenant != "acme" || p.Scopes.String() != "system/Observation.rs" {
		t.Fatalf("external token: %+v, %v; want client app of acme with system/Observation.rs only", p, err)
	}
	other, _ := smart.GenerateKey(smart.ES384)
	for name, tok := range map[string]string{
		"wrong aud":       sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }),
		"expired":         sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }),
		"unknown client":  sign(jwt.SigningMethodES384, priv, func(c jwt.MapClaims) { c["client_id"] = "nobody" }),
		"another key":     sign(jwt.SigningMethodES384, privateOf(t, other), nil),
		"HS256 with JWKS": sign(jwt.SigningMethodHS256, set, nil),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("%s: err %v, want ErrUnauthorized", name, err)
		}
	}
}

// TestExternalCache: an external token is verified once, then taken from
// the cache; a cached token still expires at its exp, stops verifying when
// the provider withdraws its key (once the cached JWK Set goes stale), and
// is refused at once when its client is disabled.
func TestExternalCache(t *testing.T) {
	key, _ := smart.GenerateKey(smart.ES384)
	published, _ := json.Marshal(key.PublicJWKS())
	var (
		mu  sync.Mutex
		set = published
	)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write(set)
	}))
	defer idp.Close()
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "app", Tenant: "acme", JWKSURL: "https://unused.example/jwks", Scopes: "system/*.rs"})
	var clock atomic.Int64
	start := time.Now()
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	ext := &auth.External{Issuer: "https://idp.example", Audience: "https://gw.example", JWKSURL: idp.URL, Store: st, Now: now,
		Fetcher: &auth.Fetcher{Now: now}}
	priv := privateOf(t, key)
	sign := func(exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES384, jwt.MapClaims{"iss": "https://idp.example", "aud": "https://gw.example",
			"client_id": "app", "scope": "system/Patient.rs", "exp": exp.Unix(), "iat": now().Unix(), "jti": smart.NewID()})
		tok.Header["kid"] = key.KeyID()
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Verified once, then cached.
	tok := sign(now().Add(5 * time.Minute))
	for i := range 5 {
		if _, err := ext.Verify(ctx, tok); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := auth.Verifications(ext); n != 1 {
		t.Errorf("5 requests with one token verified it %d times, want 1 (then the cache)", n)
	}
	// A cached token expires on time (the library's leeway is not extended
	// by the cache).
	advance(5*time.Minute - time.Second)
	if _, err := ext.Verify(ctx, tok); err != nil {
		t.Fatalf("a second before exp: %v", err)
	}
	advance(time.Second)
	if _, err := ext.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("a cached token at its exp: err %v, want ErrUnauthorized", err)
	}
	advance(10 * time.Second)
	if _, err := ext.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("a cached token past its exp and the leeway: err %v, want ErrUnauthorized", err)
	}

	// A withdrawn signing key: the cached token keeps working while the
	// JWK Set the provider published is fresh (max-age=60), and stops when
	// it is fetched again without the key.
	tok = sign(now().Add(5 * time.Minute))
	if _, err := ext.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	other, _ := smart.GenerateKey(smart.ES384)
	mu.Lock()
	set, _ = json.Marshal(other.PublicJWKS())
	mu.Unlock()
	advance(61 * time.Second)
	if _, err := ext.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("a cached token whose key the provider withdrew: err %v, want ErrUnauthorized", err)
	}
	mu.Lock()
	set = published
	mu.Unlock()
	advance(61 * time.Second)

	// A disabled client: refused at the next request, cache or not.
	tok = sign(now().Add(5 * time.Minute))
	if _, err := ext.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	_ = st.PutAuthClient(ctx, auth.ClientRow{ID: "app", Tenant: "acme", JWKSURL: "https://unused.example/jwks", Scopes: "system/*.rs", Disabled: true})
	if _, err := ext.Verify(ctx, tok); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("a cached token of a disabled client: err %v, want ErrUnauthorized", err)
	}
}
