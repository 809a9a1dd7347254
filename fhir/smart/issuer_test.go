package smart

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestIssuer: the token endpoint over real HTTP grants what the client's
// registration allows, refuses with the RFC 6749 error and status, and
// Verify accepts exactly the tokens it (or a replica with the same keys)
// signed, through a key rotation.
func TestIssuer(t *testing.T) {
	clientKey, err := GenerateKey(ES384)
	if err != nil {
		t.Fatal(err)
	}
	serverKey, err := GenerateKey(RS384)
	if err != nil {
		t.Fatal(err)
	}
	allowed, _ := ParseScopes("system/Observation.rs system/Patient.r")
	var srv *httptest.Server
	is := &Issuer{Keys: []*SigningKey{serverKey}, Name: "https://gw.example/fhir"}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { is.TokenHandler().ServeHTTP(w, r) }))
	defer srv.Close()
	is.Validator = &Validator{TokenURL: srv.URL, Clients: Clients{"app": {ID: "app", JWKS: clientKey.PublicJWKS(), Scopes: allowed}}}

	post := func(form string, ct string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL, ct, strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
		}
		return resp.StatusCode, m
	}
	assertion := func(key *SigningKey) string {
		t.Helper()
		a, err := key.Sign(Assertion{ClientID: "app", TokenURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	const form = "application/x-www-form-urlencoded"

	status, m := post(TokenRequestForm(assertion(clientKey), "system/Observation.cruds system/Condition.r").Encode(), form)
	if status != 200 || m["token_type"] != "bearer" || m["scope"] != "system/Observation.rs" || m["expires_in"] != float64(300) {
		t.Fatalf("grant: %d %v", status, m)
	}
	tok, err := is.Verify(m["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if tok.ClientID != "app" || !tok.Scopes.Permits("Observation", InteractionSearchType) || tok.Scopes.Permits("Observation", InteractionCreate) || tok.Scopes.Permits("Condition", InteractionRead) {
		t.Errorf("verified token: %+v", tok)
	}

	other, _ := GenerateKey(ES384)
	for _, tc := range []struct {
		name, body, ct string
		status         int
		code           string
	}{
		{"no scope it may have", TokenRequestForm(assertion(clientKey), "system/Condition.r").Encode(), form, 400, "invalid_scope"},
		{"assertion by another key", TokenRequestForm(assertion(other), "system/Observation.rs").Encode(), form, 401, "invalid_client"},
		{"wrong grant type", strings.Replace(TokenRequestForm(assertion(clientKey), "system/Observation.rs").Encode(), "client_credentials", "password", 1), form, 400, "unsupported_grant_type"},
		{"JSON body", `{"grant_type":"client_credentials"}`, "application/json", 400, "invalid_request"},
	} {
		status, m := post(tc.body, tc.ct)
		if status != tc.status || m["error"] != tc.code {
			t.Errorf("%s: %d %v; want %d %s", tc.name, status, m, tc.status, tc.code)
		}
	}
	if resp, err := http.Get(srv.URL); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp, err)
	}

	// Verify refuses what it did not sign, or no longer may accept.
	signed := func(key *SigningKey, claims jwt.MapClaims, method jwt.SigningMethod) string {
		tk := jwt.NewWithClaims(method, claims)
		tk.Header["kid"] = key.KeyID()
		s, err := tk.SignedString(key.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": is.Name, "aud": is.Name, "client_id": "app", "scope": "system/Observation.rs", "exp": time.Now().Add(time.Minute).Unix(), "jti": "x"}
	}
	expired, wrongAud, noExp := good(), good(), good()
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	wrongAud["aud"] = "https://elsewhere"
	delete(noExp, "exp")
	otherRSA, _ := GenerateKey(RS384)
	for name, token := range map[string]string{
		"expired":          signed(serverKey, expired, jwt.SigningMethodRS384),
		"another audience": signed(serverKey, wrongAud, jwt.SigningMethodRS384),
		"no exp":           signed(serverKey, noExp, jwt.SigningMethodRS384),
		"unknown key":      signed(otherRSA, good(), jwt.SigningMethodRS384),
		"RS256":            signed(serverKey, good(), jwt.SigningMethodRS256),
		"alg none":         strings.Join(strings.Split(signed(serverKey, good(), jwt.SigningMethodRS384), ".")[:2], ".") + ".",
		"tampered":         strings.Replace(m["access_token"].(string), ".", ".e", 1),
		"garbage":          "not-a-token",
	} {
		if _, err := is.Verify(token); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v; want ErrInvalidToken", name, err)
		}
	}

	// Rotation: a new key signs; the old one still verifies until dropped.
	issued := m["access_token"].(string)
	newKey, _ := GenerateKey(ES384)
	is.Keys = []*SigningKey{newKey, serverKey}
	if _, err := is.Verify(issued); err != nil {
		t.Errorf("old token after rotation: %v", err)
	}
	status, m = post(TokenRequestForm(assertion(clientKey), "system/Patient.r").Encode(), form)
	if status != 200 {
		t.Fatalf("after rotation: %d %v", status, m)
	}
	if _, err := is.Verify(m["access_token"].(string)); err != nil {
		t.Errorf("new token: %v", err)
	}
	is.Keys = []*SigningKey{newKey}
	if _, err := is.Verify(issued); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("old token once its key is dropped: %v", err)
	}
}
