package ehr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/kapbridge/kapbridge/fhir/smart"
)

// TestTokenSourceAssertion: with each key, the token endpoint checks a
// real assertion field by field and issues a token, which is then cached.
func TestTokenSourceAssertion(t *testing.T) {
	keys(t)
	for _, key := range []*smart.SigningKey{rsaKey, ecKey} {
		t.Run(key.Alg(), func(t *testing.T) {
			tokens := newTokenServer(t)
			src := testSource(t, tokens, func(c *TokenConfig) { c.Key = key })
			ctx := ctxTimeout(t, 10*time.Second)
			tok, err := src.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tokens.valid(tok.AccessToken) || tok.Scope != "system/Observation.rs system/Observation.c system/Patient.rs" {
				t.Fatalf("token %v not issued as asked", tok)
			}
			if d := time.Until(tok.Expiry); d < 4*time.Minute || d > 5*time.Minute {
				t.Fatalf("expiry in %s, want about 5 min", d)
			}
			form, _ := tokens.last()
			assertion := form.Get("client_assertion")
			parsed, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Header["alg"] != key.Alg() || parsed.Header["kid"] != key.KeyID() || parsed.Header["typ"] != "JWT" {
				t.Fatalf("header %v", parsed.Header)
			}
			for i := 0; i < 3; i++ {
				again, err := src.Token(ctx)
				if err != nil || again.AccessToken != tok.AccessToken {
					t.Fatalf("cached token not reused: %v", err)
				}
			}
			if n := tokens.count(); n != 1 {
				t.Fatalf("%d token requests, want 1", n)
			}
		})
	}
}

// TestTokenSourceRefusedAssertion: an EHR that does not know the key
// answers invalid_client; the error says so, is not temporary, and the
// request was not repeated.
func TestTokenSourceRefusedAssertion(t *testing.T) {
	tokens := newTokenServer(t)
	src := testSource(t, tokens, func(c *TokenConfig) { c.Key = strangerEC })
	_, err := src.Token(ctxTimeout(t, 10*time.Second))
	var te *TokenError
	if !errors.As(err, &te) || !errors.Is(err, ErrTokenEndpoint) {
		t.Fatalf("error %v (%T)", err, err)
	}
	if te.Status != 401 || te.OAuth == nil || te.OAuth.Code != "invalid_client" || te.Temporary || tokens.count() != 1 {
		t.Fatalf("%+v after %d requests", te, tokens.count())
	}
	if !strings.Contains(err.Error(), "invalid_client: kid") || !strings.Contains(err.Error(), tokens.url()) {
		t.Fatalf("message %q does not say what and where", err)
	}
}

// TestTokenSourceDiscovery: with no token URL configured, it comes from
// the FHIR server's /.well-known/smart-configuration: Epic's and Oracle
// Health's real documents, pointed at the test token endpoint.
func TestTokenSourceDiscovery(t *testing.T) {
	for _, name := range []string{"epic.smart-configuration.json", "oracle-health.smart-configuration.json"} {
		t.Run(name, func(t *testing.T) {
			tokens := newTokenServer(t)
			fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) {})
			doc, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ehr", name))
			if err != nil {
				t.Fatal(err)
			}
			conf, err := smart.ParseConfiguration(doc)
			if err != nil {
				t.Fatal(err)
			}
			fs.smartConfig = bytes.Replace(doc, []byte(`"`+conf.TokenEndpoint+`"`), []byte(`"`+tokens.url()+`"`), 1)
			src := testSource(t, tokens, func(c *TokenConfig) { c.TokenURL, c.FHIRBase = "", fs.base() })
			if _, err := src.Token(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if src.TokenURL() != tokens.url() {
				t.Fatalf("token URL %q", src.TokenURL())
			}
			hits := fs.seen()
			if len(hits) != 1 || hits[0].path != "/fhir/R4/.well-known/smart-configuration" || hits[0].auth != "" {
				t.Fatalf("FHIR server saw %+v", hits)
			}
		})
	}
}

func TestTokenSourceDiscoveryFailures(t *testing.T) {
	tokens := newTokenServer(t)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"no document", "", "404"},
		{"no client_credentials", `{"token_endpoint":"` + tokens.url() + `","grant_types_supported":["authorization_code"]}`, "client_credentials"},
		{"no ES384", `{"token_endpoint":"` + tokens.url() + `","grant_types_supported":["client_credentials"],"token_endpoint_auth_signing_alg_values_supported":["RS384"]}`, "ES384"},
		{"token endpoint over plain http elsewhere", `{"token_endpoint":"http://auth.example/token","grant_types_supported":["client_credentials"]}`, "plain http"},
		{"not JSON", `<html>`, "expected shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFHIRServer(t, tokens, func(w http.ResponseWriter, r *http.Request, n int) { http.NotFound(w, r) })
			if tc.doc != "" {
				fs.smartConfig = []byte(tc.doc)
			}
			src := testSource(t, tokens, func(c *TokenConfig) { c.TokenURL, c.FHIRBase = "", fs.base() })
			_, err := src.Token(ctxTimeout(t, 10*time.Second))
			if !errors.Is(err, ErrTokenEndpoint) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "discovering the token URL") {
				t.Fatalf("error %v, want one about discovery naming %q", err, tc.want)
			}
		})
	}
}

// TestTokenSourceClientSecret: HTTP Basic with the id and secret
// form-encoded, no assertion in the form.
func TestTokenSourceClientSecret(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.secret = "s3cret: with+spaces/&"
	src := testSource(t, tokens, func(c *TokenConfig) { c.Key, c.ClientSecret = nil, tokens.secret })
	if _, err := src.Token(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	form, auth := tokens.last()
	if form.Has("client_assertion") || !strings.HasPrefix(auth, "Basic ") || form.Get("scope") != testScope {
		t.Fatalf("form %v, auth %q", form, auth)
	}
	// A wrong secret: invalid_client, one request.
	bad := testSource(t, tokens, func(c *TokenConfig) { c.Key, c.ClientSecret = nil, "wrong" })
	if _, err := bad.Token(ctxTimeout(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestTokenSourceOneFetchInFlight: 50 callers with no token cached share
// one token request.
func TestTokenSourceOneFetchInFlight(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.delay = 200 * time.Millisecond
	src := testSource(t, tokens, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	got := make([]string, 50)
	errs := make([]error, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := src.Token(ctx)
			got[i], errs[i] = tok.AccessToken, err
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("caller %d: %q, %v (caller 0: %q)", i, got[i], errs[i], got[0])
		}
	}
	if n := tokens.count(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// A caller that gives up does not cancel the fetch for the others.
	src.Invalidate(Token{AccessToken: got[0]})
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := src.Token(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	if tok, err := src.Token(ctx); err != nil || tok.AccessToken == got[0] || tokens.count() != 2 {
		t.Fatalf("after invalidation: %v, %v, %d requests", tok, err, tokens.count())
	}
}

// TestTokenSourceExpiry: a token is renewed the skew before it expires,
// or halfway through a lifetime shorter than twice the skew.
func TestTokenSourceExpiry(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.lifetime = 120 * time.Second
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tokens.validator.Now = clock // the EHR's clock moves with ours
	src := testSource(t, tokens, func(c *TokenConfig) { c.Now, c.Skew = clock, 30*time.Second })
	ctx := ctxTimeout(t, 10*time.Second)
	first, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	advance(89 * time.Second)
	if tok, _ := src.Token(ctx); tok.AccessToken != first.AccessToken || tokens.count() != 1 {
		t.Fatal("renewed more than the skew before expiry")
	}
	advance(2 * time.Second)
	second, err := src.Token(ctx)
	if err != nil || second.AccessToken == first.AccessToken || tokens.count() != 2 {
		t.Fatalf("not renewed 29 s before expiry: %v, %d requests", err, tokens.count())
	}
	tokens.lifetime = 20 * time.Second // shorter than twice the skew: renewed at half-life
	src.Invalidate(second)
	third, _ := src.Token(ctx)
	advance(9 * time.Second)
	if tok, _ := src.Token(ctx); tok.AccessToken != third.AccessToken {
		t.Fatal("a 20 s token renewed before its half-life")
	}
	advance(2 * time.Second)
	if tok, _ := src.Token(ctx); tok.AccessToken == third.AccessToken {
		t.Fatal("a 20 s token not renewed after its half-life")
	}
}

// TestTokenSourceFailingEndpoint: 503s are retried with fresh assertions
// (each jti new: the validator would refuse a resent one) and then
// reported; a 429 with Retry-After is waited for.
func TestTokenSourceFailingEndpoint(t *testing.T) {
	tokens := newTokenServer(t)
	tokens.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	}
	src := testSource(t, tokens, nil)
	_, err := src.Token(ctxTimeout(t, 10*time.Second))
	var te *TokenError
	if !errors.As(err, &te) || te.Status != 503 || !te.Temporary || te.Attempts != 5 || tokens.count() != 5 {
		t.Fatalf("error %v: %+v, %d requests", err, te, tokens.count())
	}

	// Two 503s, then through: three requests, three distinct assertions.
	tokens2 := newTokenServer(t)
	var (
		jtiMu sync.Mutex
		jtis  []string
	)
	tokens2.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		r.ParseForm()
		tok, _, _ := jwt.NewParser().ParseUnverified(r.PostForm.Get("client_assertion"), jwt.MapClaims{})
		jtiMu.Lock()
		jtis = append(jtis, fmt.Sprint(tok.Claims.(jwt.MapClaims)["jti"]))
		jtiMu.Unlock()
		if n <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	if _, err := testSource(t, tokens2, nil).Token(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	jtiMu.Lock()
	defer jtiMu.Unlock()
	if len(jtis) != 3 || jtis[0] == jtis[1] || jtis[1] == jtis[2] || jtis[0] == jtis[2] {
		t.Fatalf("jtis %v, want three different ones", jtis)
	}

	// 429 Retry-After: 1 (as athenahealth rate-limits token requests).
	tokens3 := newTokenServer(t)
	tokens3.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		}
		return false
	}
	start := time.Now()
	if _, err := testSource(t, tokens3, nil).Token(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %s, before the Retry-After of 1 s", d)
	}
}

func TestNewTokenSourceChecks(t *testing.T) {
	keys(t)
	for _, tc := range []struct {
		name string
		cfg  TokenConfig
		want string
	}{
		{"no client id", TokenConfig{TokenURL: "https://e.example/t", Key: ecKey, Scope: testScope}, "client id"},
		{"key and secret", TokenConfig{TokenURL: "https://e.example/t", ClientID: "c", Key: ecKey, ClientSecret: "s", Scope: testScope}, "exactly one"},
		{"neither", TokenConfig{TokenURL: "https://e.example/t", ClientID: "c", Scope: testScope}, "exactly one"},
		{"jku with a secret", TokenConfig{TokenURL: "https://e.example/t", ClientID: "c", ClientSecret: "s", JKU: "https://k", Scope: testScope}, "jku"},
		{"no scope", TokenConfig{TokenURL: "https://e.example/t", ClientID: "c", Key: ecKey}, "scopes"},
		{"bad scope", TokenConfig{TokenURL: "https://e.example/t", ClientID: "c", Key: ecKey, Scope: "system/Observaton.rs"}, "not an R4 resource type"},
		{"http token URL", TokenConfig{TokenURL: "http://e.example/t", ClientID: "c", Key: ecKey, Scope: testScope}, "plain http"},
		{"nothing to discover from", TokenConfig{ClientID: "c", Key: ecKey, Scope: testScope}, "discover"},
	} {
		if _, err := NewTokenSource(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewTokenSource(TokenConfig{TokenURL: "http://e.example/t", ClientID: "c", Key: ecKey, Scope: testScope, AllowHTTP: true}); err != nil {
		t.Errorf("AllowHTTP: %v", err)
	}
}

func TestTokenNeverPrints(t *testing.T) {
	tok := Token{AccessToken: "SECRET-TOKEN", Expiry: time.Now(), Scope: "system/*.rs"}
	var buf logBuffer
	slogger := newJSONLogger(&buf)
	slogger.Info("x", "token", tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), buf.String()} {
		if strings.Contains(s, "SECRET-TOKEN") {
			t.Fatalf("token printed: %s", s)
		}
	}
}
